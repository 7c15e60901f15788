#include "segment/writer.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <tuple>

#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"

namespace pomai::segment {

static_assert(std::endian::native == std::endian::little, "pomai segments need a little-endian host");

namespace {

// Bytes are handed to the file in pieces of about this size, so small appends
// (48-byte entries, one row's vector) do not each cost a system call.
constexpr size_t kWriteChunk = size_t{1} << 20;
constexpr uint8_t kZeros[kSectionAlign] = {};
constexpr uint32_t kMaxMetric = 2;

std::string KeyForMessage(std::string_view key) { return Printable(key); }

uint64_t DecodeBE64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

struct TableEntry {
  uint16_t kind;
  uint16_t column;
  uint32_t group;
  uint64_t offset;
  uint64_t length;
  uint32_t crc;
};

}  // namespace

// Streams bytes into a WritableFile through a buffer, tracking the file
// offset and the current section's CRC.
class SegmentWriter::Stream {
 public:
  explicit Stream(WritableFile* file) : file_(file) { buf_.reserve(kWriteChunk); }

  uint64_t offset() const { return offset_; }
  std::vector<TableEntry>& table() { return table_; }

  Status Raw(const void* data, size_t n) { return Write(data, n, false); }
  Status Pad() {
    const size_t pad = static_cast<size_t>((kSectionAlign - offset_ % kSectionAlign) % kSectionAlign);
    return Write(kZeros, pad, false);
  }
  Status Begin(SectionKind kind, uint32_t group, uint16_t column = 0) {
    POMAI_RETURN_IF_ERROR(Pad());
    current_ = TableEntry{static_cast<uint16_t>(kind), column, group, offset_, 0, 0};
    return Status::OK();
  }
  Status Add(const void* data, uint64_t n) { return Write(data, n, true); }
  Status AddU32(uint32_t v) {
    uint8_t b[4];
    EncodeFixed32(b, v);
    return Add(b, 4);
  }
  Status AddU64(uint64_t v) {
    uint8_t b[8];
    EncodeFixed64(b, v);
    return Add(b, 8);
  }
  Status AddZeros(uint64_t n) {
    while (n > 0) {
      const size_t c = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
      POMAI_RETURN_IF_ERROR(Add(kZeros, c));
      n -= c;
    }
    return Status::OK();
  }
  void End() {
    current_.length = offset_ - current_.offset;
    table_.push_back(current_);
  }
  Status Flush() {
    if (buf_.empty()) return Status::OK();
    Status s = file_->Append(buf_.data(), buf_.size());
    buf_.clear();
    return s;
  }

 private:
  Status Write(const void* data, uint64_t n, bool in_section) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      const size_t c = static_cast<size_t>(std::min<uint64_t>(n, kWriteChunk - buf_.size()));
      if (in_section) current_.crc = crc32c::Extend(current_.crc, p, c);
      buf_.append(reinterpret_cast<const char*>(p), c);
      p += c;
      n -= c;
      offset_ += c;
      if (buf_.size() == kWriteChunk) POMAI_RETURN_IF_ERROR(Flush());
    }
    return Status::OK();
  }

  WritableFile* file_;
  std::string buf_;
  uint64_t offset_ = 0;
  TableEntry current_{};
  std::vector<TableEntry> table_;
};

GroupHandle SegmentWriter::AddRecordGroup(uint32_t dim, simd::Metric metric) {
  Group g;
  g.kind = GroupKind::kRecords;
  g.dim = dim;
  g.metric = metric;
  groups_.push_back(std::move(g));
  return static_cast<GroupHandle>(groups_.size() - 1);
}

GroupHandle SegmentWriter::AddCollectionGroup(uint64_t cid, uint32_t dim, simd::Metric metric) {
  Group g;
  g.kind = GroupKind::kBytes;
  g.cid = cid;
  g.dim = dim;
  g.metric = metric;
  groups_.push_back(std::move(g));
  return static_cast<GroupHandle>(groups_.size() - 1);
}

