"""pomai-inspect on real databases: every command in text and JSON, verify's
exit status on clean and damaged files, read-only behaviour, and use while
the database is open in another process."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import pomaidb

from inspect_support import DIM, crc32c, file_hashes, flip, segments, the_manifest, wal_record, wals

# ---------------------------------------------------------------------------
# The commands


def test_summary_lists_manifest_segments_and_wal(inspect_tool, db_dir):
    run = inspect_tool("--json", db_dir)
    assert run.code == 0, run.out
    r = run.json
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


def test_summary_flags_orphans(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    shutil.copy(seg, db_dir / "seg-000999.pseg")
    (db_dir / "seg-001000.pseg.tmp").write_bytes(b"partial")
    r = inspect_tool("--json", db_dir).json
    orphans = {o["file"]: o["reason"] for o in r["orphans"]}
    assert "not named by the manifest" in orphans["seg-000999.pseg"]
    assert "temporary" in orphans["seg-001000.pseg.tmp"]
    assert [s["live"] for s in r["segments"] if s["file"] == "seg-000999.pseg"] == [False]
    assert "orphans (2)" in inspect_tool(db_dir).out
    # Orphans are garbage the next open removes, not damage.
    assert inspect_tool("verify", db_dir).code == 0


def test_summary_reports_a_damaged_segment(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    flip(seg, 0)
    run = inspect_tool("--json", db_dir)
    assert run.code == 1
    [entry] = [s for s in run.json["segments"] if s["file"] == seg.name]
    assert entry["error"]["offset"] == 0 and "bad magic" in entry["error"]["message"]
    assert run.json["error"]["file"] == str(seg)
    assert "ERROR" in inspect_tool(db_dir).out


def test_segment_shows_header_sections_and_footer(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    run = inspect_tool("--json", "segment", seg)
    assert run.code == 0, run.out
    r = run.json
    h = r["header"]
    assert h["magic"] == "POMAISEG" and h["format_version"] == 2 and h["header_size"] == 128
    assert h["group_count"] == 1
    [g] = r["kv"]["vector_groups"]
    assert (g["kind"], g["dim"], g["metric"]) == ("u64", DIM, "l2")
    names = [s["name"] for s in r["sections"]]
    for name in ("row ids", "vectors", "metadata offsets", "metadata blob", "tombstone ids", "block CRCs"):
        assert name in names
    assert "hnsw header" in names and "hnsw layer-0 links" in names
    assert all(s["crc_ok"] for s in r["sections"])
    assert all(s["offset"] % 64 == 0 for s in r["sections"])
    ids = next(s for s in r["sections"] if s["name"] == "row ids")
    assert ids["group"] == 0 and ids["length"] == 8 * g["rows"]
    f = r["footer"]
    assert f["file_size"] == seg.stat().st_size and f["section_count"] == len(names)
    assert g["graph"]["kind"] == "hnsw"

    text = inspect_tool("segment", seg).out
    assert "hnsw layer-0 links" in text and "footer: section_table_offset" in text


def test_dump_segment_rows(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    run = inspect_tool("--json", "dump", seg, "--limit", "3", "--prefix", "2")
    assert run.code == 0, run.out
    r = run.json
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


def test_dump_segment_with_a_damaged_vector_block(inspect_tool, db_dir):
    """A flipped float of a row: dump fails naming the file and the offset, no rows from it."""
    seg = segments(db_dir)[0]
    vectors = section(inspect_tool, seg, "vectors")
    flip(seg, vectors["offset"] + 13)
    run = inspect_tool("--json", "dump", seg)
    assert run.code == 1
    assert run.json["error"]["file"] == str(seg) and run.json["error"]["offset"] == vectors["offset"]
    text = inspect_tool("dump", seg)
    assert text.code == 1 and f"{seg} at offset {vectors['offset']}" in text.out


def test_dump_wal_records(inspect_tool, db_dir):
    [wal] = wals(db_dir)
    run = inspect_tool("--json", "dump", wal, "--limit", "100")
    assert run.code == 0, run.out
    r = run.json
    assert r["kind"] == "wal"
    put_rec, del_rec = r["records"]
    assert put_rec["offset"] == 0 and put_rec["type"] == 16 and put_rec["op_count"] == 60
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


def test_dump_lone_wal_decodes_without_its_manifest(inspect_tool, db_dir, tmp_path):
    """Records carry their dims: a WAL file away from its database decodes whole."""
    [wal] = wals(db_dir)
    lone = tmp_path / "copy.log"
    shutil.copy(wal, lone)
    r = inspect_tool("--json", "dump", lone).json
    first = r["records"][0]["ops"][0]
    assert first["id"] == 400 and len(first["vector_prefix"]) == 4
    assert inspect_tool("--json", "verify", lone).code == 0


def test_dump_manifest(inspect_tool, db_dir):
    r = inspect_tool("--json", "dump", the_manifest(db_dir)).json
    assert r["kind"] == "manifest"
    listed = sorted(e["file"] for e in r["manifest_log"]["segments"])
    assert listed == [p.name for p in segments(db_dir)]
    added = [a["file"] for e in r["edits"] for a in e["added"]]
    assert added == listed


def test_graph_levels_degrees_reachability(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    run = inspect_tool("--json", "graph", seg)
    assert run.code == 0, run.out
    r = run.json
    assert r["m"] == 8 and r["m0"] == 16 and r["ef_construction"] == 200
    assert r["representation"] in ("sq8", "float32") and r["verified"] is True
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
    assert "layer 0 reachable from the entry point" in text and "verify: ok" in text


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


# ---------------------------------------------------------------------------
# verify


def test_verify_clean_database(inspect_tool, db_dir):
    run = inspect_tool("--json", "verify", db_dir)
    assert run.code == 0, run.out
    r = run.json
    assert r["ok"] is True and r["error"] is None and r["problems"] == []
    kinds = sorted(c["kind"] for c in r["checked"])
    assert kinds == ["manifest", "segment", "wal"]
    text = inspect_tool("verify", db_dir)
    assert text.code == 0 and text.out.rstrip().endswith("verify: OK")
    for f in [*segments(db_dir), *wals(db_dir), the_manifest(db_dir), db_dir / "CURRENT"]:
        assert inspect_tool("verify", f).code == 0, f


def section(inspect_tool, seg: Path, name: str) -> dict:
    return next(s for s in inspect_tool("--json", "segment", seg).json["sections"] if s["name"] == name)


def assert_fails_at(inspect_tool, target: Path, file: Path, offset: int) -> None:
    run = inspect_tool("--json", "verify", target)
    assert run.code == 1, run.out
    err = run.json["error"]
    assert err["file"] == str(file) and err["offset"] == offset, err
    text = inspect_tool("verify", target)
    assert text.code == 1
    assert f"{file} at offset {offset}" in text.out.splitlines()[-1]


def test_verify_flipped_byte_in_segment_section(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    vectors = section(inspect_tool, seg, "vectors")
    flip(seg, vectors["offset"] + 13)
    assert_fails_at(inspect_tool, db_dir, seg, vectors["offset"])
    assert_fails_at(inspect_tool, seg, seg, vectors["offset"])
    assert "checksum mismatch in vectors section" in inspect_tool("--json", "verify", seg).json["error"]["message"]


def test_verify_flipped_byte_in_graph_section(inspect_tool, db_dir):
    [seg] = segments(db_dir)
    links = section(inspect_tool, seg, "hnsw layer-0 links")
    flip(seg, links["offset"] + 4 * 17 + 1)
    assert_fails_at(inspect_tool, db_dir, seg, links["offset"])
    r = inspect_tool("--json", "segment", seg).json
    assert [s["crc_ok"] for s in r["sections"] if s["name"] == "hnsw layer-0 links"] == [False]


def test_verify_graph_structure_behind_a_valid_checksum(inspect_tool, db_dir):
    # A link count out of range under a recomputed section CRC: only the graph's own Verify sees it.
    seg = segments(db_dir)[0]
    r = inspect_tool("--json", "segment", seg).json
    links = next(s for s in r["sections"] if s["name"] == "hnsw layer-0 links")
    data = bytearray(seg.read_bytes())
    data[links["offset"]:links["offset"] + 4] = struct.pack("<I", 999)
    body = bytes(data[links["offset"]:links["offset"] + links["length"]])
    table = r["footer"]["section_table_offset"]
    index = next(i for i, s in enumerate(r["sections"]) if s["name"] == "hnsw layer-0 links")
    entry = table + 32 * index
    data[entry + 24:entry + 28] = struct.pack("<I", crc32c(body))
    table_bytes = bytes(data[table:table + 32 * len(r["sections"])])
    footer = len(data) - 32
    data[footer + 12:footer + 16] = struct.pack("<I", crc32c(table_bytes))
    seg.write_bytes(bytes(data))
    run = inspect_tool("--json", "verify", seg)
    assert run.code == 1
    assert run.json["error"]["offset"] == links["offset"]
    assert "links on layer 0" in run.json["error"]["message"]
    assert inspect_tool("--json", "graph", seg).code == 1


@pytest.mark.parametrize("record_type", [16, 17, 1])
def test_verify_fails_on_a_wal_record_the_engine_cannot_apply(inspect_tool, db_dir, record_type):
    """A well-framed write batch or row array (checksums right) holding a NaN,
    which no write makes, or a record of database format version 1: verify
    fails at that record, as the engine's open does."""
    [wal] = wals(db_dir)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    last_seq = max(r["seq"] for r in records)
    vector = struct.pack(f"<{DIM}f", *([1.0] * (DIM - 1) + [float("nan")]))
    if record_type == 16:  # one put row: cid 0, id 77, the dim, no metadata
        payload = struct.pack("<IBQQII", 1, 4, 0, 77, DIM, 0) + vector
    elif record_type == 17:  # a row array of one row
        payload = struct.pack("<QIIQ", 0, DIM, 1, 77) + vector
    else:  # format 1's batch record, well formed then
        payload = struct.pack("<IBQI", 1, 1, 77, 0) + struct.pack(f"<{DIM}f", *([1.0] * DIM))
    at = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(wal_record(record_type, last_seq + 1, payload))
    assert_fails_at(inspect_tool, db_dir, wal, at)
    assert_fails_at(inspect_tool, wal, wal, at)
    with pytest.raises(pomaidb.PomaiDBError, match=f"offset {at}"):
        pomaidb.open_db(db_dir, dim=DIM, shards=2, metric="l2")


