#!/usr/bin/env python3
"""Approximate-nearest-neighbour benchmark: pomaidb against hnswlib, faiss and usearch.

One script, one run, the same machine, the same data and the same thread count for every system.
See bench/ann/README.md. Typical use, from bench/:

    python3 ann/run.py --quick                      # ~1 minute smoke run (20k x 64)
    python3 ann/run.py --dataset clustered-1M-128   # the real thing (long on 2 cores)
    python3 ann/run.py --dataset clustered-1M-128 --rows 200000 --M 16 --ef 16,32,64,128

Layout of a run: the parent process generates (or loads) the cached data set and its exact ground
truth, then runs every (system, M) in a fresh worker subprocess (build, save, recall/QPS sweep) so a
crash or a leak of one system cannot touch the others, then measures open time and resident memory
in fresh probe subprocesses. Last, one more subprocess opens every saved graph index and measures the
one-thread sweep again with the systems interleaved: for each ef, --rounds rounds in which every
system runs the query set once (in a rotated order), each keeping its best round. On a shared machine
whose speed drifts by tens of percent over minutes, that compares the systems under the same
conditions; the one-thread QPS of the report is this figure (the worker's own is kept as
qps1_separate). Finally it writes results/<dataset>.{md,json,png}.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
GEN_VERSION = 1            # bump when the generator changes: cached sets are then regenerated
GEN_CHUNK = 65536          # rows generated per step (part of the definition of a data set)
GT_K = 100                 # ground-truth depth stored in the cache
SYSTEMS = ("pomaidb", "hnswlib", "faiss-hnsw", "faiss-flat", "usearch")
PROBE_EF_DEFAULT = 64
POMAI_PUT_CHUNK = 50_000   # rows per pomaidb.put_batch call while building


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- data ------------------------------------------------------------------------------------


def fmt_rows(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def parse_rows(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text)
    if not m:
        raise ValueError(f"bad row count {text!r} (e.g. 200k, 1M, 50000)")
    mult = {"": 1, "k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000}[m.group(2)]
    return int(round(float(m.group(1)) * mult))


def parse_dataset(name: str) -> Tuple[int, int]:
    m = re.fullmatch(r"clustered-([0-9.]+[kKmM]?)-(\d+)", name)
    if not m:
        raise ValueError(f"dataset {name!r}: expected clustered-<rows>-<dim>, e.g. clustered-1M-128")
    return parse_rows(m.group(1)), int(m.group(2))


def n_clusters(n: int) -> int:
    return min(1000, max(10, n // 100))


def generate(n: int, d: int, nq: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Clustered Gaussian data, deterministic in (n, d, nq, seed): (base, queries).

    n_clusters(n) centers ~ N(0, I_d); cluster weights ~ Gamma(2) (uneven sizes); each point is its
    center plus anisotropic Gaussian noise: a power-law spectrum (variance of component j
    proportional to 1/j, total variance d * r_c^2) rotated by one random orthogonal matrix, with a
    per-cluster radius r_c = exp(N(0, 0.25)). Clusters overlap (r ~ 1), so neighbours cross cluster
    borders, and the intrinsic dimension is well below d, as in real embeddings. The last nq
    points (drawn like the others) are the held-out queries.
    """
    base, queries, _, _ = generate_labeled(n, d, nq, seed)
    return base, queries


