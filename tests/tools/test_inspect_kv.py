"""pomai-inspect on keyspace databases (alopex, `pomai_db_open_ex`): the
directory summary, segment, dump and verify of KV segments, keyspace WAL
files, CURRENT and the manifest log, in text and JSON; damage found with
file and offset; nothing modified."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from inspect_support import KV_DIM, crc32c, file_hashes, flip, make_kv_db, segments, wal_record, wals


# The cid of make_kv_db's index "idx": the seq of the commit that created it
# (its second), which keys its entries (0x02 + BE64(cid) + key).
IDX_CID = 2


@pytest.fixture
def kv_dir(tmp_path: Path) -> Path:
    path = tmp_path / "kvdb"
    make_kv_db(path)
    return path


def test_summary_of_a_keyspace_directory(inspect_tool, kv_dir):
    run = inspect_tool("--json", kv_dir)
    assert run.code == 0, run.out
    r = run.json
    assert r["command"] == "summary" and r["ok"] is True and r["database"] == "keyspace"
    m = r["manifest_log"]
    assert (m["file"], m["format_version"], m["last_seq"], len(m["segments"])) == (the_manifest(kv_dir).name, 2, 3, 1)
    assert m["bytes"] == the_manifest(kv_dir).stat().st_size and m["edits"] == 2  # the snapshot, the flush
    [seg] = r["segments"]
    assert seg["live"] and seg["error"] is None and seg["file"] == m["segments"][0]["file"]
    assert seg["bytes"] == (kv_dir / seg["file"]).stat().st_size == m["segments"][0]["file_size"]
    assert (m["segments"][0]["first_seq"], m["segments"][0]["last_seq"]) == (1, 3)
    # 6 bytes values + vec-a + key-4's tombstone; the index config; 3 index entries.
    assert (seg["user_keys"], seg["index_configs"], seg["index_entries"]) == (7, 1, 3)
    assert (seg["bytes_values"], seg["vector_records"], seg["tombstones"]) == (6, 4, 1)
    assert (seg["min_seq"], seg["max_seq"]) == (1, 3)
    groups = {(g["namespace"], g["dim"]): g["rows"] for g in seg["vector_groups"]}
    assert groups == {("user", KV_DIM): 1, ("index_entry", KV_DIM): 3}
    [wal] = r["wal"]
    assert wal["live"] and wal["error"] is None and wal["torn_tail"] is False
    assert (wal["records"], wal["writes"], wal["first_seq"], wal["last_seq"]) == (2, 6, 4, 5)
    assert (wal["bytes_writes"], wal["vector_writes"], wal["tombstone_writes"]) == (2, 2, 2)
    assert r["orphans"] == [] and r["missing"] == []
    assert r["totals"]["segment_entries"] == 11 and r["totals"]["wal_records"] == 2

    text = inspect_tool(kv_dir)
    assert text.code == 0
    assert "keyspace database" in text.out
    assert f"{m['file']} (named by CURRENT): format version 2, 2 edits" in text.out
    assert seg["file"] in text.out and wal["file"] in text.out
    assert "no MANIFEST" not in text.out


def the_manifest(path: Path) -> Path:
    """The manifest log CURRENT names."""
    return path / (path / "CURRENT").read_text().strip()


def test_summary_flags_keyspace_orphans(inspect_tool, kv_dir):
    (kv_dir / "seg-000999.pseg").write_bytes(segments(kv_dir)[0].read_bytes())
    (kv_dir / "CURRENT.tmp").write_bytes(b"partial")
    (kv_dir / "MANIFEST-000998").write_bytes(the_manifest(kv_dir).read_bytes())
    r = inspect_tool("--json", kv_dir).json
    orphans = {o["file"]: o["reason"] for o in r["orphans"]}
    assert set(orphans) == {"seg-000999.pseg", "CURRENT.tmp", "MANIFEST-000998"}
    assert "not named by the manifest" in orphans["seg-000999.pseg"]
    assert "temporary" in orphans["CURRENT.tmp"]
    assert "CURRENT does not name" in orphans["MANIFEST-000998"]
    run = inspect_tool("--json", "verify", kv_dir)
    assert run.code == 0 and any("not checked" in n["message"] for n in run.json["notes"])


def test_segment_names_the_kv_sections(inspect_tool, kv_dir):
    seg = segments(kv_dir)[0]
    run = inspect_tool("--json", "segment", seg)
    assert run.code == 0, run.out
    r = run.json
    assert r["keyspace"] is True and r["kv"]["entries"] == 11
    h = r["header"]
    assert (h["magic"], h["format_version"], h["header_size"]) == ("POMAISEG", 2, 128)
    assert (h["entry_count"], h["group_count"], h["min_seq"], h["max_seq"]) == (11, 2, 1, 3)
    assert h["file_number"] == int(seg.name[4:10]) and h["bytes"] == seg.stat().st_size
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
    assert all(s["crc_ok"] for s in r["sections"])
    assert all(s["offset"] % 64 == 0 and s["offset"] >= 128 for s in r["sections"])
    f = r["footer"]
    assert f["section_count"] == len(r["sections"]) and f["file_size"] == seg.stat().st_size
    assert f["section_table_offset"] + 32 * f["section_count"] + 32 == f["file_size"]
    text = inspect_tool("segment", seg)
    assert text.code == 0 and "keyspace segment: 11 entries" in text.out
    assert "format_version 2" in text.out and "row entries" in text.out and "block CRCs" in text.out


def test_kv_segment_summary_lists_its_groups(inspect_tool, kv_dir):
    """One group per (dim, metric) of vector records and one per collection:
    its kind, cid (null for records), dim, metric, rows, block size, graph."""
    seg = segments(kv_dir)[0]
    r = inspect_tool("--json", "segment", seg).json
    groups = r["kv"]["vector_groups"]
    assert [g["group"] for g in groups] == [0, 1]
    # Descriptors ascend by kind: 2 (byte-keyed collection rows), then 3 (vector records).
    entries, records = groups
    assert (entries["kind"], entries["namespace"], entries["cid"]) == ("bytes", "index_entry", IDX_CID)
    assert (records["kind"], records["namespace"], records["cid"]) == ("records", "user", None)
    for g, rows, seq in ((entries, 3, 3), (records, 1, 1)):  # e0..e2 at seq 3, vec-a at seq 1
        assert (g["dim"], g["metric"], g["rows"], g["tombstones"]) == (KV_DIM, "l2", rows, 0)
        assert g["rows_per_block"] == 4096 and g["blocks"] == 1  # 64 KiB / (4 floats * 4 bytes)
        assert isinstance(g["has_graph"], bool) and (g["graph"] is not None) == g["has_graph"]
        assert (g["min_seq"], g["max_seq"]) == (seq, seq)
    assert not records["has_graph"]  # vector records have no graph
    # The directory summary lists the same groups.
    summary = inspect_tool("--json", kv_dir).json
    assert summary["segments"][0]["vector_groups"] == groups
    text = inspect_tool("segment", seg).out
    assert f"g0 bytes cid {IDX_CID} dim {KV_DIM} l2: 3 rows" in text
    assert f"g1 records dim {KV_DIM} l2: 1 rows" in text
    assert f"g1 records dim {KV_DIM} l2: 1 rows" in inspect_tool(kv_dir).out


def test_graph_of_a_kv_segment_is_a_groups_graph(inspect_tool, kv_dir):
    """graph FILE of a keyspace segment shows one group's graph (--group G, or
    the first group with one). Today's flushes write no graph into segments:
    then graph FILE says so."""
    seg = segments(kv_dir)[0]
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


def test_dump_kv_segment(inspect_tool, kv_dir):
    seg = segments(kv_dir)[0]
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
    assert config["index_config"] == {"key_type": "bytes", "dim": KV_DIM, "m": 8, "ef_construction": 200,
                                      "metric": "l2", "graph_vectors": "float32", "shards": 1}
    assert config["seq"] == IDX_CID and config["value_length"] == 32
    entry = by_key[("index_entry", IDX_CID, "e2")]
    assert entry["kind"] == "vector" and entry["vector_prefix"] == [2.0] * KV_DIM and entry["metadata_prefix"] == "m2"
    limited = inspect_tool("--json", "dump", seg, "--limit", "3", "--prefix", "2").json
    assert len(limited["entries"]) == 3
    text = inspect_tool("dump", seg, "--limit", "0")
    assert text.code == 0
    assert f'index_entry cid {IDX_CID} key "e2"' in text.out and 'user key "bin\\x00\\xff"' in text.out
    assert "(dim 4, m 8, ef_construction 200, metric l2)" in text.out
    assert "more entries (--limit)" in inspect_tool("dump", seg, "--limit", "2").out


def test_dump_kv_wal(inspect_tool, kv_dir):
    [wal] = wals(kv_dir)
    r = inspect_tool("--json", "dump", wal, "--limit", "0").json
    assert r["ok"] is True and r["kind"] == "wal" and r["torn_tail"] is False
    first, second = r["records"]
    assert (first["seq"], first["type"], first["write_count"], first["offset"]) == (4, 16, 4, 0)
    writes = {(w["namespace"], w.get("index", w.get("cid")), w["key"]): w for w in first["writes"]}
    assert writes[("user", None, "key-0")]["kind"] == "tombstone"
    assert writes[("user", None, "key-9")]["value_prefix"] == "later"
    assert writes[("user", None, "vec-b")]["metric"] == "cosine" and writes[("user", None, "vec-b")]["dim"] == 2
    assert writes[("index_entry", IDX_CID, "e9")]["vector_prefix"] == [9.0] * KV_DIM
    assert second["seq"] == 5 and {w["kind"] for w in second["writes"]} == {"bytes", "tombstone"}
    # A lone WAL file (no CURRENT beside it) is recognised by its first record.
    lone = kv_dir.parent / "lone.log"
    lone.write_bytes(wal.read_bytes())
    assert inspect_tool("--json", "dump", lone).json["kind"] == "wal"
    text = inspect_tool("dump", wal)
    assert text.code == 0 and "commit record at offset 0  seq 4" in text.out
    assert f'index_entry cid {IDX_CID} key "e9"' in text.out


def test_dump_and_verify_the_manifest_log_and_current(inspect_tool, kv_dir):
    manifest = the_manifest(kv_dir)
    r = inspect_tool("--json", "dump", manifest).json
    assert r["ok"] is True and r["kind"] == "manifest" and r["manifest_log"]["last_seq"] == 3
    snapshot, flush = r["edits"]
    assert (snapshot["seq"], snapshot["offset"], snapshot["format_version"], snapshot["last_seq"]) == (1, 0, 2, 0)
    assert snapshot["added"] == [] and snapshot["removed"] == []
    [added] = flush["added"]
    assert flush["format_version"] is None and flush["last_seq"] == 3 and flush["seq"] == 2
    assert (added["file"], added["first_seq"], added["last_seq"]) == (segments(kv_dir)[0].name, 1, 3)
    assert flush["log_number"] == int(wals(kv_dir)[0].name[4:10])  # the WAL the flush started is live
    text = inspect_tool("dump", manifest).out
    assert "format version 2, 2 edits" in text and f"edit 2 at offset {flush['offset']}: log_number" in text
    assert f"+{added['file']} ({added['file_size']} bytes, seqs 1..3)" in text
    assert inspect_tool("--json", "dump", manifest, "--limit", "1").json["truncated"] is True
    current = inspect_tool("--json", "dump", kv_dir / "CURRENT").json
    assert current["kind"] == "current" and current["manifest"] == manifest.name
    assert inspect_tool("dump", kv_dir / "CURRENT").out.strip().endswith(f"names {manifest.name}")
    for f in (manifest, kv_dir / "CURRENT"):
        v = inspect_tool("--json", "verify", f)
        assert v.code == 0 and v.json["ok"] is True, v.out


def test_verify_clean_keyspace_database(inspect_tool, kv_dir):
    run = inspect_tool("--json", "verify", kv_dir)
    assert run.code == 0, run.out
    r = run.json
    assert r["ok"] is True and r["problems"] == []
    assert sorted(c["kind"] for c in r["checked"]) == ["manifest", "segment", "wal"]
    text = inspect_tool("verify", kv_dir)
    assert text.code == 0 and text.out.rstrip().endswith("verify: OK")
    for f in [*segments(kv_dir), *wals(kv_dir), the_manifest(kv_dir), kv_dir / "CURRENT"]:
        assert inspect_tool("verify", f).code == 0, f
        assert inspect_tool("--json", "verify", f).json["ok"] is True


def assert_fails_at(inspect_tool, target: Path, file: Path, offset: int) -> None:
    run = inspect_tool("--json", "verify", target)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(file) and err["offset"] == offset, err
    text = inspect_tool("verify", target)
    assert text.code == 1 and f"{file} at offset {offset}" in text.out.splitlines()[-1]


def test_verify_flipped_byte_in_kv_segment(inspect_tool, kv_dir):
    seg = segments(kv_dir)[0]
    values = next(s for s in inspect_tool("--json", "segment", seg).json["sections"] if s["name"] == "values")
    assert (values["kind"], values["group"]) == (130, None)
    flip(seg, values["offset"] + 3)
    assert_fails_at(inspect_tool, kv_dir, seg, values["offset"])
    assert_fails_at(inspect_tool, seg, seg, values["offset"])
    summary = inspect_tool("--json", kv_dir)
    assert summary.code == 1 and summary.json["segments"][0]["error"]["offset"] == values["offset"]
    assert inspect_tool("--json", "dump", seg).code == 1


def group_section(inspect_tool, seg: Path, group_kind: str, name: str) -> dict:
    """The section `name` of the segment's first group of kind `group_kind`."""
    r = inspect_tool("--json", "segment", seg).json
    g = next(g["group"] for g in r["kv"]["vector_groups"] if g["kind"] == group_kind)
    return next(s for s in r["sections"] if s["group"] == g and s["name"] == name)


