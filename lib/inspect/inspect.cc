// The commands of pomai-inspect. Each one reads through the engine's own
// readers and fills a Json report; rendering is in tools/render_text.cc.
// One section per file kind (segment, WAL, manifest log and CURRENT, the
// directory), each with one function per command that applies to it; the
// commands at the end pick the function by kind.
#include "inspect/inspect.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "engine/collection.h"
#include "engine/filename.h"
#include "engine/version_set.h"
#include "index/hnsw.h"
#include "index/hnsw_format.h"
#include "segment/file.h"
#include "segment/format.h"
#include "segment/section_kind.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/env.h"
#include "wal/log_reader.h"
#include "wal/record_codec.h"

namespace pomai::inspect {
namespace {

namespace files = engine::files;

Env* env() { return Env::Default(); }

// ---------------------------------------------------------------------------
// Small helpers

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string DirName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Json OptionalUint(std::optional<uint64_t> v) { return v ? Json(*v) : Json(); }

// A problem as a Json object: the file and byte offset parsed from the
// engine's "FILE at offset N: what" messages (offset null when the message
// has none, e.g. an I/O error).
Json Problem(const Status& s, const std::string& file) {
  const std::string& msg = s.message();
  const std::string marker = " at offset ";
  const size_t at = msg.find(marker);
  std::optional<uint64_t> offset;
  std::string where = file;
  if (at != std::string::npos) {
    size_t i = at + marker.size();
    uint64_t v = 0;
    for (; i < msg.size() && msg[i] >= '0' && msg[i] <= '9'; ++i) v = v * 10 + static_cast<uint64_t>(msg[i] - '0');
    if (i > at + marker.size()) {
      offset = v;
      where = msg.substr(0, at);
    }
  }
  return Json::Object({{"file", where}, {"offset", OptionalUint(offset)}, {"code", static_cast<int>(s.code())},
                       {"message", msg}});
}

Json Note(const std::string& file, std::optional<uint64_t> offset, const std::string& message) {
  return Json::Object({{"file", file}, {"offset", OptionalUint(offset)}, {"message", message}});
}

// Copies the members of object `from` into object *into.
void Merge(Json* into, const Json& from) {
  for (const auto& [k, v] : from.members()) into->Set(k, v);
}

// Marks the report failed (exit 1); the first problem is its error.
void Fail(Report* r, const Status& s, const std::string& file) {
  if (r->exit_code != 0) return;
  r->json.Set("ok", false);
  r->json.Set("error", Problem(s, file));
  r->exit_code = 1;
}

// A command's report before its results: command, the path under `path_key`, ok.
Report NewReport(const char* command, const char* path_key, const std::string& path) {
  return Report{Json::Object({{"command", command}, {path_key, path}, {"ok", true}}), 0};
}

// Printable ASCII kept, anything else as \xNN; at most `max` bytes shown.
std::string EscapedPrefix(std::string_view bytes, size_t max) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

constexpr size_t kMetadataPrefix = 32;
constexpr size_t kKeyPrefix = 64;

Json VectorPrefix(const void* vector, uint32_t dim, uint32_t prefix) {
  Json v = Json::Array();
  for (uint32_t j = 0; j < dim && j < prefix; ++j) {
    float f;
    std::memcpy(&f, static_cast<const uint8_t*>(vector) + size_t{j} * 4, 4);
    v.Push(static_cast<double>(f));
  }
  return v;
}

void MetadataFields(Json* row, std::string_view meta) {
  row->Set("metadata_length", static_cast<uint64_t>(meta.size()));
  row->Set("metadata_prefix", EscapedPrefix(meta, kMetadataPrefix));
}

// verify's findings: every file checked (with its verdict), notes, problems.
struct VerifyState {
  Json checked = Json::Array();
  Json notes = Json::Array();
  Json problems = Json::Array();

