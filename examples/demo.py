"""pomaidb demo: an embedded vector store on local disk.

Writes 100,000 clustered 128-d embeddings in batches (fsync on), searches the
memtable exactly, freezes it into immutable segment files with HNSW graphs,
searches those (recall@10 against a numpy brute force), searches, counts and
scans with a filter on the rows' attributes, deletes and overwrites rows,
closes, reopens and finds everything again.

Usage: python examples/demo.py [DB_DIR]   (default: a fresh temporary directory)
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time

import numpy as np

import pomaidb

N, DIM, CLUSTERS, BATCH, K = 100_000, 128, 256, 10_000, 10


def cosine(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine similarities in float64, shape (len(queries), len(data))."""
    dn = data.astype(np.float64) / np.linalg.norm(data.astype(np.float64), axis=1, keepdims=True)
    qn = queries.astype(np.float64) / np.linalg.norm(queries.astype(np.float64), axis=1, keepdims=True)
    return qn @ dn.T


def recall(got_ids: np.ndarray, truth: np.ndarray, ids: np.ndarray, k: int) -> float:
    """Fraction of the true top-k found, averaged over the queries."""
    true_top = ids[np.argsort(-truth, axis=1)[:, :k]]
    return float(np.mean([len(set(g.tolist()) & set(t.tolist())) / k for g, t in zip(got_ids, true_top)]))


def check_exact(got_ids: np.ndarray, truth: np.ndarray, ids: np.ndarray, k: int) -> None:
    """Every query's k results are the k best rows (up to float32 rounding of near-ties)."""
    row_of = {int(i): r for r, i in enumerate(ids)}
    best = -np.sort(-truth, axis=1)[:, :k]
    for q in range(truth.shape[0]):
        scores = np.sort([truth[q, row_of[int(i)]] for i in got_ids[q]])[::-1]
        assert np.allclose(scores, best[q], atol=1e-5), f"query {q}: not the exact top-{k}"


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="pomaidb-demo-")
    owned = len(sys.argv) <= 1
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    cluster = rng.integers(0, CLUSTERS, N)
    data = (centers[cluster] + 0.3 * rng.normal(size=(N, DIM))).astype(np.float32)
    year = rng.integers(2010, 2026, N)
    ids = np.arange(N, dtype=np.uint64) * 3 + 1  # any u64 ids
    queries = (centers[rng.integers(0, CLUSTERS, 100)] + 0.3 * rng.normal(size=(100, DIM))).astype(np.float32)

    print(f"pomaidb {pomaidb.__version__}, SIMD target {pomaidb.simd_target()}, database at {path}")
    opts = dict(dim=DIM, shards=2, metric="cosine", hnsw_m=16, hnsw_ef_construction=100, hnsw_ef_search=64)
    db = pomaidb.open_db(path, fsync=True, **opts)

    t = time.perf_counter()
    for start in range(0, N, BATCH):
        part = slice(start, start + BATCH)
        pomaidb.put_batch(db, ids[part], data[part], attributes={"cluster": cluster[part], "year": year[part]})
    dt = time.perf_counter() - t
    print(f"put_batch: {N:,} vectors with 2 attribute columns in {dt:.2f} s ({N / dt:,.0f} vectors/s, "
          f"fsync on every batch)")

    truth = cosine(data, queries)
    t = time.perf_counter()
    got_ids, _ = pomaidb.search(db, queries, topk=K)
    dt = time.perf_counter() - t
    check_exact(got_ids, truth, ids, K)
    print(f"exact search (memtable): 100 queries in {dt * 1e3:.1f} ms, the same top-{K} as a numpy brute force")

    t = time.perf_counter()
    pomaidb.freeze(db, progress=True)  # a tqdm bar when tqdm is installed
    print(f"freeze: memtable -> segment files with HNSW graphs (M=16) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    got_ids, scores = pomaidb.search(db, queries, topk=K)
    dt = time.perf_counter() - t
    r = recall(got_ids, truth, ids, K)
    assert r >= 0.95, f"recall@{K} {r:.3f}"
    print(f"HNSW search (segments): 100 queries in {dt * 1e3:.1f} ms, recall@{K} = {r:.3f}; "
          f"with ef_search=256: {recall(pomaidb.search(db, queries, topk=K, ef_search=256)[0], truth, ids, K):.3f}")
    print(f"stats: {pomaidb.stats(db)['segments']} segments, {pomaidb.stats(db)['segment_bytes'] / 2**20:.0f} MiB")

    # Filters (docs/FILTERS.md): the same top-k, among the rows that pass.
    where = "year >= 2020 AND cluster < 64"
    passing = (year >= 2020) & (cluster < 64)
    assert pomaidb.count(db, where=where) == int(passing.sum())
    t = time.perf_counter()
    got_ids, _ = pomaidb.search(db, queries, topk=K, where=where)
    dt = time.perf_counter() - t
    keep = set(ids[passing].tolist())
    assert all(int(i) in keep for i in got_ids.ravel()), "a result fails the filter"
    r = recall(got_ids, truth[:, passing], ids[passing], K)
    assert r >= 0.9, f"filtered recall@{K} {r:.3f}"
    print(f"filtered search ({where!r}, {passing.mean():.1%} of the rows): 100 queries in {dt * 1e3:.1f} ms, "
          f"recall@{K} = {r:.3f}; count agrees with numpy")
    if importlib.util.find_spec("pyarrow") is not None:  # scans return pyarrow batches
        table = pomaidb.scan(db, where=where, columns=["year"]).to_arrow()
        assert table.num_rows == int(passing.sum())
        print(f"scan: {table.num_rows:,} rows to a pyarrow Table, in id order")

    # Delete the best hit of query 0 and overwrite the second: the newest version wins.
    best, second = int(got_ids[0, 0]), int(got_ids[0, 1])
    pomaidb.delete(db, [best])
    pomaidb.put_batch(db, [second], -queries[0:1])
    top = pomaidb.search_batch(db, queries[0:1], topk=K)[0][0]
    assert best not in top and second not in top
    print(f"deleted id {best} and moved id {second} away: neither comes back; count = {pomaidb.count(db):,}")
    pomaidb.close(db)

    t = time.perf_counter()
    db = pomaidb.open_db(path, **opts)
    reopened = time.perf_counter() - t
    assert pomaidb.count(db) == N - 1
    assert not pomaidb.exists(db, best)
    vec, _ = pomaidb.get(db, second)
    assert np.allclose(vec, -queries[0])
    again = pomaidb.search_batch(db, queries[0:1], topk=K)[0][0]
    assert again == top
    print(f"reopen: {reopened * 1e3:.1f} ms; {pomaidb.count(db):,} rows, same answers after reopen")
    pomaidb.close(db)
    if owned:
        shutil.rmtree(path)
    print("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