def test_verify_flipped_byte_in_a_vector_block(inspect_tool, kv_dir):
    """A byte of a vector record's floats: the vectors section's checksum (the
    first check Verify makes) fails, naming the file and the section."""
    seg = segments(kv_dir)[0]
    vectors = group_section(inspect_tool, seg, "records", "vectors")
    assert vectors["kind"] == 147 and vectors["length"] == 4 * KV_DIM
    flip(seg, vectors["offset"] + 5)
    assert_fails_at(inspect_tool, seg, seg, vectors["offset"])
    assert_fails_at(inspect_tool, kv_dir, seg, vectors["offset"])
    run = inspect_tool("--json", "verify", seg)
    assert run.json["error"]["code"] == 5  # Corruption
    assert "checksum mismatch" in run.json["error"]["message"] and str(seg) in run.json["error"]["message"]
    assert [c["kind"] for c in run.json["checked"]] == ["segment"]
    r = inspect_tool("--json", "segment", seg)
    assert r.code == 1 and r.json["kv"] is None
    assert [s["crc_ok"] for s in r.json["sections"] if s["offset"] == vectors["offset"]] == [False]
    assert "MISMATCH" in inspect_tool("segment", seg).out
    summary = inspect_tool("--json", kv_dir)
    assert summary.code == 1 and summary.json["totals"]["live_keys"] is None
    assert inspect_tool("--json", "dump", seg).code == 1