  void Check(const std::string& file, const char* kind, const Status& s, const std::string& detail = "") {
    checked.Push(Json::Object({{"file", file}, {"kind", kind}, {"ok", s.ok()}, {"detail", detail}}));
    if (!s.ok()) problems.Push(Problem(s, file));
  }
};

// ---------------------------------------------------------------------------
// File kinds

// The files of a database directory (docs/FORMAT.md, "The database directory"):
// segments (format 2), WAL files, CURRENT and the manifest log it names.
// kOldManifest: the MANIFEST or KVMANIFEST of format version 1, refused.
enum class FileKind { kSegment, kWal, kCurrent, kManifest, kOldManifest, kUnknown };

const char* KindName(FileKind k) {
  switch (k) {
    case FileKind::kSegment: return "segment";
    case FileKind::kWal: return "wal";
    case FileKind::kCurrent: return "current";
    case FileKind::kManifest:
    case FileKind::kOldManifest: return "manifest";
    case FileKind::kUnknown: break;
  }
  return "unknown";
}

// MANIFEST-NNNNNN, the name of a manifest log.
bool IsManifestLogName(const std::string& name) {
  files::FileType type;
  uint64_t number = 0;
  return files::ParseFileName(name, &type, &number) && type == files::FileType::kManifest;
}

// `n` bytes at `offset` of the file into buf, if it can be read.
bool ReadAt(const std::string& path, uint64_t offset, size_t n, char* buf) {
  auto file = env()->NewReadableFile(path);
  size_t got = 0;
  return file.ok() && (*file)->Read(offset, n, buf, &got).ok() && got == n;
}

// By --kind, then by name (seg-*.pseg, wal-*.log, CURRENT, MANIFEST-NNNNNN,
// and format 1's MANIFEST and KVMANIFEST), then by magic.
FileKind DetectKind(const std::string& path, const std::string& forced) {
  const std::string name = BaseName(path);
  if (forced == "segment") return FileKind::kSegment;
  if (forced == "wal") return FileKind::kWal;
  if (forced == "manifest") return FileKind::kManifest;
  if (name == files::kVersion1ManifestName || name == files::kVersion1KeyspaceManifestName)
    return FileKind::kOldManifest;
  if (name == "CURRENT") return FileKind::kCurrent;
  if (IsManifestLogName(name)) return FileKind::kManifest;
  if (name.ends_with(".pseg")) return FileKind::kSegment;
  if (name.ends_with(".log")) return FileKind::kWal;
  char magic[8] = {};
  if (ReadAt(path, 0, sizeof(magic), magic)) {
    if (std::memcmp(magic, segment::kMagic, 8) == 0) return FileKind::kSegment;
    if (std::memcmp(magic, "POMAIMAN", 8) == 0 || std::memcmp(magic, "POMAIKVM", 8) == 0) return FileKind::kOldManifest;
  }
  return FileKind::kUnknown;
}

// Why a file of a kind no command reads (format 1's manifest, unknown) is refused.
Status Refusal(const std::string& path, FileKind kind) {
  if (kind == FileKind::kOldManifest) return engine::RefuseVersion1Manifest(env(), path);
  return Status::InvalidArgument(path + ": cannot tell whether this is a segment, a WAL or a manifest "
                                        "(name it *.pseg, *.log, CURRENT or MANIFEST-NNNNNN, or pass --kind)");
}

// ---------------------------------------------------------------------------
// Segments (segment format 2: SegmentFile::Open, then Verify: every checksum,
// block and entry)

// Format 1's segment version, and its header's shard field, which held
// "GSVK" in keyspace segments. This version reads format 2 only: these are
// kept to refuse a format-1 segment naming what it is.
constexpr uint32_t kSegmentFormatVersion1 = 1;
constexpr uint64_t kFormat1ShardOffset = 24;
constexpr uint32_t kFormat1KeyspaceMarker = 0x4B565347;

// A segment's container (SegmentFile::Open: O(sections), which also checks
// the file number its name holds against its header) after refusing one of
// format version 1 (u64-id or keyspace) by name; with `verify`, all of it is
// checked too (SegmentFile::Verify: every section, block and entry, every graph).
Result<std::shared_ptr<segment::SegmentFile>> OpenSegment(const std::string& path, bool verify) {
  auto u32_at = [&](uint64_t offset) -> std::optional<uint32_t> {
    char buf[4];
    if (!ReadAt(path, offset, 4, buf)) return std::nullopt;
    return DecodeFixed32(reinterpret_cast<const uint8_t*>(buf));
  };
  if (u32_at(segment::header2::kVersion) == kSegmentFormatVersion1) {
    const bool keyspace = u32_at(kFormat1ShardOffset) == kFormat1KeyspaceMarker;
    return Status::InvalidArgument(path + ": " + (keyspace ? "a keyspace" : "a u64-id") +
                                   " segment of format version 1, which this version does not read (it reads segment "
                                   "format version " + std::to_string(segment::kFormatVersion2) +
                                   " and does not convert: no migration before 1.0)");
  }
  POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::SegmentFile> seg, segment::SegmentFile::Open(env(), path));
  if (verify) POMAI_RETURN_IF_ERROR(seg->Verify());
  return seg;
}

const char* GroupKindName(segment::GroupKind kind) {
  switch (kind) {
    case segment::GroupKind::kU64: return "u64";
    case segment::GroupKind::kBytes: return "bytes";
    case segment::GroupKind::kRecords: return "records";
  }
  return "unknown";
}

// The namespace of a group's rows: a collection's (index entries) or the
// vector records' (user keys); u64 rows are not keys.
const char* GroupNamespace(segment::GroupKind kind) {
  switch (kind) {
    case segment::GroupKind::kU64: return "u64_rows";
    case segment::GroupKind::kBytes: return "index_entry";
    case segment::GroupKind::kRecords: return "user";
  }
  return "unknown";
}

// A graph's parameters.
Json GraphJson(const index::HnswGraph& g) {
  return Json::Object({{"kind", "hnsw"}, {"format_version", index::kHnswFormatVersion}, {"m", g.m()}, {"m0", g.m0()},
                       {"ef_construction", g.ef_construction()}, {"max_level", g.max_level()},
                       {"representation", g.has_sq8() ? "sq8" : "float32"}, {"reused_rows", g.reused_rows()}});
}

// A u64 group's attribute columns (docs/FORMAT.md, "Attribute columns"),
// read through SegmentFile::AttrColumns and Column (which check what they
// return): per column its name, type, null rows and dictionary size (null
// for a type without one). Empty for other groups; null on damage (the
// caller verified the file, so only a concurrent change could cause it).
Json AttributesJson(const segment::SegmentFile& seg, uint32_t g) {
  Json out = Json::Array();
  if (seg.group(g).kind != segment::GroupKind::kU64) return out;
  std::vector<std::pair<std::string, AttrType>> columns;
  if (!seg.AttrColumns(g, &columns).ok()) return Json();
  for (const auto& [name, type] : columns) {
    filter::ColumnRef ref;
    bool present = false;
    if (!seg.Column(g, name, &ref, &present).ok() || !present) return Json();
    uint64_t nulls = 0;
    for (uint64_t r = 0; ref.valid != nullptr && r < seg.group(g).rows; ++r) nulls += ref.valid[r] == 0;
    const bool dict = type == AttrType::kString || type == AttrType::kTags;
    out.Push(Json::Object({{"name", EscapedPrefix(name, kMaxAttrNameLen)}, {"type", AttrTypeName(type)},
                           {"nulls", nulls}, {"dictionary", dict ? Json(ref.dict_size) : Json()}}));
  }
  return out;
}

// One vector group: its descriptor, its graph's parameters (null when it
// has none) and its attribute columns.
Json GroupJson(const segment::SegmentFile& seg, uint32_t g) {
  const segment::GroupInfo& info = seg.group(g);
  const index::HnswGraph* graph = seg.graph(g);
  return Json::Object({{"group", g}, {"kind", GroupKindName(info.kind)}, {"namespace", GroupNamespace(info.kind)},
                       {"cid", info.kind == segment::GroupKind::kRecords ? Json() : Json(info.cid)},
                       {"dim", info.dim}, {"metric", simd::MetricName(info.metric)}, {"rows", info.rows},
                       {"tombstones", info.tombstones}, {"rows_per_block", info.rows_per_block},
                       {"blocks", info.blocks()}, {"min_seq", info.min_seq}, {"max_seq", info.max_seq},
                       {"has_graph", info.has_graph}, {"graph", graph != nullptr ? GraphJson(*graph) : Json()},
                       {"attributes", AttributesJson(seg, g)}});
}

// The summary of a segment: entries by namespace and kind, its vector groups.
Json SegmentSummary(const segment::SegmentFile& seg) {
  uint64_t by_ns[3] = {0, 0, 0}, bytes = 0, vectors = 0, tombstones = 0, value_bytes = 0;
  // The segment passed Verify (OpenSegment): every ReadEntry succeeds.
  for (uint64_t i = 0; i < seg.entry_count(); ++i) {
    segment::EntryView e;
    if (!seg.ReadEntry(i, &e).ok()) continue;
    const uint8_t ns = e.key.empty() ? 0xFF : static_cast<uint8_t>(e.key[0]);
    if (ns <= segment::kNamespaceRows) ++by_ns[ns];
    bytes += e.kind == segment::EntryKind::kBytes;
    vectors += e.kind == segment::EntryKind::kVector;
    tombstones += e.kind == segment::EntryKind::kTombstone;
    value_bytes += e.value.size();
  }
  // The header's seq range covers entries, rows and tombstones; 0..0 when empty.
  const bool empty = seg.max_seq() == 0;
  Json groups = Json::Array();
  for (uint32_t g = 0; g < seg.group_count(); ++g) groups.Push(GroupJson(seg, g));
  return Json::Object({{"bytes", seg.file_size()}, {"format_version", segment::kFormatVersion2},
                       {"file_number", seg.file_number()}, {"entries", seg.entry_count()},
                       {"user_keys", by_ns[segment::kNamespaceKeys]},
                       {"index_configs", by_ns[segment::kNamespaceCollections]},
                       {"index_entries", by_ns[segment::kNamespaceRows]}, {"bytes_values", bytes},
                       {"vector_records", vectors}, {"tombstones", tombstones}, {"value_bytes", value_bytes},
                       {"min_seq", empty ? Json() : Json(seg.min_seq())},
                       {"max_seq", empty ? Json() : Json(seg.max_seq())}, {"vector_groups", std::move(groups)}});
}

// segment FILE: the container as SegmentFile::Open read it (header, section
// table with each section's checksum, footer), then the summary after Verify
// (every check; null when it fails).
void InspectSegmentFile(const std::string& file, Report* r) {
  auto opened = OpenSegment(file, false);
  if (!opened.ok()) return Fail(r, opened.status(), file);
  const segment::SegmentFile& seg = **opened;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(seg.base());
  r->json.Set("header", Json::Object({{"magic", std::string(segment::kMagic, 8)},
                                      {"format_version", segment::kFormatVersion2},
                                      {"header_size", static_cast<uint64_t>(segment::kHeaderSize)},
                                      {"header_crc", DecodeFixed32(base + segment::header2::kCrc)},
                                      {"bytes", seg.file_size()}, {"file_number", seg.file_number()},
                                      {"min_seq", seg.min_seq()}, {"max_seq", seg.max_seq()},
                                      {"entry_count", seg.entry_count()}, {"group_count", seg.group_count()}}));

  Json sections = Json::Array();
  for (const segment::SegmentFile::SectionRef& s : seg.sections()) {
    // A section's name (SegmentFile::Open accepts no other kind).
    const segment::SectionKindInfo* info = segment::FindSectionKind(segment::KindNumber(s.kind));
    sections.Push(Json::Object(
        {{"kind", segment::KindNumber(s.kind)},
         {"name", info != nullptr && (info->containers & segment::kInFormat2) != 0 ? info->name : "unknown"},
         {"group", s.group == segment::kFileLevel ? Json() : Json(s.group)},
         {"column", segment::IsAttrColumnKind(segment::KindNumber(s.kind)) ? Json(s.column) : Json()},
         {"offset", s.offset},
         {"length", s.length}, {"crc", s.crc},
         {"crc_ok", crc32c::Value(base + s.offset, static_cast<size_t>(s.length)) == s.crc}}));
  }
  r->json.Set("sections", std::move(sections));
  const uint8_t* footer = base + seg.file_size() - segment::kFooterSize;
  r->json.Set("footer", Json::Object({{"section_table_offset", DecodeFixed64(footer + segment::footer2::kTableOffset)},
                                      {"section_count", DecodeFixed32(footer + segment::footer2::kSectionCount)},
                                      {"table_crc", DecodeFixed32(footer + segment::footer2::kTableCrc)},
                                      {"file_size", DecodeFixed64(footer + segment::footer2::kFileSize)},
                                      {"magic", std::string(segment::kFooterMagic, 8)}}));
  r->json.Set("keyspace", true);
  Status v = seg.Verify();
  r->json.Set("kv", v.ok() ? SegmentSummary(seg) : Json());
  if (!v.ok()) Fail(r, v, file);
}

std::string NamespaceName(uint8_t ns) {
  switch (ns) {
    case segment::kNamespaceKeys: return "user";
    case segment::kNamespaceCollections: return "index_config";
    case segment::kNamespaceRows: return "index_entry";
  }
  return "unknown";
}

// One version of a key, as a segment entry or a WAL write holds it: the
// internal key split into its namespace, index name (a configuration) or cid
// (an index entry: the seq of its index's configuration) and user key; seq,
// kind and the value (prefixes only).
// A named-index entry's attribute record as an object {name: value} (tags
// as an array), or {"error": what} when it does not decode.
Json AttributesJson(std::string_view record) {
  std::vector<AttrColumn> cols;
  Status s = wal::DecodeAttrRecord(record, "entry", &cols);
  if (!s.ok()) return Json::Object({{"error", s.message()}});
  Json j = Json::Object();
  for (const AttrColumn& c : cols) {
    switch (c.type) {
      case AttrType::kInt64: j.Set(c.name, static_cast<int64_t>(c.ints[0])); break;
      case AttrType::kFloat64: j.Set(c.name, c.floats[0]); break;
      case AttrType::kBool: j.Set(c.name, c.bools[0] != 0); break;
      case AttrType::kString: j.Set(c.name, std::string(c.str(0))); break;
      case AttrType::kTags: {
        Json tags = Json::Array();
        for (size_t i = 0; i < c.tag_count(0); ++i) tags.Push(std::string(c.tag(0, i)));
        j.Set(c.name, std::move(tags));
        break;
      }
    }
  }
  return j;
}

Json EntryJson(std::string_view ikey, const engine::VersionView& v, uint32_t prefix) {
  Json j = Json::Object();
  const uint8_t ns = ikey.empty() ? 0xFF : static_cast<uint8_t>(ikey[0]);
  std::string_view rest = ikey.empty() ? ikey : ikey.substr(1);
  j.Set("namespace", NamespaceName(ns));
  uint64_t cid = 0;
  std::string_view key;
  if (ns == segment::kNamespaceCollections) {
    j.Set("index", EscapedPrefix(rest, kKeyPrefix));
    j.Set("key", Json());
  } else {
    if (engine::ParseRowKey(ikey, &cid, &key)) {
      j.Set("cid", cid);
      rest = key;
    }
    j.Set("key", EscapedPrefix(rest, kKeyPrefix));
  }
  j.Set("key_length", static_cast<uint64_t>(rest.size()));
  j.Set("seq", v.seq);
  if (v.kind == engine::ValueKind::kBytes) {
    j.Set("kind", "bytes");
    j.Set("value_length", static_cast<uint64_t>(v.bytes.size()));
    j.Set("value_prefix", EscapedPrefix(v.bytes, kMetadataPrefix));
    engine::CollectionConfig c;
    if (ns == segment::kNamespaceCollections && engine::CollectionConfig::Decode(v.bytes, "", &c).ok()) {
      j.Set("index_config",
            Json::Object({{"key_type", c.key_type == engine::KeyType::kU64 ? "u64" : "bytes"}, {"dim", c.dim},
                          {"m", c.m}, {"ef_construction", c.ef_construction}, {"metric", simd::MetricName(c.metric)},
                          {"graph_vectors", c.graph_vectors == engine::GraphVectors::kSq8 ? "sq8" : "float32"},
                          {"shards", c.shards}}));
    }
  } else if (v.kind == engine::ValueKind::kVector) {
    j.Set("kind", "vector");
    j.Set("metric", simd::MetricName(v.metric));
    j.Set("dim", v.dim);
    j.Set("has_metadata", v.has_metadata);
    if (v.has_metadata) MetadataFields(&j, v.bytes);
    if (!v.attrs.empty()) j.Set("attributes", AttributesJson(v.attrs));
    j.Set("vector_prefix", VectorPrefix(v.vec, v.dim, prefix));
  } else {
    j.Set("kind", "tombstone");
  }
  return j;
}

// The rows of a segment's u64 groups into r: `rows` (the first `limit` in
// all, group by group, ids ascending as stored) and `row_tombstones` (the
// first `limit` too), with their totals. Rows are read through
// SegmentFile::Metadata, which checks each row's block first, and the
// tombstones through SegmentFile::Tombstones: damage ends the lists and is
// the report's error (unless it has one already).
void U64RowsJson(const segment::SegmentFile& seg, const std::string& file, uint64_t limit, uint32_t prefix,
                 Report* r) {
  Json rows = Json::Array(), tombstones = Json::Array();
  uint64_t total_rows = 0, total_tombstones = 0, shown_rows = 0, shown_tombstones = 0;
  Status status;
  for (uint32_t g = 0; g < seg.group_count(); ++g) {
    const segment::GroupInfo& info = seg.group(g);
    if (info.kind != segment::GroupKind::kU64) continue;
    total_rows += info.rows;
    total_tombstones += info.tombstones;
    if (!status.ok()) continue;
    for (uint64_t row = 0; row < info.rows && shown_rows < limit; ++row, ++shown_rows) {
      Result<std::string_view> meta = seg.Metadata(g, row);
      if (!meta.ok()) {
        status = meta.status();
        break;
      }
      Json j = Json::Object({{"group", g}, {"cid", info.cid}, {"row", row}, {"id", seg.ids(g)[row]},
                             {"seq", seg.seqs(g)[row]}});
      MetadataFields(&j, *meta);
      j.Set("vector_prefix", VectorPrefix(seg.vector(g, row), info.dim, prefix));
      rows.Push(std::move(j));
    }
    if (!status.ok() || info.tombstones == 0 || shown_tombstones >= limit) continue;
    const uint64_t *ids = nullptr, *seqs = nullptr;
    status = seg.Tombstones(g, &ids, &seqs);
    for (uint64_t t = 0; status.ok() && t < info.tombstones && shown_tombstones < limit; ++t, ++shown_tombstones) {
      tombstones.Push(Json::Object({{"group", g}, {"cid", info.cid}, {"id", ids[t]}, {"seq", seqs[t]}}));
    }
  }
  r->json.Set("total_rows", total_rows);
  r->json.Set("rows", std::move(rows));
  r->json.Set("total_row_tombstones", total_tombstones);
  r->json.Set("row_tombstones", std::move(tombstones));
  if (!status.ok()) Fail(r, status, file);
}

// dump FILE of a segment: its summary, entries, u64 rows and row tombstones.
void DumpSegment(const std::string& file, uint64_t limit, uint32_t prefix, Report* r) {
  auto opened = OpenSegment(file, true);
  if (!opened.ok()) return Fail(r, opened.status(), file);
  const segment::SegmentFile& seg = **opened;
  r->json.Set("summary", SegmentSummary(seg));
  r->json.Set("total_entries", seg.entry_count());
  Json entries = Json::Array();
  for (uint64_t i = 0; i < seg.entry_count() && i < limit; ++i) {
    segment::EntryView e;
    Status s = seg.ReadEntry(i, &e);
    if (!s.ok()) {
      Fail(r, s, file);
      break;
    }
    const bool vector = e.kind == segment::EntryKind::kVector;
    const engine::ValueKind kind = e.kind == segment::EntryKind::kBytes ? engine::ValueKind::kBytes
                                   : vector                             ? engine::ValueKind::kVector
                                                                        : engine::ValueKind::kTombstone;
    const engine::VersionView view{e.seq, kind, e.metric, e.has_metadata, e.value, e.vector,
                                   vector ? seg.group(e.group).dim : 0, e.attrs};
    Json j = Json::Object({{"entry", i}});
    Merge(&j, EntryJson(e.key, view, prefix));
    if (vector) {
      j.Set("group", e.group);
      j.Set("row", e.row);
    }
    entries.Push(std::move(j));
  }
  r->json.Set("entries", std::move(entries));
  U64RowsJson(seg, file, limit, prefix, r);
}

// verify of a segment: all of it, and, when the manifest names it (`meta`),
// its size and seqs against what the manifest says.
void VerifySegment(const std::string& path, const engine::SegmentMeta* meta, VerifyState* st) {
  auto seg = OpenSegment(path, true);
  Status s = seg.status();
  if (s.ok() && meta != nullptr && (*seg)->file_size() != meta->file_size) {
    s = Status::Corruption(path + " holds " + std::to_string((*seg)->file_size()) + " bytes; the manifest says " +
                           std::to_string(meta->file_size));
  } else if (s.ok() && meta != nullptr && (*seg)->max_seq() > meta->last_seq) {
    s = Status::Corruption(path, segment::header2::kMaxSeq,
                           "segment max_seq " + std::to_string((*seg)->max_seq()) + " is above the last seq " +
                               std::to_string(meta->last_seq) + " the manifest gives it");
  }
  std::string detail;
  if (seg.ok()) {
    uint32_t graphs = 0;
    size_t columns = 0;
    for (uint32_t g = 0; g < (*seg)->group_count(); ++g) {
      graphs += (*seg)->group(g).has_graph ? 1 : 0;
      std::vector<std::pair<std::string, AttrType>> cols;
      if ((*seg)->group(g).kind == segment::GroupKind::kU64 && (*seg)->AttrColumns(g, &cols).ok()) columns += cols.size();
    }
    detail = std::to_string((*seg)->entry_count()) + " entries, " + std::to_string((*seg)->group_count()) +
             " vector groups" + (graphs ? ", " + std::to_string(graphs) + " hnsw graphs" : std::string()) +
             (columns ? ", " + std::to_string(columns) + " attribute columns" : std::string());
  }
  st->Check(path, "segment", s, detail);
}

// The report of one graph (levels, degrees, reachability, Verify) into *r.
void GraphReport(const index::HnswGraph& g, simd::Metric metric, const std::string& file, Report* r) {
  auto stats = g.Stats();
  if (!stats.ok()) return Fail(r, stats.status(), file);
  const index::HnswStats& st = *stats;
  Merge(&r->json, Json::Object({{"format_version", index::kHnswFormatVersion}, {"rows", st.rows}, {"dim", st.dim},
                                {"metric", simd::MetricName(metric)}, {"m", st.m}, {"m0", st.m0},
                                {"ef_construction", st.ef_construction}, {"seed", st.seed},
                                {"max_level", st.max_level},
                                {"entry_point", st.entry_point == index::kNoRow ? Json() : Json(st.entry_point)},
                                {"representation", st.sq8 ? "sq8" : "float32"}, {"reused_rows", st.reused_rows},
                                {"bytes", st.bytes}}));

  // Per layer: rows on it, and their degrees (links read through Links, which bounds-checks them).
  Json levels = Json::Array();
  const uint32_t rows = static_cast<uint32_t>(st.rows);
  for (uint32_t level = 0; level <= st.max_level && st.rows > 0; ++level) {
    uint64_t nodes = 0, edges = 0, empty = 0, full = 0;
    uint32_t dmin = UINT32_MAX, dmax = 0;
    const uint32_t bound = level == 0 ? st.m0 : st.m;
    for (uint32_t row = 0; row < rows; ++row) {
      if (g.level(row) < level) continue;
      const uint32_t* ids = nullptr;
      uint32_t count = 0;
      Status s = g.Links(row, level, &ids, &count);
      if (!s.ok()) return Fail(r, s, file);
      ++nodes;
      edges += count;
      dmin = std::min(dmin, count);
      dmax = std::max(dmax, count);
      empty += count == 0;
      full += count == bound;
    }
    levels.Push(Json::Object(
        {{"level", level}, {"top_level_nodes", level < st.nodes_per_level.size() ? st.nodes_per_level[level] : 0},
         {"nodes", nodes}, {"edges", edges}, {"degree_bound", bound}, {"degree_min", nodes ? Json(dmin) : Json()},
         {"degree_max", nodes ? Json(dmax) : Json()},
         {"degree_avg", nodes ? Json(static_cast<double>(edges) / static_cast<double>(nodes)) : Json()},
         {"nodes_without_links", empty}, {"nodes_at_bound", full}}));
  }
  r->json.Set("levels", std::move(levels));

  // Breadth-first walk of layer 0 from the entry point.
  uint64_t reached = 0;
  if (st.rows > 0) {
    std::vector<uint8_t> seen(st.rows, 0);
    std::vector<uint32_t> queue{st.entry_point};
    seen[st.entry_point] = 1;
    for (size_t head = 0; head < queue.size(); ++head) {
      const uint32_t* ids = nullptr;
      uint32_t count = 0;
      Status s = g.Links(queue[head], 0, &ids, &count);
      if (!s.ok()) return Fail(r, s, file);
      for (uint32_t j = 0; j < count; ++j) {
        if (ids[j] < st.rows && !seen[ids[j]]) {  // ids are checked by Verify, not by Links
          seen[ids[j]] = 1;
          queue.push_back(ids[j]);
        }
      }
    }
    reached = queue.size();
  }
  r->json.Set("layer0_reachability",
              Json::Object({{"reachable", reached}, {"unreachable", st.rows - reached},
                            {"fraction", st.rows ? Json(static_cast<double>(reached) / static_cast<double>(st.rows))
                                                 : Json()}}));

  Status v = g.Verify();
  r->json.Set("verified", v.ok());
  if (!v.ok()) Fail(r, v, file);
}

// graph FILE: the graph of vector group `group` of a segment, or of the first
// group that has one.
void GraphOfSegment(const std::string& file, std::optional<uint32_t> group, Report* r) {
  auto opened = OpenSegment(file, false);
  if (!opened.ok()) return Fail(r, opened.status(), file);
  const segment::SegmentFile& seg = **opened;
  Json with_graph = Json::Array();
  for (uint32_t g = 0; g < seg.group_count(); ++g) {
    if (seg.graph(g) == nullptr) continue;
    with_graph.Push(Json(g));
    if (!group) group = g;
  }
  r->json.Set("groups_with_graph", std::move(with_graph));
  r->json.Set("group", group ? Json(*group) : Json());
  if (!group) return Fail(r, Status::NotFound(file + ": no vector group of this segment has an HNSW graph"), file);
  if (*group >= seg.group_count() || seg.graph(*group) == nullptr) {
    return Fail(r, Status::InvalidArgument(file + ": group " + std::to_string(*group) + " of " +
                                           std::to_string(seg.group_count()) + " has no HNSW graph"),
                file);
  }
  const segment::GroupInfo& info = seg.group(*group);
  r->json.Set("group_kind", GroupKindName(info.kind));
  r->json.Set("cid", info.kind == segment::GroupKind::kRecords ? Json() : Json(info.cid));
  GraphReport(*seg.graph(*group), info.metric, file, r);
}

// ---------------------------------------------------------------------------
// WAL files

struct WalScan {
  uint64_t bytes = 0;
  uint64_t records = 0;
  // Ops by kind (the rows of a row array or row batch count as put rows).
  uint64_t put_rows = 0, delete_rows = 0, put_bytes = 0, put_vectors = 0, delete_keys = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  bool torn_tail = false;
  uint64_t good_end = 0;
  Status status;  // first problem, or OK

