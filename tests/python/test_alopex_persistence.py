"""SPEC 3.2: a disk database keeps its committed key/values, vectors and
HNSW indexes across close and reopen (with and without a flush), and
nothing uncommitted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alopex import AlopexError, Database, HnswConfig, Metric, TxnMode

RW = TxnMode.READ_WRITE


def populate(db: Database, data: np.ndarray) -> None:
    with db.begin(RW) as txn:
        txn.put(b"user:1", b"alice")
        txn.put(b"gone", b"x")
        for i, row in enumerate(data):
            txn.upsert_vector(b"vec%03d" % i, b"m%d" % i, row, Metric.L2)
        txn.commit()
    with db.begin(RW) as txn:
        txn.delete(b"gone")
        txn.commit()
    db.create_hnsw_index("idx", HnswConfig(data.shape[1], m=8, ef_construction=40, metric=Metric.L2))
    db.create_hnsw_index("dropped", HnswConfig(2))
    db.drop_hnsw_index("dropped")
    with db.begin(RW) as txn:
        for i, row in enumerate(data):
            txn.upsert_to_hnsw("idx", b"h%03d" % i, row, b"hm%d" % i)
        txn.commit()
    with db.begin(RW) as txn:
        txn.delete_from_hnsw("idx", b"h000")
        txn.commit()
    uncommitted = db.begin(RW)
    uncommitted.put(b"uncommitted", b"1")
    uncommitted.upsert_to_hnsw("idx", b"h-uncommitted", data[0])


def check(db: Database, data: np.ndarray) -> None:
    with db.begin() as txn:
        assert txn.get(b"user:1") == b"alice"
        assert txn.get(b"gone") is None
        assert txn.get(b"uncommitted") is None
        np.testing.assert_array_equal(txn.get_vector(b"vec007", Metric.L2), data[7])
        (r,) = txn.search_similar(data[3], Metric.L2, 1)
        assert (r.key, r.metadata) == (b"vec003", b"m3")
    stats = db.get_hnsw_stats("idx")
    assert stats.node_count == len(data) - 1
    results, _ = db.search_hnsw("idx", data[5], 1)
    assert (results[0].key, results[0].metadata) == (b"h005", b"hm5")
    keys = {r.key for r in db.search_hnsw("idx", data[0], len(data) + 5)[0]}
    assert b"h000" not in keys and b"h-uncommitted" not in keys
    with pytest.raises(AlopexError):
        db.get_hnsw_stats("dropped")


@pytest.mark.parametrize("flush", [False, True], ids=["log-only", "flushed"])
def test_reopen_keeps_kv_vectors_and_indexes(tmp_path: Path, flush: bool) -> None:
    data = np.random.default_rng(2).standard_normal((64, 8)).astype(np.float32)
    db = Database.open(tmp_path / "db")
    populate(db, data)
    if flush:
        db.flush()
    check(db, data)
    db.close()
    db = Database.open(str(tmp_path / "db"))
    try:
        check(db, data)
        with db.begin(RW) as txn:  # and it takes new writes after reopen
            txn.put(b"after", b"reopen")
            txn.commit()
    finally:
        db.close()
    db = Database.open(tmp_path / "db")
    try:
        check(db, data)
        with db.begin() as txn:
            assert txn.get(b"after") == b"reopen"
    finally:
        db.close()


def test_reopen_after_the_process_dies_without_close(tmp_path: Path) -> None:
    script = f"""
import os
from alopex import Database, TxnMode, HnswConfig
db = Database.open({str(tmp_path / 'db')!r})
db.create_hnsw_index("idx", HnswConfig(2))
with db.begin(TxnMode.READ_WRITE) as txn:
    txn.put(b"k", b"v")
    txn.upsert_to_hnsw("idx", b"h", [1.0, 0.0])
    txn.commit()
os._exit(0)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    db = Database.open(tmp_path / "db")
    try:
        with db.begin() as txn:
            assert txn.get(b"k") == b"v"
        assert [r.key for r in db.search_hnsw("idx", [1.0, 0.0], 1)[0]] == [b"h"]
    finally:
        db.close()
