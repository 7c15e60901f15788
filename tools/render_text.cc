// Text output of pomai-inspect: rendered from the same Json report that
// --json prints, so the two never disagree.
#include "render_text.h"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace pomai::inspect {
namespace {

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof(buf), format, ap);
  va_end(ap);
  return buf;
}

std::string T(const Json& j) { return j.Text(); }

std::string Hex32(const Json& j) { return Fmt("0x%08" PRIx64, j.AsUint()); }

std::string ProblemText(const Json& p) {
  if (p.is_null()) return "";
  std::string s = p["message"].AsString();
  // The message names the file and offset when the engine knows them; say so explicitly otherwise.
  if (s.find(p["file"].AsString()) == std::string::npos) s = p["file"].AsString() + ": " + s;
  return s;
}

std::string VectorText(const Json& v, const Json& dim) {
  std::string s = "[";
  for (size_t i = 0; i < v.items().size(); ++i) {
    if (i > 0) s += ", ";
    s += Fmt("%.6g", v.items()[i].AsDouble());
  }
  if (!dim.is_null() && v.items().size() < dim.AsUint()) s += ", ...";
  return s + "]";
}

// One entry of a segment or write of a WAL record: namespace, key, seq, kind, value.
std::string EntryText(const Json& e) {
  std::string s = T(e["namespace"]);
  if (!e["index"].is_null()) s += " index \"" + T(e["index"]) + "\"";
  if (e.Has("cid")) s += " cid " + T(e["cid"]);
  if (!e["key"].is_null()) s += " key \"" + T(e["key"]) + "\"";
  s += "  seq " + T(e["seq"]) + "  " + T(e["kind"]);
  const std::string kind = e["kind"].AsString();
  if (kind == "bytes") {
    s += Fmt(" %s bytes \"%s\"", T(e["value_length"]).c_str(), T(e["value_prefix"]).c_str());
    const Json& c = e["index_config"];
    if (!c.is_null()) {
      s += Fmt(" (dim %s, m %s, ef_construction %s, metric %s)", T(c["dim"]).c_str(), T(c["m"]).c_str(),
               T(c["ef_construction"]).c_str(), T(c["metric"]).c_str());
    }
  } else if (kind == "vector") {
    s += Fmt(" dim %s metric %s", T(e["dim"]).c_str(), T(e["metric"]).c_str());
    if (e["has_metadata"].AsBool()) {
      s += Fmt(" metadata %s bytes \"%s\"", T(e["metadata_length"]).c_str(), T(e["metadata_prefix"]).c_str());
    }
    s += " " + VectorText(e["vector_prefix"], e["dim"]);
    if (e.Has("group")) s += "  (group " + T(e["group"]) + " row " + T(e["row"]) + ")";
  }
  return s;
}

// One vector group of a segment: "g0 bytes cid 2 dim 4 l2: 3 rows (hnsw)".
std::string GroupText(const Json& g) {
  std::string s = "g" + T(g["group"]) + " " + T(g["kind"]);
  if (!g["cid"].is_null()) s += " cid " + T(g["cid"]);
  s += Fmt(" dim %s %s: %s rows", T(g["dim"]).c_str(), T(g["metric"]).c_str(), T(g["rows"]).c_str());
  if (g["tombstones"].AsUint() > 0) s += ", " + T(g["tombstones"]) + " tombstones";
  if (g["has_graph"].AsBool()) s += " (hnsw)";
  return s;
}

std::string SegmentText(const Json& s) {
  // The groups go after Fmt, whose buffer would cut a long list.
  std::string text = Fmt("%s entries (%s user keys, %s index configs, %s index entries; %s bytes values, "
                         "%s vector records, %s tombstones; %s value bytes), seq %s..%s, vector groups:",
                         T(s["entries"]).c_str(), T(s["user_keys"]).c_str(), T(s["index_configs"]).c_str(),
                         T(s["index_entries"]).c_str(), T(s["bytes_values"]).c_str(), T(s["vector_records"]).c_str(),
                         T(s["tombstones"]).c_str(), T(s["value_bytes"]).c_str(), T(s["min_seq"]).c_str(),
                         T(s["max_seq"]).c_str());
  const auto& groups = s["vector_groups"].items();
  if (groups.empty()) text += " none";
  for (size_t i = 0; i < groups.size(); ++i) {
    text += i == 0 ? " " : "; ";
    text += GroupText(groups[i]);
  }
  return text;
}

