"""Writes the seed corpora of the eight fuzz targets (tests/fuzz/corpus/<target>/).
The file readers' seeds come from real files: small databases made with the
`pomaidb` package and with the `alopex` package (WAL files whole and torn,
segments, graph sections located with `pomai-inspect segment --json`,
manifest logs), plus hand-built version edits and manifest logs, and
hand-built WAL files of row batches (type 18, with attribute columns); the C ABI
call-sequence targets (capi_fuzz, txn_capi_fuzz, faces_fuzz) get random byte
strings of growing length, which FuzzedDataProvider turns into call
sequences; filter_fuzz gets filter expressions over its schema (every form of
predicate, nesting at the depth limit, a long OR chain).

    python tests/fuzz/make_seeds.py [OUT_DIR]     (default: tests/fuzz/corpus)

Needs the package installed (it also runs its bundled pomai-inspect, or the
one named by POMAI_INSPECT). Seeds are small on purpose: the fuzzer's max
input length defaults to the largest seed.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import alopex
import pomaidb
from pomaidb import _inspect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from inspect_support import crc32c  # noqa: E402  (the one Python CRC32C of the tests)


def inspect(*args: object) -> dict:
    out = subprocess.run([str(_inspect.binary_path()), "--json", *map(str, args)], capture_output=True, text=True)
    return json.loads(out.stdout)


def make_db(path: Path, dim: int, rows: int, graph: bool, metric: str, seed: int, wal_copy: Path) -> None:
    rng = np.random.default_rng(seed)
    opts = dict(shards=1, metric=metric, adaptive_threshold=0 if graph else 10**6, hnsw_m=4,
                hnsw_ef_construction=16)
    with pomaidb.open_db(path, dim=dim, **opts) as db:
        db.put_batch(list(range(rows)), rng.standard_normal((rows, dim)).astype(np.float32),
                     metadata=[b"m%d" % i if i % 3 else None for i in range(rows)])
        db.delete([0])
        [wal] = sorted(path.glob("wal-*.log"))
        wal_copy.write_bytes(wal.read_bytes())  # the WAL the freeze below deletes
        db.freeze()
        db.put_batch([1, 5, rows + 1], rng.standard_normal((3, dim)).astype(np.float32))
        db.delete([2, 3])
        db.freeze()
        db.put_batch([7, rows + 2], rng.standard_normal((2, dim)).astype(np.float32), metadata=[b"x", b""])
        db.delete([9])


def make_kv_db(path: Path, dim: int, txns: int, seed: int, wal_copies: list[Path]) -> None:
    """A keyspace database: bytes values, vector records of two dimensions
    (with and without metadata), deletes and an HNSW index, flushed twice; copies of the WALs
    the flushes delete go to `wal_copies`."""
    rng = np.random.default_rng(seed)
    db = alopex.Database.open(path)
    db.create_hnsw_index("ix", alopex.HnswConfig(dim, m=4, ef_construction=16, metric=alopex.Metric.L2))
    for t in range(txns):
        txn = db.begin(alopex.TxnMode.READ_WRITE)
        txn.put(b"k%d" % t, b"value-%d" % t * (1 + t % 3))
        txn.upsert_vector(b"v%d" % t, b"m%d" % t if t % 2 else None, rng.standard_normal(dim).astype(np.float32),
                          [alopex.Metric.L2, alopex.Metric.INNER_PRODUCT, alopex.Metric.COSINE][t % 3])
        if t % 3 == 0:  # a second dimension: vector groups of different dims in one segment
            txn.upsert_vector(b"w%d" % t, None, rng.standard_normal(dim + 3).astype(np.float32), alopex.Metric.L2)
        txn.upsert_to_hnsw("ix", b"e%d" % t, rng.standard_normal(dim).astype(np.float32), b"x" if t % 2 else None)
        if t > 0:
            txn.delete(b"k%d" % (t - 1))
        if t > 1:
            txn.delete_from_hnsw("ix", b"e%d" % (t - 2))
        txn.commit()
        if t in (txns // 3, 2 * txns // 3):
            for i, wal in enumerate(sorted(path.glob("wal-*.log"))):
                copy = path.parent / f"{path.name}-t{t}-wal{i}.log"
                copy.write_bytes(wal.read_bytes())
                wal_copies.append(copy)
            db.flush()
    db.close()


def write(out: Path, target: str, name: str, data: bytes) -> None:
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def version_edit(fields: list[tuple[int, bytes]]) -> bytes:
    """A format-2 version edit (lib/engine/version_edit.h): u16 tag, u16 zero, u32 length, value."""
    return b"".join(struct.pack("<HHI", tag, 0, len(value)) + value for tag, value in fields)


def manifest_log(edits: list[bytes]) -> bytes:
    """A MANIFEST-NNNNNN log: WAL framing (lib/wal/log_format.h), records of type 32 numbered from 1."""
    out = b""
    for seq, payload in enumerate(edits, 1):
        head = struct.pack("<IB3xQI", len(payload), 32, seq, crc32c(payload))
        out += head + struct.pack("<I", crc32c(head)) + payload
    return out


def write_version_set_seeds(out: Path) -> None:
    """manifest_fuzz's format-2 modes (byte 0 bit 1: a version edit; bit 2: a manifest log),
    hand-built: edits and logs with segments, merges and removals, which the small databases'
    own manifest logs (written above) do not all have."""
    u64 = lambda v: struct.pack("<Q", v)  # noqa: E731
    snapshot = version_edit([(1, struct.pack("<I", 2)), (2, u64(3)), (3, u64(20)), (4, u64(9)),
                             (5, u64(4) + u64(4096) + u64(1) + u64(12)), (5, u64(6) + u64(512) + u64(13) + u64(20))])
    flush = version_edit([(2, u64(8)), (3, u64(25)), (4, u64(11)), (5, u64(10) + u64(100) + u64(21) + u64(25))])
    merge = version_edit([(4, u64(13)), (5, u64(12) + u64(4700) + u64(1) + u64(25)), (6, u64(4)), (6, u64(6)),
                          (6, u64(10))])
    write(out, "manifest_fuzz", "v2-edit-snapshot", b"\x02" + snapshot)
    write(out, "manifest_fuzz", "v2-edit-merge", b"\x02" + merge)
    log = manifest_log([snapshot, flush, merge])
    write(out, "manifest_fuzz", "v2-log", b"\x04" + log)
    write(out, "manifest_fuzz", "v2-log-torn", b"\x04" + log[:-9])


def wal_file(records: list[tuple[int, bytes]], first_seq: int = 1) -> bytes:
    """A WAL file (lib/wal/log_format.h): (type, payload) records numbered from first_seq."""
    out = b""
    for seq, (rtype, payload) in enumerate(records, first_seq):
        head = struct.pack("<IB3xQI", len(payload), rtype, seq, crc32c(payload))
        out += head + struct.pack("<I", crc32c(head)) + payload
    return out


def row_batch(cid: int, ids: list[int], vectors: list[list[float]], metadata: list[bytes] | None,
              columns: list[tuple[str, int, list]]) -> bytes:
    """A type-18 row batch payload (docs/FORMAT.md, "WAL records"). A column is (name, type, values), a value
    None (null) or an int (1), float (2), bool (3), str (4) or list of str (5)."""
    u64s = lambda vs: struct.pack(f"<{len(vs)}Q", *vs)  # noqa: E731
    dim = len(vectors[0])
    out = struct.pack("<QIIHB5x", cid, dim, len(ids), len(columns), 1 if metadata is not None else 0)
    out += u64s(ids) + b"".join(struct.pack(f"<{dim}f", *v) for v in vectors)
    if metadata is not None:
        offsets = [0]
        for m in metadata:
            offsets.append(offsets[-1] + len(m))
        out += u64s(offsets) + b"".join(metadata)
    for name, ctype, values in columns:
        raw = name.encode()
        out += struct.pack("<H", len(raw)) + raw + bytes([ctype])
        if any(v is None for v in values):
            out += b"\x01" + bytes(0 if v is None else 1 for v in values)
        else:
            out += b"\x00"
        if ctype == 1:
            out += struct.pack(f"<{len(values)}q", *(v or 0 for v in values))
        elif ctype == 2:
            out += struct.pack(f"<{len(values)}d", *(0.0 if v is None else v for v in values))
        elif ctype == 3:
            out += bytes(1 if v else 0 for v in values)
        elif ctype == 4:
            blobs = [(v or "").encode() for v in values]
            offsets = [0]
            for b in blobs:
                offsets.append(offsets[-1] + len(b))
            out += u64s(offsets) + b"".join(blobs)
        else:
            tags = [[t.encode() for t in (v or [])] for v in values]
            lists, strings = [0], [0]
            for row in tags:
                lists.append(lists[-1] + len(row))
                for t in row:
                    strings.append(strings[-1] + len(t))
            out += u64s(lists) + u64s(strings) + b"".join(t for row in tags for t in row)
    return out


def write_row_batch_seeds(out: Path) -> None:
    """wal_fuzz seeds of row batches (type 18), which the engine's own WAL files above may lack: every
    attribute type with nulls, empty strings and empty tag lists, metadata or none, a repeated id, a batch
    without columns, a later batch adding a column, and the same file torn."""
    first = row_batch(5, [1, 2, 1], [[0.5, -1.0, 2.0], [1.0, 1.0, 1.0], [3.0, 0.0, -0.25]],
                      [b"m1", b"", b"\x00meta"],
                      [("year", 1, [1999, None, -7]), ("score", 2, [0.5, float("inf"), None]),
                       ("ok", 3, [True, None, False]), ("lang", 4, ["en", "", None]),
                       ("tags", 5, [["a", "b", "a"], [], None]), ("\u540d\u524d", 4, ["\u65e5\u672c", None, "x"])])
    plain = row_batch(5, [3], [[1.0, 2.0, 3.0]], None, [])
    later = row_batch(5, [2, 4], [[0.0, 0.0, 1.0], [9.0, 9.0, 9.0]], None,
                      [("year", 1, [2024, 2025]), ("new", 5, [["x"], None])])
    data = wal_file([(18, first), (18, plain), (18, later)])
    # Byte 0 bit 0: wal_fuzz sets the CRCs, so mutations of these payloads reach the decoder.
    write(out, "wal_fuzz", "rb-all-types", b"\x01" + data)
    write(out, "wal_fuzz", "rb-all-types-torn", b"\x01" + data[:-7])
    write(out, "wal_fuzz", "rb-one", b"\x01" + wal_file([(18, row_batch(1, [7], [[1.0]], [b"x"],
                                                                          [("t", 5, [["only"]])]))], 10))


def write_db_seeds(out: Path, tag: str, db: Path, wals: list[Path], wal_byte: int) -> list[Path]:
    """A database's seeds: its WALs whole and torn for wal_fuzz (byte 0 is `wal_byte`: bit 0 set, CRC fix-ups), the
    manifest log CURRENT names for manifest_fuzz (byte 0 bit 2: a manifest log), its segments for segment_fuzz
    (byte 0 = fix-ups, none or 0x3f all six; byte 1 = salt). Returns the segments, in order."""
    for i, wal in enumerate(wals):
        data = wal.read_bytes()
        if not data:
            continue
        write(out, "wal_fuzz", f"{tag}-wal{i}", bytes([wal_byte]) + data)
        if len(data) > 30:
            write(out, "wal_fuzz", f"{tag}-wal{i}-torn", bytes([wal_byte]) + data[:-7])
    manifest = (db / (db / "CURRENT").read_text().strip()).read_bytes()
    write(out, "manifest_fuzz", f"{tag}-log", b"\x04" + manifest)
    segments = sorted(db.glob("seg-*.pseg"))
    for i, seg in enumerate(segments):
        data = seg.read_bytes()
        write(out, "segment_fuzz", f"{tag}-seg{i}", b"\x00\x03" + data)
        write(out, "segment_fuzz", f"{tag}-seg{i}-fix", b"\x3f\x04" + data)
    return segments


# filter_fuzz's schema: n int64, x float64, b bool, s string, t tags, "and" int64,
# "é ""q""" string, gone float64 (absent from its layer).
FILTER_SEEDS = [
    "n = 1", "n != 2.5 AND x < -0.5", "n BETWEEN -3 AND 3 OR NOT b", "b", "NOT b = FALSE",
    "s = 'ab' OR s >= 'é'", "s IN ('a', 'it''s', '') AND s IS NOT NULL", "t CONTAINS 'a'",
    "t CONTAINS ANY ('b', 'zz')", "t CONTAINS ALL ('a', 'ab')", "t IS NULL OR gone IS NULL",
    "id IN (0, 4, 18446744073709551615)", "id > 100 AND id <= 4000", '"and" NOT IN (1, 2, 3e0)',
    '"é ""q""" < \'b\'', "n < 1e30 AND n > -9223372036854775809", "x = 2 OR x >= 1.5e0 OR x < -.5",
    "NOT (n = 1 OR (s = 'a' AND NOT t CONTAINS 'b'))", "gone = 1 OR gone NOT BETWEEN 0 AND 1",
    "n = ", "(n = 1", "s = 'unterminated", "n = 1e400", "x IS", "id IS NULL",
    "(" * 64 + "n = 1" + ")" * 64, "NOT " * 64 + "b",
    " OR ".join(f"n = {i} AND s != 'v{i}'" for i in range(80)),
]