  uint64_t writes() const { return put_bytes + put_vectors + delete_keys; }
};

using WalVisit = std::function<bool(const wal::Record&, const wal::DecodedRecord&)>;

// Reads a whole WAL file with wal::Reader and decodes every record
// (wal/record_codec.h). Records with seq <= skip_seq are in a segment already
// (recovery skips them, so they are only decoded and counted); every other
// record's seq must be above *prev_seq (when given), which carries across the
// files of a directory. visit(rec, decoded), when given, sees every record;
// false stops.
WalScan ScanWal(const std::string& path, uint64_t skip_seq = 0, uint64_t* prev_seq = nullptr,
                const WalVisit& visit = nullptr) {
  WalScan scan;
  uint64_t own_prev = 0;
  if (prev_seq == nullptr) prev_seq = &own_prev;
  auto file = env()->MapFile(path);
  if (!file.ok()) {
    scan.status = file.status();
    return scan;
  }
  scan.bytes = (*file)->size();
  wal::Reader reader((*file)->data(), (*file)->size(), path);
  wal::Record rec;
  wal::DecodedRecord decoded;
  while (reader.Next(&rec)) {
    if (scan.records == 0) scan.first_seq = rec.seq;
    scan.last_seq = rec.seq;
    ++scan.records;
    const bool replayed = rec.seq > skip_seq;
    if (replayed && rec.seq <= *prev_seq) {
      scan.status = Status::Corruption(path, rec.offset + 8, "sequence number " + std::to_string(rec.seq) +
                                                                 " is not above " + std::to_string(*prev_seq));
      break;
    }
    if (replayed) *prev_seq = rec.seq;
    scan.status = wal::DecodeRecord(rec.type, rec.payload, path + " at offset " + std::to_string(rec.offset), &decoded);
    if (!scan.status.ok()) break;
    if (decoded.type == wal::RecordType::kRowArray) scan.put_rows += decoded.array.rows;
    if (decoded.type == wal::RecordType::kRowBatch) scan.put_rows += decoded.batch.rows;
    for (const auto& op : decoded.ops) {
      switch (op.kind) {
        case wal::OpKind::kPutRow: ++scan.put_rows; break;
        case wal::OpKind::kDeleteRow: ++scan.delete_rows; break;
        case wal::OpKind::kPutBytes: ++scan.put_bytes; break;
        case wal::OpKind::kPutVector: ++scan.put_vectors; break;
        case wal::OpKind::kDeleteKey: ++scan.delete_keys; break;
      }
    }
    if (visit && !visit(rec, decoded)) break;
  }
  if (scan.status.ok()) scan.status = reader.status();
  scan.torn_tail = reader.dropped_torn_tail();
  scan.good_end = reader.good_end();
  return scan;
}

// A WAL file's counts: row puts and deletes, key writes by kind.
Json WalJson(const WalScan& scan) {
  return Json::Object({{"bytes", scan.bytes}, {"records", scan.records}, {"puts", scan.put_rows},
                       {"deletes", scan.delete_rows}, {"writes", scan.writes()}, {"bytes_writes", scan.put_bytes},
                       {"vector_writes", scan.put_vectors}, {"tombstone_writes", scan.delete_keys},
                       {"first_seq", scan.records ? Json(scan.first_seq) : Json()},
                       {"last_seq", scan.records ? Json(scan.last_seq) : Json()}, {"torn_tail", scan.torn_tail},
                       {"good_end", scan.good_end}});
}

// A record of row ops (put and delete row, a row array, a row batch) rather than of key ops.
bool IsRowRecord(const wal::DecodedRecord& d) {
  return d.type == wal::RecordType::kRowArray || d.type == wal::RecordType::kRowBatch ||
         std::any_of(d.ops.begin(), d.ops.end(), [](const wal::RecordOp& op) {
           return op.kind == wal::OpKind::kPutRow || op.kind == wal::OpKind::kDeleteRow;
         });
}

// The ops of a row record into *j (op_count, ops), while *shown < limit.
void RowOpsJson(const wal::DecodedRecord& d, uint32_t prefix, uint64_t limit, uint64_t* shown, Json* j) {
  Json jops = Json::Array();
  auto put = [&](uint64_t cid, uint64_t id, std::string_view metadata, const void* vector, uint32_t dim) {
    Json o = Json::Object({{"kind", "put"}, {"cid", cid}, {"id", id}});
    MetadataFields(&o, metadata);
    o.Set("vector_prefix", VectorPrefix(vector, dim, prefix));
    jops.Push(std::move(o));
  };
  if (d.type == wal::RecordType::kRowBatch) {
    // A row batch: its rows' puts, and the names and types of its attribute columns.
    const wal::RowBatch& b = d.batch;
    j->Set("op_count", static_cast<uint64_t>(b.rows));
    Json cols = Json::Array();
    for (const AttrColumn& c : b.columns) cols.Push(Json::Object({{"name", c.name}, {"type", AttrTypeName(c.type)}}));
    j->Set("columns", std::move(cols));
    for (uint32_t i = 0; i < b.rows && *shown < limit; ++i, ++*shown) {
      const std::string_view meta =
          b.has_metadata ? b.meta_blob.substr(b.meta_offsets[i], b.meta_offsets[i + 1] - b.meta_offsets[i])
                         : std::string_view();
      put(b.cid, DecodeFixed64(b.ids + size_t{i} * 8), meta, b.vectors + size_t{i} * b.dim * 4, b.dim);
    }
  } else if (d.type == wal::RecordType::kRowArray) {
    j->Set("op_count", static_cast<uint64_t>(d.array.rows));
    for (uint32_t i = 0; i < d.array.rows && *shown < limit; ++i, ++*shown) {
      put(d.array.cid, DecodeFixed64(d.array.ids + size_t{i} * 8), {}, d.array.vectors + size_t{i} * d.array.dim * 4,
          d.array.dim);
    }
  } else {
    j->Set("op_count", static_cast<uint64_t>(d.ops.size()));
    for (const auto& op : d.ops) {
      if (*shown >= limit) break;
      ++*shown;
      if (op.kind == wal::OpKind::kPutRow) {
        put(op.cid, op.id, op.bytes, op.vector, op.dim);
      } else {
        jops.Push(Json::Object({{"kind", op.kind == wal::OpKind::kDeleteRow ? "delete" : wal::OpKindName(op.kind)},
                                {"cid", op.cid}, {"id", op.id}}));
      }
    }
  }
  j->Set("ops", std::move(jops));
}

// dump FILE of a WAL file: its records, with their row ops or key writes.
void DumpWal(const std::string& file, uint64_t limit, uint32_t prefix, Report* r) {
  Json records = Json::Array();
  uint64_t shown = 0;
  std::vector<engine::Write> writes;
  WalScan scan = ScanWal(file, 0, nullptr, [&](const wal::Record& rec, const wal::DecodedRecord& d) {
    if (shown >= limit) return false;
    Json j = Json::Object({{"offset", rec.offset}, {"seq", rec.seq}, {"type", static_cast<uint32_t>(rec.type)},
                           {"length", static_cast<uint64_t>(rec.payload.size())}});
    if (IsRowRecord(d)) {
      RowOpsJson(d, prefix, limit, &shown, &j);
    } else {
      if (!engine::WritesOf(d.ops, file, &writes).ok()) writes.clear();
      j.Set("write_count", static_cast<uint64_t>(writes.size()));
      Json jw = Json::Array();
      for (const auto& w : writes) {
        if (shown >= limit) break;
        ++shown;
        jw.Push(EntryJson(w.key, engine::ViewOf(rec.seq, *w.value), prefix));
      }
      j.Set("writes", std::move(jw));
    }
    records.Push(std::move(j));
    return true;
  });
  r->json.Set("records", std::move(records));
  r->json.Set("truncated", shown >= limit);
  r->json.Set("torn_tail", scan.torn_tail);
  if (!scan.status.ok()) Fail(r, scan.status, file);
}

// verify of a WAL file (skip_seq, prev_seq: ScanWal's); a torn tail is a note.
void VerifyWal(const std::string& path, uint64_t skip_seq, uint64_t* prev_seq, VerifyState* st) {
  WalScan scan = ScanWal(path, skip_seq, prev_seq);
  if (scan.status.ok() && scan.torn_tail) {
    st->notes.Push(Note(path, scan.good_end,
                        "torn tail: " + std::to_string(scan.bytes - scan.good_end) +
                            " bytes after the last good record are dropped on recovery (an unacknowledged write "
                            "cut by a crash, or a write in progress)"));
  }
  st->Check(path, "wal", scan.status,
            std::to_string(scan.records) + " records, " +
                std::to_string(scan.put_rows + scan.delete_rows + scan.writes()) + " ops");
}

// ---------------------------------------------------------------------------
// The manifest log and CURRENT

// A manifest log, read as the engine's recovery reads it (VersionSet::Replay).
struct ManifestLog {
  std::string path;  // of the MANIFEST-NNNNNN file
  uint64_t bytes = 0;
  engine::Version version;
  std::vector<engine::VersionSet::Record> records;
};

// A manifest log file; `number` is checked against the next file number when
// not 0 (the one CURRENT names).
Status ReadManifestLog(const std::string& path, uint64_t number, ManifestLog* m) {
  std::string raw;
  POMAI_RETURN_IF_ERROR(ReadFileToString(env(), path, &raw));
  m->path = path;
  m->bytes = raw.size();
  m->records.clear();
  return engine::VersionSet::Replay(raw, path, &m->version, &m->records, number);
}

// The manifest log of a directory, as recovery finds it: CheckNotOldFormat,
// VersionSet::ReadCurrent, the log CURRENT names.
Result<ManifestLog> ReadDirManifest(const std::string& dir) {
  POMAI_RETURN_IF_ERROR(engine::CheckNotOldFormat(env(), dir));
  POMAI_ASSIGN_OR_RETURN(const uint64_t number, engine::VersionSet::ReadCurrent(env(), dir));
  const std::string path = JoinPath(dir, files::FileName(files::FileType::kManifest, number));
  if (!env()->FileExists(path))
    return Status::Corruption(JoinPath(dir, "CURRENT"), 0, "CURRENT names " + path + ", which does not exist");
  ManifestLog m;
  POMAI_RETURN_IF_ERROR(ReadManifestLog(path, number, &m));
  return m;
}

// What a pass over a directory read of its manifest (CURRENT and the log it
// names): when a failed pass finds it changed, the failure may be a race with
// the engine and the pass is repeated.
std::string ManifestFingerprint(const std::string& dir) {
  std::string current, log;
  (void)ReadFileToString(env(), JoinPath(dir, "CURRENT"), &current);
  if (auto number = engine::VersionSet::ReadCurrent(env(), dir); number.ok())
    (void)ReadFileToString(env(), JoinPath(dir, files::FileName(files::FileType::kManifest, *number)), &log);
  return current + log;
}

Json SegmentMetaJson(const engine::SegmentMeta& s) {
  return Json::Object({{"file", files::FileName(files::FileType::kSegment, s.number)}, {"number", s.number},
                       {"file_size", s.file_size}, {"first_seq", s.first_seq}, {"last_seq", s.last_seq}});
}

// The state a manifest log describes (segments newest first).
Json ManifestLogJson(const ManifestLog& m) {
  Json segs = Json::Array();
  for (const engine::SegmentMeta& s : m.version.segments) segs.Push(SegmentMetaJson(s));
  return Json::Object({{"file", BaseName(m.path)}, {"bytes", m.bytes},
                       {"edits", static_cast<uint64_t>(m.records.size())}, {"format_version", engine::kFormatVersion},
                       {"next_file_number", m.version.next_file_number}, {"log_number", m.version.log_number},
                       {"last_seq", m.version.last_seq}, {"segments", std::move(segs)}});
}

std::string ManifestDetail(const ManifestLog& m) {
  return std::to_string(m.version.segments.size()) + " segments, " + std::to_string(m.records.size()) + " edits";
}

// dump FILE of a manifest log: its state and its edits (the fields each sets; null: not set).
void DumpManifest(const std::string& file, uint64_t limit, Report* r) {
  ManifestLog m;
  if (Status s = ReadManifestLog(file, 0, &m); !s.ok()) return Fail(r, s, file);
  r->json.Set("manifest_log", ManifestLogJson(m));
  auto opt = [](const auto& v) { return v ? Json(static_cast<uint64_t>(*v)) : Json(); };
  Json edits = Json::Array();
  for (size_t i = 0; i < m.records.size() && i < limit; ++i) {
    const engine::VersionSet::Record& rec = m.records[i];
    Json added = Json::Array(), removed = Json::Array();
    for (const engine::SegmentMeta& s : rec.edit.added) added.Push(SegmentMetaJson(s));
    for (uint64_t n : rec.edit.removed) removed.Push(Json(n));
    edits.Push(Json::Object({{"offset", rec.offset}, {"seq", rec.seq}, {"format_version", opt(rec.edit.format_version)},
                             {"log_number", opt(rec.edit.log_number)}, {"last_seq", opt(rec.edit.last_seq)},
                             {"next_file_number", opt(rec.edit.next_file_number)}, {"added", std::move(added)},
                             {"removed", std::move(removed)}}));
  }
  r->json.Set("edits", std::move(edits));
  r->json.Set("truncated", m.records.size() > limit);
}

void VerifyManifest(const std::string& path, VerifyState* st) {
  ManifestLog m;
  Status s = ReadManifestLog(path, 0, &m);
  st->Check(path, "manifest", s, s.ok() ? ManifestDetail(m) : "");
}

// dump FILE of CURRENT: the manifest log it names.
void DumpCurrent(const std::string& file, Report* r) {
  auto number = engine::VersionSet::ReadCurrent(env(), DirName(file));
  if (!number.ok()) return Fail(r, number.status(), file);
  r->json.Set("manifest", files::FileName(files::FileType::kManifest, *number));
}

void VerifyCurrent(const std::string& path, VerifyState* st) {
  auto number = engine::VersionSet::ReadCurrent(env(), DirName(path));
  st->Check(path, "current", number.status(),
            number.ok() ? "names " + files::FileName(files::FileType::kManifest, *number) : "");
}

// ---------------------------------------------------------------------------
// The directory

struct DirFile {
  std::string name;
  uint64_t number = 0;
  FileKind kind = FileKind::kUnknown;  // kSegment, kWal, or kUnknown for any other file
};

// The files of a directory: any other file by name, then segments and WAL files by number.
Result<std::vector<DirFile>> ListFiles(const std::string& dir) {
  POMAI_ASSIGN_OR_RETURN(std::vector<std::string> names, env()->ListDir(dir));
  std::vector<DirFile> list;
  for (const auto& name : names) {
    DirFile f{name};
    files::FileType type;
    if (files::ParseFileName(name, &type, &f.number)) {
      f.kind = type == files::FileType::kSegment ? FileKind::kSegment
               : type == files::FileType::kLog   ? FileKind::kWal
                                                 : FileKind::kUnknown;
    }
    list.push_back(f);
  }
  auto rank = [](const DirFile& f) { return f.kind == FileKind::kSegment ? 1 : f.kind == FileKind::kWal ? 2 : 0; };
  std::sort(list.begin(), list.end(), [&](const DirFile& a, const DirFile& b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    if (rank(a) != 0 && a.number != b.number) return a.number < b.number;
    return a.name < b.name;
  });
  return list;
}

std::string OrphanReason(const DirFile& f) {
  if (f.kind == FileKind::kSegment) return "segment not named by the manifest (removed on the next open)";
  if (f.kind == FileKind::kWal) return "WAL below the manifest's log_number (already in segments; removed on the next open)";
  if (IsManifestLogName(f.name)) return "manifest log that CURRENT does not name (removed on the next open)";
  if (f.name.ends_with(".tmp")) return "temporary file of an interrupted write (removed on the next open)";
  return "not a file of the database";
}

// LOCK, CURRENT and the manifest log CURRENT names (`manifest`: its name, or empty).
bool IsControlFile(const std::string& name, const std::string& manifest) {
  return name == "LOCK" || name == "CURRENT" || (!manifest.empty() && name == manifest);
}

// Runs pass() until it succeeds or the directory's manifest did not change
// during it: a database open elsewhere may replace its manifest and delete
// files while we read, so a failed pass may be that race (5 passes at most).
void RetryWhileManifestChanges(const std::string& dir, const std::function<bool()>& pass) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string before = ManifestFingerprint(dir);
    if (pass() || ManifestFingerprint(dir) == before) return;
  }
}

