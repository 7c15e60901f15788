#include "segment/file.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <tuple>

#include <cmath>

#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"
#include "wal/record_codec.h"

namespace pomai::segment {

static_assert(std::endian::native == std::endian::little, "pomai segments need a little-endian host");

namespace {

constexpr uint32_t kMaxMetric = 2;
constexpr size_t kNone = ~size_t{0};
// Group-level kinds: 144..152 are slots 0..8, the graph's 160..167 slots
// 9..16, the attribute directory 168 slot 17. The per-column attribute kinds
// 169..173 are kept per column (SegmentFile::AttrCol).
constexpr uint32_t kFirstRowKind = KindNumber(SectionKind::kRowIds);
constexpr uint32_t kLastRowKind = KindNumber(SectionKind::kBlockCrcs);
constexpr uint32_t kFirstGraphKind = KindNumber(SectionKind::kGraphHeader);
constexpr uint32_t kLastGraphKind = KindNumber(SectionKind::kGraphSq8Norms);
constexpr uint32_t kAttrDirKind = KindNumber(SectionKind::kAttrColumns);
constexpr uint32_t kFirstAttrColumnKind = KindNumber(SectionKind::kAttrValid);
constexpr size_t kAttrColumnKinds = KindNumber(SectionKind::kAttrDictBytes) - kFirstAttrColumnKind + 1;
constexpr size_t kGroupSlots = (kLastRowKind - kFirstRowKind + 1) + (kLastGraphKind - kFirstGraphKind + 1) + 1;
constexpr uint32_t kGraphRequiredLast = KindNumber(SectionKind::kGraphUpperLinks);  // 160..164 go with the flag

size_t SlotOf(uint32_t kind) {
  if (kind >= kFirstRowKind && kind <= kLastRowKind) return kind - kFirstRowKind;
  if (kind >= kFirstGraphKind && kind <= kLastGraphKind) return (kLastRowKind - kFirstRowKind + 1) + kind - kFirstGraphKind;
  if (kind == kAttrDirKind) return kGroupSlots - 1;
  return kNone;
}
bool IsGraphKind(uint32_t kind) { return kind >= kFirstGraphKind && kind <= kLastGraphKind; }
size_t SlotOf(SectionKind kind) { return SlotOf(KindNumber(kind)); }

std::string GroupKindName(GroupKind kind) {
  switch (kind) {
    case GroupKind::kU64: return "u64";
    case GroupKind::kBytes: return "byte-keyed";
    case GroupKind::kRecords: return "records";
  }
  return "unknown";
}

uint64_t DecodeBE64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// The number N of a name seg-N.pseg (the path's last component), if it is one.
bool ParseSegmentNumber(const std::string& path, uint64_t* number) {
  const size_t slash = path.rfind('/');
  const std::string_view name = std::string_view(path).substr(slash == std::string::npos ? 0 : slash + 1);
  constexpr std::string_view kPrefix = "seg-", kSuffix = ".pseg";
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.substr(0, kPrefix.size()) != kPrefix ||
      name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  const std::string_view digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    if (MulOverflows(v, 10, &v) || AddOverflows(v, static_cast<uint64_t>(c - '0'), &v)) return false;
  }
  *number = v;
  return true;
}

std::string SectionName(SectionKind kind, uint32_t group, uint32_t column = 0) {
  std::string s = std::string(SectionKindName(kind)) + " section";
  if (IsAttrColumnKind(KindNumber(kind))) s += " of column " + std::to_string(column);
  if (group != kFileLevel) s += " of group " + std::to_string(group);
  return s;
}

// The attribute sections column type `type` needs besides values (170), as
// bits by kind - 169: valid (when the directory says so), tag offsets, dict
// offsets and bytes.
uint32_t AttrKindsNeeded(AttrType type, bool has_valid) {
  auto bit = [](SectionKind k) { return 1u << (KindNumber(k) - kFirstAttrColumnKind); };
  uint32_t need = bit(SectionKind::kAttrValues);
  if (has_valid) need |= bit(SectionKind::kAttrValid);
  if (type == AttrType::kTags) need |= bit(SectionKind::kAttrTagOffsets);
  if (type == AttrType::kString || type == AttrType::kTags) {
    need |= bit(SectionKind::kAttrDictOffsets) | bit(SectionKind::kAttrDictBytes);
  }
  return need;
}

size_t FirstNonZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return i;
  }
  return n;
}

}  // namespace

struct SegmentFile::SectionCheck {
  std::once_flag once;
  std::atomic<bool> good{false};
  Status status;  // written once, inside `once`
};

// One column of a group's attribute directory, as Open read it.
struct SegmentFile::AttrCol {
  std::string_view name;  // in the mapping
  AttrType type = AttrType::kInt64;
  bool has_valid = false;
  uint64_t record_offset = 0;  // of its directory record in the file
  size_t section[kAttrColumnKinds];  // by kind - 169: index in sections_, or kNone
  // CheckAttrColumn's result, once per open.
  std::once_flag once;
  std::atomic<bool> good{false};
  Status status;
  filter::ColumnRef ref;  // set by CheckAttrColumn before `good`

  AttrCol() { std::fill(std::begin(section), std::end(section), kNone); }
};

struct SegmentFile::Group {
  GroupInfo info;
  uint64_t descriptor_offset = 0;
  size_t section[kGroupSlots];  // index in sections_, or kNone
  const uint64_t* ids = nullptr;
  const uint64_t* seqs = nullptr;
  const uint32_t* row_entries = nullptr;
  const float* vectors = nullptr;
  const uint64_t* meta_offsets = nullptr;
  const uint8_t* meta_blob = nullptr;
  uint64_t meta_blob_size = 0;
  const uint64_t* tomb_ids = nullptr;
  const uint64_t* tomb_seqs = nullptr;
  const uint8_t* block_crcs = nullptr;
  std::optional<index::HnswGraph> graph;
  std::unique_ptr<AttrCol[]> attrs;  // the attribute directory's columns, in name order
  uint32_t attr_count = 0;
  // Checked blocks (and, for entry groups, rows whose entry CRC matched),
  // allocated by the first check.
  std::once_flag bits_once;
  std::unique_ptr<std::atomic<uint64_t>[]> block_bits;
  std::unique_ptr<std::atomic<uint64_t>[]> row_bits;

  Group() { std::fill(std::begin(section), std::end(section), kNone); }
  void EnsureBits() {
    std::call_once(bits_once, [this] {
      block_bits.reset(new std::atomic<uint64_t>[info.blocks() / 64 + 1]());
      if (info.kind != GroupKind::kU64) row_bits.reset(new std::atomic<uint64_t>[info.rows / 64 + 1]());
    });
  }
  static bool Test(const std::atomic<uint64_t>* bits, uint64_t i) {
    return (bits[i / 64].load(std::memory_order_acquire) >> (i % 64)) & 1;
  }
  static void Set(std::atomic<uint64_t>* bits, uint64_t i) {
    bits[i / 64].fetch_or(uint64_t{1} << (i % 64), std::memory_order_acq_rel);
  }
};

SegmentFile::~SegmentFile() = default;

const std::string& SegmentFile::path() const { return file_->path(); }
uint64_t SegmentFile::file_size() const { return file_->size(); }
const char* SegmentFile::base() const { return reinterpret_cast<const char*>(file_->data()); }
const GroupInfo& SegmentFile::group(uint32_t g) const { return groups_[g].info; }
uint64_t SegmentFile::OffsetOf(const void* p) const {
  return static_cast<uint64_t>(static_cast<const uint8_t*>(p) - file_->data());
}
Status SegmentFile::Bad(uint64_t offset, const std::string& what) const {
  return Status::Corruption(path(), offset, what);
}