def test_verify_flipped_byte_in_wal_record(inspect_tool, db_dir):
    [wal] = wals(db_dir)
    records = inspect_tool("--json", "dump", wal, "--limit", "0").json["records"]
    second = records[1]["offset"]
    flip(wal, second + 24 + 2)  # inside the payload of the second record
    assert_fails_at(inspect_tool, db_dir, wal, second)
    assert_fails_at(inspect_tool, wal, wal, second)
    flip(wal, second + 24 + 2)
    flip(wal, 3)  # the first record's header
    assert_fails_at(inspect_tool, db_dir, wal, 0)


def test_verify_flipped_byte_in_manifest(inspect_tool, db_dir):
    manifest = the_manifest(db_dir)
    edits = inspect_tool("--json", "dump", manifest).json["edits"]
    second = edits[1]["offset"]
    flip(manifest, second + 24 + 2)  # inside the payload of the second edit
    assert_fails_at(inspect_tool, db_dir, manifest, second)
    assert_fails_at(inspect_tool, manifest, manifest, second)
    assert inspect_tool("--json", db_dir).code == 1


def test_verify_torn_wal_tail_is_a_note_not_a_failure(inspect_tool, db_dir):
    [wal] = wals(db_dir)
    good = wal.stat().st_size
    with open(wal, "ab") as f:
        f.write(b"\x01\x02\x03\x04\x05\x06\x07")  # a header cut short by a crash
    run = inspect_tool("--json", "verify", db_dir)
    assert run.code == 0, run.out
    [note] = [n for n in run.json["notes"] if "torn tail" in n["message"]]
    assert note["file"] == str(wal) and note["offset"] == good
    assert "note:" in inspect_tool("verify", db_dir).out
    summary = inspect_tool("--json", db_dir).json
    assert summary["wal"][0]["torn_tail"] is True and summary["wal"][0]["good_end"] == good
    # A record whose payload was cut short is a torn tail too.
    data = wal.read_bytes()[:good]
    wal.write_bytes(data[:-5])
    assert inspect_tool("verify", db_dir).code == 0
    # And the engine agrees: it opens and drops the tail.
    with pomaidb.open_db(db_dir, dim=DIM, shards=2, metric="l2") as db:
        assert db.count() > 0


