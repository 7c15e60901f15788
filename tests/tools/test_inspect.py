"""pomai-inspect on real databases, one written through pomaidb (u64 rows:
db_dir) and one through alopex (keys, an index: alopex_dir): every command in
text and JSON, verify's exit status on clean and damaged files, read-only
behaviour, and use while the database is open in another process."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import alopex
import numpy as np
import pytest

import pomaidb

from inspect_support import (ALOPEX_DIM, DIM, file_hashes, flip, ok_json, reseal_section, segments,
                             the_manifest, wal_record, wals)

# The cid of make_alopex_db's index "idx": the seq of the commit that created
# it (its second), which keys its entries (0x02 + BE64(cid) + key).
IDX_CID = 2


def section(inspect_tool, seg: Path, name: str, group_kind: str = "") -> dict:
    """The section `name` of the segment (of its first group of kind `group_kind`, when given)."""
    r = inspect_tool("--json", "segment", seg).json
    group = next((g["group"] for g in r["kv"]["vector_groups"] if g["kind"] == group_kind), None) if group_kind else None
    return next(s for s in r["sections"] if s["name"] == name and (not group_kind or s["group"] == group))


def assert_fails_at(inspect_tool, target: Path, file: Path, offset: int) -> None:
    run = inspect_tool("--json", "verify", target)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(file) and err["offset"] == offset, err
    text = inspect_tool("verify", target)
    assert text.code == 1 and f"{file} at offset {offset}" in text.out.splitlines()[-1]


def open_engine(path: Path):
    """Opens the database (db_dir or alopex_dir) as its writer does."""
    if path.name == "alopex":
        return alopex.Database.open(path)
    return pomaidb.open_db(path, dim=DIM, shards=2, metric="l2")


def engine_error(path: Path) -> type:
    """The error class of open_engine(path)."""
    return alopex.AlopexError if path.name == "alopex" else pomaidb.PomaiDBError


# ---------------------------------------------------------------------------
# The summary


def test_summary_of_a_pomaidb_directory(inspect_tool, db_dir):
    r = ok_json(inspect_tool, db_dir)
    assert r["command"] == "summary" and r["ok"] is True and r.get("error") is None
    m = r["manifest_log"]
    assert m["file"] == the_manifest(db_dir).name and m["format_version"] == 2
    segs = r["segments"]
    assert [s["file"] for s in m["segments"]] == [s["file"] for s in segs] == [p.name for p in segments(db_dir)]
    [s] = segs  # one segment file holds every shard's rows
    assert s["live"] and s["error"] is None
    assert s["format_version"] == 2 and s["bytes"] == (db_dir / s["file"]).stat().st_size
    [g] = s["vector_groups"]  # the default collection's rows
    assert (g["kind"], g["dim"], g["metric"]) == ("u64", DIM, "l2")
    assert (g["rows"], g["tombstones"]) == (398, 2)  # 400 puts, 2 deleted before the freeze
    assert g["has_graph"] and g["graph"]["kind"] == "hnsw" and g["graph"]["m"] == 8
    assert g["graph"]["representation"] in ("sq8", "float32")
    [w] = r["wal"]
    assert w["live"] and w["records"] == 2 and (w["puts"], w["deletes"]) == (60, 3)
    assert w["torn_tail"] is False and w["error"] is None
    assert r["orphans"] == [] and r["missing"] == []
    assert r["totals"]["wal_records"] == 2

    text = inspect_tool(db_dir)
    assert text.code == 0
    assert f"{m['file']} (named by CURRENT): format version 2" in text.out
    assert "u64 cid 1 dim 8 l2: 398 rows, 2 tombstones (hnsw)" in text.out
    assert s["file"] in text.out and w["file"] in text.out


def test_summary_of_an_alopex_directory(inspect_tool, alopex_dir):
    r = ok_json(inspect_tool, alopex_dir)
    assert r["command"] == "summary" and r["ok"] is True and r["database"] == "keyspace"
    m = r["manifest_log"]
    assert (m["file"], m["format_version"], m["last_seq"], len(m["segments"])) == (the_manifest(alopex_dir).name, 2, 3, 1)
    assert m["bytes"] == the_manifest(alopex_dir).stat().st_size and m["edits"] == 2  # the snapshot, the flush
    [seg] = r["segments"]
    assert seg["live"] and seg["error"] is None and seg["file"] == m["segments"][0]["file"]
    assert seg["bytes"] == (alopex_dir / seg["file"]).stat().st_size == m["segments"][0]["file_size"]
    assert (m["segments"][0]["first_seq"], m["segments"][0]["last_seq"]) == (1, 3)
    # 6 bytes values + vec-a + key-4's tombstone; the index config; 3 index entries.
    assert (seg["user_keys"], seg["index_configs"], seg["index_entries"]) == (7, 1, 3)
    assert (seg["bytes_values"], seg["vector_records"], seg["tombstones"]) == (6, 4, 1)
    assert (seg["min_seq"], seg["max_seq"]) == (1, 3)
    groups = {(g["namespace"], g["dim"]): g["rows"] for g in seg["vector_groups"]}
    assert groups == {("user", ALOPEX_DIM): 1, ("index_entry", ALOPEX_DIM): 3}
    [wal] = r["wal"]
    assert wal["live"] and wal["error"] is None and wal["torn_tail"] is False
    assert (wal["records"], wal["writes"], wal["first_seq"], wal["last_seq"]) == (2, 6, 4, 5)
    assert (wal["bytes_writes"], wal["vector_writes"], wal["tombstone_writes"]) == (2, 2, 2)
    assert r["orphans"] == [] and r["missing"] == []
    assert r["totals"]["segment_entries"] == 11 and r["totals"]["wal_records"] == 2

    text = inspect_tool(alopex_dir)
    assert text.code == 0
    assert "keyspace database" in text.out
    assert f"{m['file']} (named by CURRENT): format version 2, 2 edits" in text.out
    assert seg["file"] in text.out and wal["file"] in text.out
    assert "no MANIFEST" not in text.out


def test_summary_flags_orphans(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    shutil.copy(seg, db_dir / "seg-000999.pseg")
    (db_dir / "seg-001000.pseg.tmp").write_bytes(b"partial")
    (db_dir / "CURRENT.tmp").write_bytes(b"partial")
    (db_dir / "MANIFEST-000998").write_bytes(the_manifest(db_dir).read_bytes())
    r = inspect_tool("--json", db_dir).json
    orphans = {o["file"]: o["reason"] for o in r["orphans"]}
    assert set(orphans) == {"seg-000999.pseg", "seg-001000.pseg.tmp", "CURRENT.tmp", "MANIFEST-000998"}
    assert "not named by the manifest" in orphans["seg-000999.pseg"]
    assert "temporary" in orphans["seg-001000.pseg.tmp"] and "temporary" in orphans["CURRENT.tmp"]
    assert "CURRENT does not name" in orphans["MANIFEST-000998"]
    assert [s["live"] for s in r["segments"] if s["file"] == "seg-000999.pseg"] == [False]
    assert "orphans (4)" in inspect_tool(db_dir).out
    # Orphans are garbage the next open removes, not damage: verify notes them.
    run = inspect_tool("--json", "verify", db_dir)
    assert run.code == 0 and any("not checked" in n["message"] for n in run.json["notes"])


def test_summary_reports_a_damaged_segment(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    flip(seg, 0)
    run = inspect_tool("--json", db_dir)
    assert run.code == 1
    [entry] = [s for s in run.json["segments"] if s["file"] == seg.name]
    assert entry["error"]["offset"] == 0 and "bad magic" in entry["error"]["message"]
    assert run.json["error"]["file"] == str(seg)
    assert "ERROR" in inspect_tool(db_dir).out


# ---------------------------------------------------------------------------
# segment FILE


def test_segment_header_sections_and_footer(inspect_tool, any_dir):
    seg = segments(any_dir)[0]
    r = ok_json(inspect_tool, "segment", seg)
    h, f = r["header"], r["footer"]
    assert (h["magic"], h["format_version"], h["header_size"]) == ("POMAISEG", 2, 128)
    assert h["file_number"] == int(seg.name[4:10]) and h["bytes"] == seg.stat().st_size
    assert h["group_count"] == len(r["kv"]["vector_groups"]) and r["keyspace"] is True
    assert all(s["crc_ok"] for s in r["sections"])
    assert all(s["offset"] % 64 == 0 and s["offset"] >= 128 for s in r["sections"])
    assert f["section_count"] == len(r["sections"]) and f["file_size"] == seg.stat().st_size
    assert f["section_table_offset"] + 32 * f["section_count"] + 32 == f["file_size"]
    text = inspect_tool("segment", seg)
    assert text.code == 0 and "footer: section_table_offset" in text.out
    assert "format_version 2" in text.out and "block CRCs" in text.out


def test_segment_of_u64_rows_names_the_sections(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    r = inspect_tool("--json", "segment", seg).json
    [g] = r["kv"]["vector_groups"]
    assert (g["kind"], g["dim"], g["metric"]) == ("u64", DIM, "l2") and g["graph"]["kind"] == "hnsw"
    names = [s["name"] for s in r["sections"]]
    for name in ("row ids", "vectors", "metadata offsets", "metadata blob", "tombstone ids", "block CRCs",
                 "hnsw header", "hnsw layer-0 links"):
        assert name in names
    ids = next(s for s in r["sections"] if s["name"] == "row ids")
    assert ids["group"] == 0 and ids["length"] == 8 * g["rows"]
    assert "hnsw layer-0 links" in inspect_tool("segment", seg).out


def test_segment_of_keys_names_the_sections(inspect_tool, alopex_dir):
    seg = segments(alopex_dir)[0]
    r = inspect_tool("--json", "segment", seg).json
    assert r["kv"]["entries"] == 11
    h = r["header"]
    assert (h["entry_count"], h["group_count"], h["min_seq"], h["max_seq"]) == (11, 2, 1, 3)
    # File level: kinds 128..131, group null; each group: its kinds, named from the registry.
    file_level = {s["kind"]: s["name"] for s in r["sections"] if s["group"] is None}
    assert file_level == {128: "entries", 129: "keys", 130: "values", 131: "groups"}
    by_group = {}
    for s in r["sections"]:
        if s["group"] is not None:
            by_group.setdefault(s["group"], {})[s["kind"]] = s["name"]
    assert sorted(by_group) == [0, 1]
    for g in r["kv"]["vector_groups"]:
        kinds = by_group[g["group"]]
        assert {k: kinds[k] for k in (146, 147, 152)} == {146: "row entries", 147: "vectors", 152: "block CRCs"}
        assert not set(kinds) & {144, 145, 148, 149, 150, 151}  # u64 groups' kinds only
        assert (160 in kinds) == g["has_graph"]
        if g["has_graph"]:
            assert kinds[160] == "hnsw header" and kinds[162] == "hnsw layer-0 links"
    text = inspect_tool("segment", seg).out
    assert "keyspace segment: 11 entries" in text and "row entries" in text


def test_segment_summary_lists_its_groups(inspect_tool, alopex_dir):
    """One group per (dim, metric) of vector records and one per collection:
    its kind, cid (null for records), dim, metric, rows, block size, graph."""
    seg = segments(alopex_dir)[0]
    r = inspect_tool("--json", "segment", seg).json
    groups = r["kv"]["vector_groups"]
    assert [g["group"] for g in groups] == [0, 1]
    # Descriptors ascend by kind: 2 (byte-keyed collection rows), then 3 (vector records).
    entries, records = groups
    assert (entries["kind"], entries["namespace"], entries["cid"]) == ("bytes", "index_entry", IDX_CID)
    assert (records["kind"], records["namespace"], records["cid"]) == ("records", "user", None)
    for g, rows, seq in ((entries, 3, 3), (records, 1, 1)):  # e0..e2 at seq 3, vec-a at seq 1
        assert (g["dim"], g["metric"], g["rows"], g["tombstones"]) == (ALOPEX_DIM, "l2", rows, 0)
        assert g["rows_per_block"] == 4096 and g["blocks"] == 1  # 64 KiB / (4 floats * 4 bytes)
        assert isinstance(g["has_graph"], bool) and (g["graph"] is not None) == g["has_graph"]
        assert (g["min_seq"], g["max_seq"]) == (seq, seq)
    assert not records["has_graph"]  # vector records have no graph
    # The directory summary lists the same groups.
    summary = inspect_tool("--json", alopex_dir).json
    assert summary["segments"][0]["vector_groups"] == groups
    text = inspect_tool("segment", seg).out
    assert f"g0 bytes cid {IDX_CID} dim {ALOPEX_DIM} l2: 3 rows" in text
    assert f"g1 records dim {ALOPEX_DIM} l2: 1 rows" in text
    assert f"g1 records dim {ALOPEX_DIM} l2: 1 rows" in inspect_tool(alopex_dir).out


def test_a_format_1_keyspace_segment_is_refused_by_name(inspect_tool, alopex_dir):
    """A container of format version 1 with the old keyspace marker (shard
    field 0x4B565347) is a keyspace segment this version does not read: each
    command says so, naming the file, and exits 1."""
    seg = segments(alopex_dir)[0]
    data = bytearray(seg.read_bytes())
    struct.pack_into("<I", data, 8, 1)
    struct.pack_into("<I", data, 24, 0x4B565347)
    old = alopex_dir.parent / "old.pseg"
    old.write_bytes(bytes(data))
    for command in ("verify", "segment", "dump", "graph"):
        run = inspect_tool("--json", command, old)
        assert run.code == 1, (command, run.out, run.err)
        err = run.json["error"]
        assert err["file"] == str(old), command
        assert f"{old}: a keyspace segment of format version 1, which this version does not read" in err["message"]
        text = inspect_tool(command, old)
        assert text.code == 1 and "a keyspace segment of format version 1" in text.out and text.err == ""
    assert inspect_tool("--json", "dump", old).json["kind"] == "segment"
    # As a live segment of a database: the summary and verify fail on it.
    seg.write_bytes(bytes(data))
    summary = inspect_tool("--json", alopex_dir)
    assert summary.code == 1 and "format version 1" in summary.json["segments"][0]["error"]["message"]
    assert summary.json["totals"]["live_keys"] is None
    v = inspect_tool("--json", "verify", alopex_dir)
    assert v.code == 1 and v.json["error"]["file"] == str(seg) and "format version 1" in v.json["error"]["message"]


# ---------------------------------------------------------------------------
# dump FILE


def test_dump_segment_rows(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    r = ok_json(inspect_tool, "dump", seg, "--limit", "3", "--prefix", "2")
    assert r["kind"] == "segment" and r["limit"] == 3
    assert len(r["rows"]) == 3 and r["total_rows"] > 3
    ids = [row["id"] for row in r["rows"]]
    assert ids == sorted(ids)
    for row in r["rows"]:
        assert row["metadata_prefix"] == "meta-%d" % row["id"]
        assert row["metadata_length"] == len("meta-%d" % row["id"])
        assert len(row["vector_prefix"]) == 2
    # The stored vector, as the engine returns it, of a row the WAL does not delete (ids 1..3).
    live = next(row for row in r["rows"] if row["id"] not in (1, 2, 3))
    with pomaidb.open_db(db_dir, dim=DIM, shards=2, metric="l2") as db:
        vec, _ = db.get(live["id"])
    assert live["vector_prefix"] == pytest.approx(vec[:2].tolist(), rel=1e-6)

    text = inspect_tool("dump", seg, "--limit", "2").out
    assert text.count(" row ") == 2 and "more rows (--limit)" in text
    everything = inspect_tool("--json", "dump", seg, "--limit", "0").json
    assert len(everything["rows"]) == everything["total_rows"]


def test_dump_segment_row_tombstones(inspect_tool, db_dir):
    """The ids deleted before the freeze are the u64 group's tombstones."""
    seg = segments(db_dir)[0]
    r = inspect_tool("--json", "dump", seg).json
    assert r["total_row_tombstones"] == 2
    assert [(t["group"], t["id"]) for t in r["row_tombstones"]] == [(0, 10), (0, 11)]
    assert all(t["seq"] > r["rows"][0]["seq"] for t in r["row_tombstones"])
    assert "g0 tombstone  id 10" in inspect_tool("dump", seg).out