Result<std::shared_ptr<SegmentFile>> SegmentFile::Open(Env* env, const std::string& path) {
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, env->MapFile(path));
  const uint8_t* base = file->data();
  const uint64_t size = file->size();
  auto corrupt = [&path](uint64_t offset, const std::string& what) { return Status::Corruption(path, offset, what); };
  if (size < kHeaderSize + kFooterSize) {
    return corrupt(0, "file is " + std::to_string(size) + " bytes, smaller than a segment header and footer");
  }
  if (reinterpret_cast<uintptr_t>(base) % kSectionAlign != 0) {
    return Status::Internal("mapping of " + path + " is not 64-byte aligned");
  }

  // Header.
  if (std::memcmp(base + header2::kMagic, kMagic, sizeof(kMagic)) != 0) return corrupt(0, "bad magic: not a segment file");
  const uint32_t version = DecodeFixed32(base + header2::kVersion);
  if (version != kFormatVersion2) {
    return corrupt(header2::kVersion, "unsupported segment format version " + std::to_string(version) +
                                          " (this build reads " + std::to_string(kFormatVersion2) + ")");
  }
  if (crc32c::Value(base, header2::kCrc) != DecodeFixed32(base + header2::kCrc)) {
    return corrupt(header2::kCrc, "header checksum mismatch");
  }
  if (DecodeFixed32(base + header2::kHeaderSize) != kHeaderSize) return corrupt(header2::kHeaderSize, "header size is not 128");
  for (auto [from, to] : {std::pair<size_t, size_t>{header2::kReserved1, header2::kFileNumber},
                          std::pair<size_t, size_t>{header2::kReserved2, header2::kCrc}}) {
    const size_t i = FirstNonZero(base + from, to - from);
    if (i != to - from) return corrupt(from + i, "reserved header byte is not zero");
  }
  std::shared_ptr<SegmentFile> f(new SegmentFile());
  f->min_seq_ = DecodeFixed64(base + header2::kMinSeq);
  f->max_seq_ = DecodeFixed64(base + header2::kMaxSeq);
  f->entry_count_ = DecodeFixed64(base + header2::kEntryCount);
  f->group_count_ = DecodeFixed32(base + header2::kGroupCount);
  f->file_number_ = DecodeFixed64(base + header2::kFileNumber);
  if (f->min_seq_ > f->max_seq_) return corrupt(header2::kMinSeq, "min seq is above max seq");
  uint64_t named = 0;
  if (ParseSegmentNumber(path, &named) && named != f->file_number_) {
    return corrupt(header2::kFileNumber, "header names file number " + std::to_string(f->file_number_) +
                                             ", the file name " + std::to_string(named));
  }

  // Footer and table.
  const uint64_t footer = size - kFooterSize;
  if (std::memcmp(base + footer + footer2::kMagic, kFooterMagic, sizeof(kFooterMagic)) != 0) {
    return corrupt(footer + footer2::kMagic, "bad footer magic (truncated or not a segment file)");
  }
  const uint64_t recorded_size = DecodeFixed64(base + footer + footer2::kFileSize);
  if (recorded_size != size) {
    return corrupt(footer + footer2::kFileSize, "footer records a file size of " + std::to_string(recorded_size) +
                                                    " bytes but the file is " + std::to_string(size));
  }
  const uint64_t table = DecodeFixed64(base + footer + footer2::kTableOffset);
  const uint32_t count = DecodeFixed32(base + footer + footer2::kSectionCount);
  uint64_t table_end = 0;
  if (AddOverflows(table, uint64_t{count} * kSectionEntrySize, &table_end) || table_end != footer ||
      table < kHeaderSize || table % kSectionAlign != 0) {
    return corrupt(footer, "section table at " + std::to_string(table) + " with " + std::to_string(count) +
                               " entries does not end at the footer (" + std::to_string(footer) + ")");
  }
  if (crc32c::Value(base + table, uint64_t{count} * kSectionEntrySize) != DecodeFixed32(base + footer + footer2::kTableCrc)) {
    return corrupt(footer + footer2::kTableCrc, "section table checksum mismatch");
  }
  f->table_offset_ = table;

  // Table entries, alone.
  std::vector<uint64_t> entry_at(count);
  f->sections_.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t at = table + uint64_t{i} * kSectionEntrySize;
    const uint8_t* e = base + at;
    entry_at[i] = at;
    const uint32_t number = uint32_t{e[0]} | (uint32_t{e[1]} << 8);
    const SectionKindInfo* info = FindSectionKind(number);
    if (info == nullptr || (info->containers & kInFormat2) == 0) {
      return corrupt(at, "unknown section kind " + std::to_string(number));
    }
    const uint16_t column = static_cast<uint16_t>(e[table2::kColumn] | (e[table2::kColumn + 1] << 8));
    if (column != 0 && !IsAttrColumnKind(number)) {
      return corrupt(at + table2::kColumn, std::string(info->name) + " section has column field " + std::to_string(column) +
                                               " (only attribute kinds 169..173 carry one)");
    }
    if (DecodeFixed32(e + table2::kReserved) != 0) return corrupt(at + table2::kReserved, "reserved section table bytes are not zero");
    SectionRef ref{info->kind, DecodeFixed32(e + table2::kGroup), DecodeFixed64(e + table2::kOffset),
                   DecodeFixed64(e + table2::kLength), DecodeFixed32(e + table2::kCrc), column};
    if ((info->scope == SectionScope::kFile) != (ref.group == kFileLevel)) {
      return corrupt(at + table2::kGroup, std::string(info->name) + " section in the wrong scope (group " +
                                              std::to_string(ref.group) + ")");
    }
    if (ref.group != kFileLevel && ref.group >= f->group_count_) {
      return corrupt(at + table2::kGroup, std::string(info->name) + " section of group " + std::to_string(ref.group) +
                                              " of " + std::to_string(f->group_count_));
    }
    if (ref.offset % kSectionAlign != 0 || ref.offset < kHeaderSize) {
      return corrupt(at + table2::kOffset, "section offset " + std::to_string(ref.offset) +
                                               " is not 64-byte aligned after the header");
    }
    uint64_t end = 0;
    if (AddOverflows(ref.offset, ref.length, &end) || end > table) {
      return corrupt(at + table2::kLength, "section at " + std::to_string(ref.offset) + " of " +
                                               std::to_string(ref.length) + " bytes runs past the section table at " +
                                               std::to_string(table));
    }
    f->sections_.push_back(ref);
  }
  {
    std::vector<uint32_t> order(count);
    for (uint32_t i = 0; i < count; ++i) order[i] = i;
    const auto& s = f->sections_;
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return std::tie(s[a].offset, s[a].length) < std::tie(s[b].offset, s[b].length);
    });
    for (size_t i = 1; i < order.size(); ++i) {
      const SectionRef& prev = s[order[i - 1]];
      if (prev.offset + prev.length > s[order[i]].offset) {
        return corrupt(entry_at[order[i]], "sections at " + std::to_string(prev.offset) + " and " +
                                               std::to_string(s[order[i]].offset) + " overlap");
      }
    }
    auto key = [&](uint32_t i) { return std::make_tuple(KindNumber(s[i].kind), s[i].group, s[i].column); };
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return key(a) < key(b); });
    for (size_t i = 1; i < order.size(); ++i) {
      if (key(order[i - 1]) == key(order[i])) {
        const SectionRef& d = s[order[i]];
        return corrupt(entry_at[std::max(order[i - 1], order[i])], SectionName(d.kind, d.group, d.column) + " appears twice");
      }
    }
  }

  // File-level sections.
  std::fill(std::begin(f->file_section_), std::end(f->file_section_), kNone);
  for (uint32_t i = 0; i < count; ++i) {
    if (f->sections_[i].group == kFileLevel) f->file_section_[KindNumber(f->sections_[i].kind) - KindNumber(SectionKind::kEntries)] = i;
  }
  for (size_t k = 0; k < 4; ++k) {
    if (f->file_section_[k] == kNone) {
      const auto kind = static_cast<SectionKind>(KindNumber(SectionKind::kEntries) + k);
      return corrupt(table, std::string("missing ") + SectionName(kind, kFileLevel));
    }
  }
  auto file_ref = [&](SectionKind kind) -> const SectionRef& {
    return f->sections_[f->file_section_[KindNumber(kind) - KindNumber(SectionKind::kEntries)]];
  };
  auto file_entry = [&](SectionKind kind) { return entry_at[f->file_section_[KindNumber(kind) - KindNumber(SectionKind::kEntries)]]; };
  uint64_t len = 0;
  if (MulOverflows(f->entry_count_, kEntrySize2, &len) || file_ref(SectionKind::kEntries).length != len) {
    return corrupt(file_entry(SectionKind::kEntries) + table2::kLength,
                   "entries section is " + std::to_string(file_ref(SectionKind::kEntries).length) +
                       " bytes, the header's entry count " + std::to_string(f->entry_count_) + " implies " +
                       std::to_string(f->entry_count_) + " x 48");
  }
  if (file_ref(SectionKind::kGroups).length != uint64_t{f->group_count_} * kGroupDescriptorSize) {
    return corrupt(file_entry(SectionKind::kGroups) + table2::kLength,
                   "groups section is " + std::to_string(file_ref(SectionKind::kGroups).length) +
                       " bytes, the header's group count " + std::to_string(f->group_count_) + " implies " +
                       std::to_string(f->group_count_) + " x 64");
  }
  f->entries_ = base + file_ref(SectionKind::kEntries).offset;
  f->keys_ = reinterpret_cast<const char*>(base + file_ref(SectionKind::kKeys).offset);
  f->keys_size_ = file_ref(SectionKind::kKeys).length;
  f->values_ = reinterpret_cast<const char*>(base + file_ref(SectionKind::kValues).offset);
  f->values_size_ = file_ref(SectionKind::kValues).length;

  // Group descriptors.
  f->groups_.reset(new Group[f->group_count_]);
  const uint64_t groups_at = file_ref(SectionKind::kGroups).offset;
  for (uint32_t g = 0; g < f->group_count_; ++g) {
    const uint64_t at = groups_at + uint64_t{g} * kGroupDescriptorSize;
    const uint8_t* d = base + at;
    Group& gr = f->groups_[g];
    GroupInfo& info = gr.info;
    gr.descriptor_offset = at;
    const std::string name = "group " + std::to_string(g);
    if (crc32c::Value(d, group2::kCrc) != DecodeFixed32(d + group2::kCrc)) {
      return corrupt(at + group2::kCrc, name + " descriptor checksum mismatch");
    }
    const uint8_t kind = d[group2::kKind];
    if (kind < 1 || kind > 3) return corrupt(at + group2::kKind, name + " has unknown kind " + std::to_string(kind));
    info.kind = static_cast<GroupKind>(kind);
    if (d[group2::kMetric] > kMaxMetric) return corrupt(at + group2::kMetric, name + " has an unknown metric");
    info.metric = static_cast<simd::Metric>(d[group2::kMetric]);
    const uint8_t flags = d[group2::kFlags];
    if ((flags & ~kGroupHasGraph) != 0 || (flags != 0 && info.kind == GroupKind::kRecords)) {
      return corrupt(at + group2::kFlags, name + " has unsupported flags " + std::to_string(flags));
    }
    info.has_graph = flags & kGroupHasGraph;
    if (d[group2::kZero1] != 0 || DecodeFixed32(d + group2::kZero2) != 0 || DecodeFixed32(d + group2::kZero3) != 0) {
      return corrupt(at + group2::kZero1, name + " descriptor has nonzero reserved bytes");
    }
    info.dim = DecodeFixed32(d + group2::kDim);
    if (info.dim == 0 || info.dim > kMaxDim) {
      return corrupt(at + group2::kDim, name + " has dim " + std::to_string(info.dim) + ", not in 1..65535");
    }
    info.cid = DecodeFixed64(d + group2::kCid);
    if (info.kind == GroupKind::kRecords && info.cid != 0) return corrupt(at + group2::kCid, name + " of vector records has a cid");
    info.rows = DecodeFixed64(d + group2::kRows);
    if (info.rows > kMaxGroupRows) return corrupt(at + group2::kRows, name + " has " + std::to_string(info.rows) + " rows");
    if (info.kind != GroupKind::kU64 && info.rows > f->entry_count_) {
      return corrupt(at + group2::kRows, name + " has more rows than the file has entries");
    }
    info.tombstones = DecodeFixed64(d + group2::kTombstones);
    if (info.kind != GroupKind::kU64 && info.tombstones != 0) {
      return corrupt(at + group2::kTombstones, name + " of kind " + std::to_string(kind) + " has tombstones");
    }
    info.rows_per_block = DecodeFixed32(d + group2::kRowsPerBlock);
    if (!std::has_single_bit(info.rows_per_block) || info.rows_per_block > kMaxRowsPerBlock) {
      return corrupt(at + group2::kRowsPerBlock, name + " has " + std::to_string(info.rows_per_block) +
                                                     " rows per block, not a power of two in 1..65536");
    }
    info.min_seq = DecodeFixed64(d + group2::kMinSeq);
    info.max_seq = DecodeFixed64(d + group2::kMaxSeq);
    if (info.min_seq > info.max_seq) return corrupt(at + group2::kMinSeq, name + " has min seq above max seq");
    if (g > 0) {
      const GroupInfo& p = f->groups_[g - 1].info;
      auto key = [](const GroupInfo& i) {
        return std::make_tuple(static_cast<uint8_t>(i.kind), i.cid, i.dim, static_cast<uint8_t>(i.metric));
      };
      if (!(key(p) < key(info))) return corrupt(at, name + " does not follow group " + std::to_string(g - 1) + " in (kind, cid, dim, metric) order");
    }
  }

  // Group sections: scope, presence, exact lengths.
  for (uint32_t i = 0; i < count; ++i) {
    const SectionRef& s = f->sections_[i];
    if (s.group == kFileLevel) continue;
    Group& gr = f->groups_[s.group];
    const SectionKindInfo& info = SectionKindOf(s.kind);
    const uint32_t number = KindNumber(s.kind);
    const bool graph_kind = IsGraphKind(number);
    if ((info.group_kinds & GroupKindBit(gr.info.kind)) == 0 || (graph_kind && !gr.info.has_graph)) {
      return corrupt(entry_at[i], SectionName(s.kind, s.group, s.column) + " does not belong to a " + GroupKindName(gr.info.kind) +
                                      " group" + (graph_kind ? " without a graph" : ""));
    }
    if (!IsAttrColumnKind(number)) gr.section[SlotOf(number)] = i;
  }
  for (uint32_t g = 0; g < f->group_count_; ++g) {
    Group& gr = f->groups_[g];
    const GroupInfo& info = gr.info;
    for (const SectionKindInfo& k : kSectionKinds) {
      const uint32_t number = KindNumber(k.kind);
      if (k.scope != SectionScope::kGroup || (k.group_kinds & GroupKindBit(info.kind)) == 0) continue;
      const bool needed = k.required || (info.has_graph && number >= kFirstGraphKind && number <= kGraphRequiredLast);
      if (needed && gr.section[SlotOf(number)] == kNone) {
        return corrupt(gr.descriptor_offset, "missing " + SectionName(k.kind, g));
      }
    }
    uint64_t ids_len = info.rows * 8, vec_len = 0, off_len = (info.rows + 1) * 8, tomb_len = 0;
    if (MulOverflows(info.rows, uint64_t{info.dim} * 4, &vec_len) || MulOverflows(info.tombstones, 8, &tomb_len)) {
      return corrupt(gr.descriptor_offset + group2::kRows, "group " + std::to_string(g) + " is impossibly large");
    }
    const std::pair<SectionKind, uint64_t> lengths[] = {
        {SectionKind::kRowIds, ids_len},         {SectionKind::kRowSeqs, ids_len},
        {SectionKind::kRowEntries, info.rows * 4}, {SectionKind::kRowVectors, vec_len},
        {SectionKind::kMetadataOffsets, off_len}, {SectionKind::kTombstoneIds, tomb_len},
        {SectionKind::kTombstoneSeqs, tomb_len}, {SectionKind::kBlockCrcs, info.blocks() * 4}};
    for (auto [kind, want] : lengths) {
      const size_t i = gr.section[SlotOf(kind)];
      if (i == kNone) continue;
      if (f->sections_[i].length != want) {
        return corrupt(entry_at[i] + table2::kLength,
                       SectionName(kind, g) + " is " + std::to_string(f->sections_[i].length) + " bytes, its descriptor (rows " +
                           std::to_string(info.rows) + ", dim " + std::to_string(info.dim) + ", tombstones " +
                           std::to_string(info.tombstones) + ") implies " + std::to_string(want));
      }
    }
    auto at = [&](SectionKind kind) -> const uint8_t* {
      const size_t i = gr.section[SlotOf(kind)];
      return i == kNone ? nullptr : base + f->sections_[i].offset;
    };
    gr.ids = reinterpret_cast<const uint64_t*>(at(SectionKind::kRowIds));
    gr.seqs = reinterpret_cast<const uint64_t*>(at(SectionKind::kRowSeqs));
    gr.row_entries = reinterpret_cast<const uint32_t*>(at(SectionKind::kRowEntries));
    gr.vectors = reinterpret_cast<const float*>(at(SectionKind::kRowVectors));
    gr.meta_offsets = reinterpret_cast<const uint64_t*>(at(SectionKind::kMetadataOffsets));
    gr.meta_blob = at(SectionKind::kMetadataBlob);
    if (gr.meta_blob != nullptr) gr.meta_blob_size = f->sections_[gr.section[SlotOf(SectionKind::kMetadataBlob)]].length;
    gr.tomb_ids = reinterpret_cast<const uint64_t*>(at(SectionKind::kTombstoneIds));
    gr.tomb_seqs = reinterpret_cast<const uint64_t*>(at(SectionKind::kTombstoneSeqs));
    gr.block_crcs = at(SectionKind::kBlockCrcs);
  }
  f->checks_.reset(new SectionCheck[count]);
  f->file_ = std::move(file);
  POMAI_RETURN_IF_ERROR(OpenAttributes(f.get(), entry_at));

  // Graphs (O(1) each: their headers and section sizes).
  for (uint32_t g = 0; g < f->group_count_; ++g) {
    Group& gr = f->groups_[g];
    if (!gr.info.has_graph) continue;
    auto graph = index::HnswGraph::Open(f->GraphSections(g), gr.vectors, gr.info.rows, gr.info.dim, gr.info.metric,
                                        path, f->base());
    if (!graph.ok()) {
      if (graph.status().IsCorruption()) return graph.status();
      return corrupt(gr.descriptor_offset, "graph of group " + std::to_string(g) + ": " + graph.status().message());
    }
    gr.graph.emplace(std::move(graph).value());
  }
  return f;
}

