#!/usr/bin/env python3
"""Open + first search of a named HNSW index in a disk database, with and
without its index graph file (docs/FORMAT.md, "Named-index graph files").

    python bench/alopex/reopen_index.py [--rows N] [--dim D] [--repeat R]

Builds a disk database with one index of N random vectors (L2, defaults
M 16, ef_construction 200), searches once (the build writes the graph file),
closes; then R times each, alternating: open + first search with the file,
and with the file deleted (the engine rebuilds the graph from the entries
and writes the file again). Prints the median of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from alopex import Database, HnswConfig, Metric, TxnMode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="alopex-reopen-"))
    try:
        path = tmp / "db"
        x = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float32)
        db = Database.open(path)
        db.create_hnsw_index("docs", HnswConfig(dim=args.dim, metric=Metric.L2))
        txn = db.begin(TxnMode.READ_WRITE)
        for i in range(args.rows):
            txn.upsert_to_hnsw("docs", b"k%d" % i, x[i], None)
        txn.commit()
        t0 = time.perf_counter()
        db.search_hnsw("docs", x[0], 10)
        build = time.perf_counter() - t0
        db.close()
        files = sorted(path.glob("idx-*.pgraph"))
        size = sum(f.stat().st_size for f in files)
        times: dict[str, list[float]] = {"with the graph file": [], "without (rebuild)": []}
        for _ in range(args.repeat):
            for mode in times:
                if mode.startswith("without"):
                    for f in path.glob("idx-*.pgraph"):
                        os.remove(f)
                t0 = time.perf_counter()
                db = Database.open(path)
                hits, _ = db.search_hnsw("docs", x[1], 10)
                times[mode].append(time.perf_counter() - t0)
                db.close()
                assert hits[0].key == b"k1", hits[0]
        print(f"{args.rows} x {args.dim}, L2, M 16, ef_construction 200; first build + search {build:.2f} s; "
              f"graph file {size / 1e6:.1f} MB")
        med = {m: statistics.median(t) for m, t in times.items()}
        for m, t in med.items():
            print(f"open + first search, {m}: {t * 1000:.1f} ms (median of {args.repeat})")
        print(f"ratio (rebuild / file): {med['without (rebuild)'] / med['with the graph file']:.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