def test_dump_segment_entries(inspect_tool, alopex_dir):
    seg = segments(alopex_dir)[0]
    r = inspect_tool("--json", "dump", seg, "--limit", "0").json
    assert r["ok"] is True and r["kind"] == "segment" and r["total_entries"] == 11
    entries = r["entries"]
    assert len(entries) == 11
    by_key = {(e["namespace"], e.get("index", e.get("cid")), e["key"]): e for e in entries}
    binary = by_key[("user", None, "bin\\x00\\xff")]
    assert binary["kind"] == "bytes" and binary["value_length"] == 2 and binary["value_prefix"] == "\\x01\\x02"
    assert by_key[("user", None, "key-4")]["kind"] == "tombstone"
    vec = by_key[("user", None, "vec-a")]
    assert (vec["kind"], vec["dim"], vec["metric"], vec["vector_prefix"]) == ("vector", 4, "l2", [1, 2, 3, 4])
    assert vec["metadata_prefix"] == "meta-a"
    config = by_key[("index_config", "idx", None)]
    assert config["index_config"] == {"key_type": "bytes", "dim": ALOPEX_DIM, "m": 8, "ef_construction": 200,
                                      "metric": "l2", "graph_vectors": "float32", "shards": 1}
    assert config["seq"] == IDX_CID and config["value_length"] == 32
    entry = by_key[("index_entry", IDX_CID, "e2")]
    assert entry["kind"] == "vector" and entry["vector_prefix"] == [2.0] * ALOPEX_DIM and entry["metadata_prefix"] == "m2"
    limited = inspect_tool("--json", "dump", seg, "--limit", "3", "--prefix", "2").json
    assert len(limited["entries"]) == 3
    text = inspect_tool("dump", seg, "--limit", "0")
    assert text.code == 0
    assert f'index_entry cid {IDX_CID} key "e2"' in text.out and 'user key "bin\\x00\\xff"' in text.out
    assert "(dim 4, m 8, ef_construction 200, metric l2)" in text.out
    assert "more entries (--limit)" in inspect_tool("dump", seg, "--limit", "2").out