def write_filter_seeds(out: Path) -> None:
    for i, expr in enumerate(FILTER_SEEDS):
        write(out, "filter_fuzz", f"expr-{i}", expr.encode())


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("corpus")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("g4", 4, 24, True, "l2"), ("g3ip", 3, 12, True, "ip"), ("flat2", 2, 6, False, "cosine"),
                 ("g1", 1, 40, True, "l2")]
        for tag, dim, rows, graph, metric in cases:
            db = Path(tmp) / tag
            first_wal = Path(tmp) / f"{tag}-first.log"
            make_db(db, dim, rows, graph, metric, seed=len(tag), wal_copy=first_wal)
            for i, seg in enumerate(write_db_seeds(out, tag, db, [first_wal, *sorted(db.glob("wal-*.log"))], dim - 1)):
                # The graph of the u64 group (group 0): format 2 stores the
                # graph's kinds 16..23 as 160..167 (segment/section_kind.h).
                sections = {s["kind"] - 144: s for s in inspect("segment", seg)["sections"]
                            if s["group"] == 0 and 160 <= s["kind"] <= 167}
                if 16 not in sections:
                    continue
                # Kinds 16..22, and 23 (the SQ8 norms, flag bit 2) when the graph has it.
                kinds = range(16, 24) if 23 in sections else range(16, 23)
                extra = 4 if 23 in sections else 0
                lengths = [sections[k]["length"] if k in sections else 0 for k in kinds]
                data = seg.read_bytes()
                body = b"".join(data[sections[k]["offset"]:sections[k]["offset"] + sections[k]["length"]]
                                for k in kinds if k in sections)
                prefix = struct.pack(f"<{len(lengths)}I", *lengths)
                write(out, "graph_fuzz", f"{tag}-seg{i}", bytes([0x01 | extra, 0x05]) + prefix + body)
                write(out, "graph_fuzz", f"{tag}-seg{i}-nan", bytes([0x03 | extra, 0x02]) + prefix + body)
        for tag, dim, txns in [("kv4", 4, 9), ("kv2", 2, 5)]:  # alopex databases: commits of key ops
            db = Path(tmp) / tag
            wals: list[Path] = []
            make_kv_db(db, dim, txns, seed=dim, wal_copies=wals)
            write_db_seeds(out, tag, db, [*wals, *sorted(db.glob("wal-*.log"))], 0)
    write_version_set_seeds(out)
    write_row_batch_seeds(out)
    write_filter_seeds(out)
    for seed, target in [(42, "capi_fuzz"), (43, "txn_capi_fuzz"), (44, "faces_fuzz")]:
        rnd = random.Random(seed)
        for i in range(12):
            write(out, target, f"random-{i}", bytes(rnd.getrandbits(8) for _ in range(64 + 48 * i)))


if __name__ == "__main__":
    main()