// A manifest log's state: file, format version, numbers, segments.
std::string ManifestLogText(const Json& m) {
  std::string s = Fmt("%s (named by CURRENT): format version %s, %s edits (%s bytes), next_file_number %s, "
                      "log_number %s, last_seq %s, %zu segments",
                      T(m["file"]).c_str(), T(m["format_version"]).c_str(), T(m["edits"]).c_str(),
                      T(m["bytes"]).c_str(), T(m["next_file_number"]).c_str(), T(m["log_number"]).c_str(),
                      T(m["last_seq"]).c_str(), m["segments"].items().size());
  for (const Json& e : m["segments"].items()) {
    s += Fmt("\n    %-18s %10s bytes  seqs %s..%s", T(e["file"]).c_str(), T(e["file_size"]).c_str(),
             T(e["first_seq"]).c_str(), T(e["last_seq"]).c_str());
  }
  return s;
}

void Summary(const Json& r, std::string* out) {
  *out += "keyspace database " + T(r["path"]) + "\n";
  const Json& m = r["manifest_log"];
  if (!m.is_null()) *out += "  " + ManifestLogText(m) + "\n";
  if (!r.Has("segments")) return;  // a directory that could not be listed, or of format version 1
  const Json& segs = r["segments"];
  *out += Fmt("  KV segments (%zu):\n", segs.items().size());
  for (const Json& s : segs.items()) {
    *out += Fmt("    %-18s %s %10s bytes  ", T(s["file"]).c_str(), s["live"].AsBool() ? "live" : "NOT LIVE",
                T(s["bytes"]).c_str());
    *out += (s["error"].is_null() ? SegmentText(s) : std::string("unreadable")) + "\n";
    if (!s["error"].is_null()) *out += "      ERROR: " + ProblemText(s["error"]) + "\n";
  }
  const Json& wals = r["wal"];
  *out += Fmt("  WAL files (%zu):\n", wals.items().size());
  if (!wals.items().empty()) {
    *out += Fmt("    %-18s %5s %12s %8s %8s %8s %8s %8s %8s %10s %-14s %s\n", "file", "live", "bytes", "records",
                "row puts", "row dels", "writes", "bytes", "vectors", "tombstones", "seq", "tail");
  }
  for (const Json& w : wals.items()) {
    *out += Fmt("    %-18s %5s %12s %8s %8s %8s %8s %8s %8s %10s %-14s %s\n", T(w["file"]).c_str(),
                w["live"].AsBool() ? "yes" : "no", T(w["bytes"]).c_str(), T(w["records"]).c_str(),
                T(w["puts"]).c_str(), T(w["deletes"]).c_str(), T(w["writes"]).c_str(), T(w["bytes_writes"]).c_str(),
                T(w["vector_writes"]).c_str(),
                T(w["tombstone_writes"]).c_str(), (T(w["first_seq"]) + ".." + T(w["last_seq"])).c_str(),
                w["torn_tail"].AsBool() ? "torn" : "clean");
    if (!w["error"].is_null()) *out += "      ERROR: " + ProblemText(w["error"]) + "\n";
  }
  const Json& orphans = r["orphans"];
  if (!orphans.items().empty()) {
    *out += Fmt("  orphans (%zu): files the manifest does not need\n", orphans.items().size());
    for (const Json& o : orphans.items()) {
      *out += Fmt("    %-18s %12s  %s\n", T(o["file"]).c_str(), T(o["bytes"]).c_str(), T(o["reason"]).c_str());
    }
  }
  for (const Json& miss : r["missing"].items()) {
    *out += "  MISSING: " + T(miss["file"]) + " is named by the manifest\n";
  }
  const Json& t = r["totals"];
  *out += Fmt("  total: %s live segments, %s segment entries, %s rows, %s tombstones, %s live WAL records (%s writes), "
              "%s bytes\n",
              T(t["live_segments"]).c_str(), T(t["segment_entries"]).c_str(), T(t["segment_rows"]).c_str(),
              T(t["segment_tombstones"]).c_str(), T(t["wal_records"]).c_str(), T(t["wal_writes"]).c_str(),
              T(t["bytes"]).c_str());
  if (t["live_keys"].is_null()) {
    *out += "  live keys: unknown (a live file is missing or unreadable)\n";
    *out += "  live rows: unknown\n";
  } else {
    *out += Fmt("  live keys: %s user keys, %s index entries (the newest version of each key is not a delete)\n",
                T(t["live_keys"]).c_str(), T(t["live_index_entries"]).c_str());
    *out += "  live rows: " + T(t["live_rows"]) + " (the newest version of each id is not a delete)\n";
  }
}