def test_dump_wal_row_records(inspect_tool, db_dir, tmp_path):
    [wal] = wals(db_dir)
    r = ok_json(inspect_tool, "dump", wal, "--limit", "100")
    assert r["kind"] == "wal"
    put_rec, del_rec = r["records"]
    # put_batch with metadata writes a row batch (type 18); deletes a write batch of row ops (16).
    assert put_rec["offset"] == 0 and put_rec["type"] == 18 and put_rec["op_count"] == 60
    assert del_rec["type"] == 16 and put_rec["columns"] == []
    assert del_rec["seq"] == put_rec["seq"] + 1
    assert [op["id"] for op in del_rec["ops"]] == [1, 2, 3]
    assert all(op["kind"] == "delete" for op in del_rec["ops"])
    first = put_rec["ops"][0]
    assert first["kind"] == "put" and first["id"] == 400
    assert first["metadata_prefix"] == "w\\x00\\xff0" and first["metadata_length"] == 4
    assert len(first["vector_prefix"]) == 4
    limited = inspect_tool("--json", "dump", wal, "--limit", "5").json
    assert sum(len(rec["ops"]) for rec in limited["records"]) == 5 and limited["truncated"] is True
    text = inspect_tool("dump", wal, "--limit", "5").out
    assert "put    id 400" in text and "record at offset 0" in text
    # Records carry their dims: a WAL file away from its database decodes whole.
    lone = tmp_path / "copy.log"
    shutil.copy(wal, lone)
    first = inspect_tool("--json", "dump", lone).json["records"][0]["ops"][0]
    assert first["id"] == 400 and len(first["vector_prefix"]) == 4
    assert inspect_tool("--json", "verify", lone).code == 0


