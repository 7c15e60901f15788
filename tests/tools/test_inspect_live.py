"""The live row count of pomai-inspect's summary (docs/FORMAT.md,
"pomai-inspect"): the rows, keys and index entries a reader sees, from the
segments in manifest order with the replayed WAL records on top. Checked
against the engine's own count and a model of the writes (through pomaidb:
rows; through alopex: keys and an index), with overwrites and deletes across
segments and the WAL."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Set

import alopex
import numpy as np
import pytest

import pomaidb

from inspect_support import DIM, flip, ok_json, segments


class VectorModel:
    """The ids a u64-id database holds, as the writes below leave them."""

    def __init__(self, path: Path) -> None:
        self.db = pomaidb.open_db(path, dim=DIM, shards=2, metric="l2", adaptive_threshold=0, hnsw_m=8)
        self.live: Set[int] = set()
        self.rng = np.random.default_rng(5)

    def put(self, ids: range) -> None:
        self.db.put_batch(np.array(ids, dtype=np.uint64), self.rng.random((len(ids), DIM), dtype=np.float32))
        self.live.update(ids)

    def delete(self, ids: list) -> None:
        self.db.delete(ids)
        self.live.difference_update(ids)


def fill(m: VectorModel) -> None:
    """Segments that overwrite and delete each other's ids, then a WAL that
    overwrites, deletes and re-puts ids of the segments and of itself."""
    m.put(range(0, 100))
    m.delete([3, 4])
    m.db.freeze()
    m.put(range(50, 150))      # overwrites rows of the first segments
    m.delete(list(range(10, 20)) + [77])
    m.db.freeze()
    m.put(range(140, 170))     # from here on in the WAL only
    m.delete([5, 145, 10_000])  # a segment's row, a WAL row, an id never written
    m.put(range(10, 13))       # ids deleted by a segment's tombstones, live again
    m.delete([11])


def live_rows(inspect_tool, path: Path) -> int:
    return ok_json(inspect_tool, path)["totals"]["live_rows"]


def test_live_rows_across_segments_and_the_wal(inspect_tool, tmp_path):
    path = tmp_path / "db"
    m = VectorModel(path)
    try:
        fill(m)
        assert m.db.count() == len(m.live)
        # While the database is open in this process: its files say the same.
        assert live_rows(inspect_tool, path) == len(m.live)
    finally:
        m.db.close()
    assert live_rows(inspect_tool, path) == len(m.live)
    with pomaidb.open_db(path, dim=DIM, shards=2, metric="l2") as db:
        assert db.count() == len(m.live)
    text = inspect_tool(path)
    assert f"live rows: {len(m.live)} " in text.out


def test_live_rows_after_a_freeze_and_a_compaction(inspect_tool, tmp_path):
    path = tmp_path / "db"
    m = VectorModel(path)
    try:
        fill(m)
        m.db.freeze()  # the WAL's records into segments
        assert live_rows(inspect_tool, path) == len(m.live)
        m.db.compact()  # one segment, tombstones dropped
        assert live_rows(inspect_tool, path) == len(m.live)
        m.delete([20, 21])
        assert live_rows(inspect_tool, path) == len(m.live)
    finally:
        m.db.close()


def test_live_rows_of_an_empty_database(inspect_tool, tmp_path):
    with pomaidb.open_db(tmp_path / "db", dim=DIM):
        pass
    assert live_rows(inspect_tool, tmp_path / "db") == 0


# ---------------------------------------------------------------------------
# Keys and index entries (written through alopex)


class KeyModel:
    """The user keys and index entries a database written through alopex holds."""

    def __init__(self, path: Path) -> None:
        self.db = alopex.Database.open(str(path))
        self.keys: Dict[bytes, bool] = {}
        self.entries: Dict[bytes, bool] = {}

    def commit(self, puts=(), deletes=(), vectors=(), index_puts=(), index_deletes=()) -> None:
        with self.db.begin(alopex.TxnMode.READ_WRITE) as t:
            for k in puts:
                t.put(k, b"v" + k)
                self.keys[k] = True
            for k in vectors:
                t.upsert_vector(k, None, np.ones(3, dtype=np.float32), alopex.Metric.L2)
                self.keys[k] = True
            for k in deletes:
                t.delete(k)
                self.keys[k] = False
            for k in index_puts:
                t.upsert_to_hnsw("idx", k, np.full(4, len(k), dtype=np.float32))
                self.entries[k] = True
            for k in index_deletes:
                t.delete_from_hnsw("idx", k)
                self.entries[k] = False
            t.commit()

    def live(self) -> tuple:
        return sum(self.keys.values()), sum(self.entries.values())


def fill_keys(m: KeyModel, flushes: int) -> None:
    key = lambda i: b"key-%d" % i  # noqa: E731
    m.db.create_hnsw_index("idx", alopex.HnswConfig(dim=4, m=8, metric=alopex.Metric.L2))
    m.commit(puts=[key(i) for i in range(30)], vectors=[b"vec-a"], index_puts=[b"e%d" % i for i in range(6)])
    for round in range(flushes):
        m.commit(puts=[key(i) for i in range(round * 3, round * 3 + 5)], deletes=[key(20 + round)],
                 index_deletes=[b"e%d" % round])
        m.db.flush()
    # In the WAL only: overwrite, delete, re-put, delete what the WAL wrote.
    m.commit(puts=[key(100), key(20)], deletes=[key(0), key(1), b"never-written"], vectors=[b"vec-b"],
             index_puts=[b"e0", b"e9"])
    m.commit(deletes=[key(100), b"vec-a"], index_deletes=[b"e9", b"e5"])


def live_keys(inspect_tool, path: Path) -> tuple:
    t = ok_json(inspect_tool, path)["totals"]
    return t["live_keys"], t["live_index_entries"]


@pytest.mark.parametrize("flushes,recreate", [(1, None), (6, None), (2, "flushed"), (2, "wal")])
def test_live_keys_across_segments_and_the_wal(inspect_tool, tmp_path, flushes, recreate):
    """6 flushes: more than 4 segments are merged into one. recreate: the
    index is created again (one commit; its old entries keep the old cid and
    are no longer counted), then written, before a flush or only in the WAL."""
    path = tmp_path / "kv"
    m = KeyModel(path)
    try:
        fill_keys(m, flushes)
        if recreate:
            m.db.create_hnsw_index("idx", alopex.HnswConfig(dim=4, m=8, metric=alopex.Metric.L2))
            m.entries.clear()
            m.commit(index_puts=[b"e1", b"new"])
            if recreate == "flushed":
                m.db.flush()
        assert live_keys(inspect_tool, path) == m.live()  # while open
    finally:
        m.db.close()
    assert live_keys(inspect_tool, path) == m.live()
    keys, entries = m.live()
    assert f"live keys: {keys} user keys, {entries} index entries" in inspect_tool(path).out
    # The engine agrees on the index: its live entries are the ones counted.
    db = alopex.Database.open(str(path))
    try:
        assert db.get_hnsw_stats("idx").node_count == entries
    finally:
        db.close()


@pytest.mark.parametrize("fixture,name,at", [("db_dir", "row ids", 3),
                                             ("alopex_dir", "entries", 50)])  # inside the second 48-byte entry
def test_live_counts_unknown_when_a_live_segment_is_damaged(inspect_tool, request, fixture, name, at):
    path = request.getfixturevalue(fixture)
    seg = segments(path)[0]
    damaged = next(s for s in inspect_tool("--json", "segment", seg).json["sections"] if s["name"] == name)
    flip(seg, damaged["offset"] + at)
    run = inspect_tool("--json", path)
    assert run.code == 1
    t = run.json["totals"]
    assert (t["live_rows"], t["live_keys"], t["live_index_entries"]) == (None, None, None)
    assert (run.json["error"]["file"], run.json["error"]["offset"]) == (str(seg), damaged["offset"])
    assert "live rows: unknown" in inspect_tool(path).out
