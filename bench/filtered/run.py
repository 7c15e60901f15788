#!/usr/bin/env python3
"""Filtered-search benchmark: pomaidb against hnswlib, faiss, LanceDB and zvec (issue 18).

One script, one run, the same machine, data, filters and queries for every system. See
bench/filtered/README.md. Typical use, from bench/:

    python3 filtered/run.py --quick                         # 20k x 64, a few minutes
    python3 filtered/run.py --rows 200k --queries 200       # mid-size check
    python3 filtered/run.py                                 # 1M x 128, 1000 queries (long on 2 cores)

Layout of a run: the parent process generates (or loads) the cached data set, its attributes, the
filters and their exact filtered ground truth; then builds each system's index in a fresh child
process (saved to disk, reused by later runs with the same data and build parameters); then one
more child opens every index and measures, filter by filter and knob by knob, --rounds rounds in
which every system answers the query set once on one thread, in an order rotated each round
(each keeps its best round); last it writes results/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import inspect
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent


def _load_ann() -> Any:
    """bench/ann/run.py as a module: its data generator's constants, qps_at and the table helpers."""
    spec = importlib.util.spec_from_file_location("ann_run", HERE.parent / "ann" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


ann = _load_ann()
log, fmt_rows, parse_rows, n_clusters, qps_at, md_table, generate_labeled = (
    ann.log, ann.fmt_rows, ann.parse_rows, ann.n_clusters, ann.qps_at, ann.md_table, ann.generate_labeled)

ATTR_VERSION = 1           # bump when the attributes or filters change: cached ground truth is redone
K = 10
SYSTEMS = ("pomaidb", "hnswlib", "faiss-hnsw", "lance-ivfpq", "lance-flat", "zvec", "usearch")
LANGS = ("en", "de", "fr", "es", "ja", "pt")
LANG_P = (0.40, 0.25, 0.15, 0.10, 0.07, 0.03)
N_TAGS = 16
SELECTIVITIES = (0.5, 0.1, 0.01, 0.001)
NOT_FILTERED = {
    "usearch": "usearch's Python API (Index.search) takes no predicate or id filter in this version; "
               "its C++ filtered_search is not exposed, so it is not measured",
}
POMAI_PUT_CHUNK = 50_000
WARMUP = 20                # queries of the untimed warm-up run of each point


# ---- data ------------------------------------------------------------------------------------


def make_attributes(n: int, seed: int) -> Dict[str, np.ndarray]:
    """Per-row attributes independent of the vectors: bucket (int64 uniform 0..999), lang (index
    into LANGS, skewed), tags (bitmask over N_TAGS tags, 1 to 3 distinct tags per row)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, n, ATTR_VERSION, 18]))
    bucket = rng.integers(0, 1000, size=n, dtype=np.int64)
    lang = rng.choice(len(LANGS), size=n, p=LANG_P).astype(np.int8)
    ntags = rng.integers(1, 4, size=n)
    keys = rng.random((n, N_TAGS)).argsort(axis=1)[:, :3]
    tags = np.zeros(n, dtype=np.int32)
    for j in range(3):
        tags |= np.where(ntags > j, 1 << keys[:, j], 0).astype(np.int32)
    return {"bucket": bucket, "lang": lang, "tags": tags}


def tag_name(t: int) -> str:
    return f"t{t:02d}"


def tags_lists(mask: np.ndarray) -> List[List[str]]:
    return [[tag_name(t) for t in range(N_TAGS) if m >> t & 1] for m in mask.tolist()]


def cluster_order(queries: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """For each query, the clusters by the distance of their center to it, nearest first."""
    q = queries.astype(np.float64)
    d = (centers ** 2).sum(1)[None, :] - 2.0 * q @ centers.T
    return np.argsort(d, axis=1, kind="stable")


def correlated_sets(order: np.ndarray, sizes: np.ndarray, frac: float, near: bool) -> List[np.ndarray]:
    """Per query, the clusters a correlated filter keeps: whole clusters taken nearest-first
    (near) or farthest-first (far) until they hold at least frac of the rows (at least one)."""
    n = sizes.sum()
    out = []
    for row in order:
        seq = row if near else row[::-1]
        cum = np.cumsum(sizes[seq])
        m = int(np.searchsorted(cum, frac * n)) + 1
        out.append(np.sort(seq[:min(m, len(seq))]))
    return out


class Filter:
    """One filter of the benchmark: per query, the passing rows' mask and the expression in each
    system's dialect (pomaidb / LanceDB SQL / zvec). Uncorrelated and mixed filters are the same
    for every query; correlated ones differ per query and keep whole clusters: `member` is then
    the (queries x clusters) bool matrix of the clusters each query's filter keeps."""

    def __init__(self, name: str, kind: str, target: Optional[float], per_query: bool,
                 mask: Callable[[int], np.ndarray], exprs: Callable[[int], Dict[str, str]],
                 member: Optional[np.ndarray] = None) -> None:
        self.name, self.kind, self.target, self.per_query = name, kind, target, per_query
        self.mask, self.exprs, self.member = mask, exprs, member


def make_filters(attrs: Dict[str, np.ndarray], labels: np.ndarray, queries: np.ndarray,
                 centers: np.ndarray, which: Optional[List[str]]) -> List[Filter]:
    bucket, lang, tags = attrs["bucket"], attrs["lang"], attrs["tags"]
    sizes = np.bincount(labels, minlength=centers.shape[0])
    order = cluster_order(queries, centers)
    fs: List[Filter] = []

    def const(name: str, kind: str, target: Optional[float], m: np.ndarray, e: Dict[str, str]) -> None:
        fs.append(Filter(name, kind, target, False, lambda i, m=m: m, lambda i, e=e: e))

    for s in SELECTIVITIES:
        b = int(round(s * 1000))
        const(f"uncorrelated {s:g}", "uncorrelated", s, bucket < b,
              {"pomaidb": f"bucket < {b}", "lance": f"bucket < {b}", "zvec": f"bucket < {b}"})
    for near in (True, False):
        kind = "correlated near" if near else "correlated far"
        for s in SELECTIVITIES:
            sets = correlated_sets(order, sizes, s, near)
            member = np.zeros((len(sets), centers.shape[0]), dtype=bool)
            for i, cl in enumerate(sets):
                member[i, cl] = True
            lists = [", ".join(str(int(c)) for c in cl) for cl in sets]

            def mask(i: int, member: np.ndarray = member) -> np.ndarray:
                return member[i][labels]

            def exprs(i: int, lists: List[str] = lists) -> Dict[str, str]:
                e = f"cluster IN ({lists[i]})"
                return {"pomaidb": e, "lance": e, "zvec": e.replace("IN", "in")}
            fs.append(Filter(f"{kind} {s:g}", kind, s, True, mask, exprs, member))
    li = {x: i for i, x in enumerate(LANGS)}
    t03, t11 = 1 << 3, 1 << 11
    const("mixed: lang = 'de' AND bucket < 400", "mixed", None, (lang == li["de"]) & (bucket < 400),
          {"pomaidb": "lang = 'de' AND bucket < 400", "lance": "lang = 'de' AND bucket < 400",
           "zvec": "lang = 'de' and bucket < 400"})
    const("mixed: tags CONTAINS 't03' AND lang IN ('fr', 'es')", "mixed", None,
          ((tags & t03) != 0) & np.isin(lang, [li["fr"], li["es"]]),
          {"pomaidb": "tags CONTAINS 't03' AND lang IN ('fr', 'es')",
           "lance": "array_has(tags, 't03') AND lang IN ('fr', 'es')",
           "zvec": "tags contain_any ('t03') and lang in ('fr', 'es')"})
    const("mixed: (lang = 'ja' OR tags CONTAINS 't11') AND bucket BETWEEN 100 AND 199", "mixed", None,
          ((lang == li["ja"]) | ((tags & t11) != 0)) & (bucket >= 100) & (bucket <= 199),
          {"pomaidb": "(lang = 'ja' OR tags CONTAINS 't11') AND bucket BETWEEN 100 AND 199",
           "lance": "(lang = 'ja' OR array_has(tags, 't11')) AND bucket BETWEEN 100 AND 199",
           "zvec": "(lang = 'ja' or tags contain_any ('t11')) and bucket >= 100 and bucket <= 199"})
    if which:
        fs = [f for f in fs if any(w in f.name for w in which)]
    return fs


def filtered_ground_truth(base: np.ndarray, queries: np.ndarray, labels: np.ndarray,
                          filters: List[Filter], k: int) -> List[np.ndarray]:
    """Exact filtered top-k (L2) of every query under every filter, by brute force: float64
    distances in row blocks, shared by all filters; rows that do not pass are +inf. Returns one
    int64 (nq, k) array per filter (-1 where fewer than k rows pass)."""
    nq = queries.shape[0]
    q = queries.astype(np.float64)
    qn = (q * q).sum(1)[:, None]
    best_d = [np.full((nq, 0), np.inf) for _ in filters]
    best_i = [np.zeros((nq, 0), dtype=np.int64) for _ in filters]
    # per-query filters are evaluated per block from their (queries x clusters) membership
    const = [None if f.per_query else f.mask(0) for f in filters]
    block = max(1024, int(1e8 // (8 * max(nq, 1))))
    for s in range(0, base.shape[0], block):
        b = base[s:s + block].astype(np.float64)
        d = qn + (b * b).sum(1)[None, :] - 2.0 * (q @ b.T)
        for j, f in enumerate(filters):
            m = f.member[:, labels[s:s + block]] if f.per_query else const[j][None, s:s + block]
            dj = np.where(m, d, np.inf)
            kk = min(k, dj.shape[1])
            part = np.argpartition(dj, kk - 1, axis=1)[:, :kk]
            cd = np.concatenate([best_d[j], np.take_along_axis(dj, part, 1)], axis=1)
            ci = np.concatenate([best_i[j], part + s], axis=1)
            kk = min(k, cd.shape[1])
            keep = np.argpartition(cd, kk - 1, axis=1)[:, :kk]
            best_d[j] = np.take_along_axis(cd, keep, 1)
            best_i[j] = np.take_along_axis(ci, keep, 1)
    out = []
    for d, i in zip(best_d, best_i):
        order = np.argsort(d, axis=1, kind="stable")
        i = np.take_along_axis(i, order, 1)
        i[np.take_along_axis(d, order, 1) == np.inf] = -1
        out.append(i)
    return out


def check_ground_truth(base: np.ndarray, queries: np.ndarray, f: Filter, gt: np.ndarray) -> None:
    """Recomputes three queries' filtered top-k the plain way (distances to the passing rows only)
    and compares them with the blocked computation."""
    nq = queries.shape[0]
    for i in sorted({0, nq // 2, nq - 1}):
        rows = np.flatnonzero(f.mask(i))
        d = ((base[rows].astype(np.float64) - queries[i].astype(np.float64)) ** 2).sum(1)
        want = rows[np.argsort(d, kind="stable")[:K]]
        got = gt[i][gt[i] >= 0]
        if set(want.tolist()) != set(got.tolist()):
            raise SystemExit(f"ground truth of {f.name!r}, query {i}: {got.tolist()} != {want.tolist()}")


def prepare(args: argparse.Namespace) -> Dict[str, Any]:
    """Generates (or finds in the cache) base, queries, labels, attributes and the filtered ground
    truth; returns the paths and the filters' summary."""
    n, d, nq = args.rows_n, args.dim, args.queries
    ddir = Path(args.data_dir) / args.name
    ddir.mkdir(parents=True, exist_ok=True)
    want = {"rows": n, "dim": d, "queries": nq, "seed": args.seed, "gen_version": ann.GEN_VERSION,
            "attr_version": ATTR_VERSION, "clusters": n_clusters(n)}
    meta_p = ddir / "meta.json"
    meta = json.loads(meta_p.read_text()) if meta_p.exists() else {}
    files = ["base", "queries", "labels", "centers", "bucket", "lang", "tags"]
    if {k: meta.get(k) for k in want} != want or not all((ddir / f"{f}.npy").exists() for f in files):
        log(f"generating {args.name}: {n} x {d} float32, {n_clusters(n)} clusters, {nq} queries")
        t = time.perf_counter()
        base, queries, labels, centers = generate_labeled(n, d, nq, args.seed)
        arrays = dict(base=base, queries=queries, labels=labels, centers=centers, **make_attributes(n, args.seed))
        for f in files:
            np.save(ddir / f"{f}.npy", arrays[f])
        for f in ddir.glob("gt-*.npy"):
            f.unlink()
        meta_p.write_text(json.dumps(want, indent=1))
        log(f"  generated in {time.perf_counter() - t:.1f} s")
    data = {"dir": str(ddir), "meta": want}
    return data


def load_arrays(data: Dict[str, Any], names: List[str]) -> Dict[str, np.ndarray]:
    return {f: np.load(Path(data["dir"]) / f"{f}.npy") for f in names}


def filters_for(data: Dict[str, Any], which: Optional[List[str]]) -> Tuple[List[Filter], Dict[str, np.ndarray]]:
    a = load_arrays(data, ["queries", "labels", "centers", "bucket", "lang", "tags"])
    fs = make_filters({"bucket": a["bucket"], "lang": a["lang"], "tags": a["tags"]}, a["labels"],
                      a["queries"], a["centers"], which)
    return fs, a


def gt_path(data: Dict[str, Any], f: Filter) -> Path:
    safe = "".join(c if c.isalnum() else "_" for c in f.name)
    return Path(data["dir"]) / f"gt-{safe}.npy"


def ensure_ground_truth(data: Dict[str, Any], which: Optional[List[str]]) -> List[Dict[str, Any]]:
    fs, a = filters_for(data, which)
    todo = [f for f in fs if not gt_path(data, f).exists()]
    if todo:
        log(f"computing exact filtered top-{K} by brute force for {len(todo)} filters")
        t = time.perf_counter()
        base = np.load(Path(data["dir"]) / "base.npy")
        for f, gt in zip(todo, filtered_ground_truth(base, a["queries"], a["labels"], todo, K)):
            check_ground_truth(base, a["queries"], f, gt)
            np.save(gt_path(data, f), gt)
        log(f"  ground truth in {time.perf_counter() - t:.1f} s")
    n = a["labels"].shape[0]
    sizes = np.bincount(a["labels"], minlength=a["centers"].shape[0])
    summary = []
    for f in fs:
        passing = (f.member @ sizes).tolist() if f.per_query else [int(f.mask(0).sum())]
        summary.append({"name": f.name, "kind": f.kind, "target": f.target, "per_query": f.per_query,
                        "pass_mean": float(np.mean(passing)) / n, "pass_min": min(passing) / n,
                        "pass_max": max(passing) / n, "example": f.exprs(0)["pomaidb"][:200]})
    return summary


# ---- systems ---------------------------------------------------------------------------------


def pomaidb_filtered() -> Tuple[bool, str]:
    """Whether the installed pomaidb has filtered search (search(..., where=) and
    put_batch(..., attributes=)), and a sentence saying so."""
    try:
        import pomaidb
    except ImportError:
        return False, "pomaidb: not installed"
    has = ("where" in inspect.signature(pomaidb.search).parameters
           and "attributes" in inspect.signature(pomaidb.put_batch).parameters)
    if not has:
        return False, f"pomaidb {pomaidb.version()}: filtered search not available in this build"
    return True, f"pomaidb {pomaidb.version()}: search(..., where=) available"


class System:
    """One system under test. build() runs in its own process and leaves the index at self.path;
    open() loads it in the sweep process; knobs() are its search-effort settings, low to high;
    run(Q, filter, knob) runs the queries and returns (ids (nq, K) int64, wall seconds, CPU
    seconds) of the search calls."""

    name = ""
    knob = "ef"

    def __init__(self, cfg: Dict[str, Any]) -> None:
        self.cfg = cfg
        self.path = Path(cfg["index_dir"]) / self.name
        self.n = cfg["rows"]

    def knobs(self) -> List[int]:
        return list(self.cfg["ef"])

    def built(self) -> bool:
        return (self.path / "DONE").exists()

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        """All queries: one batched call when the filter is the same for every query and the
        system has a batched filtered search, else one call per query; filter preparation
        (masks, bitmaps, expression strings) is outside the timed region."""
        raise NotImplementedError


def timed(fn: Callable[[], Any]) -> Tuple[Any, float, float]:
    """(fn(), wall seconds, process CPU seconds)."""
    c0, w0 = time.process_time(), time.perf_counter()
    r = fn()
    return r, time.perf_counter() - w0, time.process_time() - c0


def per_query(Q: np.ndarray, f: Filter, prep: Callable[[int], Any],
              one: Callable[[np.ndarray, Any], np.ndarray]) -> Tuple[np.ndarray, float, float]:
    """One call per query; returns (ids, wall, cpu) of the calls alone (prep(i) is not timed)."""
    out = np.full((Q.shape[0], K), -1, dtype=np.int64)
    wall = cpu = 0.0
    shared = None if f.per_query else prep(0)
    for i in range(Q.shape[0]):
        arg = prep(i) if f.per_query else shared
        r, w, c = timed(lambda: one(Q[i:i + 1], arg))
        wall += w
        cpu += c
        r = np.asarray(r, dtype=np.int64).ravel()[:K]
        out[i, :r.shape[0]] = r
    return out, wall, cpu


class Pomai(System):
    name = "pomaidb"

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        import pomaidb
        X = a["base"]
        db = pomaidb.open_db(self.path / "db", dim=X.shape[1], metric="l2", hnsw_m=self.cfg["M"],
                             hnsw_ef_construction=self.cfg["efc"], adaptive_threshold=0,
                             search_threads=self.cfg["build_threads"],
                             memory_budget_bytes=4 * X.nbytes)
        tags = a["tags"]
        for s in range(0, X.shape[0], POMAI_PUT_CHUNK):
            e = min(X.shape[0], s + POMAI_PUT_CHUNK)
            attrs = {"bucket": a["bucket"][s:e], "cluster": a["labels"][s:e],
                     "lang": [LANGS[x] for x in a["lang"][s:e].tolist()], "tags": tags_lists(tags[s:e])}
            pomaidb.put_batch(db, np.arange(s, e, dtype=np.uint64), X[s:e], attributes=attrs)
        pomaidb.freeze(db)
        pomaidb.compact(db)
        st = pomaidb.stats(db)
        pomaidb.close(db)
        return {"segments": st.get("segments")}

    def open(self) -> None:
        import pomaidb
        self.db = pomaidb.open_db(self.path / "db", dim=self.cfg["dim"], metric="l2", hnsw_m=self.cfg["M"],
                                  hnsw_ef_construction=self.cfg["efc"], adaptive_threshold=0, search_threads=1,
                                  memory_budget_bytes=4 * self.n * self.cfg["dim"] * 4)

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        import pomaidb
        if not f.per_query:
            e = f.exprs(0)["pomaidb"]
            (ids, _), w, c = timed(lambda: pomaidb.search(self.db, Q, topk=K, where=e, ef_search=knob))
            return ids.astype(np.int64), w, c   # padding (2**64 - 1) becomes -1
        return per_query(Q, f, lambda i: f.exprs(i)["pomaidb"],
                         lambda q, e: pomaidb.search(self.db, q, topk=K, where=e, ef_search=knob)[0].astype(np.int64))


class Hnswlib(System):
    name = "hnswlib"

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        import hnswlib
        X = a["base"]
        p = hnswlib.Index(space="l2", dim=X.shape[1])
        p.init_index(max_elements=X.shape[0], M=self.cfg["M"], ef_construction=self.cfg["efc"], random_seed=100)
        p.add_items(X, np.arange(X.shape[0]), num_threads=self.cfg["build_threads"])
        self.path.mkdir(parents=True, exist_ok=True)
        p.save_index(str(self.path / "index.bin"))
        return {}

    def open(self) -> None:
        import hnswlib
        self.p = hnswlib.Index(space="l2", dim=self.cfg["dim"])
        self.p.load_index(str(self.path / "index.bin"), max_elements=self.n)

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        # hnswlib's filter is a Python callable asked once per candidate label; a bytes object's
        # __getitem__ is the cheapest such callable (a C call returning 0 or 1).
        self.p.set_ef(max(knob, K))
        if not f.per_query:
            flt = f.mask(0).tobytes().__getitem__
            (ids, _), w, c = timed(lambda: self.p.knn_query(Q, k=K, num_threads=1, filter=flt))
            return ids.astype(np.int64), w, c
        return per_query(Q, f, lambda i: f.mask(i).tobytes().__getitem__,
                         lambda q, flt: self.p.knn_query(q, k=K, num_threads=1, filter=flt)[0])


class FaissHnsw(System):
    name = "faiss-hnsw"

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        import faiss
        faiss.omp_set_num_threads(self.cfg["build_threads"])
        X = a["base"]
        ix = faiss.IndexHNSWFlat(X.shape[1], self.cfg["M"])
        ix.hnsw.efConstruction = self.cfg["efc"]
        ix.add(X)
        self.path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(ix, str(self.path / "index.faiss"))
        return {}

    def open(self) -> None:
        import faiss
        faiss.omp_set_num_threads(1)
        self.ix = faiss.read_index(str(self.path / "index.faiss"))

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        import faiss

        def params(i: int) -> Any:
            packed = np.packbits(f.mask(i), bitorder="little")
            sel = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(packed))
            p = faiss.SearchParametersHNSW(sel=sel, efSearch=max(knob, K))
            p._keep = (packed, sel)   # the bitmap must outlive the search
            return p
        if not f.per_query:
            p = params(0)
            (_, ids), w, c = timed(lambda: self.ix.search(Q, K, params=p))
            return ids.astype(np.int64), w, c
        return per_query(Q, f, params, lambda q, p: self.ix.search(q, K, params=p)[1])


def lance_table(a: Dict[str, np.ndarray]) -> Any:
    import pyarrow as pa
    X = a["base"]
    n, d = X.shape
    return pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), d),
        "bucket": pa.array(a["bucket"]),
        "cluster": pa.array(a["labels"]),
        "lang": pa.DictionaryArray.from_arrays(pa.array(a["lang"].astype(np.int32)), pa.array(list(LANGS))).cast(pa.string()),
        "tags": pa.array(tags_lists(a["tags"]), type=pa.list_(pa.string())),
    })


