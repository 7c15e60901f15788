// Text output of pomai-inspect: rendered from the same Json report that
// --json prints, so the two never disagree.
#include "render_text.h"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

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

// `tmpl` with each {key} replaced by the text of obj[key]: {key:10} right-aligns
// it in 10 columns, {key:-18} left-aligns it in 18, {key:x} prints it as 0x%08x.
std::string Fill(std::string_view tmpl, const Json& obj) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const size_t end = tmpl[i] == '{' ? tmpl.find('}', i) : std::string_view::npos;
    if (end == std::string_view::npos) {
      out += tmpl[i];
      continue;
    }
    const std::string_view field = tmpl.substr(i + 1, end - i - 1);
    const size_t colon = field.find(':');
    const std::string key(field.substr(0, colon));
    const std::string spec(colon == std::string_view::npos ? "" : field.substr(colon + 1));
    std::string text = spec == "x" ? Fmt("0x%08" PRIx64, obj[key].AsUint()) : T(obj[key]);
    const int width = spec.empty() || spec == "x" ? 0 : std::atoi(spec.c_str());
    const size_t pad = static_cast<size_t>(std::abs(width));
    if (text.size() < pad) text.insert(width < 0 ? text.size() : 0, pad - text.size(), ' ');
    out += text;
    i = end;
  }
  return out;
}

std::string ProblemText(const Json& p) {
  if (p.is_null()) return "";
  std::string s = p["message"].AsString();
  // The message names the file and offset when the engine knows them; say so explicitly otherwise.
  if (s.find(p["file"].AsString()) == std::string::npos) s = p["file"].AsString() + ": " + s;
  return s;
}

// A vector prefix; ", ..." when `dim` (null: unknown) has more components.
std::string VectorText(const Json& v, const Json& dim) {
  std::string s = "[";
  for (size_t i = 0; i < v.items().size(); ++i) s += (i > 0 ? ", " : "") + Fmt("%.6g", v.items()[i].AsDouble());
  if (!dim.is_null() && v.items().size() < dim.AsUint()) s += ", ...";
  return s + "]";
}

// One entry of a segment or write of a WAL record: namespace, key, seq, kind, value.
std::string EntryText(const Json& e) {
  std::string s = T(e["namespace"]);
  if (!e["index"].is_null()) s += Fill(" index \"{index}\"", e);
  if (e.Has("cid")) s += Fill(" cid {cid}", e);
  if (!e["key"].is_null()) s += Fill(" key \"{key}\"", e);
  s += Fill("  seq {seq}  {kind}", e);
  const std::string kind = e["kind"].AsString();
  if (kind == "bytes") {
    s += Fill(" {value_length} bytes \"{value_prefix}\"", e);
    const Json& c = e["index_config"];
    if (!c.is_null()) s += Fill(" (dim {dim}, m {m}, ef_construction {ef_construction}, metric {metric})", c);
  } else if (kind == "vector") {
    s += Fill(" dim {dim} metric {metric}", e);
    if (e["has_metadata"].AsBool()) s += Fill(" metadata {metadata_length} bytes \"{metadata_prefix}\"", e);
    s += " " + VectorText(e["vector_prefix"], e["dim"]);
    if (e.Has("group")) s += Fill("  (group {group} row {row})", e);
  }
  return s;
}

// One vector group of a segment: "g0 bytes cid 2 dim 4 l2: 3 rows (hnsw)".
std::string GroupText(const Json& g) {
  std::string s = Fill("g{group} {kind}", g);
  if (!g["cid"].is_null()) s += Fill(" cid {cid}", g);
  s += Fill(" dim {dim} {metric}: {rows} rows", g);
  if (g["tombstones"].AsUint() > 0) s += Fill(", {tombstones} tombstones", g);
  if (g["has_graph"].AsBool()) s += " (hnsw)";
  return s;
}

// A segment's summary: its entries by namespace and kind, its vector groups.
std::string SegmentText(const Json& s) {
  std::string text = Fill("{entries} entries ({user_keys} user keys, {index_configs} index configs, {index_entries} "
                          "index entries; {bytes_values} bytes values, {vector_records} vector records, {tombstones} "
                          "tombstones; {value_bytes} value bytes), seq {min_seq}..{max_seq}, vector groups:",
                          s);
  const auto& groups = s["vector_groups"].items();
  if (groups.empty()) text += " none";
  for (size_t i = 0; i < groups.size(); ++i) text += (i == 0 ? " " : "; ") + GroupText(groups[i]);
  return text;
}