def test_verify_finds_a_damaged_block_under_a_recomputed_section_checksum(inspect_tool, kv_dir):
    """The floats changed and the section table (entry CRC, table CRC in the
    footer) made to agree: the block CRC (section 152) still catches it."""
    seg = segments(kv_dir)[0]
    vectors = group_section(inspect_tool, seg, "bytes", "vectors")
    data = bytearray(seg.read_bytes())
    data[vectors["offset"] + 1] ^= 0x5A
    table = struct.unpack_from("<Q", data, len(data) - 32)[0]
    count = struct.unpack_from("<I", data, len(data) - 24)[0]
    [entry] = [table + 32 * i for i in range(count)
               if struct.unpack_from("<Q", data, table + 32 * i + 8)[0] == vectors["offset"]]
    body = bytes(data[vectors["offset"]:vectors["offset"] + vectors["length"]])
    struct.pack_into("<I", data, entry + 24, crc32c(body))
    struct.pack_into("<I", data, len(data) - 20, crc32c(bytes(data[table:table + 32 * count])))
    seg.write_bytes(bytes(data))
    sections = inspect_tool("--json", "segment", seg).json["sections"]
    assert [s["crc_ok"] for s in sections if s["offset"] == vectors["offset"]] == [True]
    run = inspect_tool("--json", "verify", seg)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(seg) and err["offset"] == vectors["offset"]
    assert "checksum mismatch in block 0" in err["message"]
    assert_fails_at(inspect_tool, kv_dir, seg, vectors["offset"])


