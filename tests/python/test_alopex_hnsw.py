"""SPEC 3.2-3.3: named HNSW indexes (create/drop/stats/search on the
database, upsert/delete inside READ_WRITE transactions)."""

from __future__ import annotations

import numpy as np
import pytest

from alopex import AlopexError, Database, HnswConfig, HnswStats, Metric, SearchResult, TxnMode
from alopex_helpers import db, db_factory, kind, reference_scores  # noqa: F401  (fixtures)

RW = TxnMode.READ_WRITE


def fill(db: Database, name: str, data: np.ndarray, prefix: bytes = b"k") -> list:
    keys = [prefix + b"%05d" % i for i in range(len(data))]
    with db.begin(RW) as txn:
        for k, row in zip(keys, data):
            txn.upsert_to_hnsw(name, k, row, b"md:" + k)
        txn.commit()
    return keys


def test_entries_are_searchable_after_commit_only(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2, metric=Metric.L2))
    txn = db.begin(RW)
    txn.upsert_to_hnsw("idx", b"a", np.array([1.0, 0.0], dtype=np.float32), b"meta-a")
    txn.upsert_to_hnsw("idx", b"b", [0.0, 1.0])
    results, stats = db.search_hnsw("idx", [1.0, 0.0], 5)
    assert results == [] and stats.node_count == 0
    txn.commit()
    results, stats = db.search_hnsw("idx", np.array([1.0, 0.0], dtype=np.float32), 5)
    assert isinstance(stats, HnswStats) and stats.node_count == 2
    assert repr(stats).startswith("HnswStats(node_count=2, deleted_count=0, level_distribution=[")
    assert [r.key for r in results] == [b"a", b"b"]
    assert all(isinstance(r, SearchResult) for r in results)
    assert results[0].score == pytest.approx(0.0, abs=1e-6)
    assert results[1].score == pytest.approx(-np.sqrt(2.0), rel=1e-5)  # L2: negative distance
    assert (results[0].metadata, results[1].metadata) == (b"meta-a", None)
    assert results[0].vector is None


def test_rollback_discards_index_writes(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    with db.begin(RW) as txn:
        txn.upsert_to_hnsw("idx", b"a", [1.0, 0.0])
    assert db.search_hnsw("idx", [1.0, 0.0], 1)[0] == []
    assert db.get_hnsw_stats("idx").node_count == 0


def test_delete_from_hnsw_applies_at_commit(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    fill(db, "idx", np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    txn = db.begin(RW)
    txn.delete_from_hnsw("idx", b"k00000")
    txn.delete_from_hnsw("idx", b"never")  # a missing entry is fine
    assert len(db.search_hnsw("idx", [1.0, 0.0], 5)[0]) == 2
    txn.commit()
    results, stats = db.search_hnsw("idx", [1.0, 0.0], 5)
    assert [r.key for r in results] == [b"k00001"]
    assert stats.node_count == 1


def test_index_writes_conflict_like_key_writes(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    t1, t2 = db.begin(RW), db.begin(RW)
    t1.upsert_to_hnsw("idx", b"a", [1.0, 0.0])
    t2.upsert_to_hnsw("idx", b"a", [0.0, 1.0])
    t1.commit()
    with pytest.raises(AlopexError, match="transaction conflict"):
        t2.commit()
    (r,), _ = db.search_hnsw("idx", [1.0, 0.0], 1)
    assert r.key == b"a" and r.score == pytest.approx(1.0)


def test_create_replaces_and_drop_removes(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(2))
    fill(db, "idx", np.eye(2, dtype=np.float32))
    db.create_hnsw_index("idx", HnswConfig(3))  # replaced, entries included
    assert db.get_hnsw_stats("idx").node_count == 0
    fill(db, "idx", np.eye(3, dtype=np.float32))
    db.drop_hnsw_index("idx")
    with pytest.raises(AlopexError):
        db.get_hnsw_stats("idx")
    with pytest.raises(AlopexError):
        db.search_hnsw("idx", [1.0, 0.0, 0.0], 1)


def test_stats_come_from_the_graph(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(8, m=8, ef_construction=64))
    data = np.random.default_rng(3).standard_normal((500, 8)).astype(np.float32)
    keys = fill(db, "idx", data)
    with db.begin(RW) as txn:
        for k in keys[:50]:
            txn.delete_from_hnsw("idx", k)
        txn.commit()
    s = db.get_hnsw_stats("idx")
    assert s.node_count == 450
    assert s.deleted_count <= 50
    assert sum(s.level_distribution) == s.node_count + s.deleted_count
    assert s.level_distribution[0] > s.level_distribution[-1] or len(s.level_distribution) == 1
    assert 1.0 <= s.avg_edges_per_node <= 2 * 8
    assert s.memory_bytes >= 450 * 8 * 4


@pytest.mark.parametrize("metric", [Metric.COSINE, Metric.L2, Metric.INNER_PRODUCT], ids=repr)
def test_search_recall_against_brute_force(db: Database, metric: Metric) -> None:
    rng = np.random.default_rng(11)
    data = rng.standard_normal((1000, 16)).astype(np.float32)
    db.create_hnsw_index("idx", HnswConfig(16, metric=metric))
    keys = fill(db, "idx", data)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    hits = 0
    for q in queries:
        truth = {keys[i] for i in np.argsort(-reference_scores(data, q, metric))[:10]}
        results, _ = db.search_hnsw("idx", q, 10, ef_search=100)
        assert len(results) == 10
        scores = [r.score for r in results]
        assert scores == sorted(scores, reverse=True)
        hits += len(truth & {r.key for r in results})
    assert hits / (10 * len(queries)) >= 0.9


def test_ef_search_is_never_below_k(db: Database) -> None:
    db.create_hnsw_index("idx", HnswConfig(4))
    fill(db, "idx", np.random.default_rng(5).standard_normal((100, 4)).astype(np.float32))
    q = [1.0, 0.0, 0.0, 0.0]
    assert len(db.search_hnsw("idx", q, 30, ef_search=1)[0]) == 30  # ef is never below k
    # k = 0, k > rows and bad k: tests/python/test_bad_input.py