// A manifest log's state: file, format version, numbers, segments.
std::string ManifestLogText(const Json& m) {
  std::string s = Fill("{file} (named by CURRENT): format version {format_version}, {edits} edits ({bytes} bytes), "
                       "next_file_number {next_file_number}, log_number {log_number}, last_seq {last_seq}, ",
                       m) +
                  std::to_string(m["segments"].items().size()) + " segments";
  for (const Json& e : m["segments"].items()) s += Fill("\n    {file:-18} {file_size:10} bytes  seqs {first_seq}..{last_seq}", e);
  return s;
}

constexpr char kWalColumns[] = "    %-18s %5s %12s %8s %8s %8s %8s %8s %8s %10s %-14s %s\n";

void Summary(const Json& r, std::string* out) {
  *out += "keyspace database " + T(r["path"]) + "\n";
  const Json& m = r["manifest_log"];
  if (!m.is_null()) *out += "  " + ManifestLogText(m) + "\n";
  if (!r.Has("segments")) return;  // a directory that could not be listed, or of format version 1
  const Json& segs = r["segments"];
  *out += Fmt("  Segments (%zu):\n", segs.items().size());
  for (const Json& s : segs.items()) {
    *out += Fill("    {file:-18} ", s) + (s["live"].AsBool() ? "live" : "NOT LIVE") + Fill(" {bytes:10} bytes  ", s);
    *out += (s["error"].is_null() ? SegmentText(s) : std::string("unreadable")) + "\n";
    if (!s["error"].is_null()) *out += "      ERROR: " + ProblemText(s["error"]) + "\n";
  }
  const Json& wals = r["wal"];
  *out += Fmt("  WAL files (%zu):\n", wals.items().size());
  if (!wals.items().empty()) {
    *out += Fmt(kWalColumns, "file", "live", "bytes", "records", "row puts", "row dels", "writes", "bytes", "vectors",
                "tombstones", "seq", "tail");
  }
  for (const Json& w : wals.items()) {
    *out += Fmt(kWalColumns, T(w["file"]).c_str(), w["live"].AsBool() ? "yes" : "no", T(w["bytes"]).c_str(),
                T(w["records"]).c_str(), T(w["puts"]).c_str(), T(w["deletes"]).c_str(), T(w["writes"]).c_str(),
                T(w["bytes_writes"]).c_str(), T(w["vector_writes"]).c_str(), T(w["tombstone_writes"]).c_str(),
                Fill("{first_seq}..{last_seq}", w).c_str(), w["torn_tail"].AsBool() ? "torn" : "clean");
    if (!w["error"].is_null()) *out += "      ERROR: " + ProblemText(w["error"]) + "\n";
  }
  const Json& orphans = r["orphans"];
  if (!orphans.items().empty()) {
    *out += Fmt("  orphans (%zu): files the manifest does not need\n", orphans.items().size());
    for (const Json& o : orphans.items()) *out += Fill("    {file:-18} {bytes:12}  {reason}\n", o);
  }
  for (const Json& miss : r["missing"].items()) *out += Fill("  MISSING: {file} is named by the manifest\n", miss);
  const Json& t = r["totals"];
  *out += Fill("  total: {live_segments} live segments, {segment_entries} segment entries, {segment_rows} rows, "
               "{segment_tombstones} tombstones, {wal_records} live WAL records ({wal_writes} writes), {bytes} bytes\n",
               t);
  if (t["live_keys"].is_null()) {
    *out += "  live keys: unknown (a live file is missing or unreadable)\n  live rows: unknown\n";
  } else {
    *out += Fill("  live keys: {live_keys} user keys, {live_index_entries} index entries (the newest version of each "
                 "key is not a delete)\n  live rows: {live_rows} (the newest version of each id is not a delete)\n",
                 t);
  }
}