// The internal keys the commit records that recovery replays write: per key
// its last write (live: a value, not a tombstone; its seq). Newer than every segment.
struct Replayed {
  bool live = false;
  uint64_t seq = 0;
};
using KeyOverlay = std::map<std::string, Replayed, std::less<>>;

struct LiveKeys {
  uint64_t user_keys = 0;      // namespace 0x00: bytes values and vector records
  uint64_t index_entries = 0;  // namespace 0x02: entries of the live indexes
  std::set<uint64_t> live_cids;  // the seqs of the live configurations
};

// Counts one key's newest version. Configurations sort before entries, and
// the replayed ones are counted first: an entry counts when its cid is a
// live configuration's seq (else its index was dropped or replaced).
void CountLive(std::string_view ikey, bool live, uint64_t seq, LiveKeys* n) {
  if (!live || ikey.empty()) return;
  uint64_t cid = 0;
  std::string_view key;
  if (static_cast<uint8_t>(ikey[0]) == segment::kNamespaceKeys) ++n->user_keys;
  if (static_cast<uint8_t>(ikey[0]) == segment::kNamespaceCollections) n->live_cids.insert(seq);
  if (engine::ParseRowKey(ikey, &cid, &key) && n->live_cids.count(cid)) ++n->index_entries;
}