def test_dump_wal_commit_records(inspect_tool, alopex_dir):
    [wal] = wals(alopex_dir)
    r = inspect_tool("--json", "dump", wal, "--limit", "0").json
    assert r["ok"] is True and r["kind"] == "wal" and r["torn_tail"] is False
    first, second = r["records"]
    assert (first["seq"], first["type"], first["write_count"], first["offset"]) == (4, 16, 4, 0)
    writes = {(w["namespace"], w.get("index", w.get("cid")), w["key"]): w for w in first["writes"]}
    assert writes[("user", None, "key-0")]["kind"] == "tombstone"
    assert writes[("user", None, "key-9")]["value_prefix"] == "later"
    assert writes[("user", None, "vec-b")]["metric"] == "cosine" and writes[("user", None, "vec-b")]["dim"] == 2
    assert writes[("index_entry", IDX_CID, "e9")]["vector_prefix"] == [9.0] * ALOPEX_DIM
    assert second["seq"] == 5 and {w["kind"] for w in second["writes"]} == {"bytes", "tombstone"}
    # A lone WAL file (no CURRENT beside it) is recognised by its name.
    lone = alopex_dir.parent / "lone.log"
    lone.write_bytes(wal.read_bytes())
    assert inspect_tool("--json", "dump", lone).json["kind"] == "wal"
    text = inspect_tool("dump", wal)
    assert text.code == 0 and "commit record at offset 0  seq 4" in text.out
    assert f'index_entry cid {IDX_CID} key "e9"' in text.out