bool SegmentFile::FindGroup(GroupKind kind, uint64_t cid, uint32_t dim, simd::Metric metric, uint32_t* g) const {
  auto key = [](const GroupInfo& i) {
    return std::make_tuple(static_cast<uint8_t>(i.kind), i.cid, i.dim, static_cast<uint8_t>(i.metric));
  };
  const auto want = std::make_tuple(static_cast<uint8_t>(kind), cid, dim, static_cast<uint8_t>(metric));
  uint32_t lo = 0, hi = group_count_;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (key(groups_[mid].info) < want) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == group_count_ || key(groups_[lo].info) != want) return false;
  *g = lo;
  return true;
}

std::string_view SegmentFile::Section(SectionKind kind, uint32_t group, uint16_t column) const {
  for (const SectionRef& s : sections_) {
    if (s.kind == kind && s.group == group && s.column == column) {
      return std::string_view(base() + s.offset, static_cast<size_t>(s.length));
    }
  }
  return std::string_view();
}

std::function<std::string_view(uint32_t kind)> SegmentFile::GraphSections(uint32_t g) const {
  return [this, g](uint32_t kind) -> std::string_view {
    if (kind < KindNumber(SectionKind::kHnswHeader) || kind > KindNumber(SectionKind::kHnswSq8Norms)) return {};
    const size_t i = groups_[g].section[SlotOf(kFirstGraphKind + (kind - KindNumber(SectionKind::kHnswHeader)))];
    if (i == kNone) return {};
    return std::string_view(base() + sections_[i].offset, static_cast<size_t>(sections_[i].length));
  };
}