GroupHandle SegmentWriter::AddU64Group(const U64Rows& rows) {
  Group g;
  g.kind = GroupKind::kU64;
  g.cid = rows.cid;
  g.dim = rows.dim;
  g.metric = rows.metric;
  g.u64 = rows;
  groups_.push_back(std::move(g));
  return static_cast<GroupHandle>(groups_.size() - 1);
}

void SegmentWriter::SetGraph(GroupHandle g, std::vector<index::GraphSection> sections) {
  if (g >= groups_.size()) {
    misuse_ = "a graph for group " + std::to_string(g) + ", which was not added";
    return;
  }
  groups_[g].graph = std::move(sections);
  groups_[g].graph_set = true;
}

void SegmentWriter::AddBytes(std::string_view key, uint64_t seq, std::string_view value) {
  entries_.push_back(Entry{key, seq, EntryKind::kBytes, value});
}

void SegmentWriter::AddVector(std::string_view key, uint64_t seq, GroupHandle g, const float* vector,
                              const std::string_view* metadata, std::string_view attrs) {
  Entry e{key, seq, EntryKind::kVector, metadata != nullptr ? *metadata : std::string_view()};
  e.has_metadata = metadata != nullptr;
  e.attrs = attrs;
  e.group = g;
  e.vector = vector;
  entries_.push_back(e);
}

void SegmentWriter::AddTombstone(std::string_view key, uint64_t seq) {
  entries_.push_back(Entry{key, seq, EntryKind::kTombstone, std::string_view()});
}

Status SegmentWriter::PlanAttributes(const std::string& name, Group* g) {
  g->attrs.clear();
  if (g->u64.columns == nullptr || g->u64.columns->empty()) return Status::OK();
  const std::vector<AttrColumn>& columns = *g->u64.columns;
  const size_t rows = g->u64.rows;
  Status s = CheckAttrColumns(columns, rows);
  if (!s.ok()) return Status::InvalidArgument("segment writer: " + name + ": " + s.message());
  g->attrs.resize(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) g->attrs[i].column = &columns[i];
  std::sort(g->attrs.begin(), g->attrs.end(),
            [](const AttrPlan& a, const AttrPlan& b) { return a.column->name < b.column->name; });
  for (AttrPlan& p : g->attrs) {
    const AttrColumn& c = *p.column;
    for (size_t r = 0; r < rows && !p.has_valid; ++r) p.has_valid = !c.has_value(r);
    if (c.type != AttrType::kString && c.type != AttrType::kTags) continue;
    // The dictionary: the values rows use, sorted (bytewise), each once; codes index it.
    std::vector<std::string_view> values;
    if (c.type == AttrType::kString) {
      values.reserve(rows);
      for (size_t r = 0; r < rows; ++r) values.push_back(c.has_value(r) ? c.str(r) : std::string_view());
    } else {
      const size_t tags = c.tag_offsets.size() - 1;
      values.reserve(tags);
      for (size_t j = 0; j < tags; ++j) {
        values.push_back(std::string_view(c.bytes).substr(c.tag_offsets[j], c.tag_offsets[j + 1] - c.tag_offsets[j]));
      }
    }
    if (c.type == AttrType::kString) {
      for (size_t r = 0; r < rows; ++r) {
        if (c.has_value(r)) p.dict.push_back(values[r]);
      }
    } else {
      p.dict = values;
    }
    std::sort(p.dict.begin(), p.dict.end());
    p.dict.erase(std::unique(p.dict.begin(), p.dict.end()), p.dict.end());
    if (p.dict.size() > 0xFFFFFFFFull) {
      return Status::InvalidArgument("segment writer: " + name + ": attribute column '" + Printable(c.name) + "' has " +
                                     std::to_string(p.dict.size()) + " distinct values (codes are u32)");
    }
    p.codes.resize(values.size());
    for (size_t j = 0; j < values.size(); ++j) {
      const bool null_row = c.type == AttrType::kString && !c.has_value(j);
      p.codes[j] = null_row ? 0
                            : static_cast<uint32_t>(std::lower_bound(p.dict.begin(), p.dict.end(), values[j]) -
                                                    p.dict.begin());
    }
  }
  return Status::OK();
}

