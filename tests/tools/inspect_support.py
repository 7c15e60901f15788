"""Helpers of the pomai-inspect tests (a module of its own, so that the test
files import it by a name no other test directory uses)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

import pomaidb

DIM = 8


def make_db(path: Path) -> None:
    """A database of 2 shards: one frozen segment holding every shard's rows
    (an HNSW graph, metadata), plus a WAL with an unfrozen put batch and a
    delete batch."""
    rng = np.random.default_rng(7)
    db = pomaidb.open_db(path, dim=DIM, shards=2, metric="l2", adaptive_threshold=0, hnsw_m=8)
    try:
        ids = list(range(400))
        meta = [b"meta-%d" % i for i in ids]
        db.put_batch(ids, rng.random((400, DIM), dtype=np.float32), metadata=meta)
        db.delete([10, 11])
        db.freeze()
        db.put_batch(list(range(400, 460)), rng.random((60, DIM), dtype=np.float32),
                     metadata=[b"w\x00\xff%d" % i for i in range(60)])
        db.delete([1, 2, 3])
    finally:
        db.close()


def ok_json(inspect_tool: Callable[..., Any], *args: Any) -> Dict[str, Any]:
    """The output of `pomai-inspect --json ARGS`, which must exit 0."""
    run = inspect_tool("--json", *args)
    assert run.code == 0, run.out
    return run.json


def file_hashes(root: Path) -> Dict[str, str]:
    """sha256 of every file under root, by relative name."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def segments(path: Path) -> List[Path]:
    return sorted(path.glob("seg-*.pseg"))


def wals(path: Path) -> List[Path]:
    return sorted(path.glob("wal-*.log"))


def the_manifest(path: Path) -> Path:
    """The manifest log CURRENT names."""
    return path / (path / "CURRENT").read_text().strip()


def flip(path: Path, offset: int) -> None:
    """XORs one byte of the file in place."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


ALOPEX_DIM = 4


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def wal_record(record_type: int, seq: int, payload: bytes) -> bytes:
    """One WAL record (docs/FORMAT.md, "WAL files"): header and payload."""
    head = struct.pack("<IB3xQI", len(payload), record_type, seq, crc32c(payload))
    return head + struct.pack("<I", crc32c(head)) + payload


def reseal_section(data: bytearray, offset: int, length: int) -> None:
    """Makes the section table agree with the changed bytes of the section at
    `offset`: its entry's CRC, then the table's CRC in the footer."""
    table = struct.unpack_from("<Q", data, len(data) - 32)[0]
    count = struct.unpack_from("<I", data, len(data) - 24)[0]
    [entry] = [table + 32 * i for i in range(count) if struct.unpack_from("<Q", data, table + 32 * i + 8)[0] == offset]
    struct.pack_into("<I", data, entry + 24, crc32c(bytes(data[offset:offset + length])))
    struct.pack_into("<I", data, len(data) - 20, crc32c(bytes(data[table:table + 32 * count])))


def make_alopex_db(path: Path) -> None:
    """A database written through alopex (keys): one flushed segment holding bytes
    values, a vector record, a tombstone, an HNSW index's configuration and
    entries; then commits left in the WAL (a put, a delete, a vector, an
    index entry)."""
    import alopex

    db = alopex.Database.open(path)
    try:
        with db.begin(alopex.TxnMode.READ_WRITE) as t:
            for i in range(5):
                t.put(b"key-%d" % i, b"value-%d" % i)
            t.put(b"bin\x00\xff", b"\x01\x02")
            t.upsert_vector(b"vec-a", b"meta-a", np.array([1, 2, 3, 4], dtype=np.float32),
                            alopex.Metric.L2)
            t.commit()
        db.create_hnsw_index("idx", alopex.HnswConfig(dim=ALOPEX_DIM, m=8, metric=alopex.Metric.L2))
        with db.begin(alopex.TxnMode.READ_WRITE) as t:
            for i in range(3):
                t.upsert_to_hnsw("idx", b"e%d" % i, np.full(ALOPEX_DIM, i, dtype=np.float32), b"m%d" % i)
            t.delete(b"key-4")
            t.commit()
        db.flush()
        with db.begin(alopex.TxnMode.READ_WRITE) as t:
            t.put(b"key-9", b"later")
            t.delete(b"key-0")
            t.upsert_vector(b"vec-b", None, np.array([5, 6], dtype=np.float32), alopex.Metric.COSINE)
            t.upsert_to_hnsw("idx", b"e9", np.full(ALOPEX_DIM, 9, dtype=np.float32))
            t.commit()
        with db.begin(alopex.TxnMode.READ_WRITE) as t:
            t.put(b"key-10", b"\x00binary\xff")
            t.delete_from_hnsw("idx", b"e1")
            t.commit()
    finally:
        db.close()