class LanceIvfPq(System):
    """LanceDB with its default ANN index (IVF_PQ, sqrt(n) partitions, dim/8 sub-vectors) and a
    refine step (refine_factor, exact re-ranking of refine_factor * k candidates); the knob is
    nprobes. Prefiltering: .where(expr, prefilter=True)."""
    name = "lance-ivfpq"
    knob = "nprobes"

    def knobs(self) -> List[int]:
        return list(self.cfg["nprobes"])

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        import lancedb
        db = lancedb.connect(str(self.path / "lance"))
        t = db.create_table("t", data=lance_table(a), mode="overwrite")
        if self.name == "lance-ivfpq":
            n, d = a["base"].shape
            t.create_index(metric="l2", vector_column_name="vector", index_type="IVF_PQ",
                           num_partitions=max(1, int(round(math.sqrt(n)))), num_sub_vectors=max(1, d // 8))
        t.create_scalar_index("bucket")
        t.create_scalar_index("cluster")
        return {}

    def open(self) -> None:
        import lancedb
        self.t = lancedb.connect(str(self.path / "lance")).open_table("t")

    def query(self, q: np.ndarray, e: str, knob: int) -> Any:
        return (self.t.search(q[0]).where(e, prefilter=True).nprobes(knob)
                .refine_factor(self.cfg["refine"]).limit(K).select(["id", "_distance"]))

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        return per_query(Q, f, lambda i: f.exprs(i)["lance"],
                         lambda q, e: self.query(q, e, knob).to_arrow().column("id").to_numpy())


class LanceFlat(LanceIvfPq):
    """LanceDB without a vector index: exact search over the prefiltered rows (one point)."""
    name = "lance-flat"
    knob = "exact"

    def knobs(self) -> List[int]:
        return [0]

    def query(self, q: np.ndarray, e: str, knob: int) -> Any:
        return self.t.search(q[0]).where(e, prefilter=True).limit(K).select(["id", "_distance"])


class Zvec(System):
    """zvec with an HNSW index (m = M, ef_construction = efc) on the vector and inverted indexes
    on the attribute columns; the knob is HnswQueryParam(ef); queries through
    query_internal_ids (its low-latency path) on a read-only open, ids resolved after timing."""
    name = "zvec"

    def build(self, a: Dict[str, np.ndarray]) -> Dict[str, Any]:
        import zvec
        from zvec import (CollectionSchema, DataType, Doc, FieldSchema, HnswIndexParam, InvertIndexParam,
                          MetricType, VectorSchema)
        zvec.init(query_threads=1, optimize_threads=self.cfg["build_threads"])
        X = a["base"]
        schema = CollectionSchema("t", fields=[
            FieldSchema("bucket", DataType.INT64, index_param=InvertIndexParam()),
            FieldSchema("cluster", DataType.INT64, index_param=InvertIndexParam()),
            FieldSchema("lang", DataType.STRING, index_param=InvertIndexParam()),
            FieldSchema("tags", DataType.ARRAY_STRING, index_param=InvertIndexParam())],
            vectors=[VectorSchema("v", DataType.VECTOR_FP32, X.shape[1], index_param=HnswIndexParam(
                metric_type=MetricType.L2, m=self.cfg["M"], ef_construction=self.cfg["efc"]))])
        shutil.rmtree(self.path / "zv", ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        c = zvec.create_and_open(str(self.path / "zv"), schema)
        bucket, labels, lang, tags = (a["bucket"].tolist(), a["labels"].tolist(), a["lang"].tolist(),
                                      tags_lists(a["tags"]))
        for s in range(0, X.shape[0], 1024):
            e = min(X.shape[0], s + 1024)
            docs = [Doc(id=str(i), vectors={"v": X[i]}, fields={
                "bucket": bucket[i], "cluster": labels[i], "lang": LANGS[lang[i]], "tags": tags[i]})
                for i in range(s, e)]
            for st in c.insert(docs):
                if not st.ok():
                    raise RuntimeError(f"zvec insert: {st}")
        c.optimize()
        c.flush()
        c.close()
        return {}

    def open(self) -> None:
        import zvec
        from zvec import CollectionOption
        zvec.init(query_threads=1, optimize_threads=1)
        self.c = zvec.open(str(self.path / "zv"), CollectionOption(read_only=True))

    def run(self, Q: np.ndarray, f: Filter, knob: int) -> Tuple[np.ndarray, float, float]:
        from zvec import HnswQueryParam, Query
        param = HnswQueryParam(ef=max(knob, K))
        raw, w, c = per_query(Q, f, lambda i: f.exprs(i)["zvec"],
                            lambda q, e: self.c.query_internal_ids(Query("v", vector=q[0], param=param),
                                                                   topk=K, filter=e))
        flat = raw.ravel()
        names = self.c.resolve_internal_ids(flat)
        ids = np.array([-1 if x is None else int(x) for x in names], dtype=np.int64)
        ids[flat < 0] = -1
        return ids.reshape(raw.shape), w, c


CLASSES = {c.name: c for c in (Pomai, Hnswlib, FaissHnsw, LanceIvfPq, LanceFlat, Zvec)}


def system_available(name: str) -> Tuple[bool, str]:
    if name in NOT_FILTERED:
        return False, NOT_FILTERED[name]
    if name == "pomaidb":
        return pomaidb_filtered()
    module = {"hnswlib": "hnswlib", "faiss-hnsw": "faiss", "lance-ivfpq": "lancedb", "lance-flat": "lancedb",
              "zvec": "zvec"}[name]
    if importlib.util.find_spec(module) is None:
        return False, f"{name}: {module} not installed"
    return True, ""


# ---- child processes -------------------------------------------------------------------------


def build_main(cfg_path: str, name: str) -> int:
    cfg = json.loads(Path(cfg_path).read_text())
    s = CLASSES[name](cfg)
    shutil.rmtree(s.path, ignore_errors=True)
    s.path.mkdir(parents=True, exist_ok=True)
    a = load_arrays(cfg["data"], ["base", "labels", "bucket", "lang", "tags"])
    t = time.perf_counter()
    info = s.build(a)
    info["build_s"] = time.perf_counter() - t
    (s.path / "DONE").write_text(json.dumps(info))
    print(json.dumps(info))
    return 0


def sweep_main(cfg_path: str) -> int:
    """Opens every built system and measures each filter: for each knob position, rounds in
    which every system runs the query set once (rotated order), best round kept; a system stops
    climbing its knobs for a filter once it reached recall 0.99 or a pass took too long."""
    cfg = json.loads(Path(cfg_path).read_text())
    systems = [CLASSES[n](cfg) for n in cfg["systems"]]
    for s in systems:
        s.open()
    fs, a = filters_for(cfg["data"], cfg["filters"])
    Q = np.ascontiguousarray(a["queries"], dtype=np.float32)
    out: Dict[str, Any] = {"filters": []}
    for f in fs:
        gt = np.load(gt_path(cfg["data"], f))
        rec: Dict[str, Any] = {"name": f.name, "points": {s.name: [] for s in systems}, "errors": {}}
        active = {s.name for s in systems}
        log(f"filter {f.name}")
        for j in range(max(len(s.knobs()) for s in systems)):
            here = [s for s in systems if s.name in active and j < len(s.knobs())]
            if not here:
                break
            best: Dict[str, Dict[str, Any]] = {}
            nq_of: Dict[str, int] = {}
            for r in range(cfg["rounds"]):
                order = here[r % len(here):] + here[:r % len(here)]
                for s in order:
                    if s.name not in active:
                        continue
                    try:
                        if r == 0:
                            # warm-up of this knob (caches, lazy loads), not counted; its speed
                            # sets how many queries fit in --pass-budget-s
                            _, w, _ = s.run(Q[:WARMUP], f, s.knobs()[j])
                            nq_of[s.name] = min(Q.shape[0], max(WARMUP, int(cfg["pass_budget_s"] * WARMUP / max(w, 1e-9))))
                        nq = nq_of[s.name]
                        ids, dt, cpu = s.run(Q[:nq], f, s.knobs()[j])
                    except Exception as e:  # noqa: BLE001
                        rec["errors"][s.name] = f"{type(e).__name__}: {e}"[:500]
                        log(f"  {s.name}: {rec['errors'][s.name]}")
                        active.discard(s.name)
                        continue
                    if s.name not in best:
                        best[s.name] = {"recall": recall(ids, gt[:nq]), "wall": dt, "cpu": cpu, "nq": nq}
                    else:
                        b = best[s.name]
                        b["wall"], b["cpu"] = min(b["wall"], dt), min(b["cpu"], cpu)
            for s in here:
                if s.name not in best:
                    continue
                b = best[s.name]
                qps, cpu_qps = b["nq"] / b["wall"], b["nq"] / max(b["cpu"], 1e-9)
                rec["points"][s.name].append({"knob": s.knobs()[j], "recall": b["recall"], "qps": qps,
                                              "cpu_qps": cpu_qps, "queries": b["nq"]})
                log(f"  {s.name:12s} {s.knob} {s.knobs()[j]:5d}: recall@10 {b['recall']:.4f}, {qps:10.1f} QPS,"
                    f" {cpu_qps:10.1f} per CPU second ({b['nq']} queries)")
                if b["recall"] >= 0.99 or max(qps, cpu_qps) < cfg["min_qps"]:
                    active.discard(s.name)
        out["filters"].append(rec)
        Path(cfg["sweep_out"]).write_text(json.dumps(out, indent=1))
    return 0


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / |exact| (exact top-10 of the passing rows)."""
    hits = 0
    total = 0
    for got, want in zip(ids, gt):
        want = want[want >= 0][:K]
        got = got[got >= 0][:K]
        hits += np.intersect1d(got, want).size
        total += want.size
    return hits / total if total else 1.0


def run_child(argv: List[str], timeout: Optional[float], env: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve())] + argv, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env)
    lines: List[str] = []
    try:
        assert p.stdout is not None
        for line in p.stdout:
            print("    " + line.rstrip(), flush=True)
            lines.append(line)
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -9
    return rc, "".join(lines)


# ---- report ----------------------------------------------------------------------------------


def at_target(points: List[Dict[str, Any]], target: float, key: str = "qps"
              ) -> Tuple[Optional[float], str, Optional[int]]:
    """(QPS at recall target (ann.qps_at; key "qps" per wall second, "cpu_qps" per CPU second),
    its kind, the knob of the fastest measured point whose recall reaches the target)."""
    q, kind = qps_at([(p["recall"], p[key]) for p in points], target)
    above = [p for p in points if p["recall"] >= target]
    knob = max(above, key=lambda p: p[key])["knob"] if above else None
    return q, kind, knob


def report(args: argparse.Namespace, data: Dict[str, Any], summary: List[Dict[str, Any]],
           sweep: Dict[str, Any], notes: List[str], builds: Dict[str, Any], env: Dict[str, Any]) -> str:
    L = [f"# Filtered search: {args.name}, M {args.M}, ef_construction {args.efc}", "",
         f"{data['meta']['rows']:,} x {data['meta']['dim']} float32 (clustered, {data['meta']['clusters']} clusters), "
         f"{data['meta']['queries']} queries (a system slower than {args.pass_budget_s:g} s per pass: the first that fit), "
         f"L2, recall@10 against the exact filtered top-10, one thread, {args.rounds} interleaved rounds per point "
         f"(best kept). Load average at start {env['load_start'][0]:.2f}, at end "
         f"{env.get('load_end', os.getloadavg())[0]:.2f}.", ""]
    L += [f"- {n}" for n in notes]
    L += ["", "Build (seconds, own process, build threads " + str(args.build_threads) + "): " +
          ", ".join(f"{k} {v.get('build_s', float('nan')):.1f}" for k, v in builds.items()), ""]
    by_name = {f["name"]: f for f in sweep.get("filters", [])}
    goal_rows = []
    for sm in summary:
        rec = by_name.get(sm["name"])
        if rec is None:
            continue
        L += [f"## {sm['name']}", "",
              f"Rows passing: mean {sm['pass_mean']:.4%} (min {sm['pass_min']:.4%}, max {sm['pass_max']:.4%})"
              + (", per query" if sm["per_query"] else "") + f". pomaidb expression: `{sm['example']}`"
              + ("…" if len(sm["example"]) >= 200 else ""), ""]
        rows = []
        keys: List[str] = []
        best95: Dict[str, Optional[float]] = {}
        cpu95: Dict[str, Optional[float]] = {}
        for name, pts in rec["points"].items():
            if name in rec["errors"] and not pts:
                rows.append([name, "error: " + rec["errors"][name][:120], "", "", "", "", ""])
                keys.append(name)
                continue
            q95, k95, e95 = at_target(pts, 0.95)
            q99, k99, e99 = at_target(pts, 0.99)
            qc, kc, ec = at_target(pts, 0.95, "cpu_qps")
            maxr = max((p["recall"] for p in pts), default=float("nan"))
            best95[name] = q95
            cpu95[name] = qc
            knob = CLASSES[name].knob

            stopped = bool(pts) and max(pts[-1]["qps"], pts[-1]["cpu_qps"]) < args.min_qps

            def cell(q: Optional[float], kind: str, e: Optional[int]) -> str:
                if q is None:
                    return f"not reached above {args.min_qps:g} QPS" if stopped else "not reachable"
                return f"{'>= ' if kind == '>=' else ''}{q:,.0f} ({knob} {e})"
            keys.append(name)
            cpu = max((p["qps"] / p["cpu_qps"] for p in pts), default=0.0)
            if cpu > 1.3:
                name = f"{name} (CPU/wall up to {cpu:.1f}: not one thread)"
            rows.append([name, cell(q95, k95, e95), cell(q99, k99, e99), cell(qc, kc, ec), f"{maxr:.4f}",
                         ", ".join(f"{p['knob']}: {p['recall']:.3f}/{p['qps']:,.0f}" for p in pts), ""])
        peers = {k: v for k, v in best95.items() if k != "pomaidb" and v is not None}
        best_peer = max(peers.items(), key=lambda kv: kv[1]) if peers else None
        for key, r in zip(keys, rows):
            q = best95.get(key)
            r[6] = f"{q / best_peer[1]:.2f}" if (q is not None and best_peer) else "–"
        L += [md_table(["system", "QPS @ recall 0.95 (knob)", "QPS @ 0.99 (knob)", "per CPU s @ 0.95", "max recall",
                        "points (knob: recall/QPS)", "/ best peer @0.95"], rows), ""]
        cpeers = {k: v for k, v in cpu95.items() if k != "pomaidb" and v is not None}
        cbest = max(cpeers.items(), key=lambda kv: kv[1]) if cpeers else None
        row = [sm["name"]]
        for table, top in ((best95, best_peer), (cpu95, cbest)):
            pq = table.get("pomaidb")
            row += [f"{top[0]} {top[1]:,.0f}" if top else "none reaches 0.95",
                    "not measured" if "pomaidb" not in table else ("not reachable" if pq is None else f"{pq:,.0f}"),
                    f"{pq / top[1]:.2f}" if (pq is not None and top) else "–"]
        goal_rows.append(row)
    L += ["## Goal: pomaidb >= 2x the best peer at recall@10 0.95, every filter", "",
          "Per wall second (the goal's measure) and per CPU second of the process (steadier when other "
          "work shares the machine).", "",
          md_table(["filter", "best peer QPS@0.95", "pomaidb", "ratio (>= 2)",
                    "best peer per CPU s", "pomaidb", "ratio"], goal_rows), ""]
    return "\n".join(L)


# ---- main ------------------------------------------------------------------------------------


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="1M", help="base rows (e.g. 200k, 1M)")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true", help="20k x 64, 100 queries, 1 round, few knobs")
    p.add_argument("--systems", default=",".join(s for s in SYSTEMS))
    p.add_argument("--filters", default="", help="comma-separated substrings of filter names to run (default all)")
    p.add_argument("--M", type=int, default=16)
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--ef", default="10,16,24,32,48,64,96,128,192,256,384,512,768,1024,1536,2048")
    p.add_argument("--nprobes", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--refine", type=int, default=10, help="LanceDB refine_factor")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pass-budget-s", type=float, default=5.0,
                   help="a system whose warm-up says the query set takes longer than this per pass runs only "
                        "the first queries that fit (at least 20)")
    p.add_argument("--min-qps", type=float, default=20.0,
                   help="stop raising a system's knob on a filter once it is slower than this "
                        "(per wall second and per CPU second)")
    p.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rebuild", nargs="?", const="all", default="",
                   help="rebuild the saved indexes of these systems (comma-separated; alone: all), e.g. "
                        "--rebuild pomaidb after reinstalling the engine")
    p.add_argument("--timeout", type=float, default=None, help="seconds per child process")
    p.add_argument("--data-dir", default=str(HERE / "data"))
    p.add_argument("--out-dir", default=str(HERE / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.dim, args.queries, args.rounds = "20k", 64, 100, 1
        args.ef, args.nprobes = "10,32,64,128,256,512", "2,8,32,128"
    args.rows_n = parse_rows(args.rows)
    args.name = f"clustered-{fmt_rows(args.rows_n)}-{args.dim}-q{args.queries}"
    args.ef = [int(x) for x in args.ef.split(",")]
    args.nprobes = [int(x) for x in args.nprobes.split(",")]
    args.systems = [s for s in args.systems.split(",") if s]
    for s in args.systems:
        if s not in SYSTEMS:
            p.error(f"--systems: unknown system {s!r}; systems are {', '.join(SYSTEMS)}")
    args.filters = [s for s in args.filters.split(",") if s] or None
    return args


def environment() -> Dict[str, Any]:
    versions = {"numpy": np.__version__}
    for dist in ("pomai", "hnswlib", "faiss-cpu", "usearch", "lancedb", "pylance", "zvec", "pyarrow"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"python": platform.python_version(), "nproc": os.cpu_count(), "versions": versions,
            "load_start": os.getloadavg()}


def main(argv: List[str]) -> int:
    if argv[:1] == ["--_build"]:
        return build_main(argv[1], argv[2])
    if argv[:1] == ["--_sweep"]:
        return sweep_main(argv[1])
    if argv[:1] == ["--report-from"]:
        # re-renders the markdown of a saved results JSON with this version's report()
        j = json.loads(Path(argv[1]).read_text())
        meta = j.get("meta") or json.loads((Path(j["args"]["data_dir"]) / j["args"]["name"] / "meta.json").read_text())
        md = report(argparse.Namespace(**j["args"]), {"meta": meta}, j["filters"], j["sweep"], j["notes"],
                    j["builds"], j["env"])
        Path(argv[1]).with_suffix(".md").write_text(md + "\n")
        print(md)
        return 0
    args = parse_args(argv)
    env = environment()
    data = prepare(args)
    summary = ensure_ground_truth(data, args.filters)
    for s in summary:
        log(f"  {s['name']}: {s['pass_mean']:.4%} of rows pass")
    notes: List[str] = []
    systems = []
    for s in args.systems:
        ok, why = system_available(s)
        if why:
            notes.append(why)
            log(why)
        if ok:
            systems.append(s)
    idx_dir = Path(args.data_dir) / "indexes" / f"{args.name}-M{args.M}-efc{args.efc}"
    cfg = vars(args) | {"data": data, "index_dir": str(idx_dir), "rows": args.rows_n, "systems": systems,
                        "sweep_out": str(idx_dir / "sweep.json")}
    idx_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = idx_dir / "cfg.json"
    cfg_path.write_text(json.dumps(cfg, default=str))
    builds: Dict[str, Any] = {}
    for s in list(systems):
        sysobj = CLASSES[s](cfg)
        if not sysobj.built() or args.rebuild == "all" or s in args.rebuild.split(","):
            log(f"building {s}")
            rc, _ = run_child(["--_build", str(cfg_path), s], args.timeout)
            if rc != 0 or not sysobj.built():
                notes.append(f"{s}: build failed (exit {rc}); not measured")
                systems.remove(s)
                continue
        else:
            log(f"{s}: reusing the saved index in {sysobj.path}")
        builds[s] = json.loads((sysobj.path / "DONE").read_text())
    cfg["systems"] = systems
    cfg_path.write_text(json.dumps(cfg, default=str))
    env_child = dict(os.environ, LANCE_CPU_THREADS="1", LANCE_IO_THREADS="1", OMP_NUM_THREADS="1")
    Path(cfg["sweep_out"]).unlink(missing_ok=True)
    if systems:
        log(f"interleaved one-thread sweep: {', '.join(systems)}")
        rc, _ = run_child(["--_sweep", str(cfg_path)], args.timeout, env_child)
        if rc != 0:
            notes.append(f"the sweep process exited with {rc}; the report has the filters it finished")
    else:
        notes.append("no system to measure")
    sweep = json.loads(Path(cfg["sweep_out"]).read_text()) if Path(cfg["sweep_out"]).exists() else {}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env["load_end"] = os.getloadavg()
    md = report(args, data, summary, sweep, notes, builds, env)
    (out / f"{args.name}.md").write_text(md + "\n")
    (out / f"{args.name}.json").write_text(json.dumps(
        {"args": {k: v for k, v in vars(args).items()}, "env": env, "meta": data["meta"],
         "filters": summary, "builds": builds, "notes": notes, "sweep": sweep}, indent=1, default=str))
    print(md)
    log(f"wrote {out / (args.name + '.md')} and .json")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        sys.exit(1)