Status SegmentWriter::Validate() {
  auto bad = [](const std::string& what) { return Status::InvalidArgument("segment writer: " + what); };
  if (!misuse_.empty()) return bad(misuse_);
  bool any_seq = false;
  auto seen = [&](uint64_t seq, uint64_t* lo, uint64_t* hi, bool first) {
    if (first || seq < *lo) *lo = seq;
    if (first || seq > *hi) *hi = seq;
  };
  auto file_seq = [&](uint64_t seq) {
    seen(seq, &min_seq_, &max_seq_, !any_seq);
    any_seq = true;
  };

  // Groups.
  for (size_t h = 0; h < groups_.size(); ++h) {
    Group& g = groups_[h];
    const std::string name = "group " + std::to_string(h);
    if (g.dim == 0 || g.dim > kMaxDim) return bad(name + " has dim " + std::to_string(g.dim) + ", not in 1..65535");
    if (static_cast<uint32_t>(g.metric) > kMaxMetric) return bad(name + " has an unknown metric");
    if (g.graph_set && g.kind == GroupKind::kRecords) return bad(name + ": a graph for a group of vector records");
    g.rows_per_block = RowsPerBlock(g.dim, block_bytes_);
    g.row_entries.clear();
    g.row_vectors.clear();
    if (g.kind != GroupKind::kU64) continue;
    const U64Rows& u = g.u64;
    if (u.rows > kMaxGroupRows) return bad(name + " has " + std::to_string(u.rows) + " rows, above 2^32 - 2");
    uint64_t bytes = 0;
    if (MulOverflows(u.rows, uint64_t{g.dim} * 4, &bytes) || MulOverflows(u.tombstones, 16, &bytes)) {
      return bad(name + " is too large");
    }
    if (u.rows > 0 && (u.ids == nullptr || u.seqs == nullptr || u.vectors == nullptr)) {
      return bad(name + " has rows but no ids, seqs or vectors");
    }
    if (u.tombstones > 0 && (u.tombstone_ids == nullptr || u.tombstone_seqs == nullptr)) {
      return bad(name + " has tombstones but no ids or seqs");
    }
    bool first = true;
    for (size_t r = 0; r < u.rows; ++r) {
      if (r > 0 && u.ids[r] <= u.ids[r - 1]) {
        return bad(name + ": ids are not strictly ascending at row " + std::to_string(r) + " (" +
                   std::to_string(u.ids[r]) + " after " + std::to_string(u.ids[r - 1]) + ")");
      }
      seen(u.seqs[r], &g.min_seq, &g.max_seq, first);
      first = false;
      file_seq(u.seqs[r]);
    }
    for (size_t t = 0; t < u.tombstones; ++t) {
      if (t > 0 && u.tombstone_ids[t] <= u.tombstone_ids[t - 1]) {
        return bad(name + ": tombstone ids are not strictly ascending at " + std::to_string(t));
      }
      seen(u.tombstone_seqs[t], &g.min_seq, &g.max_seq, first);
      first = false;
      file_seq(u.tombstone_seqs[t]);
    }
    if (u.metadata_offsets != nullptr) {
      if (u.metadata_offsets[0] != 0) return bad(name + ": the first metadata offset is not 0");
      for (size_t r = 1; r <= u.rows; ++r) {
        if (u.metadata_offsets[r] < u.metadata_offsets[r - 1]) {
          return bad(name + ": metadata offsets decrease at " + std::to_string(r));
        }
      }
      if (u.metadata_offsets[u.rows] > 0 && u.metadata_blob == nullptr) {
        return bad(name + ": metadata offsets point into a null blob");
      }
    }
    POMAI_RETURN_IF_ERROR(PlanAttributes(name, &g));
  }
  // Descriptor order: (kind, cid, dim, metric) strictly ascending.
  file_order_.resize(groups_.size());
  for (uint32_t i = 0; i < groups_.size(); ++i) file_order_[i] = i;
  auto order_key = [this](uint32_t h) {
    const Group& g = groups_[h];
    return std::make_tuple(static_cast<uint8_t>(g.kind), g.cid, g.dim, static_cast<uint8_t>(g.metric));
  };
  std::sort(file_order_.begin(), file_order_.end(),
            [&](uint32_t a, uint32_t b) { return order_key(a) < order_key(b); });
  for (size_t i = 0; i < file_order_.size(); ++i) {
    if (i > 0 && order_key(file_order_[i]) == order_key(file_order_[i - 1])) {
      return bad("groups " + std::to_string(file_order_[i - 1]) + " and " + std::to_string(file_order_[i]) +
                 " have the same kind, cid, dim and metric");
    }
    groups_[file_order_[i]].file_index = static_cast<uint32_t>(i);
  }

  // Entries.
  if (entries_.size() >= 0xFFFFFFFFull) return bad("too many entries");
  for (size_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    const std::string name = "entry " + std::to_string(i) + " (key " + KeyForMessage(e.key) + ")";
    if (i > 0 && e.key <= entries_[i - 1].key) return bad(name + " does not follow its predecessor's key");
    if (e.key.empty()) return bad("entry " + std::to_string(i) + " has an empty key");
    const uint8_t ns = static_cast<uint8_t>(e.key[0]);
    const size_t len = e.key.size();
    if (ns == kNamespaceKeys) {
      if (len < 2 || len - 1 > kMaxKeyLen) return bad(name + ": user keys are 1..65535 bytes");
    } else if (ns == kNamespaceCollections) {
      if (len - 1 > kMaxCollectionNameLen) return bad(name + ": collection names are 0..255 bytes");
      if (e.kind == EntryKind::kVector) return bad(name + ": a configuration key holds a vector");
    } else if (ns == kNamespaceRows) {
      if (len < 10 || len - 9 > kMaxKeyLen) return bad(name + ": a collection row key is 0x02 + BE64(cid) + 1..65535 bytes");
      if (e.kind == EntryKind::kBytes) return bad(name + ": a collection row holds a bytes value");
    } else {
      return bad(name + ": unknown key namespace " + std::to_string(ns));
    }
    if (e.value.size() > kMaxValueLen || e.attrs.size() > kMaxValueLen)
      return bad(name + ": value of " + std::to_string(e.value.size()) + " bytes, attributes of " +
                 std::to_string(e.attrs.size()));
    if (!e.attrs.empty() && ns != kNamespaceRows) return bad(name + ": attributes outside a collection row");
    file_seq(e.seq);
    if (e.kind != EntryKind::kVector) continue;
    if (e.group >= groups_.size() || groups_[e.group].kind == GroupKind::kU64) {
      return bad(name + " names no group of vector entries");
    }
    Group& g = groups_[e.group];
    if (e.vector == nullptr) return bad(name + " has no vector");
    if (g.kind == GroupKind::kRecords && ns != kNamespaceKeys) return bad(name + ": a vector record's key is 0x00 + key");
    if (g.kind == GroupKind::kBytes && (ns != kNamespaceRows || DecodeBE64(e.key.data() + 1) != g.cid)) {
      return bad(name + " is not a row of collection " + std::to_string(g.cid));
    }
    if (g.row_entries.size() >= kMaxGroupRows) return bad(name + ": its group is full");
    e.row = static_cast<uint32_t>(g.row_entries.size());
    seen(e.seq, &g.min_seq, &g.max_seq, g.row_entries.empty());
    g.row_entries.push_back(static_cast<uint32_t>(i));
    g.row_vectors.push_back(e.vector);
  }

  // Graphs: the header must describe the group (HnswGraph::Open, O(1)).
  for (size_t h = 0; h < groups_.size(); ++h) {
    Group& g = groups_[h];
    if (!g.graph_set) continue;
    const size_t rows = g.kind == GroupKind::kU64 ? g.u64.rows : g.row_entries.size();
    uint32_t kinds_seen = 0;
    for (const index::GraphSection& s : g.graph) {
      if (s.kind < KindNumber(SectionKind::kHnswHeader) || s.kind > KindNumber(SectionKind::kHnswSq8Norms)) {
        return bad("group " + std::to_string(h) + ": graph section of kind " + std::to_string(s.kind));
      }
      const uint32_t bit = 1u << (s.kind - KindNumber(SectionKind::kHnswHeader));
      if (kinds_seen & bit) return bad("group " + std::to_string(h) + ": graph section kind " + std::to_string(s.kind) + " twice");
      kinds_seen |= bit;
    }
    auto graph = index::HnswGraph::Open(
        [&](uint32_t kind) {
          for (const index::GraphSection& s : g.graph) {
            if (s.kind == kind) return std::string_view(s.bytes);
          }
          return std::string_view();
        },
        // Open reads no vector; it only needs them to exist.
        g.kind == GroupKind::kU64 ? g.u64.vectors : (g.row_vectors.empty() ? nullptr : g.row_vectors[0]), rows,
        g.dim, g.metric, "graph of group " + std::to_string(h));
    if (!graph.ok()) return bad(graph.status().message());
  }
  return Status::OK();
}