def test_a_format_1_keyspace_segment_is_refused_by_name(inspect_tool, kv_dir):
    """A container of format version 1 with the old keyspace marker (shard
    field 0x4B565347) is a keyspace segment this version does not read: each
    command says so, naming the file, and exits 1."""
    seg = segments(kv_dir)[0]
    data = bytearray(seg.read_bytes())
    struct.pack_into("<I", data, 8, 1)
    struct.pack_into("<I", data, 24, 0x4B565347)
    old = kv_dir.parent / "old.pseg"
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
    summary = inspect_tool("--json", kv_dir)
    assert summary.code == 1 and "format version 1" in summary.json["segments"][0]["error"]["message"]
    assert summary.json["totals"]["live_keys"] is None
    v = inspect_tool("--json", "verify", kv_dir)
    assert v.code == 1 and v.json["error"]["file"] == str(seg) and "format version 1" in v.json["error"]["message"]


def test_verify_flipped_byte_in_kv_wal_record(inspect_tool, kv_dir):
    [wal] = wals(kv_dir)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    second = records[1]["offset"]
    flip(wal, second + 24 + 2)  # inside the payload of the second record
    assert_fails_at(inspect_tool, kv_dir, wal, second)
    assert_fails_at(inspect_tool, wal, wal, second)
    assert inspect_tool("--json", kv_dir).code == 1
    flip(wal, second + 24 + 2)
    flip(wal, 3)  # the first record's header
    assert_fails_at(inspect_tool, kv_dir, wal, 0)