// The merge of both live counts: `sources` in age order (0 = the newest),
// each sorted by key; visit(i) sees each key once, with the newest source i
// holding it, then every source moves past that key (next(i): its next key).
template <class AtEnd, class KeyOf, class Next, class Visit>
Status MergeNewest(size_t sources, const AtEnd& at_end, const KeyOf& key_of, const Next& next, const Visit& visit) {
  for (;;) {
    size_t newest = sources;
    for (size_t i = 0; i < sources; ++i) {
      if (!at_end(i) && (newest == sources || key_of(i) < key_of(newest))) newest = i;
    }
    if (newest == sources) return Status::OK();
    const auto key = key_of(newest);
    visit(newest);
    for (size_t i = 0; i < sources; ++i) {
      while (!at_end(i) && key_of(i) == key) POMAI_RETURN_IF_ERROR(next(i));
    }
  }
}

// Adds to *n the live keys of the segments (newest first) that `wal` does
// not write: per key, the version of the newest segment holding it decides
// (a tombstone: not live). Each entry is read through SegmentFile::ReadEntry
// (checked; Corruption naming file and offset). u64 rows are not entries:
// they are not counted.
Status CountLiveKeys(const std::vector<const segment::SegmentFile*>& newest_first, const KeyOverlay& wal,
                     LiveKeys* n) {
  std::vector<uint64_t> pos(newest_first.size(), 0);
  std::vector<segment::EntryView> e(newest_first.size());  // of each segment at pos; keys point into the files
  auto at_end = [&](size_t i) { return pos[i] >= newest_first[i]->entry_count(); };
  auto load = [&](size_t i) { return at_end(i) ? Status::OK() : newest_first[i]->ReadEntry(pos[i], &e[i]); };
  for (size_t i = 0; i < e.size(); ++i) POMAI_RETURN_IF_ERROR(load(i));
  return MergeNewest(
      e.size(), at_end, [&](size_t i) { return e[i].key; },
      [&](size_t i) {
        ++pos[i];
        return load(i);
      },
      [&](size_t i) {
        if (wal.find(e[i].key) == wal.end()) CountLive(e[i].key, e[i].kind != segment::EntryKind::kTombstone, e[i].seq, n);
      });
}