Status SegmentWriter::WriteGroup(Stream* out, const Group& g) const {
  const uint32_t gi = g.file_index;
  const bool u64 = g.kind == GroupKind::kU64;
  const uint64_t rows = u64 ? g.u64.rows : g.row_entries.size();
  const size_t row_bytes = size_t{g.dim} * 4;
  const U64Rows& u = g.u64;
  auto meta_off = [&](uint64_t r) { return u.metadata_offsets != nullptr ? u.metadata_offsets[r] : 0; };

  if (u64) {
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kRowIds, gi));
    POMAI_RETURN_IF_ERROR(out->Add(u.ids, rows * 8));
    out->End();
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kRowSeqs, gi));
    POMAI_RETURN_IF_ERROR(out->Add(u.seqs, rows * 8));
    out->End();
  } else {
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kRowEntries, gi));
    POMAI_RETURN_IF_ERROR(out->Add(g.row_entries.data(), rows * 4));
    out->End();
  }
  POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kRowVectors, gi));
  if (u64) {
    POMAI_RETURN_IF_ERROR(out->Add(u.vectors, rows * row_bytes));
  } else {
    for (const float* v : g.row_vectors) POMAI_RETURN_IF_ERROR(out->Add(v, row_bytes));
  }
  out->End();
  if (u64) {
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kMetadataOffsets, gi));
    if (u.metadata_offsets != nullptr) {
      POMAI_RETURN_IF_ERROR(out->Add(u.metadata_offsets, (rows + 1) * 8));
    } else {
      POMAI_RETURN_IF_ERROR(out->AddZeros((rows + 1) * 8));
    }
    out->End();
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kMetadataBlob, gi));
    POMAI_RETURN_IF_ERROR(out->Add(u.metadata_blob, meta_off(rows)));
    out->End();
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kTombstoneIds, gi));
    POMAI_RETURN_IF_ERROR(out->Add(u.tombstone_ids, u.tombstones * 8));
    out->End();
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kTombstoneSeqs, gi));
    POMAI_RETURN_IF_ERROR(out->Add(u.tombstone_seqs, u.tombstones * 8));
    out->End();
  }
  // Block CRCs, over the block's rows in every row section (segment/file.h).
  POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kBlockCrcs, gi));
  const uint64_t per_block = g.rows_per_block;
  for (uint64_t r0 = 0; r0 < rows; r0 += per_block) {
    const uint64_t r1 = std::min(rows, r0 + per_block);
    uint32_t crc = 0;
    if (u64) {
      crc = crc32c::Extend(crc, u.ids + r0, (r1 - r0) * 8);
      crc = crc32c::Extend(crc, u.seqs + r0, (r1 - r0) * 8);
      crc = crc32c::Extend(crc, u.vectors + r0 * g.dim, (r1 - r0) * row_bytes);
      for (uint64_t r = r0; r <= r1; ++r) {
        uint8_t b[8];
        EncodeFixed64(b, meta_off(r));
        crc = crc32c::Extend(crc, b, 8);
      }
      if (meta_off(r1) > meta_off(r0)) {
        crc = crc32c::Extend(crc, u.metadata_blob + meta_off(r0), meta_off(r1) - meta_off(r0));
      }
    } else {
      crc = crc32c::Extend(crc, g.row_entries.data() + r0, (r1 - r0) * 4);
      for (uint64_t r = r0; r < r1; ++r) crc = crc32c::Extend(crc, g.row_vectors[r], row_bytes);
    }
    POMAI_RETURN_IF_ERROR(out->AddU32(crc));
  }
  out->End();
  // Graph sections, header first, stored under the format-2 kinds.
  for (uint32_t k = KindNumber(SectionKind::kHnswHeader); k <= KindNumber(SectionKind::kHnswSq8Norms); ++k) {
    for (const index::GraphSection& s : g.graph) {
      if (s.kind != k) continue;
      const auto kind = static_cast<SectionKind>(KindNumber(SectionKind::kGraphHeader) + (k - KindNumber(SectionKind::kHnswHeader)));
      POMAI_RETURN_IF_ERROR(out->Begin(kind, gi));
      POMAI_RETURN_IF_ERROR(out->Add(s.bytes.data(), s.bytes.size()));
      out->End();
    }
  }
  return WriteAttributes(out, g);
}