@pytest.mark.parametrize("key", [b"\x07unknown-namespace", b"\x00" + b"k" * 65536, b"\x00",
                                 b"\x02" + bytes(8), b"\x02idx\x00", b"\x01bad\x00name"])
def test_verify_fails_on_a_wal_record_the_engine_cannot_apply(inspect_tool, kv_dir, key):
    """A well-framed commit record (checksums right) writing a key no commit
    can write: verify fails at that record, as the engine's open does."""
    import alopex

    [wal] = wals(kv_dir)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    last_seq = max(r["seq"] for r in records)
    at = wal.stat().st_size
    payload = struct.pack("<IBI", 1, 1, len(key)) + key + struct.pack("<I", 1) + b"x"
    with open(wal, "ab") as f:
        f.write(wal_record(16, last_seq + 1, payload))
    assert_fails_at(inspect_tool, kv_dir, wal, at)
    assert_fails_at(inspect_tool, wal, wal, at)
    with pytest.raises(alopex.AlopexError, match=f"offset {at}"):
        alopex.Database.open(kv_dir)


def test_verify_fails_on_a_wal_vector_record_with_a_nan(inspect_tool, kv_dir):
    import alopex

    [wal] = wals(kv_dir)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    last_seq = max(r["seq"] for r in records)
    key = b"\x00vec"
    payload = (struct.pack("<IBI", 1, 2, len(key)) + key + struct.pack("<BBI", 0, 0, 0)
               + struct.pack("<I2f", 2, 1.0, float("nan")))
    at = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(wal_record(16, last_seq + 1, payload))
    assert_fails_at(inspect_tool, kv_dir, wal, at)
    with pytest.raises(alopex.AlopexError, match=f"offset {at}"):
        alopex.Database.open(kv_dir)


def test_verify_torn_kv_wal_tail_is_a_note(inspect_tool, kv_dir):
    [wal] = wals(kv_dir)
    good = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05\x06\x07")
    run = inspect_tool("--json", "verify", kv_dir)
    assert run.code == 0, run.out
    [note] = [n for n in run.json["notes"] if "torn tail" in n["message"]]
    assert note["file"] == str(wal) and note["offset"] == good