// A WAL record of row ops (put and delete row, a row array).
void RowRecordText(const Json& rec, std::string* out) {
  *out += Fmt("  row record at offset %s  seq %s  type %s  %s bytes  %s ops\n", T(rec["offset"]).c_str(),
              T(rec["seq"]).c_str(), T(rec["type"]).c_str(), T(rec["length"]).c_str(), T(rec["op_count"]).c_str());
  for (const Json& op : rec["ops"].items()) {
    if (op["kind"].AsString() == "put") {
      *out += Fmt("    put    id %s  cid %s  metadata %s bytes \"%s\"  vector %s\n", T(op["id"]).c_str(),
                  T(op["cid"]).c_str(), T(op["metadata_length"]).c_str(), T(op["metadata_prefix"]).c_str(),
                  VectorText(op["vector_prefix"], Json()).c_str());
    } else {
      *out += "    delete id " + T(op["id"]) + "  cid " + T(op["cid"]) + "\n";
    }
  }
}

void Dump(const Json& r, std::string* out) {
  *out += T(r["kind"]) + " " + T(r["file"]) + "\n";
  const std::string kind = r["kind"].AsString();
  if (kind == "segment" && r.Has("entries")) {
    *out += "  " + SegmentText(r["summary"]) + "\n";
    for (const Json& e : r["entries"].items()) *out += "  entry " + T(e["entry"]) + "  " + EntryText(e) + "\n";
    if (r["entries"].items().size() < r["total_entries"].AsUint()) {
      *out += Fmt("  ... %" PRIu64 " more entries (--limit)\n", r["total_entries"].AsUint() - r["entries"].items().size());
    }
    // The rows of the u64 groups: "g0 row 5  id 7  seq 2  metadata 6 bytes "meta-7"  vector [...]".
    for (const Json& row : r["rows"].items()) {
      *out += Fmt("  g%s row %s  id %s  seq %s  metadata %s bytes \"%s\"  vector %s\n", T(row["group"]).c_str(),
                  T(row["row"]).c_str(), T(row["id"]).c_str(), T(row["seq"]).c_str(),
                  T(row["metadata_length"]).c_str(), T(row["metadata_prefix"]).c_str(),
                  VectorText(row["vector_prefix"], Json()).c_str());
    }
    if (r["rows"].items().size() < r["total_rows"].AsUint()) {
      *out += Fmt("  ... %" PRIu64 " more rows (--limit)\n", r["total_rows"].AsUint() - r["rows"].items().size());
    }
    for (const Json& t : r["row_tombstones"].items()) {
      *out += Fmt("  g%s tombstone  id %s  seq %s\n", T(t["group"]).c_str(), T(t["id"]).c_str(), T(t["seq"]).c_str());
    }
    if (r["row_tombstones"].items().size() < r["total_row_tombstones"].AsUint()) {
      *out += Fmt("  ... %" PRIu64 " more tombstones (--limit)\n",
                  r["total_row_tombstones"].AsUint() - r["row_tombstones"].items().size());
    }
  } else if (kind == "wal") {
    for (const Json& rec : r["records"].items()) {
      if (rec.Has("op_count")) {
        RowRecordText(rec, out);
        continue;
      }
      *out += Fmt("  commit record at offset %s  seq %s  type %s  %s bytes  %s writes\n", T(rec["offset"]).c_str(),
                  T(rec["seq"]).c_str(), T(rec["type"]).c_str(), T(rec["length"]).c_str(),
                  T(rec["write_count"]).c_str());
      for (const Json& w : rec["writes"].items()) *out += "    " + EntryText(w) + "\n";
    }
    if (r["truncated"].AsBool()) *out += "  ... (--limit)\n";
    if (r["torn_tail"].AsBool()) *out += "  torn tail after the last record (dropped on recovery)\n";
  } else if (kind == "current" && r.Has("manifest")) {
    *out += "  names " + T(r["manifest"]) + "\n";
  } else if (kind == "manifest" && r.Has("manifest_log")) {
    *out += "  " + ManifestLogText(r["manifest_log"]) + "\n";
    for (const Json& e : r["edits"].items()) {
      *out += Fmt("  edit %s at offset %s:", T(e["seq"]).c_str(), T(e["offset"]).c_str());
      for (const char* f : {"format_version", "log_number", "last_seq", "next_file_number"}) {
        if (!e[f].is_null()) *out += Fmt(" %s %s", f, T(e[f]).c_str());
      }
      for (const Json& a : e["added"].items()) {
        *out += Fmt(" +%s (%s bytes, seqs %s..%s)", T(a["file"]).c_str(), T(a["file_size"]).c_str(),
                    T(a["first_seq"]).c_str(), T(a["last_seq"]).c_str());
      }
      for (const Json& n : e["removed"].items()) *out += " -segment " + T(n);
      *out += "\n";
    }
    if (r["truncated"].AsBool()) *out += "  ... (--limit)\n";
  }
}