def test_verify_missing_segment(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    seg.unlink()
    run = inspect_tool("--json", "verify", db_dir)
    assert run.code == 1 and "which is missing" in run.json["error"]["message"]
    summary = inspect_tool("--json", db_dir)
    assert summary.code == 1 and summary.json["missing"][0]["file"] == seg.name


# ---------------------------------------------------------------------------
# Read-only, concurrency, usage


def test_never_modifies_a_file(inspect_tool, db_dir):
    seg = segments(db_dir)[0]
    flip(seg, section(inspect_tool, seg, "row ids")["offset"] + 1)  # damaged files too
    before = file_hashes(db_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in db_dir.iterdir()}
    [wal] = wals(db_dir)
    for args in [(db_dir,), ("verify", db_dir), ("segment", seg), ("dump", seg), ("dump", wal),
                 ("graph", seg), ("verify", seg), ("verify", wal), ("dump", the_manifest(db_dir))]:
        inspect_tool(*args)
        inspect_tool("--json", *args)
    assert file_hashes(db_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in db_dir.iterdir()} == mtimes


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


@pytest.mark.parametrize("args", [
    (),
    ("bogus", "x"),
    ("dump",),
    ("verify", "a", "b"),
    ("--limit", "x", "dump", "f"),
    ("--frobnicate", "x"),
    ("--kind", "table", "dump", "f"),
])
def test_bad_usage_exits_2_with_usage(inspect_tool, args):
    run = inspect_tool(*args)
    assert run.code == 2
    assert "usage: pomai-inspect" in run.err and run.out == ""


def test_help(inspect_tool):
    run = inspect_tool("--help")
    assert run.code == 0 and "usage: pomai-inspect" in run.out


def test_missing_path_is_a_problem_not_a_crash(inspect_tool, tmp_path):
    for args in [("verify", tmp_path / "nope"), ("segment", tmp_path / "nope.pseg"), (tmp_path / "nope",),
                 ("dump", tmp_path / "nope.log"), ("graph", tmp_path / "nope.pseg")]:
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