def generate_labeled(n: int, d: int, nq: int, seed: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """generate's data with each base row's cluster and the cluster centers: (base, queries,
    labels, centers). bench/filtered draws its cluster-correlated filters from them."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, d, nq, GEN_VERSION]))
    c = n_clusters(n)
    centers = rng.standard_normal((c, d))
    weights = rng.gamma(2.0, size=c)
    weights /= weights.sum()
    radii = np.exp(rng.normal(0.0, 0.25, size=c))
    rot, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = np.arange(1, d + 1, dtype=np.float64) ** -0.5
    spectrum *= math.sqrt(d / float((spectrum ** 2).sum()))
    total = n + nq
    out = np.empty((total, d), dtype=np.float32)
    labels = np.empty(total, dtype=np.int64)
    for s in range(0, total, GEN_CHUNK):
        e = min(total, s + GEN_CHUNK)
        a = rng.choice(c, size=e - s, p=weights)
        z = rng.standard_normal((e - s, d)) * spectrum
        out[s:e] = centers[a] + radii[a, None] * (z @ rot)
        labels[s:e] = a
    return out[:n], out[n:], labels[:n], centers


def normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1
    x /= norms
    return x


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k by brute force in float64, in blocks: ids (nq, k) int64 and distances (L2:
    squared distance ascending; ip: negative dot product ascending)."""
    nq = queries.shape[0]
    q = queries.astype(np.float64)
    best_d = np.full((nq, 0), np.inf)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    block = max(1024, int(2e8 // (8 * max(nq, 1))))  # ~200 MB of distances per block
    for s in range(0, base.shape[0], block):
        b = base[s:s + block].astype(np.float64)
        if metric == "l2":
            d = (b * b).sum(1)[None, :] - 2.0 * (q @ b.T)
        else:
            d = -(q @ b.T)
        kk = min(k, d.shape[1])
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        cand_d = np.concatenate([best_d, np.take_along_axis(d, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        kk = min(k, cand_d.shape[1])
        keep = np.argpartition(cand_d, kk - 1, axis=1)[:, :kk]
        best_d = np.take_along_axis(cand_d, keep, 1)
        best_i = np.take_along_axis(cand_i, keep, 1)
    order = np.argsort(best_d, axis=1, kind="stable")
    best_d = np.take_along_axis(best_d, order, 1)
    best_i = np.take_along_axis(best_i, order, 1)
    if metric == "l2":
        best_d = best_d + (q * q).sum(1)[:, None]
    return best_i, best_d.astype(np.float32)


def prepare_dataset(args: argparse.Namespace) -> Dict[str, Any]:
    """Generates (or finds in the cache) base, queries and ground truth; returns their paths."""
    n, d = args.rows_n, args.dim
    ddir = Path(args.data_dir) / args.dataset
    ddir.mkdir(parents=True, exist_ok=True)
    meta_path = ddir / "meta.json"
    want = {"rows": n, "dim": d, "queries": args.queries, "seed": args.seed, "gen_version": GEN_VERSION,
            "clusters": n_clusters(n)}
    base_p, q_p = ddir / "base.npy", ddir / "queries.npy"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if {k: meta.get(k) for k in want} != want or not base_p.exists() or not q_p.exists():
        log(f"generating {args.dataset}: {n} x {d} float32, {n_clusters(n)} clusters, "
            f"{args.queries} held-out queries (seed {args.seed})")
        t = time.perf_counter()
        base, queries = generate(n, d, args.queries, args.seed)
        np.save(base_p, base)
        np.save(q_p, queries)
        meta = dict(want, sha256_base=hashlib.sha256(base.tobytes()).hexdigest()[:16])
        for f in ddir.glob("gt-*.npy"):
            f.unlink()
        meta_path.write_text(json.dumps(meta, indent=1))
        log(f"  generated in {time.perf_counter() - t:.1f} s")
    gt_p = ddir / f"gt-{args.metric}.npy"
    if not gt_p.exists():
        base = np.load(base_p)
        queries = np.load(q_p)
        if args.metric == "cosine":
            base, queries = normalize(base), normalize(queries)
        log(f"computing exact top-{GT_K} ground truth ({args.metric}) by brute force")
        t = time.perf_counter()
        ids, dist = ground_truth(base, queries, GT_K, "l2" if args.metric == "l2" else "ip")
        np.save(gt_p, ids.astype(np.int64))
        np.save(ddir / f"gt-{args.metric}-dist.npy", dist)
        log(f"  ground truth in {time.perf_counter() - t:.1f} s")
        del base, queries
    return {"base": str(base_p), "queries": str(q_p), "gt": str(gt_p), "meta": meta}


# ---- memory, disk ----------------------------------------------------------------------------


def mem_status() -> Dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process, in MiB (from /proc/self/status)."""
    out: Dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(value.split()[0]) / 1024.0
    except OSError:
        pass
    return out


def reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def disk_size(path: str) -> int:
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size if p.exists() else 0


# ---- the systems -----------------------------------------------------------------------------
# Every adapter: build(X, threads) -> seconds; save() -> seconds; set_search(ef, threads);
# search(Q, k) -> ids (nq, k); close(); classmethod open_saved(cfg, ef, threads, mode) for probes.


class Adapter:
    family = ""
    sweeps_ef = True

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.M = cfg["M"]
        self.efc = cfg["efc"]
        self.dim = cfg["dim"]
        self.metric = cfg["metric"]  # "l2" or "cosine" (data normalized, inner product)
        self.path = cfg["index_path"]
        self.extra: Dict[str, Any] = {}
        self.threads = 1

    def close(self) -> None:
        pass


class PomaiAdapter(Adapter):
    family = "pomaidb"

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        import pomaidb
        self.pdb = pomaidb
        # Per-call ef once the engine has it; until then, a reopen with hnsw_ef_search per point.
        self.per_call_ef = "ef_search" in inspect.signature(pomaidb.search).parameters
        self.db = None
        self.key: Optional[Tuple[int, Optional[int]]] = None
        self.ef = PROBE_EF_DEFAULT

    def _open(self, threads: int, ef: int, **more: Any) -> Any:
        if self.cfg.get("pomai_vectors"):  # only when asked: older packages lack the option
            more.setdefault("hnsw_vectors", self.cfg["pomai_vectors"])
        return self.pdb.open_db(self.path, self.dim, metric="l2" if self.metric == "l2" else "ip",
                                hnsw_m=self.M, hnsw_ef_construction=self.efc, hnsw_ef_search=ef,
                                adaptive_threshold=0, search_threads=threads, **more)

    def build(self, X: np.ndarray, threads: int) -> float:
        shutil.rmtree(self.path, ignore_errors=True)
        n = X.shape[0]
        ids = np.arange(n, dtype=np.uint64)
        # A memtable budget above the data size, so that the one freeze builds one segment (and one
        # graph) over all rows, as the peers build one index.
        budget = int(2 * X.nbytes + (256 << 20))
        t0 = time.perf_counter()
        db = self._open(threads, PROBE_EF_DEFAULT, memory_budget_bytes=budget)
        for s in range(0, n, POMAI_PUT_CHUNK):
            self.pdb.put_batch(db, ids[s:s + POMAI_PUT_CHUNK], X[s:s + POMAI_PUT_CHUNK])
        t1 = time.perf_counter()
        self.pdb.freeze(db)
        t2 = time.perf_counter()
        if hasattr(self.pdb, "stats"):
            try:
                self.extra["stats"] = repr(self.pdb.stats(db))[:2000]
            except Exception as e:  # noqa: BLE001
                self.extra["stats"] = f"error: {e}"
        db.close()
        t3 = time.perf_counter()
        self.extra.update(put_batch_s=t1 - t0, freeze_s=t2 - t1, close_s=t3 - t2,
                          segments=len(list(Path(self.path).glob("seg-*.pseg"))),
                          per_call_ef=self.per_call_ef, hnsw_vectors=self.cfg.get("pomai_vectors") or "default")
        return t2 - t0

    def save(self) -> float:
        return 0.0  # put_batch + freeze already wrote the database directory

    def set_search(self, ef: Optional[int], threads: int) -> None:
        ef = ef or PROBE_EF_DEFAULT
        key = (threads, None if self.per_call_ef else ef)
        if self.db is None or self.key != key:
            self.close()
            self.db = self._open(threads, ef)
            self.key = key
        self.ef = ef
        self.threads = threads

    def search(self, Q: np.ndarray, k: int) -> np.ndarray:
        if self.per_call_ef:
            ids, _ = self.pdb.search(self.db, Q, k, ef_search=self.ef)
        else:
            ids, _ = self.pdb.search(self.db, Q, k)
        return ids

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
            self.key = None

    @classmethod
    def open_saved(cls, cfg: Dict[str, Any], ef: int, threads: int, mode: str) -> "PomaiAdapter":
        a = cls(cfg)
        a.db = a._open(threads, ef)
        a.key = (threads, None if a.per_call_ef else ef)
        a.ef, a.threads = ef, threads
        return a


class HnswlibAdapter(Adapter):
    family = "hnswlib"

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        import hnswlib
        self.lib = hnswlib
        self.space = "l2" if self.metric == "l2" else "ip"
        self.index = None

    def build(self, X: np.ndarray, threads: int) -> float:
        t0 = time.perf_counter()
        idx = self.lib.Index(space=self.space, dim=self.dim)
        idx.init_index(max_elements=X.shape[0], ef_construction=self.efc, M=self.M,
                       random_seed=self.cfg["seed"])
        idx.set_num_threads(threads)
        idx.add_items(X, np.arange(X.shape[0]), num_threads=threads)
        self.index = idx
        return time.perf_counter() - t0

    def save(self) -> float:
        t0 = time.perf_counter()
        self.index.save_index(self.path)
        return time.perf_counter() - t0

    def set_search(self, ef: Optional[int], threads: int) -> None:
        self.index.set_ef(ef or PROBE_EF_DEFAULT)
        self.index.set_num_threads(threads)
        self.threads = threads

    def search(self, Q: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(Q, k=k, num_threads=self.threads)
        return labels

    def close(self) -> None:
        self.index = None

    @classmethod
    def open_saved(cls, cfg: Dict[str, Any], ef: int, threads: int, mode: str) -> "HnswlibAdapter":
        a = cls(cfg)
        idx = a.lib.Index(space=a.space, dim=a.dim)
        idx.load_index(a.path)
        a.index = idx
        a.set_search(ef, threads)
        return a


class FaissHnswAdapter(Adapter):
    family = "faiss-hnsw"

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        import faiss
        self.faiss = faiss
        self.fmetric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = None

    def build(self, X: np.ndarray, threads: int) -> float:
        self.faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        idx = self.faiss.IndexHNSWFlat(self.dim, self.M, self.fmetric)
        idx.hnsw.efConstruction = self.efc
        idx.add(X)
        self.index = idx
        return time.perf_counter() - t0

    def save(self) -> float:
        t0 = time.perf_counter()
        self.faiss.write_index(self.index, self.path)
        return time.perf_counter() - t0

    def set_search(self, ef: Optional[int], threads: int) -> None:
        self.faiss.omp_set_num_threads(threads)
        self.index.hnsw.efSearch = ef or PROBE_EF_DEFAULT
        self.threads = threads

    def search(self, Q: np.ndarray, k: int) -> np.ndarray:
        _, ids = self.index.search(Q, k)
        return ids

    def close(self) -> None:
        self.index = None

    @classmethod
    def open_saved(cls, cfg: Dict[str, Any], ef: int, threads: int, mode: str) -> "FaissHnswAdapter":
        a = cls(cfg)
        a.faiss.omp_set_num_threads(threads)
        a.index = a.faiss.read_index(a.path)
        a.set_search(ef, threads)
        return a


class FaissFlatAdapter(FaissHnswAdapter):
    family = "faiss-flat"
    sweeps_ef = False

    def build(self, X: np.ndarray, threads: int) -> float:
        self.faiss.omp_set_num_threads(threads)
        t0 = time.perf_counter()
        idx = self.faiss.IndexFlatL2(self.dim) if self.metric == "l2" else self.faiss.IndexFlatIP(self.dim)
        idx.add(X)
        self.index = idx
        return time.perf_counter() - t0

    def set_search(self, ef: Optional[int], threads: int) -> None:
        self.faiss.omp_set_num_threads(threads)
        self.threads = threads


class UsearchAdapter(Adapter):
    family = "usearch"

    def __init__(self, cfg: Dict[str, Any]) -> None:
        super().__init__(cfg)
        from usearch.index import Index
        self.Index = Index
        self.umetric = "l2sq" if self.metric == "l2" else "ip"
        self.index = None

    def build(self, X: np.ndarray, threads: int) -> float:
        t0 = time.perf_counter()
        idx = self.Index(ndim=self.dim, metric=self.umetric, dtype="f32", connectivity=self.M,
                         expansion_add=self.efc, expansion_search=PROBE_EF_DEFAULT)
        idx.add(np.arange(X.shape[0], dtype=np.uint64), X, threads=threads)
        self.index = idx
        self.extra["hardware_acceleration"] = str(getattr(idx, "hardware_acceleration", ""))
        return time.perf_counter() - t0

    def save(self) -> float:
        t0 = time.perf_counter()
        self.index.save(self.path)
        return time.perf_counter() - t0

    def set_search(self, ef: Optional[int], threads: int) -> None:
        self.index.expansion_search = ef or PROBE_EF_DEFAULT
        self.threads = threads

    def search(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(Q, k, threads=self.threads).keys

    def close(self) -> None:
        self.index = None

    @classmethod
    def open_saved(cls, cfg: Dict[str, Any], ef: int, threads: int, mode: str) -> "UsearchAdapter":
        a = cls(cfg)
        a.index = a.Index.restore(a.path, view=(mode == "view"))
        if a.index is None:
            raise RuntimeError(f"usearch could not restore {a.path}")
        a.set_search(ef, threads)
        return a


ADAPTERS = {"pomaidb": PomaiAdapter, "hnswlib": HnswlibAdapter, "faiss-hnsw": FaissHnswAdapter,
            "faiss-flat": FaissFlatAdapter, "usearch": UsearchAdapter}
MODULES = {"pomaidb": "pomaidb", "hnswlib": "hnswlib", "faiss-hnsw": "faiss", "faiss-flat": "faiss",
           "usearch": "usearch"}
DISTRIBUTIONS = {"pomaidb": "pomai", "hnswlib": "hnswlib", "faiss-hnsw": "faiss-cpu",
                 "faiss-flat": "faiss-cpu", "usearch": "usearch"}
OPEN_MODES = {"pomaidb": ["open_db"], "hnswlib": ["load_index"], "faiss-hnsw": ["read_index"],
              "faiss-flat": ["read_index"], "usearch": ["restore", "view"]}


# ---- worker: build + sweep of one (system, M), in its own process ----------------------------


def load_data(cfg: Dict[str, Any], with_base: bool = True) -> Tuple[Optional[np.ndarray], np.ndarray]:
    Q = np.load(cfg["queries"])
    X = np.load(cfg["base"]) if with_base else None
    if cfg["metric"] == "cosine":
        Q = normalize(Q)
        if X is not None:
            X = normalize(X)
    return X, np.ascontiguousarray(Q, dtype=np.float32)


def recall_at(ids: np.ndarray, gt: np.ndarray, k: int) -> float:
    ids = np.asarray(ids)[:, :k].astype(np.int64, copy=False)
    hits = (ids[:, :, None] == gt[:, None, :k]).any(axis=2).sum()
    return float(hits) / (gt.shape[0] * k)


def timed_search(a: Adapter, Q: np.ndarray, k: int, one_at_a_time: bool, min_time: float,
                 max_repeats: int) -> Tuple[np.ndarray, float]:
    """Runs all queries, repeated until min_time has passed (at most max_repeats runs); returns
    the ids of the first run and the best run's seconds."""
    best = math.inf
    ids = None
    spent = 0.0
    for _ in range(max_repeats):
        t0 = time.perf_counter()
        if one_at_a_time:
            out = [a.search(Q[i:i + 1], k) for i in range(Q.shape[0])]
            dt = time.perf_counter() - t0
            res = np.vstack(out)
        else:
            res = a.search(Q, k)
            dt = time.perf_counter() - t0
        if ids is None:
            ids = res
        best = min(best, dt)
        spent += dt
        if spent >= min_time:
            break
    return ids, best


def worker_main(cfg_path: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    tag = f"{cfg['system']} M={cfg['M']}" if cfg["system"] != "faiss-flat" else cfg["system"]
    result: Dict[str, Any] = {"system": cfg["system"], "M": cfg["M"], "points": [], "ok": False}
    out_path = Path(cfg["result_path"])

    def flush() -> None:
        out_path.write_text(json.dumps(result, indent=1))

    try:
        X, Q = load_data(cfg)
        gt = np.load(cfg["gt"])
        k, threads = cfg["k"], cfg["threads"]
        a = ADAPTERS[cfg["system"]](cfg)
        reset_peak_rss()
        rss0 = mem_status()
        log(f"[{tag}] building over {X.shape[0]} x {X.shape[1]} with {threads} threads")
        build_s = a.build(X, threads)
        rss1 = mem_status()
        save_s = a.save()
        result.update(build_s=build_s, save_s=save_s, disk_bytes=disk_size(a.path),
                      build_peak_mb=rss1.get("VmHWM", 0) - rss0.get("VmRSS", 0),
                      index_mem_mb=rss1.get("VmRSS", 0) - rss0.get("VmRSS", 0))
        result["extra"] = a.extra
        log(f"[{tag}] build {build_s:.2f} s, save {save_s:.2f} s, "
            f"{result['disk_bytes'] / 2**20:.1f} MiB on disk {a.extra if a.extra else ''}")
        del X
        flush()
        efs = cfg["efs"] if a.sweeps_ef else [None]
        modes = [1] if threads == 1 else [1, threads]
        sweep: Dict[Tuple[Any, int], Tuple[float, float]] = {}
        for th in modes:
            for ef in efs:
                a.set_search(ef, th)
                a.search(Q[:min(100, Q.shape[0])], k)  # warm-up, untimed
                ids, secs = timed_search(a, Q, k, cfg["one_at_a_time"] and th == 1, cfg["min_time"],
                                         cfg["max_repeats"])
                rec = recall_at(ids, gt, k)
                sweep[(ef, th)] = (rec, Q.shape[0] / secs)
                log(f"[{tag}] threads={th} ef={ef}: recall@{k} {rec:.4f}, {Q.shape[0] / secs:,.0f} QPS")
        for ef in efs:
            r1, q1 = sweep[(ef, 1)]
            rt, qt = sweep[(ef, modes[-1])]
            result["points"].append({"ef": ef, "recall": r1, "qps1": q1, "recall_t": rt, "qpsT": qt})
        a.close()
        result["ok"] = True
    except Exception as e:  # noqa: BLE001
        result["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    flush()
    return 0 if result["ok"] else 1


def sweep_main(cfg_path: str) -> int:
    """Fresh process: opens every saved graph index, then for each ef runs `rounds` rounds in which
    every system answers the whole query set once on one thread (order rotated per round); keeps
    each system's best round and the recall of its first."""
    cfg = json.loads(Path(cfg_path).read_text())
    out: Dict[str, Any] = {"ok": False, "points": {}}
    try:
        _, Q = load_data(cfg, with_base=False)
        gt = np.load(cfg["gt"])
        k = cfg["k"]
        opened = []
        for e in cfg["entries"]:
            c = dict(cfg, **e)
            opened.append((e["key"], ADAPTERS[e["system"]].open_saved(c, PROBE_EF_DEFAULT, 1, e["mode"])))
            out["points"][e["key"]] = {}
        for ef in cfg["efs"]:
            best: Dict[str, float] = {}
            recall: Dict[str, float] = {}
            for r in range(cfg["rounds"]):
                shift = r % len(opened)
                for key, a in opened[shift:] + opened[:shift]:
                    a.set_search(ef, 1)
                    if r == 0:
                        a.search(Q[:min(100, Q.shape[0])], k)  # warm-up, untimed
                    ids, dt = timed_search(a, Q, k, cfg["one_at_a_time"], 0.0, 1)
                    best[key] = min(best.get(key, math.inf), dt)
                    if key not in recall:
                        recall[key] = recall_at(ids, gt, k)
            for key, _ in opened:
                out["points"][key][str(ef)] = {"recall": recall[key], "qps1": Q.shape[0] / best[key]}
            log("[interleaved] ef=" + str(ef) + ": " + ", ".join(
                f"{key} {Q.shape[0] / best[key]:,.0f} QPS (recall {recall[key]:.4f})" for key, _ in opened))
        for _, a in opened:
            a.close()
        out["ok"] = True
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    Path(cfg["result_path"]).write_text(json.dumps(out))
    return 0 if out["ok"] else 1


def interleaved_sweep(args: argparse.Namespace, data: Dict[str, Any], results: List[Dict[str, Any]]) -> None:
    """Runs sweep_main over every saved graph index and replaces each point's qps1 with its result."""
    entries = []
    for r in results:
        if r.get("ok") and r.get("index_path") and ADAPTERS[r["system"]].sweeps_ef and os.path.exists(r["index_path"]):
            entries.append({"key": f"{r['system']} M={r['M']}", "system": r["system"], "M": r["M"],
                            "index_path": r["index_path"], "mode": OPEN_MODES[r["system"]][0]})
    if len(entries) < 2:
        return
    tmp = Path(args.results_dir) / f"tmp-{args.run_name}"
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = {"efc": args.efc, "dim": args.dim, "metric": args.metric, "queries": data["queries"], "gt": data["gt"],
           "base": data["base"], "k": args.k, "efs": args.ef, "rounds": args.rounds,
           "one_at_a_time": args.one_at_a_time, "pomai_vectors": args.pomai_vectors, "entries": entries,
           "result_path": str(tmp / "interleaved.json")}
    Path(cfg["result_path"]).unlink(missing_ok=True)
    cfg_path = tmp / "interleaved.cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    log(f"[interleaved] one-thread sweep of {len(entries)} indexes, {args.rounds} rounds per ef")
    rc, how = run_child([sys.executable, str(Path(__file__).resolve()), "--sweep", str(cfg_path)],
                        args.timeout or None)
    got = json.loads(Path(cfg["result_path"]).read_text()) if Path(cfg["result_path"]).exists() else {}
    if rc != 0 or not got.get("ok"):
        log(f"[interleaved] FAILED ({how}): {got.get('error')}; keeping each worker's own one-thread figures")
        return
    for r in results:
        pts = got["points"].get(f"{r['system']} M={r['M']}")
        if not pts:
            continue
        for p in r["points"]:
            q = pts.get(str(p["ef"]))
            if q:
                p["qps1_separate"] = p["qps1"]
                p["qps1"] = q["qps1"]
        r["interleaved"] = True


def probe_main(cfg_path: str) -> int:
    """Fresh process: open the saved index, time the open and the first query, RSS after open
    and after all queries (batched, all threads)."""
    cfg = json.loads(Path(cfg_path).read_text())
    out: Dict[str, Any] = {}
    try:
        _, Q = load_data(cfg, with_base=False)
        cls = ADAPTERS[cfg["system"]]
        # Import the library before the baseline, so that its code is not counted as memory.
        __import__(MODULES[cfg["system"]])
        rss0 = mem_status()
        t0 = time.perf_counter()
        a = cls.open_saved(cfg, cfg["probe_ef"], cfg["threads"], cfg["mode"])
        t1 = time.perf_counter()
        rss1 = mem_status()
        t2 = time.perf_counter()
        a.search(Q[:1], cfg["k"])
        t3 = time.perf_counter()
        a.search(Q, cfg["k"])
        rss2 = mem_status()
        a.close()
        out = {"open_s": t1 - t0, "open_first_s": (t1 - t0) + (t3 - t2), "first_query_s": t3 - t2,
               "rss_base_mb": rss0.get("VmRSS", 0), "rss_open_mb": rss1.get("VmRSS", 0) - rss0.get("VmRSS", 0),
               "rss_1k_mb": rss2.get("VmRSS", 0) - rss0.get("VmRSS", 0),
               "rss_1k_file_mb": rss2.get("RssFile", 0) - rss0.get("RssFile", 0),
               "rss_1k_anon_mb": rss2.get("RssAnon", 0) - rss0.get("RssAnon", 0), "ok": True}
    except Exception as e:  # noqa: BLE001
        out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        traceback.print_exc()
    Path(cfg["result_path"]).write_text(json.dumps(out))
    return 0 if out.get("ok") else 1


# ---- parent: orchestration -------------------------------------------------------------------


def run_child(argv: List[str], timeout: Optional[float]) -> Tuple[int, str]:
    """Runs a child in its own process group; returns (exit code, description)."""
    proc = subprocess.Popen(argv, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -1, f"timed out after {timeout:g} s"
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if rc < 0:
        return rc, f"killed by signal {signal.Signals(-rc).name}"
    return rc, f"exit code {rc}" if rc else "ok"


def run_system(args: argparse.Namespace, data: Dict[str, Any], system: str, M: int) -> Dict[str, Any]:
    idx_dir = Path(args.data_dir) / "indexes" / args.run_name
    idx_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.results_dir) / f"tmp-{args.run_name}"
    tmp.mkdir(parents=True, exist_ok=True)
    stem = f"{system}-M{M}" if system != "faiss-flat" else system
    suffix = {"pomaidb": "", "hnswlib": ".hnsw", "faiss-hnsw": ".faiss", "faiss-flat": ".faiss",
              "usearch": ".usearch"}[system]
    index_path = str(idx_dir / (stem + suffix))
    if os.path.isdir(index_path):
        shutil.rmtree(index_path)
    elif os.path.exists(index_path):
        os.unlink(index_path)
    cfg = {"system": system, "M": M, "efc": args.efc, "dim": args.dim, "metric": args.metric,
           "index_path": index_path, "base": data["base"], "queries": data["queries"], "gt": data["gt"],
           "k": args.k, "threads": args.threads, "efs": args.ef, "seed": args.seed,
           "one_at_a_time": args.one_at_a_time, "min_time": args.min_time, "max_repeats": args.max_repeats,
           "result_path": str(tmp / f"{stem}.json"), "pomai_vectors": args.pomai_vectors}
    Path(cfg["result_path"]).unlink(missing_ok=True)
    cfg_path = tmp / f"{stem}.cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    t = time.perf_counter()
    rc, how = run_child([sys.executable, str(Path(__file__).resolve()), "--worker", str(cfg_path)],
                        args.timeout or None)
    res: Dict[str, Any] = {"system": system, "M": M, "ok": False, "points": []}
    if Path(cfg["result_path"]).exists():
        res = json.loads(Path(cfg["result_path"]).read_text())
    if rc != 0 and not res.get("error"):
        res["error"] = f"worker {how}"
    res["ok"] = bool(res.get("ok")) and rc == 0
    res["wall_s"] = time.perf_counter() - t
    if not res.get("ok"):
        log(f"[{stem}] FAILED: {res.get('error')}")
    # Open/RSS probes, in fresh processes, when an index was saved.
    res["open"] = {}
    if "build_s" in res and os.path.exists(index_path):
        for mode in OPEN_MODES[system]:
            runs = []
            for r in range(args.open_repeats):
                pcfg = dict(cfg, mode=mode, probe_ef=args.probe_ef,
                            result_path=str(tmp / f"{stem}.{mode}.{r}.json"))
                Path(pcfg["result_path"]).unlink(missing_ok=True)
                pcfg_path = tmp / f"{stem}.{mode}.cfg.json"
                pcfg_path.write_text(json.dumps(pcfg))
                prc, phow = run_child([sys.executable, str(Path(__file__).resolve()), "--probe",
                                       str(pcfg_path)], args.timeout or None)
                pr = json.loads(Path(pcfg["result_path"]).read_text()) if Path(pcfg["result_path"]).exists() \
                    else {"ok": False}
                if prc != 0:
                    pr = {"ok": False, "error": pr.get("error") or f"probe {phow}"}
                runs.append(pr)
                if not pr.get("ok"):
                    break
            good = [p for p in runs if p.get("ok")]
            if good and len(good) == len(runs):
                agg = dict(good[-1])
                agg["open_s"] = min(p["open_s"] for p in good)
                agg["open_first_s"] = min(p["open_first_s"] for p in good)
                agg["runs"] = len(good)
                res["open"][mode] = agg
                log(f"[{stem}] {mode}: open {agg['open_s'] * 1e3:.2f} ms, open+first query "
                    f"{agg['open_first_s'] * 1e3:.2f} ms, RSS +{agg['rss_open_mb']:.1f} MiB after open, "
                    f"+{agg['rss_1k_mb']:.1f} MiB after {args.queries} queries")
            else:
                err = next((p.get("error") for p in runs if not p.get("ok")), "?")
                res["open"][mode] = {"ok": False, "error": err}
                log(f"[{stem}] {mode} probe FAILED: {err}")
    res["index_path"] = index_path  # removed after the interleaved sweep unless --keep-indexes
    return res


def remove_index(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


# ---- analysis and output ---------------------------------------------------------------------


def label(r: Dict[str, Any]) -> str:
    return r["system"] if r["system"] == "faiss-flat" else f"{r['system']} M={r['M']}"


def qps_at(points: List[Tuple[float, float]], target: float) -> Tuple[Optional[float], str]:
    """QPS at recall `target` on the Pareto frontier of (recall, qps) points, interpolated
    linearly in recall and log(QPS). Returns (qps, kind): kind "=" interpolated, ">=" a lower bound
    (every point is above the target: the frontier's fastest such point), "never" (None)."""
    pts = [(r, q) for r, q in points if q > 0 and not math.isnan(r)]
    if not pts or max(r for r, _ in pts) < target:
        return None, "never"
    frontier: List[Tuple[float, float]] = []
    best = -math.inf
    for r, q in sorted(pts, key=lambda p: (-p[0], -p[1])):
        if q > best:
            frontier.append((r, q))
            best = q
    frontier.reverse()  # recall ascending, QPS descending
    for i, (r, q) in enumerate(frontier):
        if r >= target:
            if r == target:
                return q, "="
            if i == 0:
                return q, ">="
            r0, q0 = frontier[i - 1]
            w = (target - r0) / (r - r0)
            return math.exp(math.log(q0) + w * (math.log(q) - math.log(q0))), "="
    return None, "never"


def best_at(results: List[Dict[str, Any]], family: str, target: float, key: str
            ) -> Tuple[Optional[float], str, str]:
    """Best QPS@target over a family's M values: (qps, kind, label)."""
    best: Tuple[Optional[float], str, str] = (None, "never", "")
    for r in results:
        if r["system"] != family or not r.get("ok"):
            continue
        rk = "recall" if key == "qps1" else "recall_t"
        q, kind = qps_at([(p[rk], p[key]) for p in r["points"]], target)
        if q is not None and (best[0] is None or q > best[0]):
            best = (q, kind, label(r))
    return best


def ratio_text(num: Optional[float], nk: str, den: Optional[float], dk: str) -> Tuple[Optional[float], str]:
    if num is None or den is None or den == 0:
        return None, "n/a"
    v = num / den
    sign = {("=", "="): "", (">=", "="): ">= ", ("=", ">="): "<= "}.get((nk, dk), "~")
    return v, f"{sign}{v:.2f}"


def fmt(v: Any, spec: str = ".2f", none: str = "–") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def goals(results: List[Dict[str, Any]], args: argparse.Namespace) -> List[List[str]]:
    tgt = args.target_recall
    rows: List[List[str]] = []
    pq, pk, pl = best_at(results, "pomaidb", tgt, "qps1")
    for fam, need, test in (("hnswlib", ">= 2", lambda v: v >= 2), ("faiss-hnsw", "> 1", lambda v: v > 1),
                            ("usearch", "> 1", lambda v: v > 1)):
        q, k, lab = best_at(results, fam, tgt, "qps1")
        v, txt = ratio_text(pq, pk, q, k)
        why = ""
        if pq is None:
            why = "pomaidb never reaches the recall" if any(r["system"] == "pomaidb" and r.get("ok")
                                                              for r in results) else "pomaidb did not run"
        elif q is None:
            why = f"{fam} never reaches the recall" if any(r["system"] == fam and r.get("ok")
                                                             for r in results) else f"{fam} did not run"
        verdict = ("PASS" if test(v) else "FAIL") if v is not None else "n/a"
        rows.append([f"1-thread QPS@{tgt} pomaidb ({pl or '–'}) / {fam} ({lab or '–'})",
                     txt + (f" ({why})" if why else ""), need, verdict])
    by = {(r["system"], r["M"]): r for r in results if "build_s" in r}
    for M in args.M:
        p, h = by.get(("pomaidb", M)), by.get(("hnswlib", M))
        if p and h:
            v = p["build_s"] / h["build_s"]
            rows.append([f"build time pomaidb / hnswlib, M={M} efc={args.efc} threads={args.threads}",
                         f"{v:.2f}", "<= 1", "PASS" if v <= 1 else "FAIL"])
        else:
            rows.append([f"build time pomaidb / hnswlib, M={M}", "n/a", "<= 1", "n/a"])
    for M in args.M:
        p, h = by.get(("pomaidb", M)), by.get(("hnswlib", M))
        po = (p or {}).get("open", {}).get("open_db", {})
        ho = (h or {}).get("open", {}).get("load_index", {})
        if po.get("ok") and ho.get("ok"):
            v = ho["open_first_s"] / po["open_first_s"]
            rows.append([f"hnswlib load_index+1st query / pomaidb open+1st query, M={M}", f"{v:.1f}",
                         ">= 100", "PASS" if v >= 100 else "FAIL"])
        else:
            rows.append([f"hnswlib load_index+1st query / pomaidb open+1st query, M={M}", "n/a", ">= 100", "n/a"])
    return rows


def md_table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report(args: argparse.Namespace, data: Dict[str, Any], results: List[Dict[str, Any]],
           env: Dict[str, Any]) -> str:
    T = args.threads
    k = args.k
    mode1 = ("one query per call (a Python loop)" if args.one_at_a_time
             else "all queries in one batched call, run on 1 thread")
    out = [f"# ANN benchmark: {args.run_name}", "",
           f"{args.rows_n} x {args.dim} float32, {data['meta'].get('clusters')} Gaussian clusters, "
           f"{args.queries} held-out queries, metric {args.metric}, recall@{k} against exact brute-force "
           f"top-{k}. Build with {T} threads for every system; M in {args.M}, ef_construction {args.efc}.",
           f"QPS 1 thread: {mode1}, for every system"
           + (f"; measured in one process holding every graph index, {args.rounds} interleaved rounds per ef "
              f"(each system once per round, order rotated), best round kept; the worker's own figure, "
              f"measured alone, is in the json as qps1_separate"
              if any(r.get("interleaved") for r in results) else "")
           + f". QPS {T} threads: all queries in one batched call "
           f"on {T} threads. Best of up to {args.max_repeats} runs (until {args.min_time} s spent).", "",
           f"Machine: {env['cpu']}, {env['nproc']} cores, {env['mem_gb']:.0f} GiB; Python {env['python']}; "
           + ", ".join(f"{k2} {v}" for k2, v in env["versions"].items())
           + f". Load average (1 min) {env['load_start'][0]:.1f} at the start, {env['load_end'][0]:.1f} at the end"
           + (" (the machine was busy: timings are noisy)." if max(env["load_start"][0], env["load_end"][0])
              > 0.5 * (env["nproc"] or 1) else "."), ""]
    if env.get("pomaidb_note"):
        out += [env["pomaidb_note"], ""]
    # Search table
    rows = []
    for r in results:
        for p in r.get("points", []):
            rows.append([label(r), "–" if p["ef"] is None else str(p["ef"]), f"{p['recall']:.4f}",
                         f"{p['qps1']:,.0f}", fmt(p.get("qps1_separate"), ",.0f"), f"{p['qpsT']:,.0f}"])
    out += [f"## Recall@{k} and QPS", "",
            md_table(["system", "ef", f"recall@{k}", "QPS 1 thread", "(1 thread, alone)", f"QPS {T} threads"],
                     rows), ""]
    # Build/open table
    rows = []
    for r in results:
        opens = r.get("open", {}) or {"–": {}}
        for mode, o in opens.items():
            rows.append([label(r), fmt(r.get("build_s")), fmt(r.get("save_s")),
                         fmt(r["disk_bytes"] / 2**20, ".1f") if "disk_bytes" in r else "–",
                         mode,
                         fmt(o.get("open_s") * 1e3, ".2f") if o.get("ok") else "–",
                         fmt(o.get("open_first_s") * 1e3, ".2f") if o.get("ok") else "–",
                         fmt(o.get("rss_open_mb"), ".1f") if o.get("ok") else "–",
                         fmt(o.get("rss_1k_mb"), ".1f") if o.get("ok") else "–",
                         fmt(r.get("build_peak_mb"), ".0f"),
                         "ok" if r.get("ok") and all(x.get("ok", True) for x in opens.values())
                         else (r.get("error") or o.get("error") or "failed")])
    out += ["## Build, size on disk, open, memory", "",
            md_table(["system", "build s", "save s", "disk MiB", "open with", "open ms", "open+1st query ms",
                      "RSS after open MiB", f"RSS after {args.queries} q MiB", "build peak MiB", "status"], rows), "",
            f"Open and RSS: a fresh process per measurement (min of {args.open_repeats} for times), warm page "
            f"cache; RSS is the growth of VmRSS over the process after its imports (file-backed mmap pages "
            f"included); the {args.queries} queries run batched on {T} threads, ef {args.probe_ef}. Build peak: "
            f"VmHWM during the build over the RSS before it (the data set itself excluded). pomaidb build = "
            f"put_batch + freeze (durable on disk, no separate save); the others' build is in memory, then saved.", ""]
    # QPS at target
    rows = []
    for r in results:
        if not r.get("ok"):
            rows.append([label(r), "–", "–", r.get("error", "failed")])
            continue
        q1, k1 = qps_at([(p["recall"], p["qps1"]) for p in r["points"]], args.target_recall)
        qt, kt = qps_at([(p["recall_t"], p["qpsT"]) for p in r["points"]], args.target_recall)
        rows.append([label(r), "never reached" if q1 is None else f"{'>= ' if k1 == '>=' else ''}{q1:,.0f}",
                     "never reached" if qt is None else f"{'>= ' if kt == '>=' else ''}{qt:,.0f}",
                     f"max recall {max(p['recall'] for p in r['points']):.4f}" if r["points"] else ""])
    out += [f"## QPS at recall@{k} = {args.target_recall}", "",
            md_table(["system", "QPS 1 thread", f"QPS {T} threads", "note"], rows), "",
            "Interpolated along each system's recall/QPS Pareto frontier (linear in recall, log in QPS); "
            "'>=' when even the lowest ef is above the target (the real value is at least that).", ""]
    out += ["## Goals", "", md_table(["ratio", "value", "goal", "verdict"], goals(results, args)), ""]
    skipped = env.get("skipped") or {}
    if skipped:
        out += ["Skipped: " + "; ".join(f"{s} ({why})" for s, why in skipped.items()), ""]
    return "\n".join(out)


STYLE = {"pomaidb": ("tab:red", "o"), "hnswlib": ("tab:blue", "s"), "faiss-hnsw": ("tab:green", "^"),
         "faiss-flat": ("black", "*"), "usearch": ("tab:purple", "D")}


def plot(args: argparse.Namespace, results: List[Dict[str, Any]], path: Path) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        return f"no plot: matplotlib unavailable ({e})"
    Ms = sorted({r["M"] for r in results})
    dashes = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, (rk, qk, title) in zip(axes, (("recall", "qps1", "1 thread"),
                                          ("recall_t", "qpsT", f"{args.threads} threads"))):
        lo = 1.0
        for r in results:
            if not r.get("ok") or not r["points"]:
                continue
            color, marker = STYLE.get(r["system"], ("gray", "x"))
            pts = [(p[rk], p[qk]) for p in r["points"]]  # in sweep (ef) order
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            lo = min(lo, min(xs))
            ls = dashes[Ms.index(r["M"]) % len(dashes)] if r["system"] != "faiss-flat" else "none"
            ax.plot(xs, ys, linestyle=ls, marker=marker, color=color, label=label(r), markersize=5)
        ax.axvline(args.target_recall, color="gray", linestyle=":", linewidth=1)
        ax.set_yscale("log")
        ax.set_xlim(max(0.0, min(lo, args.target_recall) - 0.02), 1.005)
        ax.set_xlabel(f"recall@{args.k}")
        ax.set_ylabel("queries per second")
        ax.set_title(f"{args.run_name}: {title}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def environment(args: argparse.Namespace) -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"numpy": np.__version__}
    for dist in ("pomai", "hnswlib", "faiss-cpu", "usearch"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    env: Dict[str, Any] = {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(),
                           "mem_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
                           "versions": versions, "load_start": os.getloadavg()}
    try:
        import pomaidb
        env["versions"]["pomaidb simd"] = pomaidb.simd_target()
        per_call = "ef_search" in inspect.signature(pomaidb.search).parameters
        env["pomaidb_note"] = ("pomaidb: ef per call (search(..., ef_search=EF))." if per_call else
                               "pomaidb: no per-call ef in this build; reopened with hnsw_ef_search=EF per "
                               "sweep point (reopen not timed). If the build only has exact search, every ef "
                               "gives recall 1.0.")
    except Exception:  # noqa: BLE001
        pass
    return env


def parse_args(argv: List[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", default=None,
                    help="clustered-<rows>-<dim>, e.g. clustered-1M-128, clustered-200k-384, clustered-100k-960 "
                         "(default clustered-1M-128, or clustered-20k-64 with --quick)")
    ap.add_argument("--rows", default=None, help="override the row count (e.g. 100k); the name follows")
    ap.add_argument("--scale", type=float, default=None, help="multiply the row count (e.g. 0.1)")
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries")
    ap.add_argument("--metric", choices=("l2", "cosine"), default="l2",
                    help="cosine = vectors normalized, inner product in every system")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma list of " + ", ".join(SYSTEMS))
    ap.add_argument("--M", default=None, help="comma list of HNSW M (default 16,32; --quick 16)")
    ap.add_argument("--efc", type=int, default=200, help="ef_construction / efConstruction / expansion_add")
    ap.add_argument("--ef", default=None, help="comma list of search ef to sweep")
    ap.add_argument("--pomai-vectors", choices=("sq8", "float32"), default=None,
                    help="pomaidb's hnsw_vectors option (what its graph walks score); default: the package's")
    ap.add_argument("--k", type=int, default=10, help="recall@k")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every system")
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="1-thread QPS from one query per call (a Python loop) instead of one batched call "
                         "on 1 thread; for every system")
    ap.add_argument("--min-time", type=float, default=None, help="seconds of repeats per sweep point")
    ap.add_argument("--max-repeats", type=int, default=3, help="max timed runs per sweep point (best kept)")
    ap.add_argument("--open-repeats", type=int, default=None, help="fresh-process open probes per index")
    ap.add_argument("--probe-ef", type=int, default=PROBE_EF_DEFAULT, help="ef of the open probes' queries")
    ap.add_argument("--target-recall", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--timeout", type=float, default=0, help="seconds per worker process (0 = none)")
    ap.add_argument("--quick", action="store_true", help="20k x 64, M 16, a few ef: about a minute")
    ap.add_argument("--keep-indexes", action="store_true", help="keep the saved indexes under data/indexes/")
    ap.add_argument("--data-dir", default=str(HERE / "data"))
    ap.add_argument("--results-dir", default=str(HERE / "results"))
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved one-thread rounds per ef over all saved indexes (0 = keep each worker's own)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--sweep", help=argparse.SUPPRESS)
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker or args.probe or args.sweep:
        return args
    dataset = args.dataset or ("clustered-20k-64" if args.quick else "clustered-1M-128")
    n, d = parse_dataset(dataset)
    if args.rows:
        n = parse_rows(args.rows)
    if args.scale:
        n = max(1000, int(round(n * args.scale)))
    args.rows_n, args.dim = n, d
    args.dataset = f"clustered-{fmt_rows(n)}-{d}" + (f"-s{args.seed}" if args.seed != 42 else "")
    args.run_name = args.dataset + ("" if args.metric == "l2" else f"-{args.metric}")
    args.M = [int(x) for x in (args.M or ("16" if args.quick else "16,32")).split(",")]
    args.ef = [int(x) for x in (args.ef or ("10,20,40,80,160" if args.quick
                                            else "10,20,30,40,60,80,120,160,240,320,480")).split(",")]
    args.min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 1.0)
    args.open_repeats = args.open_repeats or (2 if args.quick else 3)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in args.systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
    if args.k > GT_K:
        ap.error(f"--k must be <= {GT_K}")
    return args


def main(argv: List[str]) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.probe:
        return probe_main(args.probe)
    if args.sweep:
        return sweep_main(args.sweep)
    t_start = time.perf_counter()
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    env = environment(args)
    if env["load_start"][0] > 0.5 * (env["nproc"] or 1):
        log(f"warning: load average {env['load_start'][0]:.1f} on {env['nproc']} cores; timings will be noisy")
    data = prepare_dataset(args)
    skipped: Dict[str, str] = {}
    results: List[Dict[str, Any]] = []
    for system in args.systems:
        if importlib.util.find_spec(MODULES[system]) is None:
            skipped[system] = f"python module {MODULES[system]!r} not installed"
            log(f"[{system}] skipped: {skipped[system]}")
            continue
        for M in ([args.M[0]] if system == "faiss-flat" else args.M):
            try:
                results.append(run_system(args, data, system, M))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                results.append({"system": system, "M": M, "ok": False, "points": [],
                                "error": f"{type(e).__name__}: {e}"})
    if args.rounds > 0:
        interleaved_sweep(args, data, results)
    if not args.keep_indexes:
        for r in results:
            if r.get("index_path"):
                remove_index(r["index_path"])
    env["skipped"] = skipped
    env["load_end"] = os.getloadavg()
    text = report(args, data, results, env)
    md_path = results_dir / f"{args.run_name}.md"
    png_path = results_dir / f"{args.run_name}.png"
    md_path.write_text(text + "\n")
    (results_dir / f"{args.run_name}.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items()}, "env": env, "dataset": data, "results": results},
        indent=1, default=str))
    note = plot(args, results, png_path)
    shutil.rmtree(results_dir / f"tmp-{args.run_name}", ignore_errors=True)
    print()
    print(text)
    print(f"\nwrote {md_path}" + (f", {png_path}" if note is None else f" ({note})")
          + f"; total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