// The rows (u64 collections, the default collection's) that the row records
// recovery replays write: per (cid, id) its last operation (true a put, false
// a delete). Newer than every segment.
using RowOverlay = std::map<std::pair<uint64_t, uint64_t>, bool>;

// The live rows of the u64 groups of the segments (newest first) whose
// collection is live (cid in `live_cids`) and whose (cid, id) `wal` does not
// write, plus wal's puts of live collections: per id, the newest segment
// holding it as a row or a tombstone decides. A merge per cid of the groups'
// sorted ids and tombstone ids; the segments passed Verify.
Result<uint64_t> CountLiveRows(const std::vector<const segment::SegmentFile*>& newest_first, const RowOverlay& wal,
                               const std::set<uint64_t>& live_cids) {
  struct Cursor {
    const uint64_t* at;
    const uint64_t* end;
    bool row;  // false: a tombstone
  };
  std::map<uint64_t, std::vector<Cursor>> by_cid;  // each in age order
  for (const segment::SegmentFile* seg : newest_first) {
    for (uint32_t g = 0; g < seg->group_count(); ++g) {
      const segment::GroupInfo& info = seg->group(g);
      if (info.kind != segment::GroupKind::kU64 || live_cids.count(info.cid) == 0) continue;
      const uint64_t *tomb_ids = nullptr, *tomb_seqs = nullptr;
      POMAI_RETURN_IF_ERROR(seg->Tombstones(g, &tomb_ids, &tomb_seqs));
      by_cid[info.cid].push_back({seg->ids(g), seg->ids(g) + info.rows, true});
      by_cid[info.cid].push_back({tomb_ids, tomb_ids + info.tombstones, false});
    }
  }
  uint64_t live = 0;
  for (auto& cid_cursors : by_cid) {
    const uint64_t cid = cid_cursors.first;  // not a structured binding: lambdas capture it
    std::vector<Cursor>& c = cid_cursors.second;
    POMAI_RETURN_IF_ERROR(MergeNewest(
        c.size(), [&](size_t i) { return c[i].at == c[i].end; }, [&](size_t i) { return *c[i].at; },
        [&](size_t i) {
          ++c[i].at;
          return Status::OK();
        },
        [&](size_t i) { live += c[i].row && wal.count({cid, *c[i].at}) == 0 ? 1 : 0; }));
  }
  for (const auto& [key, put] : wal) live += put && live_cids.count(key.first) ? 1 : 0;
  return live;
}

