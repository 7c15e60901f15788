#!/usr/bin/env python3
"""Scan throughput: pomaidb.scan to pyarrow RecordBatches, against LanceDB's to_arrow() of the same
rows and a plain numpy copy of the vectors (the memory-bandwidth reference), on one thread.

Goal (issue 18): pomaidb.scan of 1M x 128 rows at >= 1 GB/s of vector data on one thread. See
bench/filtered/README.md. From bench/:

    python3 filtered/scan.py                 # 1M x 128 (the data set of filtered/run.py)
    python3 filtered/scan.py --rows 200k

GB/s is vector bytes (rows x dim x 4) over the wall time of producing every batch (best of
--repeats). The data set is run.py's (generated on first use); the pomaidb database and LanceDB
table are built here once (no vector index: a scan does not read one) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as fr  # noqa: E402  (bench/filtered/run.py: data set, attributes, LanceDB table)

log = fr.log


def best_of(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def vector_column(batch: Any, dim: int) -> Optional[int]:
    """Index of the batch's fixed-size-list column of dim floats (the vectors), or None."""
    import pyarrow as pa
    for i, field in enumerate(batch.schema):
        t = field.type
        if pa.types.is_fixed_size_list(t) and t.list_size == dim and pa.types.is_floating(t.value_type):
            return i
    return None


def scan_pomaidb(args: argparse.Namespace, ddir: Path, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
    try:
        import pomaidb
    except ImportError:
        return {"note": "pomaidb: not installed"}
    if not hasattr(pomaidb, "scan"):
        return {"note": f"pomaidb {pomaidb.version()}: scan not available in this build"}
    X = a["base"]
    n, d = X.shape
    path = ddir / "scan-pomaidb"
    fresh = not path.exists()
    # no graph: adaptive_threshold above the row count (a scan reads no index)
    db = pomaidb.open_db(path, dim=d, metric="l2", adaptive_threshold=n + 1, search_threads=1,
                         memory_budget_bytes=4 * X.nbytes)
    if fresh or pomaidb.count(db) != n:
        log(f"writing {n} rows to {path}")
        for s in range(0, n, fr.POMAI_PUT_CHUNK):
            e = min(n, s + fr.POMAI_PUT_CHUNK)
            pomaidb.put_batch(db, np.arange(s, e, dtype=np.uint64), X[s:e],
                              attributes={"bucket": a["bucket"][s:e], "cluster": a["labels"][s:e]})
        pomaidb.freeze(db)
        pomaidb.compact(db)

    rows = [0]
    col: List[Optional[int]] = [None]

    def one() -> None:
        rows[0] = 0
        for batch in pomaidb.scan(db, batch_size=args.batch_size):
            rows[0] += batch.num_rows
            col[0] = vector_column(batch, d)
    t = best_of(one, args.repeats)
    out: Dict[str, Any] = {"seconds": t, "rows": rows[0], "gb_s": rows[0] * d * 4 / t / 1e9,
                           "batch_size": args.batch_size}
    # correctness, not timed: the rows and vectors scanned are the ones written
    got = []
    for batch in pomaidb.scan(db, batch_size=args.batch_size):
        ci = vector_column(batch, d)
        if ci is None or "id" not in batch.schema.names:
            out["note"] = f"batches have no id column or no vector column of {d} floats: {batch.schema}"
            got.append(False)
            break
        ids = np.asarray(batch.column("id")).astype(np.int64)
        vec = np.asarray(batch.column(ci).values).reshape(-1, d)
        got.append(bool(np.array_equal(vec, X[ids])))
    out["vectors_match"] = all(got) and rows[0] == n
    pomaidb.close(db)
    return out


def scan_lance(args: argparse.Namespace, ddir: Path, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
    try:
        import lancedb
    except ImportError:
        return {"note": "lancedb: not installed"}
    X = a["base"]
    n, d = X.shape
    db = lancedb.connect(str(ddir / "scan-lance"))
    if "t" not in db.table_names():
        log("writing the LanceDB table")
        db.create_table("t", data=fr.lance_table(a))
    t = db.open_table("t")
    out: Dict[str, Any] = {}
    holder: List[Any] = [None]

    def whole() -> None:
        holder[0] = t.to_arrow()
    sec = best_of(whole, args.repeats)
    out["to_arrow"] = {"seconds": sec, "rows": holder[0].num_rows, "gb_s": holder[0].num_rows * d * 4 / sec / 1e9}

    def vec_only() -> None:
        holder[0] = t.search().select(["id", "vector"]).limit(n).to_arrow()
    sec = best_of(vec_only, args.repeats)
    out["search().select(id, vector).to_arrow()"] = {"seconds": sec, "rows": holder[0].num_rows,
                                   "gb_s": holder[0].num_rows * d * 4 / sec / 1e9}
    return out


def main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1M")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000, help="the run.py data set to use (its query count)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-size", type=int, default=65536)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--data-dir", default=str(fr.HERE / "data"))
    p.add_argument("--out-dir", default=str(fr.HERE / "results"))
    args = p.parse_args(argv)
    args.rows_n = fr.parse_rows(args.rows)
    args.name = f"clustered-{fr.fmt_rows(args.rows_n)}-{args.dim}-q{args.queries}"
    # one thread for LanceDB (set before it is imported) and for numpy's copy
    os.environ.setdefault("LANCE_CPU_THREADS", "1")
    os.environ.setdefault("LANCE_IO_THREADS", "1")
    data = fr.prepare(args)
    ddir = Path(data["dir"])
    a = fr.load_arrays(data, ["base", "labels", "bucket", "lang", "tags"])
    X = a["base"]
    n, d = X.shape
    res: Dict[str, Any] = {"rows": n, "dim": d, "vector_bytes": X.nbytes, "load_start": os.getloadavg()}
    dst = np.empty_like(X)
    sec = best_of(lambda: np.copyto(dst, X), args.repeats)
    res["numpy copy"] = {"seconds": sec, "gb_s": X.nbytes / sec / 1e9}
    log(f"numpy copy: {res['numpy copy']['gb_s']:.2f} GB/s")
    res["pomaidb scan"] = scan_pomaidb(args, ddir, a)
    log(f"pomaidb scan: {res['pomaidb scan']}")
    res["lancedb"] = scan_lance(args, ddir, a)
    log(f"lancedb: {res['lancedb']}")
    res["load_end"] = os.getloadavg()

    def gb(x: Dict[str, Any]) -> str:
        return f"{x['gb_s']:.2f}" if "gb_s" in x else x.get("note", "–")
    rows = [["numpy copy of the vectors (memory-bandwidth reference)", gb(res["numpy copy"]), ""],
            [f"pomaidb.scan(batch_size={args.batch_size}) -> RecordBatches", gb(res["pomaidb scan"]),
             "vectors match: " + str(res["pomaidb scan"].get("vectors_match", "–"))]]
    for k, v in res["lancedb"].items():
        rows.append([f"LanceDB {k}", gb(v) if isinstance(v, dict) else str(v), ""])
    md = "\n".join([f"# Scan throughput: {n:,} x {d} float32 ({X.nbytes / 1e9:.2f} GB of vectors), one thread", "",
                    f"Best of {args.repeats}; load average {res['load_start'][0]:.2f} at start, "
                    f"{res['load_end'][0]:.2f} at end. Goal: pomaidb >= 1 GB/s.", "",
                    fr.md_table(["path", "GB/s of vector data", "check"], rows), ""])
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scan-{fr.fmt_rows(n)}-{d}.md").write_text(md)
    (out / f"scan-{fr.fmt_rows(n)}-{d}.json").write_text(json.dumps(res, indent=1, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