def test_dump_the_manifest_log_and_current(inspect_tool, alopex_dir):
    manifest = the_manifest(alopex_dir)
    r = inspect_tool("--json", "dump", manifest).json
    assert r["ok"] is True and r["kind"] == "manifest" and r["manifest_log"]["last_seq"] == 3
    assert [e["file"] for e in r["manifest_log"]["segments"]] == [p.name for p in segments(alopex_dir)]
    snapshot, flush = r["edits"]
    assert (snapshot["seq"], snapshot["offset"], snapshot["format_version"], snapshot["last_seq"]) == (1, 0, 2, 0)
    assert snapshot["added"] == [] and snapshot["removed"] == []
    [added] = flush["added"]
    assert flush["format_version"] is None and flush["last_seq"] == 3 and flush["seq"] == 2
    assert (added["file"], added["first_seq"], added["last_seq"]) == (segments(alopex_dir)[0].name, 1, 3)
    assert flush["log_number"] == int(wals(alopex_dir)[0].name[4:10])  # the WAL the flush started is live
    text = inspect_tool("dump", manifest).out
    assert "format version 2, 2 edits" in text and f"edit 2 at offset {flush['offset']}: log_number" in text
    assert f"+{added['file']} ({added['file_size']} bytes, seqs 1..3)" in text
    assert inspect_tool("--json", "dump", manifest, "--limit", "1").json["truncated"] is True
    current = inspect_tool("--json", "dump", alopex_dir / "CURRENT").json
    assert current["kind"] == "current" and current["manifest"] == manifest.name
    assert inspect_tool("dump", alopex_dir / "CURRENT").out.strip().endswith(f"names {manifest.name}")


# ---------------------------------------------------------------------------
# graph FILE