const index::HnswGraph* SegmentFile::graph(uint32_t g) const {
  return groups_[g].graph ? &*groups_[g].graph : nullptr;
}
const uint64_t* SegmentFile::ids(uint32_t g) const { return groups_[g].ids; }
const uint64_t* SegmentFile::seqs(uint32_t g) const { return groups_[g].seqs; }
const uint32_t* SegmentFile::row_entries(uint32_t g) const { return groups_[g].row_entries; }
const float* SegmentFile::vectors(uint32_t g) const { return groups_[g].vectors; }

Status SegmentFile::CheckSection(size_t i) const {
  SectionCheck& c = checks_[i];
  if (c.good.load(std::memory_order_acquire)) return Status::OK();
  std::call_once(c.once, [&] {
    const SectionRef& s = sections_[i];
    if (crc32c::Value(file_->data() + s.offset, s.length) != s.crc) {
      c.status = Bad(s.offset, "checksum mismatch in " + SectionName(s.kind, s.group, s.column) + " (" +
                                   std::to_string(s.length) + " bytes)");
    } else {
      c.good.store(true, std::memory_order_release);
    }
  });
  return c.status;
}

Status SegmentFile::CheckSectionOf(SectionKind kind, uint32_t group) const {
  size_t i = kNone;
  if (group == kFileLevel) {
    const uint32_t k = KindNumber(kind) - KindNumber(SectionKind::kEntries);
    if (k < 4) i = file_section_[k];
  } else {
    i = groups_[group].section[SlotOf(kind)];
  }
  return i == kNone ? Status::OK() : CheckSection(i);
}

Status SegmentFile::CheckKeyIndex() const {
  POMAI_RETURN_IF_ERROR(CheckSectionOf(SectionKind::kEntries, kFileLevel));
  return CheckSectionOf(SectionKind::kKeys, kFileLevel);
}

Status SegmentFile::CheckBlock(uint32_t g, uint64_t b) const {
  Group& gr = groups_[g];
  const GroupInfo& info = gr.info;
  gr.EnsureBits();
  if (Group::Test(gr.block_bits.get(), b)) return Status::OK();
  const uint64_t r0 = b * info.rows_per_block;
  const uint64_t r1 = std::min(info.rows, r0 + info.rows_per_block);
  const size_t row_bytes = size_t{info.dim} * 4;
  uint32_t crc = 0;
  if (info.kind == GroupKind::kU64) {
    crc = crc32c::Extend(crc, gr.ids + r0, (r1 - r0) * 8);
    crc = crc32c::Extend(crc, gr.seqs + r0, (r1 - r0) * 8);
    crc = crc32c::Extend(crc, gr.vectors + r0 * info.dim, (r1 - r0) * row_bytes);
    crc = crc32c::Extend(crc, gr.meta_offsets + r0, (r1 - r0 + 1) * 8);
    const uint64_t from = gr.meta_offsets[r0], to = gr.meta_offsets[r1];
    if (from > to || to > gr.meta_blob_size) {
      return Bad(OffsetOf(gr.meta_offsets + r0), "metadata offsets of block " + std::to_string(b) + " of group " +
                                                     std::to_string(g) + " span [" + std::to_string(from) + ", " +
                                                     std::to_string(to) + ") outside the blob of " +
                                                     std::to_string(gr.meta_blob_size) + " bytes");
    }
    crc = crc32c::Extend(crc, gr.meta_blob + from, to - from);
  } else {
    crc = crc32c::Extend(crc, gr.row_entries + r0, (r1 - r0) * 4);
    crc = crc32c::Extend(crc, gr.vectors + r0 * info.dim, (r1 - r0) * row_bytes);
  }
  if (crc != DecodeFixed32(gr.block_crcs + b * 4)) {
    return Bad(OffsetOf(gr.vectors + r0 * info.dim), "checksum mismatch in block " + std::to_string(b) + " (rows " +
                                                         std::to_string(r0) + ".." + std::to_string(r1) + ") of group " +
                                                         std::to_string(g) + " (block CRC at " +
                                                         std::to_string(OffsetOf(gr.block_crcs + b * 4)) + ")");
  }
  Group::Set(gr.block_bits.get(), b);
  return Status::OK();
}

uint64_t SegmentFile::TEST_CheckedBlocks(uint32_t g) const {
  Group& gr = groups_[g];
  gr.EnsureBits();
  uint64_t n = 0;
  for (uint64_t w = 0; w <= gr.info.blocks() / 64; ++w) n += std::popcount(gr.block_bits[w].load());
  return n;
}

Status SegmentFile::KeyAt(uint64_t i, std::string_view* key) const {
  const uint8_t* e = entries_ + i * kEntrySize2;
  const uint64_t off = DecodeFixed64(e + entry2::kKeyOffset);
  const uint32_t len = DecodeFixed32(e + entry2::kKeyLength);
  if (len == 0 || off > keys_size_ || len > keys_size_ - off) {
    return Bad(OffsetOf(e), "entry " + std::to_string(i) + "'s key [" + std::to_string(off) + ", +" +
                                std::to_string(len) + ") is empty or outside the keys section of " +
                                std::to_string(keys_size_) + " bytes");
  }
  *key = std::string_view(keys_ + off, len);
  return Status::OK();
}

Status SegmentFile::ReadEntry(uint64_t i, EntryView* out) const { return ReadEntryImpl(i, true, out); }

