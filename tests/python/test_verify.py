"""pomaidb.verify(db) and alopex.Database.verify(): the checks of
`pomai-inspect verify DIR` on an open database of either face. Damage is a
result naming file and offset, never an exception; a closed handle is one."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

import alopex
import pomaidb

DIM = 8
ROW_VECTORS = 147  # the section kind of a u64 group's vectors (docs/FORMAT.md, "Section kinds")


def section_offset(path: Path, kind: int) -> int:
    """The file offset of section `kind` of a segment file (docs/FORMAT.md,
    "Section table", "Footer")."""
    data = path.read_bytes()
    table, count = struct.unpack_from("<QI", data, len(data) - 32)
    for i in range(count):
        k, _flags, offset = struct.unpack_from("<IIQ", data, table + 32 * i)
        if k == kind:
            return int(offset)
    raise AssertionError(f"{path} has no section of kind {kind}")


def flip(path: Path, offset: int) -> None:
    """XORs one byte of the file in place (the database's mappings see it)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def segments(path: Path) -> List[Path]:
    return sorted(path.glob("seg-*.pseg"))


def wals(path: Path) -> List[Path]:
    return sorted(path.glob("wal-*.log"))


def checked_files(report: Dict[str, Any], kind: str) -> List[str]:
    return sorted(c["file"] for c in report["checked"] if c["kind"] == kind)


KINDS = {"current", "manifest", "wal", "segment"}


def the_manifest(path: Path) -> str:
    """The manifest log CURRENT names."""
    return str(path / (path / "CURRENT").read_text().strip())


def assert_clean(report: Dict[str, Any]) -> None:
    assert report["ok"] is True, report
    assert report["error"] is None and report["problems"] == []
    assert report["counts"]["problems"] == 0
    assert report["counts"]["checked"] == len(report["checked"]) > 0
    assert all(c["ok"] for c in report["checked"])
    assert {c["kind"] for c in report["checked"]} <= KINDS, report["checked"]


# ---------------------------------------------------------------------------
# pomaidb


@pytest.fixture
def vector_db(tmp_path: Path) -> Any:
    db = pomaidb.open_db(tmp_path / "db", dim=DIM, shards=2, metric="l2", adaptive_threshold=0, hnsw_m=8)
    yield db
    db.close()


def put(db: pomaidb.Database, first: int, n: int) -> None:
    rng = np.random.default_rng(first)
    db.put_batch(np.arange(first, first + n, dtype=np.uint64), rng.random((n, DIM), dtype=np.float32),
                 metadata=[b"m%d" % i for i in range(first, first + n)])


def test_pomaidb_verify_of_a_healthy_database_with_writes_in_the_wal(vector_db, tmp_path):
    put(vector_db, 0, 300)
    vector_db.delete([5, 6])
    report = pomaidb.verify(vector_db)  # only a WAL so far
    assert_clean(report)
    assert report["path"] == str(tmp_path / "db")
    assert checked_files(report, "wal") == [str(p) for p in wals(tmp_path / "db")]
    assert checked_files(report, "segment") == []

    vector_db.freeze()
    put(vector_db, 250, 100)  # overwrites rows of the segment, in the WAL
    report = vector_db.verify()
    assert_clean(report)
    assert checked_files(report, "segment") == [str(p) for p in segments(tmp_path / "db")]
    assert len(checked_files(report, "segment")) == 1  # one file holds every shard's rows
    assert checked_files(report, "manifest") == [the_manifest(tmp_path / "db")]
    assert checked_files(report, "wal") == [str(p) for p in wals(tmp_path / "db")]


def test_pomaidb_verify_after_freezes_and_a_compaction_checks_the_current_files(vector_db, tmp_path):
    for round in range(4):
        put(vector_db, round * 100, 150)
        vector_db.delete([round * 100 + 1])
        vector_db.freeze()
    vector_db.compact()
    put(vector_db, 1000, 10)
    report = pomaidb.verify(vector_db)
    assert_clean(report)
    assert checked_files(report, "segment") == [str(p) for p in segments(tmp_path / "db")]
    assert len(checked_files(report, "segment")) == 1  # one file holds every shard's rows after the forced merge


def test_pomaidb_verify_reports_a_segment_damaged_while_open(vector_db, tmp_path):
    put(vector_db, 0, 300)
    vector_db.freeze()
    seg = segments(tmp_path / "db")[0]
    vectors = section_offset(seg, ROW_VECTORS)
    flip(seg, vectors + 17)
    report = pomaidb.verify(vector_db)
    assert report["ok"] is False
    [problem] = report["problems"]
    assert problem == report["error"]
    assert (problem["file"], problem["offset"]) == (str(seg), vectors)
    assert problem["code"] == pomaidb.StatusCode.CORRUPTION
    assert "checksum mismatch in vectors section" in problem["message"]
    assert report["counts"]["problems"] == 1
    assert [c["ok"] for c in report["checked"] if c["file"] == str(seg)] == [False]
    # Still open: a read of the damaged block reports it (every block read is
    # checked first), other calls work (count reads no block: the group's
    # descriptor says how many rows it holds).
    assert vector_db.count() == 300
    with pytest.raises(pomaidb.PomaiDBError, match=re.escape(str(seg))) as err:
        vector_db.get(0)
    assert err.value.code == pomaidb.StatusCode.CORRUPTION
    vector_db.put_batch([1000], np.ones((1, DIM), dtype=np.float32))
    assert vector_db.exists(1000)


def test_pomaidb_verify_reports_a_damaged_wal_record(vector_db, tmp_path):
    rng = np.random.default_rng(3)
    ends = []  # where each array record ends: the WAL's size after its write
    for first in (0, 10):  # two array records (no metadata)
        vector_db.put_batch(np.arange(first, first + 10, dtype=np.uint64), rng.random((10, DIM), dtype=np.float32))
        [wal] = wals(tmp_path / "db")
        ends.append(wal.stat().st_size)
    flip(wal, (ends[0] + ends[1]) // 2)  # inside the second record's payload
    report = vector_db.verify()
    assert report["ok"] is False
    assert (report["error"]["file"], report["error"]["offset"]) == (str(wal), ends[0])


def test_pomaidb_verify_of_a_closed_database_raises(tmp_path):
    db = pomaidb.open_db(tmp_path / "db", dim=DIM)
    db.close()
    with pytest.raises(pomaidb.PomaiDBError) as err:
        pomaidb.verify(db)
    assert err.value.code == pomaidb.StatusCode.CLOSED
    with pytest.raises(TypeError):
        pomaidb.verify("not a database")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# alopex


@pytest.fixture
def kv_db(tmp_path: Path) -> Any:
    db = alopex.Database.open(str(tmp_path / "kv"))
    yield db
    db.close()


def commit(db: alopex.Database, first: int, n: int, deletes: List[bytes] = ()) -> None:  # type: ignore[assignment]
    with db.begin(alopex.TxnMode.READ_WRITE) as t:
        for i in range(first, first + n):
            t.put(b"key-%d" % i, b"value-%d" % i)
        for k in deletes:
            t.delete(k)
        t.commit()


def test_alopex_verify_of_a_healthy_database_in_the_wal_and_after_a_flush(kv_db, tmp_path):
    commit(kv_db, 0, 50, [b"key-3"])
    report = kv_db.verify()
    assert_clean(report)
    assert checked_files(report, "wal") == [str(p) for p in wals(tmp_path / "kv")]
    assert checked_files(report, "manifest") == [the_manifest(tmp_path / "kv")]

    kv_db.flush()
    commit(kv_db, 40, 20)
    report = kv_db.verify()
    assert_clean(report)
    assert checked_files(report, "segment") == [str(p) for p in segments(tmp_path / "kv")]


def test_alopex_verify_after_flushes_merge_the_segments(kv_db, tmp_path):
    for round in range(6):  # more than 4 segments: the background merges after the flushes take them down
        commit(kv_db, round * 10, 15, [b"key-%d" % (round * 10)])
        kv_db.flush()
    # Merges run on the engine's compaction thread; verify holds the files
    # while it runs, so a listing that is the same before and after it is the
    # state it checked. Wait (30 s at most: an event, not a speed) for the
    # merges to bring the count down to the policy's 4.
    deadline = time.monotonic() + 30
    while True:
        before = segments(tmp_path / "kv")
        report = kv_db.verify()
        if segments(tmp_path / "kv") == before and (len(before) <= 4 or time.monotonic() > deadline):
            break
        time.sleep(0.01)
    assert_clean(report)
    assert len(before) <= 4
    assert checked_files(report, "segment") == [str(p) for p in before]


def test_alopex_verify_checks_the_index_graph_in_its_segment(kv_db, tmp_path):
    kv_db.create_hnsw_index("idx", alopex.HnswConfig(dim=4, m=8, metric=alopex.Metric.L2))
    with kv_db.begin(alopex.TxnMode.READ_WRITE) as t:
        for i in range(20):
            t.upsert_to_hnsw("idx", b"e%d" % i, np.full(4, i, dtype=np.float32))
        t.commit()
    kv_db.search_hnsw("idx", np.zeros(4, dtype=np.float32), 3)  # flushes the rows into a segment with a graph
    [seg] = segments(tmp_path / "kv")
    assert list((tmp_path / "kv").glob("idx-*")) == []  # no side files
    report = kv_db.verify()
    assert_clean(report)
    assert checked_files(report, "segment") == [str(seg)]

    layer0 = section_offset(seg, 162)  # the group's graph: layer-0 links
    flip(seg, layer0 + 5)
    report = kv_db.verify()
    assert report["ok"] is False
    assert (report["error"]["file"], report["error"]["code"]) == (str(seg), 5)  # CORRUPTION


def test_alopex_verify_reports_a_segment_damaged_while_open(kv_db, tmp_path):
    commit(kv_db, 0, 50)
    kv_db.flush()
    [seg] = segments(tmp_path / "kv")
    keys = section_offset(seg, 129)  # the keys section (format 2)
    flip(seg, keys + 7)
    report = kv_db.verify()
    assert report["ok"] is False
    assert (report["error"]["file"], report["error"]["offset"]) == (str(seg), keys)
    assert report["error"]["code"] == 5  # CORRUPTION


def test_alopex_verify_of_an_in_memory_database_checks_nothing():
    db = alopex.Database.new()
    try:
        commit(db, 0, 5)
        report = db.verify()
        assert report["ok"] is True and report["checked"] == [] and report["problems"] == []
        [note] = report["notes"]
        assert "no files" in note["message"]
    finally:
        db.close()


def test_alopex_verify_of_a_closed_database_raises(tmp_path):
    db = alopex.Database.open(str(tmp_path / "kv"))
    db.close()
    with pytest.raises(alopex.AlopexError) as err:
        db.verify()
    assert err.value.code == "CLOSED"


# ---------------------------------------------------------------------------
# The library


def test_linking_the_checks_into_the_library_exports_no_engine_symbol():
    """libpomai_c.so links lib/inspect for pomai_verify, built with hidden
    visibility: its exports are the pomai_* functions (and the instantiations
    of std templates that libstdc++ declares visible), no pomai:: C++ name."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", pomaidb.library_path()], capture_output=True, text=True,
                         check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert "pomai_verify" in names
    ours = [n for n in names if re.match(r"_Z(N|NK|TIN|TSN|TVN)5pomai", n)]
    assert ours == []