// A WAL record of row ops (put and delete row, a row array).
void RowRecordText(const Json& rec, std::string* out) {
  *out += Fill("  row record at offset {offset}  seq {seq}  type {type}  {length} bytes  {op_count} ops\n", rec);
  for (const Json& op : rec["ops"].items()) {
    if (op["kind"].AsString() == "put") {
      *out += Fill("    put    id {id}  cid {cid}  metadata {metadata_length} bytes \"{metadata_prefix}\"  vector ", op) +
              VectorText(op["vector_prefix"], Json()) + "\n";
    } else {
      *out += Fill("    delete id {id}  cid {cid}\n", op);
    }
  }
}

// "  ... N more WHAT (--limit)" when `shown` lists fewer than `total`.
std::string More(const Json& shown, const Json& total, const char* what) {
  const uint64_t n = shown.items().size();
  return n < total.AsUint() ? Fmt("  ... %" PRIu64 " more %s (--limit)\n", total.AsUint() - n, what) : "";
}

void Dump(const Json& r, std::string* out) {
  *out += Fill("{kind} {file}\n", r);
  const std::string kind = r["kind"].AsString();
  if (kind == "segment" && r.Has("entries")) {
    *out += "  " + SegmentText(r["summary"]) + "\n";
    for (const Json& e : r["entries"].items()) *out += Fill("  entry {entry}  ", e) + EntryText(e) + "\n";
    *out += More(r["entries"], r["total_entries"], "entries");
    // The rows of the u64 groups: "g0 row 5  id 7  seq 2  metadata 6 bytes "meta-7"  vector [...]".
    for (const Json& row : r["rows"].items()) {
      *out += Fill("  g{group} row {row}  id {id}  seq {seq}  metadata {metadata_length} bytes \"{metadata_prefix}\"  "
                   "vector ",
                   row) +
              VectorText(row["vector_prefix"], Json()) + "\n";
    }
    *out += More(r["rows"], r["total_rows"], "rows");
    for (const Json& t : r["row_tombstones"].items()) *out += Fill("  g{group} tombstone  id {id}  seq {seq}\n", t);
    *out += More(r["row_tombstones"], r["total_row_tombstones"], "tombstones");
  } else if (kind == "wal") {
    for (const Json& rec : r["records"].items()) {
      if (rec.Has("op_count")) {
        RowRecordText(rec, out);
        continue;
      }
      *out += Fill("  commit record at offset {offset}  seq {seq}  type {type}  {length} bytes  {write_count} writes\n",
                   rec);
      for (const Json& w : rec["writes"].items()) *out += "    " + EntryText(w) + "\n";
    }
    if (r["truncated"].AsBool()) *out += "  ... (--limit)\n";
    if (r["torn_tail"].AsBool()) *out += "  torn tail after the last record (dropped on recovery)\n";
  } else if (kind == "current" && r.Has("manifest")) {
    *out += Fill("  names {manifest}\n", r);
  } else if (kind == "manifest" && r.Has("manifest_log")) {
    *out += "  " + ManifestLogText(r["manifest_log"]) + "\n";
    for (const Json& e : r["edits"].items()) {
      *out += Fill("  edit {seq} at offset {offset}:", e);
      for (const char* f : {"format_version", "log_number", "last_seq", "next_file_number"}) {
        if (!e[f].is_null()) *out += Fmt(" %s %s", f, T(e[f]).c_str());
      }
      for (const Json& a : e["added"].items()) *out += Fill(" +{file} ({file_size} bytes, seqs {first_seq}..{last_seq})", a);
      for (const Json& n : e["removed"].items()) *out += " -segment " + T(n);
      *out += "\n";
    }
    if (r["truncated"].AsBool()) *out += "  ... (--limit)\n";
  }
}