Status SegmentFile::ReadEntryImpl(uint64_t i, bool check_crc, EntryView* out) const {
  const uint8_t* e = entries_ + i * kEntrySize2;
  const uint64_t at = OffsetOf(e);
  const std::string name = "entry " + std::to_string(i);
  std::string_view key;
  POMAI_RETURN_IF_ERROR(KeyAt(i, &key));
  const uint8_t kind = e[entry2::kKind];
  if (kind < 1 || kind > 3) return Bad(at + entry2::kKind, name + " has unknown kind " + std::to_string(kind));
  if (e[entry2::kZero] != 0) return Bad(at + entry2::kZero, name + " has a nonzero reserved byte");
  const uint64_t value_off = DecodeFixed64(e + entry2::kValueOffset);
  const uint32_t value_len = DecodeFixed32(e + entry2::kValueLength);
  if (value_off > values_size_ || value_len > values_size_ - value_off) {
    return Bad(at + entry2::kValueOffset, name + "'s value is outside the values section");
  }
  const std::string_view value(values_ + value_off, value_len);
  if (check_crc) {
    uint32_t crc = crc32c::Value(e, entry2::kCrc);
    crc = crc32c::Extend(crc, key.data(), key.size());
    crc = crc32c::Extend(crc, value.data(), value.size());
    if (crc != DecodeFixed32(e + entry2::kCrc)) return Bad(at + entry2::kCrc, name + " checksum mismatch");
  }
  EntryView v;
  v.index = i;
  v.key = key;
  v.kind = static_cast<EntryKind>(kind);
  v.seq = DecodeFixed64(e + entry2::kSeq);
  v.value = value;
  const uint32_t group = DecodeFixed32(e + entry2::kGroup);
  const uint32_t row = DecodeFixed32(e + entry2::kRow);
  const uint8_t ns = static_cast<uint8_t>(key[0]);
  if (v.kind != EntryKind::kVector) {
    if (e[entry2::kMetric] != 0 || e[entry2::kHasMetadata] != 0 || group != kNoGroup || row != kNoGroupRow) {
      return Bad(at + entry2::kMetric, name + " is not a vector but has vector fields");
    }
    if (v.kind == EntryKind::kTombstone && value_len != 0) return Bad(at + entry2::kValueLength, name + " is a tombstone with a value");
    *out = v;
    return Status::OK();
  }
  if (group >= group_count_ || groups_[group].info.kind == GroupKind::kU64) {
    return Bad(at + entry2::kGroup, name + " names group " + std::to_string(group) + ", not a group of entries");
  }
  const GroupInfo& info = groups_[group].info;
  if (row >= info.rows) return Bad(at + entry2::kRow, name + " names row " + std::to_string(row) + " of " + std::to_string(info.rows));
  if (e[entry2::kMetric] != static_cast<uint8_t>(info.metric)) return Bad(at + entry2::kMetric, name + "'s metric is not its group's");
  const uint8_t flags = e[entry2::kHasMetadata];
  if (flags > 3) return Bad(at + entry2::kHasMetadata, name + " has unknown flags " + std::to_string(flags));
  if ((flags & 2) != 0) {  // attributes: u32 length, the record, then the metadata
    const uint32_t attrs_len = value_len >= 4 ? DecodeFixed32(reinterpret_cast<const uint8_t*>(values_ + value_off)) : 0;
    if (ns != kNamespaceRows || attrs_len == 0 || attrs_len > value_len - 4)
      return Bad(at + entry2::kHasMetadata, name + " has bad attribute fields");
    v.attrs = v.value.substr(4, attrs_len);
    v.value = v.value.substr(4 + size_t{attrs_len});
  }
  if ((flags & 1) == 0 && !v.value.empty()) {
    return Bad(at + entry2::kHasMetadata, name + " has bad metadata fields");
  }
  const bool ns_ok = info.kind == GroupKind::kRecords
                         ? ns == kNamespaceKeys
                         : ns == kNamespaceRows && key.size() >= 10 && DecodeBE64(key.data() + 1) == info.cid;
  if (!ns_ok) return Bad(at, name + "'s key does not belong to its group " + std::to_string(group));
  POMAI_RETURN_IF_ERROR(CheckRow(group, row));
  const uint32_t* back = groups_[group].row_entries + row;
  if (*back != i) {
    return Bad(OffsetOf(back), "row " + std::to_string(row) + " of group " + std::to_string(group) + " names entry " +
                                   std::to_string(*back) + ", not " + name + " which names it");
  }
  v.has_metadata = (flags & 1) != 0;
  v.metric = info.metric;
  v.group = group;
  v.row = row;
  v.vector = vector(group, row);
  *out = v;
  return Status::OK();
}

