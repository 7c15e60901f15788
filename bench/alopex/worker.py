#!/usr/bin/env python3
"""One system of the alopex benchmark, in its own process; prints one JSON
object with seconds per operation.

    python worker.py alopex DATA_DIR [--n-kv N] [--repeat R]   # whichever `alopex` this interpreter imports
    python worker.py lmdb   DATA_DIR ...
    python worker.py numpy  DATA_DIR ...

DATA_DIR holds the .npy files written by run.py (flat.npy, flat_q.npy,
hnsw.npy, hnsw_q.npy). Our package and the PyPI `alopex` share an import
name, so run.py starts this script with the interpreter of each venv.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

VALUE = bytes(range(100))


def keys(n: int) -> List[bytes]:
    return [b"key%08d" % i for i in range(n)]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        times.append(fn())
    return min(times)


# ---- alopex (ours or PyPI, whichever this interpreter has) -----------------

def bench_alopex(args: argparse.Namespace, data: Path) -> Dict[str, Any]:
    import alopex
    from alopex import Database, HnswConfig, Metric, TxnMode

    RW = TxnMode.READ_WRITE
    out: Dict[str, Any] = {"system": "alopex", "module": alopex.__file__}
    try:
        import importlib.metadata as md
        out["version"] = md.version("alopex")
    except Exception:
        out["version"] = "this repository"
    ks = keys(args.n_kv)

    def put_commit() -> float:
        db = Database.new()
        t0 = time.perf_counter()
        for k in ks:
            txn = db.begin(RW)
            txn.put(k, VALUE)
            txn.commit()
        dt = time.perf_counter() - t0
        db.close()
        return dt / len(ks)

    out["put_commit"] = best(put_commit, args.repeat)

    db = Database.new()
    txn = db.begin(RW)
    for k in ks:
        txn.put(k, VALUE)
    txn.commit()
    order = [ks[i] for i in np.random.default_rng(1).permutation(len(ks))]

    def get(keys_in_order: List[bytes]) -> float:
        txn = db.begin(TxnMode.READ_ONLY)
        t0 = time.perf_counter()
        for k in keys_in_order:
            txn.get(k)
        dt = time.perf_counter() - t0
        assert txn.get(order[0]) == VALUE
        txn.rollback()
        return dt / len(keys_in_order)

    out["get"] = best(lambda: get(order), args.repeat)
    out["get_seq"] = best(lambda: get(ks), args.repeat)
    db.close()

    # search_similar: flat exact search over 10k x 768, cosine.
    flat = np.load(data / "flat.npy")
    flat_q = np.load(data / "flat_q.npy")
    db = Database.new()
    t0 = time.perf_counter()
    txn = db.begin(RW)
    for i, row in enumerate(flat):
        txn.upsert_vector(b"v%06d" % i, None, row, Metric.COSINE)
    txn.commit()
    out["flat_load_s"] = time.perf_counter() - t0
    txn = db.begin(TxnMode.READ_ONLY)
    first: List[List[int]] = []

    def search() -> float:
        first.clear()
        t0 = time.perf_counter()
        for q in flat_q:
            res = txn.search_similar(q, Metric.COSINE, 10)
            first.append([int(r.key[1:]) for r in res])
        return (time.perf_counter() - t0) / len(flat_q)

    out["search_similar"] = best(search, args.repeat)
    out["search_similar_ids"] = first
    txn.rollback()
    db.close()

    # search_hnsw: recall@10 against time per query over an ef sweep.
    hd = np.load(data / "hnsw.npy")
    hq = np.load(data / "hnsw_q.npy")
    db = Database.new()
    db.create_hnsw_index("h", HnswConfig(hd.shape[1], m=16, ef_construction=200, metric=Metric.L2))
    t0 = time.perf_counter()
    txn = db.begin(RW)
    for i, row in enumerate(hd):
        txn.upsert_to_hnsw("h", b"%d" % i, row)
    txn.commit()
    db.search_hnsw("h", hq[0], 10)  # a lazily built graph is built here, not in the first timing
    out["hnsw_build_s"] = time.perf_counter() - t0
    sweep = []
    for ef in args.ef:
        ids: List[List[int]] = []

        def run() -> float:
            ids.clear()
            t0 = time.perf_counter()
            for q in hq:
                res, _ = db.search_hnsw("h", q, 10, ef_search=ef)
                ids.append([int(r.key) for r in res])
            return (time.perf_counter() - t0) / len(hq)

        sweep.append({"ef": ef, "s_per_query": best(run, args.repeat), "ids": list(ids)})
    out["hnsw"] = sweep
    db.close()
    return out


# ---- lmdb -------------------------------------------------------------------

def bench_lmdb(args: argparse.Namespace, data: Path) -> Dict[str, Any]:
    import lmdb

    out: Dict[str, Any] = {"system": "lmdb", "version": lmdb.__version__}
    ks = keys(args.n_kv)
    base = Path(tempfile.mkdtemp(prefix="alopex-bench-lmdb-", dir=args.tmp))
    try:
        def open_env(name: str) -> Any:
            # No fsync at all (like alopex in memory): sync, metasync off.
            return lmdb.open(str(base / name), map_size=1 << 30, sync=False, metasync=False,
                             lock=True)

        runs = [0]

        def put_commit() -> float:
            runs[0] += 1
            env = open_env(f"put{runs[0]}")
            t0 = time.perf_counter()
            for k in ks:
                txn = env.begin(write=True)
                txn.put(k, VALUE)
                txn.commit()
            dt = time.perf_counter() - t0
            env.close()
            return dt / len(ks)

        out["put_commit"] = best(put_commit, args.repeat)
        env = open_env("get")
        with env.begin(write=True) as txn:
            for k in ks:
                txn.put(k, VALUE)
        order = [ks[i] for i in np.random.default_rng(1).permutation(len(ks))]

        def get(keys_in_order: List[bytes]) -> float:
            txn = env.begin()
            t0 = time.perf_counter()
            for k in keys_in_order:
                txn.get(k)
            dt = time.perf_counter() - t0
            assert txn.get(order[0]) == VALUE
            txn.abort()
            return dt / len(keys_in_order)

        out["get"] = best(lambda: get(order), args.repeat)
        out["get_seq"] = best(lambda: get(ks), args.repeat)
        env.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return out


# ---- numpy baseline of search_similar ---------------------------------------

def bench_numpy(args: argparse.Namespace, data: Path) -> Dict[str, Any]:
    flat = np.load(data / "flat.npy")
    flat_q = np.load(data / "flat_q.npy")
    out: Dict[str, Any] = {"system": "numpy", "version": np.__version__}
    # The baseline's best case: rows normalized once, up front (not timed).
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    first: List[List[int]] = []

    def search() -> float:
        first.clear()
        t0 = time.perf_counter()
        for q in flat_q:
            s = unit @ (q / np.linalg.norm(q))
            top = np.argpartition(-s, 10)[:10]
            first.append(top[np.argsort(-s[top])].tolist())
        return (time.perf_counter() - t0) / len(flat_q)

    out["search_similar"] = best(search, args.repeat)
    out["search_similar_ids"] = first
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system", choices=["alopex", "lmdb", "numpy"])
    ap.add_argument("data", type=Path)
    ap.add_argument("--n-kv", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[10, 20, 40, 80, 160])
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    fn = {"alopex": bench_alopex, "lmdb": bench_lmdb, "numpy": bench_numpy}[args.system]
    result = fn(args, args.data)
    result["python"] = sys.executable
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