def test_verify_flipped_byte_in_the_manifest_log(inspect_tool, kv_dir):
    import alopex

    manifest = the_manifest(kv_dir)
    second = inspect_tool("--json", "dump", manifest).json["edits"][1]["offset"]
    flip(manifest, second + 24 + 2)  # inside the flush's edit
    assert_fails_at(inspect_tool, kv_dir, manifest, second)
    assert_fails_at(inspect_tool, manifest, manifest, second)
    assert inspect_tool("--json", kv_dir).code == 1
    with pytest.raises(alopex.AlopexError, match=f"{manifest} at offset {second}"):
        alopex.Database.open(kv_dir)


def test_verify_damaged_current_or_a_missing_manifest(inspect_tool, kv_dir):
    import alopex

    manifest = the_manifest(kv_dir)
    current = kv_dir / "CURRENT"
    current.write_text("MANIFEST-1\n")
    assert_fails_at(inspect_tool, kv_dir, current, 0)
    assert_fails_at(inspect_tool, current, current, 0)
    current.write_text("MANIFEST-000777\n")
    run = inspect_tool("--json", "verify", kv_dir)
    assert run.code == 1 and "MANIFEST-000777, which does not exist" in run.json["error"]["message"]
    with pytest.raises(alopex.AlopexError, match="MANIFEST-000777, which does not exist"):
        alopex.Database.open(kv_dir)
    current.write_text(manifest.name + "\n")
    assert inspect_tool("verify", kv_dir).code == 0


def test_verify_segment_size_against_the_manifest(inspect_tool, kv_dir):
    """A manifest whose edit gives the segment another size (its record's
    checksum right): verify names the segment and both sizes."""
    seg = segments(kv_dir)[0]
    manifest = the_manifest(kv_dir)
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
    run = inspect_tool("--json", "verify", kv_dir)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(seg), err
    assert f"holds {seg.stat().st_size} bytes; the manifest says {seg.stat().st_size + 64}" in err["message"]


def test_never_modifies_a_keyspace_file(inspect_tool, kv_dir):
    seg = segments(kv_dir)[0]
    before = file_hashes(kv_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in kv_dir.iterdir()}
    [wal] = wals(kv_dir)
    for args in ([kv_dir], ["verify", kv_dir], ["segment", seg], ["dump", seg, "--limit", "0"],
                 ["dump", wal], ["dump", the_manifest(kv_dir)], ["dump", kv_dir / "CURRENT"], ["graph", seg],
                 ["verify", seg], ["verify", wal], ["verify", the_manifest(kv_dir)]):
        inspect_tool(*args)
        inspect_tool("--json", *args)
    assert file_hashes(kv_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in kv_dir.iterdir()} == mtimes


def test_keyspace_database_still_opens_after_inspection(inspect_tool, kv_dir):
    import alopex

    assert inspect_tool("verify", kv_dir).code == 0
    db = alopex.Database.open(kv_dir)
    try:
        with db.begin(alopex.TxnMode.READ_ONLY) as t:
            assert t.get(b"key-9") == b"later" and t.get(b"key-0") is None
    finally:
        db.close()


def test_graph_shows_reused_rows_and_representation(inspect_tool, db_dir):
    # db_dir: the pomaidb database of conftest (its default collection's graph, built from nothing).
    seg = segments(db_dir)[0]
    r = inspect_tool("--json", "graph", seg).json
    assert r["group_kind"] == "u64"
    assert r["reused_rows"] == 0 and r["representation"] in ("sq8", "float32")
    assert "reused_rows 0" in inspect_tool("graph", seg).out
    [group] = inspect_tool("--json", "segment", seg).json["kv"]["vector_groups"]
    assert group["graph"]["reused_rows"] == 0 and group["graph"]["representation"] == r["representation"]
    summary = inspect_tool("--json", db_dir).json
    assert all(g["graph"]["reused_rows"] == 0 for s in summary["segments"] for g in s["vector_groups"])