// The attribute directory, then per column (in directory order) its
// sections in kind order; a null row's slot is written as zero bytes.
Status SegmentWriter::WriteAttributes(Stream* out, const Group& g) const {
  if (g.attrs.empty()) return Status::OK();
  const uint32_t gi = g.file_index;
  const uint64_t rows = g.u64.rows;
  POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrColumns, gi));
  POMAI_RETURN_IF_ERROR(out->AddU32(static_cast<uint32_t>(g.attrs.size())));
  POMAI_RETURN_IF_ERROR(out->AddU32(0));
  for (const AttrPlan& p : g.attrs) {
    const std::string& name = p.column->name;
    const uint8_t head[attrdir::kRecordHead] = {static_cast<uint8_t>(name.size()), static_cast<uint8_t>(name.size() >> 8),
                                                static_cast<uint8_t>(p.column->type),
                                                p.has_valid ? attrdir::kHasValid : uint8_t{0}};
    POMAI_RETURN_IF_ERROR(out->Add(head, sizeof(head)));
    POMAI_RETURN_IF_ERROR(out->Add(name.data(), name.size()));
  }
  out->End();
  for (size_t i = 0; i < g.attrs.size(); ++i) {
    const AttrPlan& p = g.attrs[i];
    const AttrColumn& c = *p.column;
    const auto col = static_cast<uint16_t>(i);
    if (p.has_valid) {
      POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrValid, gi, col));
      POMAI_RETURN_IF_ERROR(out->Add(c.valid.data(), rows));
      out->End();
    }
    POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrValues, gi, col));
    switch (c.type) {
      case AttrType::kInt64:
        for (uint64_t r = 0; r < rows; ++r) POMAI_RETURN_IF_ERROR(out->AddU64(c.has_value(r) ? static_cast<uint64_t>(c.ints[r]) : 0));
        break;
      case AttrType::kFloat64:
        for (uint64_t r = 0; r < rows; ++r) {
          POMAI_RETURN_IF_ERROR(out->AddU64(c.has_value(r) ? std::bit_cast<uint64_t>(c.floats[r]) : 0));
        }
        break;
      case AttrType::kBool:
        POMAI_RETURN_IF_ERROR(out->Add(c.bools.data(), rows));  // a null row's byte is 0 (CheckAttrColumns)
        break;
      case AttrType::kString:
      case AttrType::kTags:
        for (uint32_t code : p.codes) POMAI_RETURN_IF_ERROR(out->AddU32(code));
        break;
    }
    out->End();
    if (c.type == AttrType::kTags) {
      POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrTagOffsets, gi, col));
      for (uint64_t r = 0; r <= rows; ++r) POMAI_RETURN_IF_ERROR(out->AddU64(c.offsets[r]));
      out->End();
    }
    if (c.type == AttrType::kString || c.type == AttrType::kTags) {
      POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrDictOffsets, gi, col));
      uint64_t off = 0;
      POMAI_RETURN_IF_ERROR(out->AddU64(0));
      for (std::string_view v : p.dict) {
        off += v.size();
        POMAI_RETURN_IF_ERROR(out->AddU64(off));
      }
      out->End();
      POMAI_RETURN_IF_ERROR(out->Begin(SectionKind::kAttrDictBytes, gi, col));
      for (std::string_view v : p.dict) POMAI_RETURN_IF_ERROR(out->Add(v.data(), v.size()));
      out->End();
    }
  }
  return Status::OK();
}