// The live keys, index entries and rows of a directory into totals: the
// segments' keys and rows that no newer segment and no replayed record
// overrides and whose version is not a tombstone, plus the ones whose last
// replayed write is a value or a put. A failure is the report's error.
void CountLiveTotals(const std::string& dir, const std::vector<const segment::SegmentFile*>& newest_first,
                     const KeyOverlay& replayed, const RowOverlay& replayed_rows, Json* totals, Report* r) {
  LiveKeys counted;
  auto is_config = [](const std::string& key) { return static_cast<uint8_t>(key[0]) == segment::kNamespaceCollections; };
  for (const auto& [key, w] : replayed) {
    if (is_config(key)) CountLive(key, w.live, w.seq, &counted);
  }
  Status s = CountLiveKeys(newest_first, replayed, &counted);
  for (const auto& [key, w] : replayed) {
    if (!is_config(key)) CountLive(key, w.live, w.seq, &counted);
  }
  if (!s.ok()) return Fail(r, s, dir);
  totals->Set("live_keys", counted.user_keys);
  totals->Set("live_index_entries", counted.index_entries);
  auto rows = CountLiveRows(newest_first, replayed_rows, counted.live_cids);
  if (!rows.ok()) return Fail(r, rows.status(), dir);
  totals->Set("live_rows", *rows);
}

// pomai-inspect DIR, one pass: the manifest log, every segment and WAL file
// with its counts, orphans, missing files, totals and the live counts.
Report SummarizeDirOnce(const std::string& dir) {
  Report r = NewReport("summary", "path", dir);
  r.json.Set("database", "keyspace");
  r.json.Set("manifest_log", Json());
  // A directory of format version 1 is refused naming its manifest, as an open refuses it.
  if (Status old = engine::CheckNotOldFormat(env(), dir); !old.ok()) {
    Fail(&r, old, dir);
    return r;
  }
  auto list = ListFiles(dir);
  if (!list.ok()) {
    Fail(&r, list.status(), dir);
    return r;
  }
  std::optional<ManifestLog> log;
  if (auto m = ReadDirManifest(dir); m.ok()) {
    log = std::move(m).value();
    r.json.Set("manifest_log", ManifestLogJson(*log));
  } else {
    Fail(&r, m.status(), dir);
  }
  const engine::Version* manifest = log ? &log->version : nullptr;
  const std::string manifest_name = log ? BaseName(log->path) : std::string();
  std::vector<uint64_t> named;  // newest first
  if (manifest) {
    for (const engine::SegmentMeta& s : manifest->segments) named.push_back(s.number);
  }
  auto is_named = [&](uint64_t n) { return std::find(named.begin(), named.end(), n) != named.end(); };

  Json segments = Json::Array(), wals = Json::Array(), orphans = Json::Array(), missing = Json::Array();
  uint64_t total_entries = 0, total_bytes = 0, wal_records = 0, wal_writes = 0, segment_rows = 0,
           segment_tombstones = 0;
  std::set<uint64_t> present;
  // For the live counts: the live segments by number, what the replayed
  // records write, and whether every live file could be read.
  std::map<uint64_t, std::shared_ptr<segment::SegmentFile>> live_segments;
  KeyOverlay replayed;
  RowOverlay replayed_rows;
  bool live_readable = manifest != nullptr;
  uint64_t prev_seq = manifest ? manifest->last_seq : 0;
  // Recovery replays the records of the live WALs (in number order) above the manifest's last_seq.
  auto replay = [&](const wal::Record& rec, const wal::DecodedRecord& d) {
    if (rec.seq <= manifest->last_seq) return true;
    if (IsRowRecord(d)) {
      for (const auto& op : d.ops) replayed_rows[{op.cid, op.id}] = op.kind == wal::OpKind::kPutRow;
      for (uint32_t i = 0; i < d.array.rows && d.type == wal::RecordType::kRowArray; ++i)
        replayed_rows[{d.array.cid, DecodeFixed64(d.array.ids + size_t{i} * 8)}] = true;
      for (uint32_t i = 0; i < d.batch.rows && d.type == wal::RecordType::kRowBatch; ++i)
        replayed_rows[{d.batch.cid, DecodeFixed64(d.batch.ids + size_t{i} * 8)}] = true;
    } else {
      for (const auto& op : d.ops) replayed[std::string(op.key)] = Replayed{op.kind != wal::OpKind::kDeleteKey, rec.seq};
    }
    return true;
  };
  for (const DirFile& f : *list) {
    const std::string path = JoinPath(dir, f.name);
    auto size = env()->FileSize(path);
    const uint64_t bytes = size.ok() ? *size : 0;
    total_bytes += bytes;
    const bool live =
        manifest && ((f.kind == FileKind::kSegment && is_named(f.number)) || (f.kind == FileKind::kWal && f.number >= manifest->log_number));
    if (!live && !IsControlFile(f.name, manifest_name)) {
      orphans.Push(
          Json::Object({{"file", f.name}, {"bytes", bytes}, {"reason", manifest ? OrphanReason(f) : "no readable manifest"}}));
    }
    if (f.kind == FileKind::kUnknown) continue;
    Json j = Json::Object({{"file", f.name}, {"number", f.number}, {"live", live}});
    Status error;
    if (f.kind == FileKind::kSegment) {
      present.insert(f.number);
      auto seg = OpenSegment(path, true);
      error = seg.status();
      if (!seg.ok()) {
        j.Set("bytes", bytes);
      } else {
        Merge(&j, SegmentSummary(**seg));
        if (live) {
          total_entries += (*seg)->entry_count();
          for (uint32_t g = 0; g < (*seg)->group_count(); ++g) {
            if ((*seg)->group(g).kind != segment::GroupKind::kU64) continue;
            segment_rows += (*seg)->group(g).rows;
            segment_tombstones += (*seg)->group(g).tombstones;
          }
          live_segments[f.number] = *seg;
        }
      }
    } else {
      WalScan scan = live ? ScanWal(path, manifest->last_seq, &prev_seq, replay) : ScanWal(path, UINT64_MAX);
      error = scan.status;
      Merge(&j, WalJson(scan));
      if (live) {
        wal_records += scan.records;
        wal_writes += scan.writes();
      }
    }
    j.Set("error", error.ok() ? Json() : Problem(error, path));
    if (live && !error.ok()) {
      Fail(&r, error, path);
      live_readable = false;
    }
    (f.kind == FileKind::kSegment ? segments : wals).Push(std::move(j));
  }
  for (uint64_t number : named) {
    if (present.count(number) == 0) missing.Push(Json::Object({{"file", files::FileName(files::FileType::kSegment, number)}}));
  }
  r.json.Set("segments", std::move(segments));
  r.json.Set("wal", std::move(wals));
  r.json.Set("orphans", std::move(orphans));
  r.json.Set("missing", missing);
  // The live counts are null when a live file is missing or unreadable.
  Json totals = Json::Object({{"live_segments", static_cast<uint64_t>(named.size())},
                              {"segment_entries", total_entries}, {"segment_rows", segment_rows},
                              {"segment_tombstones", segment_tombstones}, {"wal_records", wal_records},
                              {"wal_writes", wal_writes}, {"bytes", total_bytes}, {"live_keys", Json()},
                              {"live_index_entries", Json()}, {"live_rows", Json()}});
  if (live_readable && missing.items().empty()) {
    std::vector<const segment::SegmentFile*> newest_first;
    for (uint64_t n : named) newest_first.push_back(live_segments.at(n).get());
    CountLiveTotals(dir, newest_first, replayed, replayed_rows, &totals, &r);
  }
  r.json.Set("totals", std::move(totals));
  if (!missing.items().empty()) {
    Fail(&r, Status::Corruption(log->path + " names " + missing.items()[0]["file"].AsString() + ", which is missing"),
         log->path);
  }
  return r;
}