Status SegmentFile::LowerBound(std::string_view key, uint64_t* index) const {
  POMAI_RETURN_IF_ERROR(CheckKeyIndex());
  uint64_t lo = 0, hi = entry_count_;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    std::string_view k;
    POMAI_RETURN_IF_ERROR(KeyAt(mid, &k));
    if (k < key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  *index = lo;
  return Status::OK();
}

Status SegmentFile::Get(std::string_view key, EntryView* out, bool* found) const {
  *found = false;
  uint64_t i = 0;
  POMAI_RETURN_IF_ERROR(LowerBound(key, &i));
  std::string_view k;
  if (i < entry_count_) {
    POMAI_RETURN_IF_ERROR(KeyAt(i, &k));
    if (k == key) {
      POMAI_RETURN_IF_ERROR(ReadEntry(i, out));
      *found = true;
      return Status::OK();
    }
  }
  // A miss: the neighbours must bracket the key.
  if (i > 0) {
    std::string_view prev;
    POMAI_RETURN_IF_ERROR(KeyAt(i - 1, &prev));
    if (!(prev < key) || (i < entry_count_ && !(prev < k))) {
      return Bad(OffsetOf(entries_ + (i - 1) * kEntrySize2), "keys are not ascending around entry " + std::to_string(i));
    }
  }
  return Status::OK();
}

Status SegmentFile::FindRow(uint32_t g, uint64_t id, uint64_t* row, bool* found) const {
  *found = false;
  const Group& gr = groups_[g];
  if (gr.info.kind != GroupKind::kU64) return Status::InvalidArgument(path() + ": group " + std::to_string(g) + " has no ids");
  const uint64_t rows = gr.info.rows;
  const uint64_t p = static_cast<uint64_t>(std::lower_bound(gr.ids, gr.ids + rows, id) - gr.ids);
  if (p < rows) POMAI_RETURN_IF_ERROR(CheckRow(g, p));
  if (p < rows && gr.ids[p] == id) {
    *row = p;
    *found = true;
    return Status::OK();
  }
  if (p > 0) POMAI_RETURN_IF_ERROR(CheckRow(g, p - 1));
  if ((p > 0 && gr.ids[p - 1] >= id) || (p < rows && gr.ids[p] <= id)) {
    return Bad(OffsetOf(gr.ids + (p > 0 ? p - 1 : p)), "ids of group " + std::to_string(g) +
                                                           " are not ascending around row " + std::to_string(p));
  }
  return Status::OK();
}

Status SegmentFile::FindTombstone(uint32_t g, uint64_t id, uint64_t* seq, bool* found) const {
  *found = false;
  const Group& gr = groups_[g];
  if (gr.info.kind != GroupKind::kU64) return Status::InvalidArgument(path() + ": group " + std::to_string(g) + " has no tombstones");
  POMAI_RETURN_IF_ERROR(CheckSectionOf(SectionKind::kTombstoneIds, g));
  POMAI_RETURN_IF_ERROR(CheckSectionOf(SectionKind::kTombstoneSeqs, g));
  const uint64_t n = gr.info.tombstones;
  const uint64_t p = static_cast<uint64_t>(std::lower_bound(gr.tomb_ids, gr.tomb_ids + n, id) - gr.tomb_ids);
  if (p < n && gr.tomb_ids[p] == id) {
    *seq = gr.tomb_seqs[p];
    *found = true;
  }
  return Status::OK();
}

Status SegmentFile::Tombstones(uint32_t g, const uint64_t** ids, const uint64_t** seqs) const {
  const Group& gr = groups_[g];
  if (gr.info.kind != GroupKind::kU64) return Status::InvalidArgument(path() + ": group " + std::to_string(g) + " has no tombstones");
  POMAI_RETURN_IF_ERROR(CheckSectionOf(SectionKind::kTombstoneIds, g));
  POMAI_RETURN_IF_ERROR(CheckSectionOf(SectionKind::kTombstoneSeqs, g));
  *ids = gr.tomb_ids;
  *seqs = gr.tomb_seqs;
  return Status::OK();
}

Status SegmentFile::CheckGraph(uint32_t g) const {
  for (uint32_t k = kFirstGraphKind; k <= kLastGraphKind; ++k)
    POMAI_RETURN_IF_ERROR(CheckSectionOf(static_cast<SectionKind>(k), g));
  return Status::OK();
}

Result<std::string_view> SegmentFile::Metadata(uint32_t g, uint64_t row) const {
  const Group& gr = groups_[g];
  if (gr.info.kind != GroupKind::kU64 || row >= gr.info.rows) {
    return Status::InvalidArgument(path() + ": no metadata for row " + std::to_string(row) + " of group " + std::to_string(g));
  }
  POMAI_RETURN_IF_ERROR(CheckRow(g, row));
  const uint64_t from = gr.meta_offsets[row], to = gr.meta_offsets[row + 1];
  if (from > to || to > gr.meta_blob_size) {
    return Bad(OffsetOf(gr.meta_offsets + row), "metadata of row " + std::to_string(row) + " of group " +
                                                    std::to_string(g) + " is outside the blob");
  }
  return std::string_view(reinterpret_cast<const char*>(gr.meta_blob + from), static_cast<size_t>(to - from));
}

Status SegmentFile::ReadRowEntry(uint32_t g, uint64_t row, EntryView* out) const {
  Group& gr = groups_[g];
  if (gr.info.kind == GroupKind::kU64 || row >= gr.info.rows) {
    return Status::InvalidArgument(path() + ": no entry for row " + std::to_string(row) + " of group " + std::to_string(g));
  }
  POMAI_RETURN_IF_ERROR(CheckRow(g, row));
  const uint32_t i = gr.row_entries[row];
  if (i >= entry_count_) {
    return Bad(OffsetOf(gr.row_entries + row), "row " + std::to_string(row) + " of group " + std::to_string(g) +
                                                   " names entry " + std::to_string(i) + " of " + std::to_string(entry_count_));
  }
  gr.EnsureBits();
  const bool known = Group::Test(gr.row_bits.get(), row);
  POMAI_RETURN_IF_ERROR(ReadEntryImpl(i, !known, out));
  if (out->kind != EntryKind::kVector || out->group != g || out->row != row) {
    return Bad(OffsetOf(gr.row_entries + row), "row " + std::to_string(row) + " of group " + std::to_string(g) +
                                                   " names entry " + std::to_string(i) + ", which does not name it back");
  }
  if (!known) Group::Set(gr.row_bits.get(), row);
  return Status::OK();
}

Status SegmentFile::OpenAttributes(SegmentFile* f, const std::vector<uint64_t>& entry_at) {
  const uint8_t* base = f->file_->data();
  // Directories: head, records, names strictly ascending, nothing after the last.
  for (uint32_t g = 0; g < f->group_count_; ++g) {
    Group& gr = f->groups_[g];
    const size_t di = gr.section[SlotOf(kAttrDirKind)];
    if (di == kNone) continue;
    const SectionRef& d = f->sections_[di];
    const uint8_t* p = base + d.offset;
    const uint64_t len = d.length;
    const std::string dir = SectionName(SectionKind::kAttrColumns, g);
    if (len < attrdir::kHeadSize) {
      return f->Bad(d.offset, dir + " is " + std::to_string(len) + " bytes, shorter than its 8-byte head");
    }
    const uint32_t count = DecodeFixed32(p);
    if (count == 0 || count > kMaxAttrColumns) {
      return f->Bad(d.offset, dir + " has " + std::to_string(count) + " columns, not 1..256");
    }
    if (DecodeFixed32(p + 4) != 0) return f->Bad(d.offset + 4, dir + " has nonzero reserved bytes");
    gr.attrs.reset(new AttrCol[count]);
    gr.attr_count = count;
    uint64_t pos = attrdir::kHeadSize;
    for (uint32_t i = 0; i < count; ++i) {
      const uint64_t at = d.offset + pos;
      const std::string col = "column " + std::to_string(i) + " of the " + dir;
      if (len - pos < attrdir::kRecordHead) return f->Bad(at, col + " runs past the section's end");
      const uint32_t name_len = uint32_t{p[pos]} | (uint32_t{p[pos + 1]} << 8);
      const uint8_t type = p[pos + 2], flags = p[pos + 3];
      if (name_len == 0 || name_len > kMaxAttrNameLen) {
        return f->Bad(at, col + " has a name of " + std::to_string(name_len) + " bytes, not 1..255");
      }
      if (!IsAttrType(type)) return f->Bad(at + 2, col + " has unknown type " + std::to_string(type));
      if ((flags & ~attrdir::kHasValid) != 0) return f->Bad(at + 3, col + " has unsupported flags " + std::to_string(flags));
      if (len - pos - attrdir::kRecordHead < name_len) return f->Bad(at, col + "'s name runs past the section's end");
      AttrCol& a = gr.attrs[i];
      a.name = std::string_view(reinterpret_cast<const char*>(p + pos + attrdir::kRecordHead), name_len);
      a.type = static_cast<AttrType>(type);
      a.has_valid = (flags & attrdir::kHasValid) != 0;
      a.record_offset = at;
      if (i > 0 && !(gr.attrs[i - 1].name < a.name)) {
        return f->Bad(at, col + " ('" + Printable(a.name) + "') does not follow column " + std::to_string(i - 1) + " ('" +
                              Printable(gr.attrs[i - 1].name) + "') in name order");
      }
      pos += attrdir::kRecordHead + name_len;
    }
    if (pos != len) return f->Bad(d.offset + pos, dir + " has " + std::to_string(len - pos) + " bytes after its last column");
  }
  // Each column's sections: the column field names a column of the directory.
  for (size_t i = 0; i < f->sections_.size(); ++i) {
    const SectionRef& s = f->sections_[i];
    const uint32_t number = KindNumber(s.kind);
    if (!IsAttrColumnKind(number)) continue;
    Group& gr = f->groups_[s.group];  // a u64 group (checked with the scope)
    if (s.column >= gr.attr_count) {
      return f->Bad(entry_at[i] + table2::kColumn,
                    SectionName(s.kind, s.group, s.column) +
                        (gr.attr_count == 0 ? std::string(" belongs to a group without an attr columns section")
                                            : " names a column the directory (" + std::to_string(gr.attr_count) +
                                                  " columns) does not have"));
    }
    gr.attrs[s.column].section[number - kFirstAttrColumnKind] = i;
  }
  // Exactly the sections each column's type needs, of the lengths the rows fix.
  for (uint32_t g = 0; g < f->group_count_; ++g) {
    Group& gr = f->groups_[g];
    const uint64_t rows = gr.info.rows;
    for (uint32_t c = 0; c < gr.attr_count; ++c) {
      const AttrCol& a = gr.attrs[c];
      const std::string what = " (column '" + Printable(a.name) + "', " + AttrTypeName(a.type) +
                               (a.has_valid ? ", with nulls)" : ", without nulls)");
      const uint32_t need = AttrKindsNeeded(a.type, a.has_valid);
      for (uint32_t k = 0; k < kAttrColumnKinds; ++k) {
        const auto kind = static_cast<SectionKind>(kFirstAttrColumnKind + k);
        const size_t i = a.section[k];
        const bool wanted = (need >> k) & 1;
        if (i == kNone && wanted) return f->Bad(a.record_offset, "missing " + SectionName(kind, g, c) + what);
        if (i != kNone && !wanted) return f->Bad(entry_at[i], SectionName(kind, g, c) + " is not one its column has" + what);
      }
      for (uint32_t k = 0; k < kAttrColumnKinds; ++k) {
        const auto kind = static_cast<SectionKind>(kFirstAttrColumnKind + k);
        const size_t i = a.section[k];
        if (i == kNone) continue;
        const uint64_t length = f->sections_[i].length;
        uint64_t want = 0;
        bool exact = true;
        switch (kind) {
          case SectionKind::kAttrValid: want = rows; break;
          case SectionKind::kAttrValues:
            if (a.type == AttrType::kInt64 || a.type == AttrType::kFloat64) want = rows * 8;
            if (a.type == AttrType::kBool) want = rows;
            if (a.type == AttrType::kString) want = rows * 4;
            exact = a.type != AttrType::kTags;
            break;
          case SectionKind::kAttrTagOffsets: want = (rows + 1) * 8; break;
          default: exact = false; break;
        }
        const bool ok = exact ? length == want
                        : kind == SectionKind::kAttrValues      ? length % 4 == 0
                        : kind == SectionKind::kAttrDictOffsets ? length % 8 == 0 && length >= 8
                                                                : true;
        if (!ok) {
          const std::string expected = exact ? std::to_string(want) + " bytes for " + std::to_string(rows) + " rows"
                                       : kind == SectionKind::kAttrValues ? "a multiple of 4 bytes (u32 codes)"
                                                                          : "(d + 1) x 8 bytes";
          return f->Bad(entry_at[i] + table2::kLength,
                        SectionName(kind, g, c) + " is " + std::to_string(length) + " bytes, not " + expected + what);
        }
      }
    }
  }
  return Status::OK();
}

Status SegmentFile::CheckAttrColumn(uint32_t g, uint32_t c) const {
  AttrCol& a = groups_[g].attrs[c];
  if (a.good.load(std::memory_order_acquire)) return Status::OK();
  std::call_once(a.once, [&] {
    Status s = [&]() -> Status {
      const Group& gr = groups_[g];
      const uint64_t rows = gr.info.rows;
      for (size_t i : a.section) {
        if (i != kNone) POMAI_RETURN_IF_ERROR(CheckSection(i));
      }
      auto data = [&](SectionKind k) { return file_->data() + sections_[a.section[KindNumber(k) - kFirstAttrColumnKind]].offset; };
      auto length = [&](SectionKind k) { return sections_[a.section[KindNumber(k) - kFirstAttrColumnKind]].length; };
      const std::string col = "column " + std::to_string(c) + " ('" + Printable(a.name) + "') of group " + std::to_string(g);
      filter::ColumnRef ref;
      ref.type = a.type;
      if (a.has_valid) ref.valid = data(SectionKind::kAttrValid);
      const uint8_t* values = data(SectionKind::kAttrValues);
      switch (a.type) {
        case AttrType::kInt64: ref.ints = reinterpret_cast<const int64_t*>(values); break;
        case AttrType::kFloat64: ref.floats = reinterpret_cast<const double*>(values); break;
        case AttrType::kBool: ref.bools = values; break;
        case AttrType::kString:
        case AttrType::kTags: {
          ref.codes = reinterpret_cast<const uint32_t*>(values);
          const uint64_t codes = length(SectionKind::kAttrValues) / 4;
          if (a.type == AttrType::kTags) {
            ref.tag_offsets = reinterpret_cast<const uint64_t*>(data(SectionKind::kAttrTagOffsets));
            const uint64_t* off = ref.tag_offsets;
            if (off[0] != 0) return Bad(OffsetOf(off), col + "'s tag offsets start at " + std::to_string(off[0]) + ", not 0");
            for (uint64_t r = 0; r < rows; ++r) {
              if (off[r + 1] < off[r]) {
                return Bad(OffsetOf(off + r + 1), col + "'s tag offsets decrease at row " + std::to_string(r + 1));
              }
            }
            if (off[rows] != codes) {
              return Bad(OffsetOf(off + rows), col + "'s tag offsets end at " + std::to_string(off[rows]) + ", not at its " +
                                                   std::to_string(codes) + " codes");
            }
          }
          ref.dict_offsets = reinterpret_cast<const uint64_t*>(data(SectionKind::kAttrDictOffsets));
          ref.dict_bytes = reinterpret_cast<const char*>(data(SectionKind::kAttrDictBytes));
          ref.dict_size = length(SectionKind::kAttrDictOffsets) / 8 - 1;
          ref.dict_sorted = true;
          const uint64_t* doff = ref.dict_offsets;
          const uint64_t d = ref.dict_size, bytes = length(SectionKind::kAttrDictBytes);
          if (doff[0] != 0) return Bad(OffsetOf(doff), col + "'s dictionary offsets start at " + std::to_string(doff[0]) + ", not 0");
          for (uint64_t e = 0; e < d; ++e) {
            if (doff[e + 1] < doff[e] || doff[e + 1] > bytes) {
              return Bad(OffsetOf(doff + e + 1), col + "'s dictionary offset " + std::to_string(e + 1) + " (" +
                                                     std::to_string(doff[e + 1]) + ") decreases or is past its " +
                                                     std::to_string(bytes) + " bytes");
            }
            // Strictly ascending: what makes a range of strings a range of codes.
            if (e > 0) {
              const std::string_view prev(ref.dict_bytes + doff[e - 1], doff[e] - doff[e - 1]);
              const std::string_view cur(ref.dict_bytes + doff[e], doff[e + 1] - doff[e]);
              if (!(prev < cur)) {
                return Bad(OffsetOf(doff + e), col + "'s dictionary entry " + std::to_string(e) +
                                                   " does not follow entry " + std::to_string(e - 1));
              }
            }
          }
          if (doff[d] != bytes) {
            return Bad(OffsetOf(doff + d), col + "'s dictionary offsets end at " + std::to_string(doff[d]) + ", not at its " +
                                               std::to_string(bytes) + " bytes");
          }
          // Codes: every tag's, and those of string rows with a value.
          for (uint64_t j = 0; j < codes; ++j) {
            const bool read = a.type == AttrType::kTags || ref.valid == nullptr || ref.valid[j] != 0;
            if (read && ref.codes[j] >= d) {
              return Bad(OffsetOf(ref.codes + j), col + (a.type == AttrType::kTags ? " tag " : " row ") + std::to_string(j) +
                                                      " has code " + std::to_string(ref.codes[j]) + " of a dictionary of " +
                                                      std::to_string(d));
            }
          }
          break;
        }
      }
      a.ref = ref;
      return Status::OK();
    }();
    if (s.ok()) {
      a.good.store(true, std::memory_order_release);
    } else {
      a.status = s;
    }
  });
  return a.status;
}

Status SegmentFile::AttrColumns(uint32_t g, std::vector<std::pair<std::string, AttrType>>* out) const {
  out->clear();
  if (g >= group_count_ || groups_[g].info.kind != GroupKind::kU64) {
    return Status::InvalidArgument(path() + ": group " + std::to_string(g) + " is not a u64 group (no attribute columns)");
  }
  const Group& gr = groups_[g];
  if (gr.attr_count == 0) return Status::OK();
  POMAI_RETURN_IF_ERROR(CheckSection(gr.section[SlotOf(kAttrDirKind)]));
  for (uint32_t c = 0; c < gr.attr_count; ++c) out->emplace_back(std::string(gr.attrs[c].name), gr.attrs[c].type);
  return Status::OK();
}

Status SegmentFile::Column(uint32_t g, std::string_view name, filter::ColumnRef* out, bool* present) const {
  *present = false;
  if (g >= group_count_ || groups_[g].info.kind != GroupKind::kU64) {
    return Status::InvalidArgument(path() + ": group " + std::to_string(g) + " is not a u64 group (no attribute columns)");
  }
  const Group& gr = groups_[g];
  if (gr.attr_count == 0) return Status::OK();
  POMAI_RETURN_IF_ERROR(CheckSection(gr.section[SlotOf(kAttrDirKind)]));
  uint32_t lo = 0, hi = gr.attr_count;
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (gr.attrs[mid].name < name) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == gr.attr_count || gr.attrs[lo].name != name) return Status::OK();
  POMAI_RETURN_IF_ERROR(CheckAttrColumn(g, lo));
  *out = gr.attrs[lo].ref;
  *present = true;
  return Status::OK();
}