Status SegmentWriter::WriteBody(WritableFile* file, uint64_t file_number) const {
  Stream out(file);
  uint8_t h[kHeaderSize] = {};
  std::memcpy(h + header2::kMagic, kMagic, sizeof(kMagic));
  EncodeFixed32(h + header2::kVersion, kFormatVersion2);
  EncodeFixed32(h + header2::kHeaderSize, static_cast<uint32_t>(kHeaderSize));
  EncodeFixed64(h + header2::kMinSeq, min_seq_);
  EncodeFixed64(h + header2::kMaxSeq, max_seq_);
  EncodeFixed64(h + header2::kEntryCount, entries_.size());
  EncodeFixed32(h + header2::kGroupCount, static_cast<uint32_t>(groups_.size()));
  EncodeFixed64(h + header2::kFileNumber, file_number);
  EncodeFixed32(h + header2::kCrc, crc32c::Value(h, header2::kCrc));
  POMAI_RETURN_IF_ERROR(out.Raw(h, sizeof(h)));

  // Entries: keys and values are laid out in entry order.
  POMAI_RETURN_IF_ERROR(out.Begin(SectionKind::kEntries, kFileLevel));
  uint64_t key_off = 0, value_off = 0;
  for (const Entry& e : entries_) {
    uint8_t b[kEntrySize2] = {};
    EncodeFixed64(b + entry2::kKeyOffset, key_off);
    EncodeFixed32(b + entry2::kKeyLength, static_cast<uint32_t>(e.key.size()));
    b[entry2::kKind] = static_cast<uint8_t>(e.kind);
    EncodeFixed64(b + entry2::kSeq, e.seq);
    EncodeFixed64(b + entry2::kValueOffset, value_off);
    EncodeFixed32(b + entry2::kValueLength, static_cast<uint32_t>(e.stored_size()));
    if (e.kind == EntryKind::kVector) {
      const Group& g = groups_[e.group];
      b[entry2::kMetric] = static_cast<uint8_t>(g.metric);
      b[entry2::kHasMetadata] = static_cast<uint8_t>((e.has_metadata ? 1 : 0) | (e.attrs.empty() ? 0 : 2));
      EncodeFixed32(b + entry2::kGroup, g.file_index);
      EncodeFixed32(b + entry2::kRow, e.row);
    } else {
      EncodeFixed32(b + entry2::kGroup, kNoGroup);
      EncodeFixed32(b + entry2::kRow, kNoGroupRow);
    }
    uint32_t crc = crc32c::Value(b, entry2::kCrc);
    crc = crc32c::Extend(crc, e.key.data(), e.key.size());
    if (!e.attrs.empty()) {
      uint8_t len[4];
      EncodeFixed32(len, static_cast<uint32_t>(e.attrs.size()));
      crc = crc32c::Extend(crc, len, 4);
      crc = crc32c::Extend(crc, e.attrs.data(), e.attrs.size());
    }
    crc = crc32c::Extend(crc, e.value.data(), e.value.size());
    EncodeFixed32(b + entry2::kCrc, crc);
    POMAI_RETURN_IF_ERROR(out.Add(b, sizeof(b)));
    key_off += e.key.size();
    value_off += e.stored_size();
  }
  out.End();
  POMAI_RETURN_IF_ERROR(out.Begin(SectionKind::kKeys, kFileLevel));
  for (const Entry& e : entries_) POMAI_RETURN_IF_ERROR(out.Add(e.key.data(), e.key.size()));
  out.End();
  POMAI_RETURN_IF_ERROR(out.Begin(SectionKind::kValues, kFileLevel));
  for (const Entry& e : entries_) {
    if (!e.attrs.empty()) {
      uint8_t len[4];
      EncodeFixed32(len, static_cast<uint32_t>(e.attrs.size()));
      POMAI_RETURN_IF_ERROR(out.Add(len, 4));
      POMAI_RETURN_IF_ERROR(out.Add(e.attrs.data(), e.attrs.size()));
    }
    POMAI_RETURN_IF_ERROR(out.Add(e.value.data(), e.value.size()));
  }
  out.End();

  POMAI_RETURN_IF_ERROR(out.Begin(SectionKind::kGroups, kFileLevel));
  for (uint32_t h : file_order_) {
    const Group& g = groups_[h];
    const bool u64 = g.kind == GroupKind::kU64;
    uint8_t d[kGroupDescriptorSize] = {};
    d[group2::kKind] = static_cast<uint8_t>(g.kind);
    d[group2::kMetric] = static_cast<uint8_t>(g.metric);
    d[group2::kFlags] = g.graph_set ? kGroupHasGraph : 0;
    EncodeFixed32(d + group2::kDim, g.dim);
    EncodeFixed64(d + group2::kCid, g.cid);
    EncodeFixed64(d + group2::kRows, u64 ? g.u64.rows : g.row_entries.size());
    EncodeFixed64(d + group2::kTombstones, u64 ? g.u64.tombstones : 0);
    EncodeFixed32(d + group2::kRowsPerBlock, g.rows_per_block);
    EncodeFixed64(d + group2::kMinSeq, g.min_seq);
    EncodeFixed64(d + group2::kMaxSeq, g.max_seq);
    EncodeFixed32(d + group2::kCrc, crc32c::Value(d, group2::kCrc));
    POMAI_RETURN_IF_ERROR(out.Add(d, sizeof(d)));
  }
  out.End();
  for (uint32_t h : file_order_) POMAI_RETURN_IF_ERROR(WriteGroup(&out, groups_[h]));

  // Table and footer.
  POMAI_RETURN_IF_ERROR(out.Pad());
  const uint64_t table_offset = out.offset();
  uint32_t table_crc = 0;
  for (const TableEntry& t : out.table()) {
    uint8_t e[kSectionEntrySize] = {};
    e[table2::kKind] = static_cast<uint8_t>(t.kind);
    e[table2::kKind + 1] = static_cast<uint8_t>(t.kind >> 8);
    e[table2::kColumn] = static_cast<uint8_t>(t.column);
    e[table2::kColumn + 1] = static_cast<uint8_t>(t.column >> 8);
    EncodeFixed32(e + table2::kGroup, t.group);
    EncodeFixed64(e + table2::kOffset, t.offset);
    EncodeFixed64(e + table2::kLength, t.length);
    EncodeFixed32(e + table2::kCrc, t.crc);
    table_crc = crc32c::Extend(table_crc, e, sizeof(e));
    POMAI_RETURN_IF_ERROR(out.Raw(e, sizeof(e)));
  }
  uint8_t f[kFooterSize] = {};
  EncodeFixed64(f + footer2::kTableOffset, table_offset);
  EncodeFixed32(f + footer2::kSectionCount, static_cast<uint32_t>(out.table().size()));
  EncodeFixed32(f + footer2::kTableCrc, table_crc);
  EncodeFixed64(f + footer2::kFileSize, out.offset() + kFooterSize);
  std::memcpy(f + footer2::kMagic, kFooterMagic, sizeof(kFooterMagic));
  POMAI_RETURN_IF_ERROR(out.Raw(f, sizeof(f)));
  return out.Flush();
}

Status SegmentWriter::Finish(Env* env, const std::string& path, uint64_t file_number) {
  if (finished_) return Status::InvalidArgument("segment writer: Finish called twice");
  finished_ = true;
  POMAI_RETURN_IF_ERROR(Validate());
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  return WriteFileDurably(env, dir, path, [&](WritableFile* file) { return WriteBody(file, file_number); });
}

}  // namespace pomai::segment
