"""search / search_batch: exact results, any number of queries (input layouts: test_bad_input.py)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

import pomaidb


def reference_topk(data: np.ndarray, ids: np.ndarray, queries: np.ndarray, metric: str, k: int):
    """Brute force in float64: ids (n, k) by score descending, then id ascending."""
    d = data.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "ip":
        scores = q @ d.T
    elif metric == "l2":
        scores = -(((q[:, None, :] - d[None, :, :]) ** 2).sum(-1))
    else:
        dn = d / np.linalg.norm(d, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        scores = qn @ dn.T
    out_ids = np.empty((len(q), k), dtype=np.uint64)
    out_scores = np.empty((len(q), k))
    for i in range(len(q)):
        order = np.lexsort((ids, -scores[i]))[:k]
        out_ids[i] = ids[order]
        out_scores[i] = scores[i, order]
    return out_ids, out_scores


@pytest.mark.parametrize("frozen", [False, True], ids=["memtable", "segment"])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_ids_and_scores_match_brute_force(open_db: Callable[..., pomaidb.Database], rng: np.random.Generator,
                               metric: str, frozen: bool) -> None:
    n, dim, k = 2000, 32, 10
    data = rng.standard_normal((n, dim)).astype(np.float32)
    ids = rng.permutation(10 * n)[:n].astype(np.uint64) * 3 + 7  # sparse, unordered ids
    queries = rng.standard_normal((50, dim)).astype(np.float32)
    # adaptive_threshold above n: frozen segments are scanned exactly, not through HNSW.
    db = open_db(dim, metric=metric, shards=3, adaptive_threshold=10 * n)
    pomaidb.put_batch(db, ids, data)
    if frozen:
        pomaidb.freeze(db)

    want_ids, want_scores = reference_topk(data, ids, queries, metric, k)
    got_ids, got_scores = pomaidb.search(db, queries, topk=k)
    assert got_ids.dtype == np.uint64 and got_ids.shape == (50, k)
    assert got_scores.dtype == np.float32 and got_scores.shape == (50, k)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4)

    batch = pomaidb.search_batch(db, queries, topk=k)
    assert [r[0] for r in batch] == want_ids.tolist()
    np.testing.assert_allclose([r[1] for r in batch], want_scores, rtol=1e-4, atol=1e-4)


def test_hnsw_segment_finds_most_neighbours(open_db, rng) -> None:
    n, dim, k = 2000, 32, 10
    data = rng.standard_normal((n, dim)).astype(np.float32)
    queries = rng.standard_normal((50, dim)).astype(np.float32)
    db = open_db(dim, metric="l2", adaptive_threshold=0, hnsw_ef_search=128)
    pomaidb.put_batch(db, np.arange(n), data)
    pomaidb.freeze(db)
    want, _ = reference_topk(data, np.arange(n, dtype=np.uint64), queries, "l2", k)
    got, _ = pomaidb.search(db, queries, topk=k)
    recall = np.mean([len(set(g) & set(w)) / k for g, w in zip(got.tolist(), want.tolist())])
    assert recall >= 0.9


def test_search_batch_answers_a_thousand_queries_in_order(open_db, rng) -> None:
    dim = 8
    data = rng.standard_normal((300, dim)).astype(np.float32)
    db = open_db(dim, metric="l2")
    pomaidb.put_batch(db, list(range(300)), data.tolist())
    # Query i is stored vector i % 300: under l2 its own id comes first.
    queries = [data[i % 300].tolist() for i in range(1000)]
    results = pomaidb.search_batch(db, queries, topk=3)
    assert len(results) == 1000
    assert [ids[0] for ids, _ in results] == [i % 300 for i in range(1000)]
    for ids, scores in results:
        assert len(ids) == 3 and len(scores) == 3
        assert all(type(i) is int for i in ids) and all(type(s) is float for s in scores)
        assert scores == sorted(scores, reverse=True)


def test_a_single_1d_query_is_one_query(open_db, rng) -> None:
    db = open_db(4, metric="l2")
    data = rng.standard_normal((10, 4)).astype(np.float32)
    pomaidb.put_batch(db, range(10), data)
    [(ids, _)] = pomaidb.search_batch(db, data[3], topk=2)
    assert ids[0] == 3
    read_only = data[3].copy()
    read_only.flags.writeable = False
    assert pomaidb.search_batch(db, read_only, topk=2)[0][0] == ids
    got_ids, _ = pomaidb.search(db, data[3], topk=2)
    assert got_ids.shape == (1, 2)


def test_empty_database_returns_empty_results(open_db) -> None:
    db = open_db(3)
    assert pomaidb.search_batch(db, [[1, 2, 3]], topk=4) == [([], [])]


def test_concurrent_searches_and_writes(open_db, rng) -> None:
    import threading

    dim = 16
    db = open_db(dim, metric="l2", shards=2)
    data = rng.standard_normal((400, dim)).astype(np.float32)
    pomaidb.put_batch(db, np.arange(200), data[:200])
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for _ in range(20):
                ids, _ = pomaidb.search(db, data[:50], topk=1)
                assert ids[:, 0].tolist() == list(range(50))
        except BaseException as e:  # reported below
            errors.append(e)

    def writer() -> None:
        try:
            for start in range(200, 400, 20):
                pomaidb.put_batch(db, np.arange(start, start + 20), data[start:start + 20])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=searcher) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert pomaidb.count(db) == 400


def test_search_releases_the_gil(open_db, rng) -> None:
    """This thread keeps running while another one's long search is inside C."""
    import threading
    import time

    dim = 64
    db = open_db(dim, metric="l2", search_threads=1)
    pomaidb.put_batch(db, np.arange(20000), rng.standard_normal((20000, dim)).astype(np.float32))
    queries = rng.standard_normal((3000, dim)).astype(np.float32)
    go, done = threading.Event(), threading.Event()
    elapsed = []

    def search() -> None:
        go.wait()
        t0 = time.perf_counter()
        pomaidb.search(db, queries, topk=10)
        elapsed.append(time.perf_counter() - t0)
        done.set()

    t = threading.Thread(target=search)
    t.start()
    longest_stall = 0.0
    last = time.perf_counter()
    go.set()
    while not done.is_set():
        now = time.perf_counter()
        longest_stall = max(longest_stall, now - last)
        last = now
    longest_stall = max(longest_stall, time.perf_counter() - last)
    t.join()
    # Were the GIL held through the call, this loop would stall for the whole
    # search; released, it stalls for about a switch interval at most.
    assert elapsed[0] > 0.05, "search too fast to tell"
    assert longest_stall < elapsed[0] / 2, (longest_stall, elapsed[0])


def test_ef_search_per_call_overrides_the_default(open_db, rng) -> None:
    """(Bad values of ef_search: test_bad_input.py, test_bad_ef_search_is_rejected.)"""
    dim, n = 16, 3000
    db = open_db(dim, metric="l2", adaptive_threshold=0, hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=10)
    data = rng.normal(size=(n, dim)).astype(np.float32)
    pomaidb.put_batch(db, np.arange(n), data)
    pomaidb.freeze(db)
    queries = rng.normal(size=(50, dim)).astype(np.float32)
    truth = np.argsort(((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1), axis=1)[:, :10]

    def recall(ids: np.ndarray) -> float:
        return float(np.mean([len(set(ids[i].tolist()) & set(truth[i].tolist())) / 10 for i in range(len(ids))]))

    low, _ = pomaidb.search(db, queries, topk=10)
    high, _ = pomaidb.search(db, queries, topk=10, ef_search=400)
    assert recall(high) >= 0.99
    assert recall(high) >= recall(low)
    batch = pomaidb.search_batch(db, queries[:2], topk=10, ef_search=400)
    assert batch[0][0] == high[0].tolist()