Status SegmentFile::VerifyAttrColumn(uint32_t g, uint32_t c) const {
  POMAI_RETURN_IF_ERROR(CheckAttrColumn(g, c));
  const AttrCol& a = groups_[g].attrs[c];
  const filter::ColumnRef& ref = a.ref;
  const uint64_t rows = groups_[g].info.rows;
  const std::string col = "column " + std::to_string(c) + " ('" + Printable(a.name) + "') of group " + std::to_string(g);
  if (Status s = CheckAttrName(a.name, "attribute column"); !s.ok()) {
    return Bad(a.record_offset, "group " + std::to_string(g) + ": " + s.message());
  }
  if (ref.valid != nullptr) {
    bool any_null = false;
    for (uint64_t r = 0; r < rows; ++r) {
      if (ref.valid[r] > 1) {
        return Bad(OffsetOf(ref.valid + r), col + " row " + std::to_string(r) + " has validity byte " +
                                                std::to_string(ref.valid[r]) + " (0 or 1)");
      }
      any_null |= ref.valid[r] == 0;
    }
    if (!any_null) return Bad(OffsetOf(ref.valid), col + " has an attr valid section but no null row");
  }
  auto has = [&](uint64_t r) { return ref.valid == nullptr || ref.valid[r] != 0; };
  auto null_slot = [&](const void* p, uint64_t r) {
    return Bad(OffsetOf(p), col + " row " + std::to_string(r) + " is null but its slot is not zero");
  };
  switch (a.type) {
    case AttrType::kInt64:
      for (uint64_t r = 0; r < rows; ++r) {
        if (!has(r) && ref.ints[r] != 0) return null_slot(ref.ints + r, r);
      }
      return Status::OK();
    case AttrType::kFloat64:
      for (uint64_t r = 0; r < rows; ++r) {
        if (has(r) && std::isnan(ref.floats[r])) {
          return Bad(OffsetOf(ref.floats + r), col + " row " + std::to_string(r) + " is NaN");
        }
        if (!has(r) && std::bit_cast<uint64_t>(ref.floats[r]) != 0) return null_slot(ref.floats + r, r);
      }
      return Status::OK();
    case AttrType::kBool:
      for (uint64_t r = 0; r < rows; ++r) {
        if (ref.bools[r] > 1) {
          return Bad(OffsetOf(ref.bools + r), col + " row " + std::to_string(r) + " has bool byte " +
                                                  std::to_string(ref.bools[r]) + " (0 or 1)");
        }
        if (!has(r) && ref.bools[r] != 0) return null_slot(ref.bools + r, r);
      }
      return Status::OK();
    case AttrType::kString:
    case AttrType::kTags:
      break;
  }
  std::vector<bool> used(ref.dict_size, false);
  if (a.type == AttrType::kString) {
    for (uint64_t r = 0; r < rows; ++r) {
      if (!has(r) && ref.codes[r] != 0) return null_slot(ref.codes + r, r);
      if (has(r)) used[ref.codes[r]] = true;
    }
  } else {
    for (uint64_t r = 0; r < rows; ++r) {
      if (!has(r) && ref.tag_offsets[r + 1] != ref.tag_offsets[r]) return null_slot(ref.tag_offsets + r + 1, r);
    }
    for (uint64_t j = 0; j < ref.tag_offsets[rows]; ++j) used[ref.codes[j]] = true;
  }
  for (uint64_t e = 0; e < ref.dict_size; ++e) {
    const std::string_view v(ref.dict_bytes + ref.dict_offsets[e], ref.dict_offsets[e + 1] - ref.dict_offsets[e]);
    const std::string entry = col + "'s dictionary entry " + std::to_string(e);
    if (v.size() > kMaxAttrStringLen) {
      return Bad(OffsetOf(ref.dict_offsets + e), entry + " is " + std::to_string(v.size()) + " bytes (at most 65535)");
    }
    if (!IsValidUtf8(v)) return Bad(OffsetOf(v.data()), entry + " is not valid UTF-8");
    if (!used[e]) return Bad(OffsetOf(ref.dict_offsets + e), entry + " is used by no row");
  }
  return Status::OK();
}