def test_graph_levels_degrees_reachability(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    r = ok_json(inspect_tool, "graph", seg)
    assert r["group_kind"] == "u64" and r["m"] == 8 and r["m0"] == 16 and r["ef_construction"] == 200
    assert r["representation"] in ("sq8", "float32") and r["verified"] is True
    assert r["reused_rows"] == 0  # built from nothing
    levels = r["levels"]
    assert len(levels) == r["max_level"] + 1
    assert levels[0]["nodes"] == r["rows"]
    assert sum(lv["top_level_nodes"] for lv in levels) == r["rows"]
    for lv in levels:
        assert lv["degree_max"] <= lv["degree_bound"]
        assert lv["degree_min"] <= lv["degree_avg"] <= lv["degree_max"]
    assert levels[0]["degree_bound"] == 16 and all(lv["degree_bound"] == 8 for lv in levels[1:])
    reach = r["layer0_reachability"]
    assert reach["reachable"] + reach["unreachable"] == r["rows"]
    assert reach["reachable"] == r["rows"]  # a healthy graph is connected from its entry point
    text = inspect_tool("graph", seg).out
    assert "layer 0 reachable from the entry point" in text and "verify: ok" in text and "reused_rows 0" in text
    [group] = inspect_tool("--json", "segment", seg).json["kv"]["vector_groups"]
    assert group["graph"]["reused_rows"] == 0 and group["graph"]["representation"] == r["representation"]
    summary = inspect_tool("--json", db_dir).json
    assert all(g["graph"]["reused_rows"] == 0 for s in summary["segments"] for g in s["vector_groups"])


def test_graph_of_a_segment_without_one(inspect_tool, tmp_path):
    path = tmp_path / "flat"
    with pomaidb.open_db(path, dim=DIM, adaptive_threshold=1000) as db:
        db.put_batch([1, 2], np.ones((2, DIM), dtype=np.float32))
        db.freeze()
    [seg] = segments(path)
    r = inspect_tool("--json", "segment", seg).json
    assert [(g["kind"], g["has_graph"]) for g in r["kv"]["vector_groups"]] == [("u64", False)]
    run = inspect_tool("--json", "graph", seg)
    assert run.code == 1 and "no vector group of this segment has an HNSW graph" in run.json["error"]["message"]


def test_graph_of_a_segment_is_a_groups_graph(inspect_tool, alopex_dir):
    """graph FILE shows one group's graph (--group G, or the first group with
    one); a group without one is an error naming it."""
    seg = segments(alopex_dir)[0]
    groups = inspect_tool("--json", "segment", seg).json["kv"]["vector_groups"]
    with_graph = [g["group"] for g in groups if g["has_graph"]]
    run = inspect_tool("--json", "graph", seg)
    assert run.json["groups_with_graph"] == with_graph
    if with_graph:
        assert run.code == 0, run.out
        assert run.json["group"] == with_graph[0] and run.json["rows"] == groups[with_graph[0]]["rows"]
        assert run.json["verified"] is True
    else:
        assert run.code == 1 and "no vector group of this segment has an HNSW graph" in run.json["error"]["message"]
    records = next(g["group"] for g in groups if g["kind"] == "records")
    bad = inspect_tool("--json", "graph", seg, "--group", str(records))
    assert bad.code == 1 and f"group {records} of 2 has no HNSW graph" in bad.json["error"]["message"]
    assert inspect_tool("--json", "graph", seg, "--group", "9").code == 1


# ---------------------------------------------------------------------------
# verify


def test_verify_clean_database(inspect_tool, any_dir):
    r = ok_json(inspect_tool, "verify", any_dir)
    assert r["ok"] is True and r["error"] is None and r["problems"] == []
    assert sorted(c["kind"] for c in r["checked"]) == ["manifest", "segment", "wal"]
    text = inspect_tool("verify", any_dir)
    assert text.code == 0 and text.out.rstrip().endswith("verify: OK")
    for f in [*segments(any_dir), *wals(any_dir), the_manifest(any_dir), any_dir / "CURRENT"]:
        assert inspect_tool("verify", f).code == 0, f
        assert inspect_tool("--json", "verify", f).json["ok"] is True, f


@pytest.mark.parametrize("fixture,name,group_kind,kind,length,at", [
    ("db_dir", "vectors", "u64", 147, 398 * 4 * DIM, 13),  # a float of a row
    ("db_dir", "hnsw layer-0 links", "u64", 162, None, 4 * 17 + 1),
    ("alopex_dir", "values", "", 130, None, 3),
    ("alopex_dir", "vectors", "records", 147, 4 * ALOPEX_DIM, 5),  # a vector record's floats
], ids=["u64-vectors", "u64-graph-links", "key-values", "record-vectors"])
def test_verify_flipped_byte_in_a_section(inspect_tool, request, fixture, name, group_kind, kind, length, at):
    """A byte of a group's section or of a file-level one: the section's
    checksum (the first check Verify makes) fails, naming the file and the
    section; every command that reads the segment fails on it, at the
    section's offset."""
    path = request.getfixturevalue(fixture)
    seg = segments(path)[0]
    damaged = section(inspect_tool, seg, name, group_kind)
    assert damaged["kind"] == kind and (damaged["group"] is None) == (not group_kind)
    assert length is None or damaged["length"] == length
    flip(seg, damaged["offset"] + at)
    assert_fails_at(inspect_tool, seg, seg, damaged["offset"])
    assert_fails_at(inspect_tool, path, seg, damaged["offset"])
    run = inspect_tool("--json", "verify", seg)
    assert run.json["error"]["code"] == 5  # Corruption
    assert f"checksum mismatch in {name} section" in run.json["error"]["message"]
    assert str(seg) in run.json["error"]["message"]
    assert [c["kind"] for c in run.json["checked"]] == ["segment"]
    r = inspect_tool("--json", "segment", seg)
    assert r.code == 1 and r.json["kv"] is None
    assert [s["crc_ok"] for s in r.json["sections"] if s["offset"] == damaged["offset"]] == [False]
    assert "MISMATCH" in inspect_tool("segment", seg).out
    summary = inspect_tool("--json", path)
    t = summary.json["totals"]
    assert summary.code == 1 and (t["live_rows"], t["live_keys"], t["live_index_entries"]) == (None, None, None)
    assert summary.json["segments"][0]["error"]["offset"] == damaged["offset"]
    dump = inspect_tool("--json", "dump", seg)
    assert dump.code == 1
    assert (dump.json["error"]["file"], dump.json["error"]["offset"]) == (str(seg), damaged["offset"])
    text = inspect_tool("dump", seg)
    assert text.code == 1 and f"{seg} at offset {damaged['offset']}" in text.out


def test_verify_graph_structure_behind_a_valid_checksum(inspect_tool, db_dir):
    # A link count out of range under a recomputed section CRC: only the graph's own Verify sees it.
    seg = segments(db_dir)[0]
    links = section(inspect_tool, seg, "hnsw layer-0 links")
    data = bytearray(seg.read_bytes())
    data[links["offset"]:links["offset"] + 4] = struct.pack("<I", 999)
    reseal_section(data, links["offset"], links["length"])
    seg.write_bytes(bytes(data))
    run = inspect_tool("--json", "verify", seg)
    assert run.code == 1
    assert run.json["error"]["offset"] == links["offset"]
    assert "links on layer 0" in run.json["error"]["message"]
    assert inspect_tool("--json", "graph", seg).code == 1


def test_verify_finds_a_damaged_block_under_a_recomputed_section_checksum(inspect_tool, alopex_dir):
    """The floats changed and the section table (entry CRC, table CRC in the
    footer) made to agree: the block CRC (section 152) still catches it."""
    seg = segments(alopex_dir)[0]
    vectors = section(inspect_tool, seg, "vectors", "bytes")
    data = bytearray(seg.read_bytes())
    data[vectors["offset"] + 1] ^= 0x5A
    reseal_section(data, vectors["offset"], vectors["length"])
    seg.write_bytes(bytes(data))
    sections = inspect_tool("--json", "segment", seg).json["sections"]
    assert [s["crc_ok"] for s in sections if s["offset"] == vectors["offset"]] == [True]
    run = inspect_tool("--json", "verify", seg)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(seg) and err["offset"] == vectors["offset"]
    assert "checksum mismatch in block 0" in err["message"]
    assert_fails_at(inspect_tool, alopex_dir, seg, vectors["offset"])


def nan_vector(dim: int) -> bytes:
    return struct.pack(f"<{dim}f", *([1.0] * (dim - 1) + [float("nan")]))


# Well-framed WAL records (checksums right) that no write makes: (database, record type, payload).
UNAPPLIABLE = {
    "put row with a NaN": ("db_dir", 16, struct.pack("<IBQQII", 1, 4, 0, 77, DIM, 0) + nan_vector(DIM)),
    "row array with a NaN": ("db_dir", 17, struct.pack("<QIIQ", 0, DIM, 1, 77) + nan_vector(DIM)),
    "format 1's batch record": ("db_dir", 1, struct.pack("<IBQI", 1, 1, 77, 0) + struct.pack(f"<{DIM}f", *[1.0] * DIM)),
    "key vector with a NaN": ("alopex_dir", 16, struct.pack("<IBI", 1, 2, 4) + b"\x00vec" +
                              struct.pack("<BBI", 0, 0, 0) + struct.pack("<I", 2) + nan_vector(2)),
    **{f"key {label}": ("alopex_dir", 16, struct.pack("<IBI", 1, 1, len(key)) + key + struct.pack("<I", 1) + b"x")
       for label, key in (("of an unknown namespace", b"\x07unknown-namespace"), ("too long", b"\x00" + b"k" * 65536),
                          ("empty", b"\x00"), ("of an index entry without a key", b"\x02" + bytes(8)),
                          ("of an index entry too short", b"\x02idx\x00"), ("of a bad index name", b"\x01bad\x00name"))},
}


@pytest.mark.parametrize("case", UNAPPLIABLE)
def test_verify_fails_on_a_wal_record_the_engine_cannot_apply(inspect_tool, request, case):
    """verify fails at that record, as the engine's open does."""
    fixture, record_type, payload = UNAPPLIABLE[case]
    path = request.getfixturevalue(fixture)
    [wal] = wals(path)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    at = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(wal_record(record_type, max(r["seq"] for r in records) + 1, payload))
    assert_fails_at(inspect_tool, path, wal, at)
    assert_fails_at(inspect_tool, wal, wal, at)
    with pytest.raises(engine_error(path), match=f"offset {at}"):
        open_engine(path)


@pytest.mark.parametrize("log", ["wal", "manifest"])
def test_verify_flipped_byte_in_a_log_record(inspect_tool, any_dir, log):
    """A byte of a record of the WAL or of the manifest log: verify (of the
    directory and of the file) fails at that record, and so do the summary
    and the engine's open."""
    path = wals(any_dir)[0] if log == "wal" else the_manifest(any_dir)
    records = inspect_tool("--json", "dump", path, "--limit", "0").json["records" if log == "wal" else "edits"]
    second = records[1]["offset"]
    flip(path, second + 24 + 2)  # inside the payload of the second record
    assert_fails_at(inspect_tool, any_dir, path, second)
    assert_fails_at(inspect_tool, path, path, second)
    assert inspect_tool("--json", any_dir).code == 1
    with pytest.raises(engine_error(any_dir), match=f"{path} at offset {second}"):
        open_engine(any_dir)
    flip(path, second + 24 + 2)
    flip(path, 3)  # the first record's header
    assert_fails_at(inspect_tool, any_dir, path, 0)


def test_verify_torn_wal_tail_is_a_note_not_a_failure(inspect_tool, any_dir):
    [wal] = wals(any_dir)
    good = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05\x06\x07")  # a header cut short by a crash
    run = inspect_tool("--json", "verify", any_dir)
    assert run.code == 0, run.out
    [note] = [n for n in run.json["notes"] if "torn tail" in n["message"]]
    assert note["file"] == str(wal) and note["offset"] == good
    assert "note:" in inspect_tool("verify", any_dir).out
    summary = inspect_tool("--json", any_dir).json
    assert summary["wal"][0]["torn_tail"] is True and summary["wal"][0]["good_end"] == good
    # A record whose payload was cut short is a torn tail too.
    data = wal.read_bytes()[:good]
    wal.write_bytes(data[:-5])
    assert inspect_tool("verify", any_dir).code == 0
    # And the engine agrees: it opens and drops the tail.
    db = open_engine(any_dir)
    try:
        assert any_dir.name == "alopex" or db.count() > 0
    finally:
        db.close()


def test_verify_missing_segment(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    seg.unlink()
    run = inspect_tool("--json", "verify", db_dir)
    assert run.code == 1 and "which is missing" in run.json["error"]["message"]
    summary = inspect_tool("--json", db_dir)
    assert summary.code == 1 and summary.json["missing"][0]["file"] == seg.name


def test_verify_damaged_current_or_a_missing_manifest(inspect_tool, alopex_dir):
    manifest = the_manifest(alopex_dir)
    current = alopex_dir / "CURRENT"
    current.write_text("MANIFEST-1\n")
    assert_fails_at(inspect_tool, alopex_dir, current, 0)
    assert_fails_at(inspect_tool, current, current, 0)
    current.write_text("MANIFEST-000777\n")
    run = inspect_tool("--json", "verify", alopex_dir)
    assert run.code == 1 and "MANIFEST-000777, which does not exist" in run.json["error"]["message"]
    with pytest.raises(engine_error(alopex_dir), match="MANIFEST-000777, which does not exist"):
        open_engine(alopex_dir)
    current.write_text(manifest.name + "\n")
    assert inspect_tool("verify", alopex_dir).code == 0


def test_verify_segment_size_against_the_manifest(inspect_tool, alopex_dir):
    """A manifest whose edit gives the segment another size (its record's
    checksum right): verify names the segment and both sizes."""
    seg = segments(alopex_dir)[0]
    manifest = the_manifest(alopex_dir)
    data = manifest.read_bytes()
    at = inspect_tool("--json", "dump", manifest).json["edits"][1]["offset"]
    payload = bytearray(data[at + 24:])
    pos = 0
    while pos < len(payload):  # fields: u16 tag, u16 zero, u32 length, value
        tag, _, length = struct.unpack_from("<HHI", payload, pos)
        if tag == 5:  # add segment: number, file size, first seq, last seq
            struct.pack_into("<Q", payload, pos + 16, seg.stat().st_size + 64)
        pos += 8 + length
    manifest.write_bytes(data[:at] + wal_record(32, 2, bytes(payload)))
    run = inspect_tool("--json", "verify", alopex_dir)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(seg), err
    assert f"holds {seg.stat().st_size} bytes; the manifest says {seg.stat().st_size + 64}" in err["message"]


# ---------------------------------------------------------------------------
# Read-only, concurrency, the console script


def test_never_modifies_a_file(inspect_tool, any_dir):
    seg = segments(any_dir)[0]
    flip(seg, section(inspect_tool, seg, "vectors")["offset"] + 1)  # damaged files too
    before = file_hashes(any_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in any_dir.iterdir()}
    [wal] = wals(any_dir)
    for args in [(any_dir,), ("verify", any_dir), ("segment", seg), ("dump", seg, "--limit", "0"), ("dump", wal),
                 ("graph", seg), ("verify", seg), ("verify", wal), ("dump", the_manifest(any_dir)),
                 ("verify", the_manifest(any_dir)), ("dump", any_dir / "CURRENT")]:
        inspect_tool(*args)
        inspect_tool("--json", *args)
    assert file_hashes(any_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in any_dir.iterdir()} == mtimes


def test_alopex_database_still_opens_after_inspection(inspect_tool, alopex_dir):
    assert inspect_tool("verify", alopex_dir).code == 0
    db = alopex.Database.open(alopex_dir)
    try:
        with db.begin(alopex.TxnMode.READ_ONLY) as t:
            assert t.get(b"key-9") == b"later" and t.get(b"key-0") is None
    finally:
        db.close()


HOLDER = textwrap.dedent("""
    import sys, numpy as np, pomaidb
    db = pomaidb.open_db(sys.argv[1], dim=%d, shards=2, metric="l2", adaptive_threshold=0, hnsw_m=8)
    rng = np.random.default_rng(1)
    print("ready", flush=True)
    n = 1000
    while sys.stdin.readline().strip() == "write":
        db.put_batch(list(range(n, n + 50)), rng.random((50, %d), dtype=np.float32))
        db.delete([n - 1])
        if n %% 200 == 0:
            db.freeze()
        n += 50
        print("done", flush=True)
    db.close()
""") % (DIM, DIM)


def test_works_while_another_process_holds_the_database(inspect_tool, db_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        # The holder has the lock: a second open is refused...
        with pytest.raises(pomaidb.PomaiDBError, match="locked"):
            pomaidb.open_db(db_dir, dim=DIM, shards=2, metric="l2")
        # ...but the tool reads everything, between and during writes and freezes.
        for i in range(12):
            holder.stdin.write("write\n")
            holder.stdin.flush()
            if i % 2 == 0:
                assert holder.stdout.readline().strip() == "done"
            run = inspect_tool("--json", "verify", db_dir)
            assert run.code == 0, run.out
            assert inspect_tool("--json", db_dir).code == 0
            if i % 2 == 1:
                assert holder.stdout.readline().strip() == "done"
        # The tool took no lock: the holder still has it and still writes.
        with pytest.raises(pomaidb.PomaiDBError, match="locked"):
            pomaidb.open_db(db_dir, dim=DIM, shards=2, metric="l2")
        holder.stdin.write("write\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "done"
    finally:
        holder.stdin.write("stop\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0
    assert inspect_tool("verify", db_dir).code == 0


def test_missing_path_is_a_problem_not_a_crash(inspect_tool, tmp_path):
    for args in [("verify", tmp_path / "nope"), ("segment", tmp_path / "nope.pseg"), (tmp_path / "nope",),
                 ("dump", tmp_path / "nope.log"), ("dump", tmp_path / "nope.pseg"), ("graph", tmp_path / "nope.pseg")]:
        run = inspect_tool("--json", *args)
        assert run.code == 1, args
        assert run.json["ok"] is False and run.json["error"]["message"]


def test_console_script_runs_the_bundled_tool(db_dir):
    """The installed `pomai-inspect` entry point (skipped when testing a build tree)."""
    script = Path(sys.executable).with_name("pomai-inspect")
    if not script.is_file():
        pytest.skip("pomai-inspect console script not installed in this environment")
    env = {k: v for k, v in os.environ.items() if k != "POMAI_INSPECT"}
    run = subprocess.run([str(script), "--json", "verify", str(db_dir)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"ok": true' in run.stdout
    bad = subprocess.run([str(script)], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    flip(the_manifest(db_dir), 3)  # the first edit's header
    run = subprocess.run([str(script), "verify", str(db_dir)], capture_output=True, text=True, env=env)
    assert run.returncode == 1


def test_main_returns_the_exit_status(db_dir):
    from pomaidb import _inspect
    assert _inspect.main(["verify", str(db_dir)]) == 0
    assert _inspect.main([]) == 2