void Segment(const Json& r, std::string* out) {
  *out += "segment " + T(r["file"]) + "\n";
  const Json& h = r["header"];
  if (h.is_null()) return;
  *out += Fmt("  header: magic %s, format_version %s, header_size %s, header_crc %s\n", T(h["magic"]).c_str(),
              T(h["format_version"]).c_str(), T(h["header_size"]).c_str(), Hex32(h["header_crc"]).c_str());
  *out += Fmt("          file number %s, entries %s, groups %s, seq %s..%s, %s bytes\n", T(h["file_number"]).c_str(),
              T(h["entry_count"]).c_str(), T(h["group_count"]).c_str(), T(h["min_seq"]).c_str(),
              T(h["max_seq"]).c_str(), T(h["bytes"]).c_str());
  // Group-level sections name their group; "-" is file level.
  const Json& secs = r["sections"];
  *out += Fmt("  sections (%zu):\n", secs.items().size());
  *out += Fmt("    %4s  %-20s %5s %12s %12s  %-10s %s\n", "kind", "name", "group", "offset", "length", "crc", "check");
  for (const Json& s : secs.items()) {
    const std::string group = !s["group"].is_null() ? T(s["group"]) : "-";
    *out += Fmt("    %4s  %-20s %5s %12s %12s  %-10s %s\n", T(s["kind"]).c_str(), T(s["name"]).c_str(), group.c_str(),
                T(s["offset"]).c_str(), T(s["length"]).c_str(), Hex32(s["crc"]).c_str(),
                s["crc_ok"].AsBool() ? "ok" : "MISMATCH");
  }
  const Json& f = r["footer"];
  *out += Fmt("  footer: section_table_offset %s, section_count %s, table_crc %s, file_size %s\n",
              T(f["section_table_offset"]).c_str(), T(f["section_count"]).c_str(), Hex32(f["table_crc"]).c_str(),
              T(f["file_size"]).c_str());
  *out += "  keyspace segment: " + (r["kv"].is_null() ? std::string("damaged") : SegmentText(r["kv"])) + "\n";
  if (r["kv"].is_null()) return;
  for (const Json& g : r["kv"]["vector_groups"].items()) {
    *out += "    " + GroupText(g) + Fmt(", %s rows per block, seq %s..%s\n", T(g["rows_per_block"]).c_str(),
                                                T(g["min_seq"]).c_str(), T(g["max_seq"]).c_str());
    const Json& ix = g["graph"];
    if (!ix.is_null()) {
      *out += Fmt("      hnsw format_version %s, m %s, m0 %s, ef_construction %s, max_level %s, representation %s, "
                  "reused_rows %s\n",
                  T(ix["format_version"]).c_str(), T(ix["m"]).c_str(), T(ix["m0"]).c_str(),
                  T(ix["ef_construction"]).c_str(), T(ix["max_level"]).c_str(), T(ix["representation"]).c_str(),
                  T(ix["reused_rows"]).c_str());
    }
  }
}