Status SegmentFile::VerifyGroup(uint32_t g, uint64_t* min_seq, uint64_t* max_seq, bool* any) const {
  const Group& gr = groups_[g];
  const GroupInfo& info = gr.info;
  const std::string name = "group " + std::to_string(g);
  for (uint64_t b = 0; b < info.blocks(); ++b) POMAI_RETURN_IF_ERROR(CheckBlock(g, b));
  bool seen = false;
  uint64_t lo = 0, hi = 0;
  auto note = [&](uint64_t seq) {
    if (!seen || seq < lo) lo = seq;
    if (!seen || seq > hi) hi = seq;
    seen = true;
  };
  if (info.kind == GroupKind::kU64) {
    for (uint64_t r = 0; r < info.rows; ++r) {
      if (r > 0 && gr.ids[r] <= gr.ids[r - 1]) return Bad(OffsetOf(gr.ids + r), name + "'s ids are not strictly ascending");
      note(gr.seqs[r]);
    }
    for (uint64_t t = 0; t < info.tombstones; ++t) {
      if (t > 0 && gr.tomb_ids[t] <= gr.tomb_ids[t - 1]) {
        return Bad(OffsetOf(gr.tomb_ids + t), name + "'s tombstone ids are not strictly ascending");
      }
      note(gr.tomb_seqs[t]);
    }
    if (gr.meta_offsets[0] != 0) return Bad(OffsetOf(gr.meta_offsets), name + "'s first metadata offset is not 0");
    for (uint64_t r = 1; r <= info.rows; ++r) {
      if (gr.meta_offsets[r] < gr.meta_offsets[r - 1]) return Bad(OffsetOf(gr.meta_offsets + r), name + "'s metadata offsets decrease");
    }
    if (gr.meta_offsets[info.rows] != gr.meta_blob_size) {
      return Bad(OffsetOf(gr.meta_offsets + info.rows), name + "'s last metadata offset is not the blob size");
    }
  } else {
    for (uint64_t r = 0; r < info.rows; ++r) {
      if (r > 0 && gr.row_entries[r] <= gr.row_entries[r - 1]) {
        return Bad(OffsetOf(gr.row_entries + r), name + "'s rows are not in key order");
      }
      EntryView e;
      POMAI_RETURN_IF_ERROR(ReadRowEntry(g, r, &e));
      note(e.seq);
    }
  }
  if ((seen ? lo : 0) != info.min_seq || (seen ? hi : 0) != info.max_seq) {
    return Bad(gr.descriptor_offset + group2::kMinSeq, name + "'s seq range [" + std::to_string(info.min_seq) + ", " +
                                                           std::to_string(info.max_seq) + "] is not its rows' [" +
                                                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  if (seen) {
    if (!*any || lo < *min_seq) *min_seq = lo;
    if (!*any || hi > *max_seq) *max_seq = hi;
    *any = true;
  }
  if (gr.graph) {
    POMAI_RETURN_IF_ERROR(gr.graph->Verify());
  }
  for (uint32_t c = 0; c < gr.attr_count; ++c) POMAI_RETURN_IF_ERROR(VerifyAttrColumn(g, c));
  return Status::OK();
}

Status SegmentFile::Verify() const {
  for (size_t i = 0; i < sections_.size(); ++i) POMAI_RETURN_IF_ERROR(CheckSection(i));

  // Padding is under no checksum: it must be zero, so every byte is checked.
  std::vector<SectionRef> by_offset = sections_;
  std::sort(by_offset.begin(), by_offset.end(), [](const SectionRef& a, const SectionRef& b) { return a.offset < b.offset; });
  const uint8_t* base = file_->data();
  uint64_t pos = kHeaderSize;
  auto gap = [&](uint64_t end) {
    if (end <= pos) return Status::OK();
    const size_t i = FirstNonZero(base + pos, static_cast<size_t>(end - pos));
    if (pos + i != end) return Bad(pos + i, "padding byte is not zero");
    return Status::OK();
  };
  for (const SectionRef& s : by_offset) {
    POMAI_RETURN_IF_ERROR(gap(s.offset));
    pos = std::max(pos, s.offset + s.length);
  }
  POMAI_RETURN_IF_ERROR(gap(table_offset_));

  // Entries: each whole, keys strictly ascending, keys and values back to back.
  bool any = false;
  uint64_t lo = 0, hi = 0;
  uint64_t key_pos = 0, value_pos = 0;
  std::string_view prev;
  for (uint64_t i = 0; i < entry_count_; ++i) {
    EntryView e;
    POMAI_RETURN_IF_ERROR(ReadEntry(i, &e));
    const uint64_t at = OffsetOf(entries_ + i * kEntrySize2);
    const std::string name = "entry " + std::to_string(i);
    if (i > 0 && !(prev < e.key)) return Bad(at, name + "'s key does not follow its predecessor's");
    prev = e.key;
    if (static_cast<uint64_t>(e.key.data() - keys_) != key_pos) return Bad(at + entry2::kKeyOffset, name + "'s key is not where the previous ended");
    // With attributes the stored value is a u32 length, the record, then the metadata.
    const char* stored = e.attrs.empty() ? e.value.data() : e.attrs.data() - 4;
    if (static_cast<uint64_t>(stored - values_) != value_pos) {
      return Bad(at + entry2::kValueOffset, name + "'s value is not where the previous ended");
    }
    if (!e.attrs.empty()) {
      std::vector<AttrColumn> columns;
      if (Status s = wal::DecodeAttrRecord(e.attrs, name, &columns); !s.ok())
        return Bad(at + entry2::kValueOffset, s.message());
    }
    key_pos += e.key.size();
    value_pos += (e.value.data() + e.value.size()) - stored;
    const uint8_t ns = static_cast<uint8_t>(e.key[0]);
    const size_t len = e.key.size();
    const bool key_ok = (ns == kNamespaceKeys && len >= 2 && len - 1 <= kMaxKeyLen) ||
                        (ns == kNamespaceCollections && len - 1 <= kMaxCollectionNameLen && e.kind != EntryKind::kVector) ||
                        (ns == kNamespaceRows && len >= 10 && len - 9 <= kMaxKeyLen && e.kind != EntryKind::kBytes);
    if (!key_ok) return Bad(at, name + " has a key (namespace " + std::to_string(ns) + ", " + std::to_string(len) + " bytes) of no namespace for its kind");
    if (!any || e.seq < lo) lo = e.seq;
    if (!any || e.seq > hi) hi = e.seq;
    any = true;
  }
  if (key_pos != keys_size_) return Bad(OffsetOf(keys_) + key_pos, "keys section has bytes no entry names");
  if (value_pos != values_size_) return Bad(OffsetOf(values_) + value_pos, "values section has bytes no entry names");

  for (uint32_t g = 0; g < group_count_; ++g) POMAI_RETURN_IF_ERROR(VerifyGroup(g, &lo, &hi, &any));
  if ((any ? lo : 0) != min_seq_ || (any ? hi : 0) != max_seq_) {
    return Bad(header2::kMinSeq, "header seq range [" + std::to_string(min_seq_) + ", " + std::to_string(max_seq_) +
                                     "] is not the file's [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return Status::OK();
}

}  // namespace pomai::segment
