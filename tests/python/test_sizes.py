"""Size boundaries through both Python faces: alopex keys, values, metadata
and index entries, and pomaidb metadata and dimensions, at every power of two
and one either side (keys up to their 65535-byte limit, values up to 16 MiB),
each written, read back, and read again after a reopen that replays the WAL.
Regression of issue 15's D1: a put whose memtable entry was 4 KiB to 64 KiB
overran the memtable's arena, and every later open aborted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import alopex
import pomaidb
from alopex import Database, HnswConfig, Metric, TxnMode


def boundaries(limit: int):
    sizes = {0}
    p = 1
    while p <= 16 << 20:
        sizes.update({p - 1, p, p + 1})
        p <<= 1
    return sorted((s for s in sizes if s <= limit), reverse=True)


def blob(n: int, tag: int) -> bytes:
    """n bytes that differ with n, the position and tag."""
    return ((np.arange(n, dtype=np.uint64) * 31 + tag + (n >> 3)) & 0xFF).astype(np.uint8).tobytes()


def test_the_issue_reproduction_opens_again(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "db")
    t = db.begin(TxnMode.READ_WRITE)
    t.put(b"k", b"v" * 4071)
    t.commit()
    db.close()
    db = Database.open(tmp_path / "db")
    with db.begin(TxnMode.READ_ONLY) as t:
        assert t.get(b"k") == b"v" * 4071
    db.close()


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_alopex_keys_values_and_metadata_at_every_boundary(tmp_path: Path, mode: str) -> None:
    key_sizes = [s for s in boundaries(65535) if s > 0]
    value_sizes = boundaries(16 << 20 | 1)
    open_db = (lambda: Database.open(tmp_path / "db")) if mode == "disk" else None
    db = open_db() if open_db else Database.new()
    # Each size first in a fresh memtable too: one database per key size for the largest few.
    with db.begin(TxnMode.READ_WRITE) as t:
        for n in key_sizes:
            t.put(blob(n, 1), blob(n % 5000, 2))
        t.commit()
    for n in value_sizes:
        with db.begin(TxnMode.READ_WRITE) as t:
            t.put(b"v%d" % n, blob(n, 3))
            t.upsert_vector(b"m%d" % n, blob(n, 4), np.arange(4, dtype=np.float32), Metric.L2)
            t.commit()

    def check(d: Database) -> None:
        with d.begin(TxnMode.READ_ONLY) as t:
            for n in key_sizes:
                assert t.get(blob(n, 1)) == blob(n % 5000, 2), n
            for n in value_sizes:
                assert t.get(b"v%d" % n) == blob(n, 3), n
                assert t.get(b"m%d" % n) == blob(n, 4), n

    check(db)
    with db.begin(TxnMode.READ_WRITE) as t:
        with pytest.raises((alopex.AlopexError, ValueError), match="key"):
            t.put(b"x" * 65536, b"too long")
        t.rollback()
    if open_db:
        db.close()
        db = open_db()
        check(db)
        db.flush()
        check(db)
    db.close()


def test_alopex_index_entries_at_every_boundary_key_length(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "db")
    db.create_hnsw_index("ix", HnswConfig(2, m=4, ef_construction=8, metric=Metric.L2))
    sizes = [s for s in boundaries(65535) if s > 0]
    with db.begin(TxnMode.READ_WRITE) as t:
        for i, n in enumerate(sizes):
            t.upsert_to_hnsw("ix", blob(n, 5), np.array([i, 0], dtype=np.float32), blob(n, 6))
        t.commit()
    db.close()
    db = Database.open(tmp_path / "db")
    for i, n in enumerate(sizes):
        results, _ = db.search_hnsw("ix", np.array([i, 0], dtype=np.float32), 1)
        assert results[0].key == blob(n, 5), n
        assert results[0].metadata == blob(n, 6), n
    db.close()


def test_a_catalog_table_name_of_60000_characters_persists(tmp_path: Path) -> None:
    """Issue 15: a valid 60,000-character table name bricked the persisted catalog."""
    pytest.importorskip("polars")
    script = r'''
from alopex import Catalog, ColumnInfo
name = "t" * 60000
if {create!r}:
    Catalog.create_catalog("main")
    Catalog.create_namespace("main", "default")
    Catalog.create_table("main", "default", name, [ColumnInfo("id", "BIGINT", 0, False)], {loc!r})
print(len(Catalog.get_table_info("main", "default", name).name))
'''
    env = {k: v for k, v in os.environ.items() if k != "ALOPEX_CATALOG_PATH"}
    env["ALOPEX_CATALOG_PATH"] = str(tmp_path / "catalog")
    loc = str(tmp_path / "data" / "t.parquet")
    for create in (True, False):
        proc = subprocess.run([sys.executable, "-c", script.format(create=create, loc=loc)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "60000"


def test_pomaidb_metadata_and_dimensions_at_every_boundary(tmp_path: Path) -> None:
    sizes = boundaries(16 << 20 | 1)
    with pomaidb.open_db(tmp_path / "meta", dim=4, metric="l2") as db:
        ids = np.arange(len(sizes), dtype=np.uint64)
        vectors = np.arange(len(sizes) * 4, dtype=np.float32).reshape(-1, 4)
        pomaidb.put_batch(db, ids, vectors, metadata=[blob(n, 7) for n in sizes])
    for freeze in (False, True):
        with pomaidb.open_db(tmp_path / "meta", dim=4, metric="l2") as db:
            for i, n in enumerate(sizes):
                vec, meta = pomaidb.get(db, i)
                assert meta == blob(n, 7), n
                assert np.array_equal(vec, vectors[i])
            if freeze:
                pomaidb.freeze(db)
    for dim in [d for d in boundaries(65535) if d > 0][:6]:  # the largest dims, 65535 first
        with pomaidb.open_db(tmp_path / ("d%d" % dim), dim=dim, metric="cosine") as db:
            rows = np.random.default_rng(dim).normal(size=(3, dim)).astype(np.float32)
            pomaidb.put_batch(db, [1, 2, 3], rows)
            pomaidb.freeze(db)
            top, _ = pomaidb.search(db, rows[1:2], topk=1)
            assert top[0, 0] == 2


def test_vectors_whose_squared_norm_would_overflow_a_score_are_refused(tmp_path: Path) -> None:
    """Issue 15's D5: [3e38, 3e38] is finite but its squared norm is not."""
    huge = np.array([3e38, 3e38], dtype=np.float32)
    db = Database.new()
    with db.begin(TxnMode.READ_WRITE) as t:
        with pytest.raises((alopex.AlopexError, ValueError), match="squared norm"):
            t.upsert_vector(b"v", None, huge, Metric.COSINE)
        t.upsert_vector(b"ok", None, np.array([1e18, 1e18], dtype=np.float32), Metric.COSINE)
        [hit] = t.search_similar(np.array([1e18, 1e18], np.float32), Metric.COSINE, 1)
        assert hit.key == b"ok" and abs(hit.score - 1.0) < 1e-5
        with pytest.raises((alopex.AlopexError, ValueError), match="squared norm"):
            t.search_similar(huge, Metric.COSINE, 1)
        t.rollback()
    db.close()
    with pomaidb.open_db(tmp_path / "p", dim=2, metric="cosine") as pdb:
        with pytest.raises((pomaidb.PomaiDBError, ValueError), match="squared norm"):
            pomaidb.put_batch(pdb, [1], huge.reshape(1, 2))
        assert pomaidb.count(pdb) == 0
        with pytest.raises((pomaidb.PomaiDBError, ValueError), match="squared norm"):
            pomaidb.search(pdb, huge.reshape(1, 2), topk=1)


def test_an_index_name_that_is_not_utf8_is_an_alopex_error() -> None:
    """Issue 15 (D7): a lone surrogate raised a bare UnicodeEncodeError."""
    db = Database.new()
    for call in (lambda: db.create_hnsw_index("ix\udc80", HnswConfig(2)),
                 lambda: db.search_hnsw("\ud800", np.zeros(2, np.float32), 1)):
        with pytest.raises(alopex.AlopexError, match="index name .* cannot be encoded as UTF-8"):
            call()
    db.close()


def test_a_catalog_close_that_fails_at_exit_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 15 (D7): after a failed write (ENOSPC), the catalog's close at
    interpreter exit printed an "Exception ignored" traceback. The failure is
    simulated by a store whose close raises."""
    script = r'''
import alopex
from alopex import Catalog, _catalog
Catalog.create_catalog("main")
class Failing:
    def close(self):
        raise alopex.AlopexError("No space left on device", "IO_ERROR")
_catalog._db = Failing()
'''
    env = {k: v for k, v in os.environ.items() if k != "ALOPEX_CATALOG_PATH"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert "closing the catalog's store at exit failed: No space left on device" in proc.stderr