void Verify(const Json& r, std::string* out) {
  *out += "verify " + T(r["path"]) + "\n";
  for (const Json& c : r["checked"].items()) {
    *out += Fmt("  %-4s %-8s %s", c["ok"].AsBool() ? "ok" : "FAIL", T(c["kind"]).c_str(), T(c["file"]).c_str());
    if (!c["detail"].AsString().empty()) *out += " (" + c["detail"].AsString() + ")";
    *out += "\n";
  }
  for (const Json& n : r["notes"].items()) {
    *out += "  note: " + T(n["file"]);
    if (!n["offset"].is_null()) *out += " at offset " + T(n["offset"]);
    *out += ": " + T(n["message"]) + "\n";
  }
  for (const Json& p : r["problems"].items()) *out += "  problem: " + ProblemText(p) + "\n";
  const Json& n = r["counts"];
  *out += Fmt("  %s files checked, %s problems, %s notes\n", T(n["checked"]).c_str(), T(n["problems"]).c_str(),
              T(n["notes"]).c_str());
}

void Graph(const Json& r, std::string* out) {
  *out += "graph of " + T(r["file"]);
  if (r.Has("group") && !r["group"].is_null()) {
    *out += " group " + T(r["group"]);
    if (r.Has("group_kind")) *out += " (" + T(r["group_kind"]) + (r["cid"].is_null() ? "" : " cid " + T(r["cid"])) + ")";
  }
  *out += "\n";
  if (!r.Has("rows")) return;
  *out += Fmt("  rows %s, dim %s, metric %s, m %s, m0 %s, ef_construction %s, seed %s\n", T(r["rows"]).c_str(),
              T(r["dim"]).c_str(), T(r["metric"]).c_str(), T(r["m"]).c_str(), T(r["m0"]).c_str(),
              T(r["ef_construction"]).c_str(), T(r["seed"]).c_str());
  *out += Fmt("  max_level %s, entry_point %s, representation %s, reused_rows %s, format_version %s, %s bytes\n",
              T(r["max_level"]).c_str(), T(r["entry_point"]).c_str(), T(r["representation"]).c_str(),
              T(r["reused_rows"]).c_str(), T(r["format_version"]).c_str(), T(r["bytes"]).c_str());
  if (!r.Has("levels")) return;
  *out += Fmt("  %5s %10s %10s %12s %6s %6s %8s %6s %10s %10s\n", "level", "top here", "nodes", "edges", "bound",
              "min", "avg", "max", "no links", "at bound");
  for (const Json& l : r["levels"].items()) {
    *out += Fmt("  %5s %10s %10s %12s %6s %6s %8.2f %6s %10s %10s\n", T(l["level"]).c_str(),
                T(l["top_level_nodes"]).c_str(), T(l["nodes"]).c_str(), T(l["edges"]).c_str(),
                T(l["degree_bound"]).c_str(), T(l["degree_min"]).c_str(), l["degree_avg"].AsDouble(),
                T(l["degree_max"]).c_str(), T(l["nodes_without_links"]).c_str(), T(l["nodes_at_bound"]).c_str());
  }
  const Json& reach = r["layer0_reachability"];
  if (!reach.is_null()) {
    *out += Fmt("  layer 0 reachable from the entry point: %s of %s rows (%s unreachable)\n", T(reach["reachable"]).c_str(),
                T(r["rows"]).c_str(), T(reach["unreachable"]).c_str());
  }
  if (r.Has("verified")) *out += std::string("  verify: ") + (r["verified"].AsBool() ? "ok" : "FAILED") + "\n";
}

}  // namespace

std::string RenderText(const Json& r) {
  std::string out;
  const std::string& command = r["command"].AsString();
  if (command == "summary") Summary(r, &out);
  if (command == "segment") Segment(r, &out);
  if (command == "verify") Verify(r, &out);
  if (command == "dump") Dump(r, &out);
  if (command == "graph") Graph(r, &out);
  if (command == "verify") {
    out += r["ok"].AsBool() ? "verify: OK\n" : "verify: FAILED: " + ProblemText(r["error"]) + "\n";
  } else if (!r["error"].is_null()) {
    out += "error: " + ProblemText(r["error"]) + "\n";
  }
  return out;
}

}  // namespace pomai::inspect
