"""Write, read, delete, reopen: what a user of one database sees."""

from __future__ import annotations

import numpy as np
import pytest

import pomaidb
from pomaidb import PomaiDBError


def test_get_returns_a_float32_copy_and_metadata(open_db) -> None:
    db = open_db(3)
    pomaidb.put_batch(db, [1, 2], [[1, 2, 3], [4, 5, 6]], metadata=[b"one", None])
    vec, meta = pomaidb.get(db, 1)
    assert vec.dtype == np.float32 and vec.shape == (3,)
    assert vec.tolist() == [1, 2, 3] and meta == b"one"
    vec2, meta2 = pomaidb.get(db, 2)
    assert vec2.tolist() == [4, 5, 6] and meta2 == b""
    assert pomaidb.get(db, 3) is None


def test_delete_get_exists_count(open_db) -> None:
    db = open_db(2)
    pomaidb.put_batch(db, [1, 2, 3, 4], [[1, 0], [2, 0], [3, 0], [4, 0]])
    assert pomaidb.count(db) == 4
    pomaidb.delete(db, 2)
    pomaidb.delete(db, [3, 4, 99])  # many at once; a missing id is fine
    assert pomaidb.count(db) == 1
    assert pomaidb.exists(db, 1) and not pomaidb.exists(db, 2)
    assert pomaidb.get(db, 3) is None
    assert pomaidb.search_batch(db, [[1, 0]], topk=10)[0][0] == [1]
    pomaidb.delete(db, np.array([1], dtype=np.int64))
    assert pomaidb.count(db) == 0


def test_overwrite_returns_the_newest_vector(open_db) -> None:
    db = open_db(2, metric="ip")
    pomaidb.put_batch(db, [7], [[1, 1]], metadata=[b"old"])
    pomaidb.freeze(db)
    pomaidb.put_batch(db, [7], [[5, 5]], metadata=[b"new"])
    vec, meta = pomaidb.get(db, 7)
    assert vec.tolist() == [5, 5] and meta == b"new"
    assert pomaidb.count(db) == 1
    [(ids, scores)] = pomaidb.search_batch(db, [[1, 1]], topk=5)
    assert ids == [7] and scores == [10.0]


def test_largest_id_round_trips(open_db) -> None:
    db = open_db(1)
    big = [2**64 - 1, 2**63, 0]
    pomaidb.put_batch(db, big, [[1.0], [2.0], [3.0]])
    assert all(pomaidb.exists(db, i) for i in big)
    [(ids, _)] = pomaidb.search_batch(db, [[1.0]], topk=3)
    assert sorted(ids) == sorted(big)