void Segment(const Json& r, std::string* out) {
  *out += Fill("segment {file}\n", r);
  const Json& h = r["header"];
  if (h.is_null()) return;
  *out += Fill("  header: magic {magic}, format_version {format_version}, header_size {header_size}, header_crc "
               "{header_crc:x}\n          file number {file_number}, entries {entry_count}, groups {group_count}, seq "
               "{min_seq}..{max_seq}, {bytes} bytes\n",
               h);
  // Group-level sections name their group; "-" is file level.
  const Json& secs = r["sections"];
  *out += Fmt("  sections (%zu):\n", secs.items().size());
  // Attribute sections of one column name it ("attr values" column 2 of group 0: "0.2").
  *out += Fmt("    %4s  %-20s %5s %12s %12s  %-10s %s\n", "kind", "name", "group", "offset", "length", "crc", "check");
  for (const Json& s : secs.items()) {
    Json row = s;
    if (!s["column"].is_null()) row.Set("group", T(s["group"]) + "." + T(s["column"]));
    *out += Fill("    {kind:4}  {name:-20} {group:5} {offset:12} {length:12}  {crc:x} ", row) +
            (s["crc_ok"].AsBool() ? "ok" : "MISMATCH") + "\n";
  }
  *out += Fill("  footer: section_table_offset {section_table_offset}, section_count {section_count}, table_crc "
               "{table_crc:x}, file_size {file_size}\n",
               r["footer"]);
  *out += "  keyspace segment: " + (r["kv"].is_null() ? std::string("damaged") : SegmentText(r["kv"])) + "\n";
  if (r["kv"].is_null()) return;
  for (const Json& g : r["kv"]["vector_groups"].items()) {
    *out += "    " + GroupText(g) + Fill(", {rows_per_block} rows per block, seq {min_seq}..{max_seq}\n", g);
    if (!g["graph"].is_null()) {
      *out += Fill("      hnsw format_version {format_version}, m {m}, m0 {m0}, ef_construction {ef_construction}, "
                   "max_level {max_level}, representation {representation}, reused_rows {reused_rows}\n",
                   g["graph"]);
    }
    for (const Json& a : g["attributes"].items()) {
      *out += Fill("      attribute \"{name}\" {type}: {nulls} nulls", a) +
              (a["dictionary"].is_null() ? std::string() : Fill(", dictionary of {dictionary}", a)) + "\n";
    }
  }
}

void Verify(const Json& r, std::string* out) {
  *out += Fill("verify {path}\n", r);
  for (const Json& c : r["checked"].items()) {
    *out += Fmt("  %-4s ", c["ok"].AsBool() ? "ok" : "FAIL") + Fill("{kind:-8} {file}", c);
    if (!c["detail"].AsString().empty()) *out += Fill(" ({detail})", c);
    *out += "\n";
  }
  for (const Json& n : r["notes"].items()) {
    *out += Fill("  note: {file}", n) + (n["offset"].is_null() ? "" : Fill(" at offset {offset}", n)) +
            Fill(": {message}\n", n);
  }
  for (const Json& p : r["problems"].items()) *out += "  problem: " + ProblemText(p) + "\n";
  *out += Fill("  {checked} files checked, {problems} problems, {notes} notes\n", r["counts"]);
}

void Graph(const Json& r, std::string* out) {
  *out += Fill("graph of {file}", r);
  if (r.Has("group") && !r["group"].is_null()) {
    *out += Fill(" group {group}", r);
    if (r.Has("group_kind")) *out += Fill(" ({group_kind}", r) + (r["cid"].is_null() ? "" : Fill(" cid {cid}", r)) + ")";
  }
  *out += "\n";
  if (!r.Has("rows")) return;
  *out += Fill("  rows {rows}, dim {dim}, metric {metric}, m {m}, m0 {m0}, ef_construction {ef_construction}, seed "
               "{seed}\n  max_level {max_level}, entry_point {entry_point}, representation {representation}, "
               "reused_rows {reused_rows}, format_version {format_version}, {bytes} bytes\n",
               r);
  if (!r.Has("levels")) return;
  *out += Fmt("  %5s %10s %10s %12s %6s %6s %8s %6s %10s %10s\n", "level", "top here", "nodes", "edges", "bound",
              "min", "avg", "max", "no links", "at bound");
  for (const Json& l : r["levels"].items()) {
    *out += Fill("  {level:5} {top_level_nodes:10} {nodes:10} {edges:12} {degree_bound:6} {degree_min:6} ", l) +
            Fmt("%8.2f", l["degree_avg"].AsDouble()) +
            Fill(" {degree_max:6} {nodes_without_links:10} {nodes_at_bound:10}\n", l);
  }
  const Json& reach = r["layer0_reachability"];
  if (!reach.is_null()) {
    *out += Fill("  layer 0 reachable from the entry point: {reachable} of ", reach) + T(r["rows"]) +
            Fill(" rows ({unreachable} unreachable)\n", reach);
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
