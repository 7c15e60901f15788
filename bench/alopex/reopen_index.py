#!/usr/bin/env python3
"""Open + first search of a named HNSW index in a disk database: the
index's graph lives in its segment (docs/FORMAT.md, "Segment files"), so a
reopen searches it at once instead of building it again.

    python bench/alopex/reopen_index.py [--rows N] [--dim D] [--repeat R]

Builds a disk database with one index of N random vectors (L2, defaults
M 16, ef_construction 200) and searches once (the first build: a flush into
a segment with the graph), closes; then R times: open + first search. Prints
the build, the median reopen + first search, and their ratio.
"""

from __future__ import annotations

import argparse
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
        size = sum(f.stat().st_size for f in path.glob("seg-*.pseg"))
        times: list[float] = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            db = Database.open(path)
            hits, _ = db.search_hnsw("docs", x[1], 10)
            times.append(time.perf_counter() - t0)
            db.close()
            assert hits[0].key == b"k1", hits[0]
        print(f"{args.rows} x {args.dim}, L2, M 16, ef_construction 200; first build + search {build:.2f} s; "
              f"segments {size / 1e6:.1f} MB")
        med = statistics.median(times)
        print(f"open + first search: {med * 1000:.1f} ms (median of {args.repeat})")
        print(f"ratio (first build / reopen): {build / med:.1f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