@pytest.mark.parametrize("freeze", [False, True], ids=["wal", "frozen"])
def test_reopen_keeps_everything(db_path, freeze: bool) -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 8)).astype(np.float32)
    db = pomaidb.open_db(db_path, dim=8, metric="l2", shards=2)
    pomaidb.put_batch(db, np.arange(300), data)
    pomaidb.put_batch(db, [1000], [data[0]], metadata=[b"meta"])
    pomaidb.delete(db, [5, 6])
    if freeze:
        pomaidb.freeze(db)
    want = pomaidb.search(db, data[:20], topk=5)
    pomaidb.close(db)

    with pomaidb.open_db(db_path, dim=8, metric="l2", shards=2) as db:
        assert pomaidb.count(db) == 299
        assert not pomaidb.exists(db, 5) and not pomaidb.exists(db, 6)
        np.testing.assert_array_equal(pomaidb.get(db, 42)[0], data[42])
        assert pomaidb.get(db, 1000)[1] == b"meta"
        got = pomaidb.search(db, data[:20], topk=5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_reopen_with_another_dim_is_invalid_argument(db_path) -> None:
    pomaidb.open_db(db_path, dim=4).close()
    with pytest.raises(PomaiDBError) as e:
        pomaidb.open_db(db_path, dim=8)
    assert e.value.code == 1


def test_a_second_open_of_a_held_database_fails(db_path) -> None:
    with pomaidb.open_db(db_path, dim=4):
        with pytest.raises(PomaiDBError) as e:
            pomaidb.open_db(db_path, dim=4)
        assert e.value.code in (1, 4)
    pomaidb.open_db(db_path, dim=4).close()  # released by close


def test_context_manager_closes(db_path) -> None:
    with pomaidb.open_db(db_path, dim=2) as db:
        db.put_batch([1], [[1, 2]])
        assert db.count() == 1 and len(db) == 1
        assert db.search_batch([[1, 2]], topk=1)[0][0] == [1]
    assert db.closed
    with pytest.raises(PomaiDBError) as e:
        db.count()
    assert e.value.code == 12


def test_path_accepts_str_and_pathlike(db_path) -> None:
    with pomaidb.open_db(str(db_path), dim=2) as db:
        db.put_batch([1], [[1, 2]])
    with pomaidb.open_db(db_path, dim=2) as db:
        assert db.exists(1)


def test_fsync_and_tuning_options_are_accepted(db_path) -> None:
    opts = dict(shards=2, search_threads=1, fsync=True, metric="cosine", hnsw_m=8,
                hnsw_ef_construction=50, hnsw_ef_search=20, adaptive_threshold=100,
                deadline_ms=0, memory_budget_bytes=1 << 20)
    with pomaidb.open_db(db_path, dim=2, **opts) as db:
        db.put_batch([1, 2], [[1, 0], [0, 1]])
        assert db.search_batch([[1, 0.1]], topk=1)[0][0] == [1]


def test_compact_and_stats(tmp_path) -> None:
    rng = np.random.default_rng(1)
    with pomaidb.open_db(tmp_path / "db", dim=8, shards=2, metric="l2", adaptive_threshold=0,
                         hnsw_m=8, hnsw_ef_construction=40) as db:
        for round_ in range(3):
            ids = np.arange(round_ * 50, round_ * 50 + 100, dtype=np.uint64)
            pomaidb.put_batch(db, ids, rng.normal(size=(100, 8)).astype(np.float32))
            pomaidb.delete(db, [round_])
            pomaidb.freeze(db)
        before = pomaidb.stats(db)
        assert before["live_rows"] == pomaidb.count(db) == 197
        assert before["dead_rows"] > 0
        pomaidb.compact(db)
        after = db.stats()
        # One segment file holds every shard's rows after the forced merge.
        assert after["segments"] == 1 and after["segment_tombstones"] == 0
        assert after["live_rows"] == after["segment_rows"] == 197
        assert [s["memtable_rows"] for s in after["shards"]] == [0, 0]
        (seg,) = after["segment_files"]
        assert seg["rows"] == 197 and seg["graph"]["m"] == 8 and seg["graph"]["bytes"] > 0
        ids, _ = pomaidb.search(db, rng.normal(size=(3, 8)).astype(np.float32), topk=5)
        assert not set(ids.ravel().tolist()) & {0, 1, 2}


@pytest.mark.parametrize("vectors", ["sq8", "float32"])
def test_hnsw_vectors_option_is_recorded_per_segment(tmp_path, vectors: str) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(size=(3000, 16)).astype(np.float32)
    with pomaidb.open_db(tmp_path / "db", dim=16, metric="l2", adaptive_threshold=0, hnsw_m=8,
                         hnsw_ef_construction=40, hnsw_vectors=vectors) as db:
        db.put_batch(np.arange(2700), data[:2700])
        db.freeze()
        db.put_batch(np.arange(2700, 3000), data[2700:])
        db.freeze()
        db.compact()
        st = db.stats()
        (seg,) = st["segment_files"]
        assert seg["graph"]["vectors"] == vectors
        assert seg["graph"]["reused_rows"] == st["graph_reused_rows"] == 2700
        ids, _ = db.search(data[:5], topk=1)
        assert ids.ravel().tolist() == [0, 1, 2, 3, 4]


def _filled(tmp_path, name: str, n: int = 2000):
    db = pomaidb.open_db(tmp_path / name, dim=8, shards=2, metric="ip", adaptive_threshold=0,
                         hnsw_m=8, hnsw_ef_construction=20)
    pomaidb.put_batch(db, np.arange(n), np.random.default_rng(2).normal(size=(n, 8)).astype(np.float32))
    return db


def test_an_exception_in_the_progress_callback_propagates_after_the_call(tmp_path) -> None:
    db = _filled(tmp_path, "e")

    def boom(done: int, total: int) -> None:
        raise RuntimeError("stop it")

    with pytest.raises(RuntimeError, match="stop it"):
        pomaidb.freeze(db, progress=boom)
    assert pomaidb.count(db) == 2000  # the freeze itself completed
    db.close()