// verify DIR, one pass: the manifest log CURRENT names, every segment it
// names, every live WAL file; anything else is a note.
void VerifyDirOnce(const std::string& dir, VerifyState* st) {
  auto list = ListFiles(dir);
  if (!list.ok()) return st->Check(dir, "unknown", list.status());
  if (Status old = engine::CheckNotOldFormat(env(), dir); !old.ok()) return st->Check(dir, "manifest", old);
  auto decoded = ReadDirManifest(dir);
  st->Check(decoded.ok() ? decoded->path : JoinPath(dir, "CURRENT"), "manifest", decoded.status(),
            decoded.ok() ? ManifestDetail(*decoded) : "");
  if (!decoded.ok()) return;
  const engine::Version& m = decoded->version;
  std::set<uint64_t> named;
  for (const engine::SegmentMeta& meta : m.segments) {
    named.insert(meta.number);
    const std::string path = JoinPath(dir, files::FileName(files::FileType::kSegment, meta.number));
    if (env()->FileExists(path)) {
      VerifySegment(path, &meta, st);
    } else {
      st->Check(path, "segment", Status::Corruption(decoded->path + " names " + path + ", which is missing"));
    }
  }
  uint64_t prev_seq = m.last_seq;
  for (const DirFile& f : *list) {
    const std::string path = JoinPath(dir, f.name);
    if (f.kind == FileKind::kWal && f.number >= m.log_number) {
      VerifyWal(path, m.last_seq, &prev_seq, st);
    } else if (!IsControlFile(f.name, BaseName(decoded->path)) && !(f.kind == FileKind::kSegment && named.count(f.number))) {
      st->notes.Push(Note(path, std::nullopt, "not checked: " + OrphanReason(f)));
    }
  }
}

// The verdict, counts and lists of a verify report.
Report FinishVerify(const std::string& path, VerifyState st) {
  Report r = NewReport("verify", "path", path);
  const bool ok = st.problems.items().empty();
  r.json.Set("ok", ok);
  r.json.Set("error", ok ? Json() : st.problems.items()[0]);
  r.json.Set("counts", Json::Object({{"checked", static_cast<uint64_t>(st.checked.items().size())},
                                     {"problems", static_cast<uint64_t>(st.problems.items().size())},
                                     {"notes", static_cast<uint64_t>(st.notes.items().size())}}));
  r.json.Set("checked", std::move(st.checked));
  r.json.Set("notes", std::move(st.notes));
  r.json.Set("problems", std::move(st.problems));
  r.exit_code = ok ? 0 : 1;
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------
// The commands

Report InspectDir(const std::string& dir, const InspectOptions&) {
  Report r;
  RetryWhileManifestChanges(dir, [&] {
    r = SummarizeDirOnce(dir);
    return r.exit_code == 0;
  });
  return r;
}

Report InspectSegment(const std::string& file, const InspectOptions&) {
  Report r = NewReport("segment", "file", file);
  InspectSegmentFile(file, &r);
  return r;
}

Report Verify(const std::string& path, const InspectOptions& opt) {
  VerifyState st;
  auto is_dir = env()->ListDir(path);
  if (!is_dir.ok() && !env()->FileExists(path)) {
    st.Check(path, "unknown", Status::IOError(path + ": no such file or directory"));
  } else if (is_dir.ok() && opt.kind.empty()) {
    RetryWhileManifestChanges(path, [&] {
      st = VerifyState();
      VerifyDirOnce(path, &st);
      return st.problems.items().empty();
    });
  } else {
    const FileKind kind = DetectKind(path, opt.kind);
    uint64_t prev_seq = 0;
    switch (kind) {
      case FileKind::kSegment: VerifySegment(path, nullptr, &st); break;
      case FileKind::kWal: VerifyWal(path, 0, &prev_seq, &st); break;
      case FileKind::kCurrent: VerifyCurrent(path, &st); break;
      case FileKind::kManifest: VerifyManifest(path, &st); break;
      default: st.Check(path, KindName(kind), Refusal(path, kind));
    }
  }
  return FinishVerify(path, std::move(st));
}

Report VerifyWithoutFiles(const std::string& path, const std::string& why) {
  VerifyState st;
  st.notes.Push(Note(path, std::nullopt, why));
  return FinishVerify(path, std::move(st));
}

Report Dump(const std::string& file, const InspectOptions& opt) {
  Report r = NewReport("dump", "file", file);
  const FileKind kind = DetectKind(file, opt.kind);
  r.json.Set("kind", KindName(kind));
  r.json.Set("limit", opt.limit);
  const uint64_t limit = opt.limit == 0 ? UINT64_MAX : opt.limit;
  switch (kind) {
    case FileKind::kSegment: DumpSegment(file, limit, opt.prefix, &r); break;
    case FileKind::kWal: DumpWal(file, limit, opt.prefix, &r); break;
    case FileKind::kCurrent: DumpCurrent(file, &r); break;
    case FileKind::kManifest: DumpManifest(file, limit, &r); break;
    default: Fail(&r, Refusal(file, kind), file);
  }
  return r;
}

Report Graph(const std::string& file, const InspectOptions& opt) {
  Report r = NewReport("graph", "file", file);
  GraphOfSegment(file, opt.group, &r);
  return r;
}

}  // namespace pomai::inspect
