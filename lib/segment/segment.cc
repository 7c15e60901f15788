#include "segment/segment.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>

#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"

namespace pomai::segment {

// Sections are written and read as raw host memory (ids, vectors, offsets are
// little-endian on disk, and we hand out pointers into the mapping).
static_assert(std::endian::native == std::endian::little, "pomai segments need a little-endian host");
static_assert(sizeof(float) == 4);

namespace {

constexpr uint32_t kMaxMetric = 2;
// Core kinds run from kIds (1) to kTombstones; arrays of them are indexed by kind.
constexpr uint32_t kNumCoreKinds = KindNumber(SectionKind::kTombstones);
// Appends and CRCs go in chunks of this size so the bytes are still in cache
// for the write after the checksum pass, and no giant buffer is ever built.
constexpr size_t kWriteChunk = size_t{1} << 20;

constexpr uint8_t kZeros[kSectionAlign] = {};

// The names in this reader's errors, which spell out what pomai-inspect and
// the registry abbreviate ("metadata offsets" for "meta offsets").
const char* CoreKindName(uint32_t kind) {
  switch (kind) {
    case KindNumber(SectionKind::kIds): return "ids";
    case KindNumber(SectionKind::kVectors): return "vectors";
    case KindNumber(SectionKind::kMetaOffsets): return "metadata offsets";
    case KindNumber(SectionKind::kMetaBlob): return "metadata blob";
    case KindNumber(SectionKind::kTombstones): return "tombstones";
  }
  return "extra";
}

bool IsCoreKind(uint32_t kind) { return kind >= KindNumber(SectionKind::kIds) && kind <= kNumCoreKinds; }

// ---------------------------------------------------------------------------
// Writer

struct TableEntry {
  uint32_t kind;
  uint64_t offset;
  uint64_t length;
  uint32_t crc;
};

// Streams sections into a WritableFile, tracking the file offset and each
// section's CRC.
class SectionWriter {
 public:
  explicit SectionWriter(WritableFile* file) : file_(file) {}

  uint64_t offset() const { return offset_; }
  const std::vector<TableEntry>& entries() const { return entries_; }

  // Bytes outside any section (header, table, footer): no section CRC.
  Status Raw(const void* data, size_t n) { return Write(data, n, nullptr); }

  Status PadToAlignment() {
    size_t pad = static_cast<size_t>((kSectionAlign - offset_ % kSectionAlign) % kSectionAlign);
    return Write(kZeros, pad, nullptr);
  }

  Status Begin(uint32_t kind) {
    POMAI_RETURN_IF_ERROR(PadToAlignment());
    current_ = TableEntry{kind, offset_, 0, 0};
    return Status::OK();
  }
  Status Add(const void* data, uint64_t n) { return Write(data, n, &current_.crc); }
  Status AddZeros(uint64_t n) {
    while (n > 0) {
      size_t c = static_cast<size_t>(std::min<uint64_t>(n, sizeof(kZeros)));
      POMAI_RETURN_IF_ERROR(Write(kZeros, c, &current_.crc));
      n -= c;
    }
    return Status::OK();
  }
  void End() {
    current_.length = offset_ - current_.offset;
    entries_.push_back(current_);
  }

 private:
  Status Write(const void* data, uint64_t n, uint32_t* crc) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
      size_t c = static_cast<size_t>(std::min<uint64_t>(n, kWriteChunk));
      if (crc != nullptr) *crc = crc32c::Extend(*crc, p, c);
      POMAI_RETURN_IF_ERROR(file_->Append(p, c));
      p += c;
      n -= c;
      offset_ += c;
    }
    return Status::OK();
  }

  WritableFile* file_;
  uint64_t offset_ = 0;
  TableEntry current_{};
  std::vector<TableEntry> entries_;
};

Status ValidateContents(const SegmentContents& c) {
  const SegmentInfo& info = c.info;
  if (info.dim == 0 || info.dim > kMaxDim) {
    return Status::InvalidArgument("segment dim " + std::to_string(info.dim) + " is not in [1, 65535]");
  }
  if (static_cast<uint32_t>(info.metric) > kMaxMetric) {
    return Status::InvalidArgument("segment metric " + std::to_string(static_cast<uint32_t>(info.metric)) +
                                   " is unknown");
  }
  uint64_t bytes = 0;
  if (MulOverflows(c.row_count, uint64_t{info.dim} * sizeof(float), &bytes) ||
      AddOverflows(c.row_count, 1, &bytes) || MulOverflows(bytes, sizeof(uint64_t), &bytes) ||
      MulOverflows(c.tombstone_count, sizeof(uint64_t), &bytes)) {
    return Status::InvalidArgument("segment row or tombstone count is too large");
  }
  if (c.row_count > 0 && (c.ids == nullptr || c.vectors == nullptr)) {
    return Status::InvalidArgument("segment has " + std::to_string(c.row_count) + " rows but no ids or vectors");
  }
  for (size_t i = 1; i < c.row_count; ++i) {
    if (c.ids[i] <= c.ids[i - 1]) {
      return Status::InvalidArgument("segment ids are not strictly ascending: id " + std::to_string(c.ids[i]) +
                                     " at row " + std::to_string(i) + " follows " + std::to_string(c.ids[i - 1]));
    }
  }
  if (c.tombstone_count > 0 && c.tombstones == nullptr) {
    return Status::InvalidArgument("segment has " + std::to_string(c.tombstone_count) + " tombstones but no array");
  }
  for (size_t i = 1; i < c.tombstone_count; ++i) {
    if (c.tombstones[i] <= c.tombstones[i - 1]) {
      return Status::InvalidArgument("segment tombstones are not strictly ascending: " +
                                     std::to_string(c.tombstones[i]) + " at index " + std::to_string(i) +
                                     " follows " + std::to_string(c.tombstones[i - 1]));
    }
  }
  if (c.meta_offsets != nullptr) {
    if (c.meta_offsets[0] != 0) {
      return Status::InvalidArgument("segment metadata offsets must start at 0, got " +
                                     std::to_string(c.meta_offsets[0]));
    }
    for (size_t i = 1; i <= c.row_count; ++i) {
      if (c.meta_offsets[i] < c.meta_offsets[i - 1]) {
        return Status::InvalidArgument("segment metadata offsets decrease at index " + std::to_string(i) + ": " +
                                       std::to_string(c.meta_offsets[i]) + " after " +
                                       std::to_string(c.meta_offsets[i - 1]));
      }
    }
    if (c.meta_offsets[c.row_count] > 0 && c.meta_blob == nullptr) {
      return Status::InvalidArgument("segment metadata offsets point into a null blob");
    }
  }
  std::vector<uint32_t> kinds;
  for (const SegmentContents::Extra& e : c.extra) {
    if (e.kind < kFirstExtraKind) {
      return Status::InvalidArgument("extra section kind " + std::to_string(e.kind) +
                                     " is reserved for core sections (extra kinds start at 16)");
    }
    kinds.push_back(e.kind);
  }
  std::sort(kinds.begin(), kinds.end());
  auto dup = std::adjacent_find(kinds.begin(), kinds.end());
  if (dup != kinds.end()) {
    return Status::InvalidArgument("extra section kind " + std::to_string(*dup) + " appears twice");
  }
  return Status::OK();
}

void EncodeHeader(const SegmentContents& c, uint8_t* h) {
  std::memset(h, 0, kHeaderSize);
  std::memcpy(h, kMagic, sizeof(kMagic));
  EncodeFixed32(h + 8, kFormatVersion);
  EncodeFixed32(h + 12, static_cast<uint32_t>(kHeaderSize));
  EncodeFixed32(h + 16, c.info.dim);
  h[20] = static_cast<uint8_t>(c.info.metric);
  EncodeFixed32(h + 24, c.info.shard);
  EncodeFixed64(h + 32, c.row_count);
  EncodeFixed64(h + 40, c.tombstone_count);
  EncodeFixed64(h + 48, c.info.min_seq);
  EncodeFixed64(h + 56, c.info.max_seq);
  EncodeFixed32(h + 124, crc32c::Value(h, 124));
}

Status WriteBody(WritableFile* file, const SegmentContents& c) {
  SectionWriter w(file);
  uint8_t header[kHeaderSize];
  EncodeHeader(c, header);
  POMAI_RETURN_IF_ERROR(w.Raw(header, sizeof(header)));

  const uint64_t rows = c.row_count;
  POMAI_RETURN_IF_ERROR(w.Begin(KindNumber(SectionKind::kIds)));
  POMAI_RETURN_IF_ERROR(w.Add(c.ids, rows * sizeof(uint64_t)));
  w.End();

  POMAI_RETURN_IF_ERROR(w.Begin(KindNumber(SectionKind::kVectors)));
  POMAI_RETURN_IF_ERROR(w.Add(c.vectors, rows * c.info.dim * sizeof(float)));
  w.End();

  // Without metadata, all-zero offsets and an empty blob: readers need no special case.
  POMAI_RETURN_IF_ERROR(w.Begin(KindNumber(SectionKind::kMetaOffsets)));
  if (c.meta_offsets != nullptr) {
    POMAI_RETURN_IF_ERROR(w.Add(c.meta_offsets, (rows + 1) * sizeof(uint64_t)));
  } else {
    POMAI_RETURN_IF_ERROR(w.AddZeros((rows + 1) * sizeof(uint64_t)));
  }
  w.End();

  POMAI_RETURN_IF_ERROR(w.Begin(KindNumber(SectionKind::kMetaBlob)));
  if (c.meta_offsets != nullptr) POMAI_RETURN_IF_ERROR(w.Add(c.meta_blob, c.meta_offsets[rows]));
  w.End();

  POMAI_RETURN_IF_ERROR(w.Begin(KindNumber(SectionKind::kTombstones)));
  POMAI_RETURN_IF_ERROR(w.Add(c.tombstones, c.tombstone_count * sizeof(uint64_t)));
  w.End();

  for (const SegmentContents::Extra& e : c.extra) {
    POMAI_RETURN_IF_ERROR(w.Begin(e.kind));
    POMAI_RETURN_IF_ERROR(w.Add(e.bytes.data(), e.bytes.size()));
    w.End();
  }

  POMAI_RETURN_IF_ERROR(w.PadToAlignment());
  const uint64_t table_offset = w.offset();
  std::string table;
  for (const TableEntry& e : w.entries()) {
    PutFixed32(&table, e.kind);
    PutFixed32(&table, 0);  // flags
    PutFixed64(&table, e.offset);
    PutFixed64(&table, e.length);
    PutFixed32(&table, e.crc);
    PutFixed32(&table, 0);  // reserved
  }
  POMAI_RETURN_IF_ERROR(w.Raw(table.data(), table.size()));

  std::string footer;
  PutFixed64(&footer, table_offset);
  PutFixed32(&footer, static_cast<uint32_t>(w.entries().size()));
  PutFixed32(&footer, crc32c::Value(table.data(), table.size()));
  PutFixed64(&footer, w.offset() + kFooterSize);
  PutBytes(&footer, kFooterMagic, sizeof(kFooterMagic));
  return w.Raw(footer.data(), footer.size());
}

// ---------------------------------------------------------------------------
// Reader helpers

// Offset of the first non-zero byte in p[0, n), or n.
size_t FirstNonZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return i;
  }
  return n;
}

// Sections by offset, empty ones first among equal offsets (several empty
// sections and the next non-empty one legitimately share an offset).
template <typename Ref>
std::vector<Ref> SortedByPosition(std::vector<Ref> sections) {
  std::sort(sections.begin(), sections.end(), [](const Ref& a, const Ref& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.length < b.length;
  });
  return sections;
}

}  // namespace

Status WriteSegment(Env* env, const std::string& dir, const std::string& name, const SegmentContents& contents) {
  POMAI_RETURN_IF_ERROR(ValidateContents(contents));
  if (contents.extra.size() + kNumCoreKinds > kMaxSections) {
    return Status::InvalidArgument("segment has too many extra sections (" + std::to_string(contents.extra.size()) +
                                   ")");
  }
  return WriteFileDurably(env, dir, JoinPath(dir, name),
                          [&](WritableFile* file) { return WriteBody(file, contents); });
}

Result<std::shared_ptr<Segment>> Segment::Open(Env* env, const std::string& path) {
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, env->MapFile(path));
  const uint8_t* base = file->data();
  const uint64_t size = file->size();
  auto corrupt = [&path](uint64_t offset, const std::string& what) { return Status::Corruption(path, offset, what); };

  if (size < kHeaderSize + kFooterSize) {
    return corrupt(0, "file is " + std::to_string(size) + " bytes, smaller than a segment header and footer");
  }

  // Header.
  if (std::memcmp(base, kMagic, sizeof(kMagic)) != 0) return corrupt(0, "bad magic: not a segment file");
  const uint32_t version = DecodeFixed32(base + 8);
  if (version != kFormatVersion) {
    return corrupt(8, "unsupported segment format version " + std::to_string(version) + " (this build reads " +
                          std::to_string(kFormatVersion) + ")");
  }
  const uint32_t header_crc = DecodeFixed32(base + 124);
  if (crc32c::Value(base, 124) != header_crc) return corrupt(124, "header checksum mismatch");
  const uint32_t header_size = DecodeFixed32(base + 12);
  if (header_size != kHeaderSize) return corrupt(12, "header size " + std::to_string(header_size) + " is not 128");
  const uint32_t dim = DecodeFixed32(base + 16);
  if (dim == 0 || dim > kMaxDim) return corrupt(16, "dim " + std::to_string(dim) + " is not in [1, 65535]");
  const uint8_t metric = base[20];
  if (metric > kMaxMetric) return corrupt(20, "unknown metric " + std::to_string(metric));
  constexpr std::pair<size_t, size_t> kReserved[] = {{21, 24}, {28, 32}, {64, 124}};
  for (auto [from, to] : kReserved) {
    size_t i = FirstNonZero(base + from, to - from);
    if (i != to - from) return corrupt(from + i, "reserved header byte is not zero");
  }
  const uint64_t row_count = DecodeFixed64(base + 32);
  const uint64_t tombstone_count = DecodeFixed64(base + 40);

  // Footer.
  const uint64_t footer_offset = size - kFooterSize;
  const uint8_t* footer = base + footer_offset;
  if (std::memcmp(footer + 24, kFooterMagic, sizeof(kFooterMagic)) != 0) {
    return corrupt(footer_offset + 24, "bad footer magic (truncated or not a segment file)");
  }
  const uint64_t recorded_size = DecodeFixed64(footer + 16);
  if (recorded_size != size) {
    return corrupt(footer_offset + 16, "footer records a file size of " + std::to_string(recorded_size) +
                                           " bytes but the file is " + std::to_string(size));
  }
  const uint64_t table_offset = DecodeFixed64(footer);
  const uint32_t section_count = DecodeFixed32(footer + 8);
  if (section_count > kMaxSections) {
    return corrupt(footer_offset + 8, "section count " + std::to_string(section_count) + " exceeds " +
                                          std::to_string(kMaxSections));
  }
  uint64_t table_end = 0;
  if (AddOverflows(table_offset, uint64_t{section_count} * kSectionEntrySize, &table_end) ||
      table_end != footer_offset || table_offset < kHeaderSize) {
    return corrupt(footer_offset, "section table at " + std::to_string(table_offset) + " with " +
                                      std::to_string(section_count) + " entries does not end at the footer (" +
                                      std::to_string(footer_offset) + ")");
  }
  const uint8_t* table = base + table_offset;
  const size_t table_size = section_count * kSectionEntrySize;
  if (crc32c::Value(table, table_size) != DecodeFixed32(footer + 12)) {
    return corrupt(footer_offset + 12, "section table checksum mismatch");
  }

  // Section table.
  std::shared_ptr<Segment> seg(new Segment());
  const SectionRef* core[kNumCoreKinds + 1] = {};
  uint64_t core_entry_offset[kNumCoreKinds + 1] = {};
  seg->sections_.reserve(section_count);
  for (uint32_t i = 0; i < section_count; ++i) {
    const uint64_t entry_offset = table_offset + uint64_t{i} * kSectionEntrySize;
    const uint8_t* e = base + entry_offset;
    SectionRef ref{DecodeFixed32(e), DecodeFixed64(e + 8), DecodeFixed64(e + 16), DecodeFixed32(e + 24)};
    if (!IsCoreKind(ref.kind) && ref.kind < kFirstExtraKind) {
      return corrupt(entry_offset, "unknown section kind " + std::to_string(ref.kind));
    }
    if (DecodeFixed32(e + 4) != 0) return corrupt(entry_offset + 4, "unsupported section flags");
    if (DecodeFixed32(e + 28) != 0) return corrupt(entry_offset + 28, "reserved section table bytes are not zero");
    if (ref.offset % kSectionAlign != 0 || ref.offset < kHeaderSize) {
      return corrupt(entry_offset + 8, "section offset " + std::to_string(ref.offset) +
                                           " is not 64-byte aligned after the header");
    }
    uint64_t end = 0;
    if (AddOverflows(ref.offset, ref.length, &end) || end > table_offset) {
      return corrupt(entry_offset + 16, "section at " + std::to_string(ref.offset) + " of " +
                                            std::to_string(ref.length) + " bytes runs past the section table at " +
                                            std::to_string(table_offset));
    }
    for (const SectionRef& other : seg->sections_) {
      if (other.kind == ref.kind) return corrupt(entry_offset, "duplicate section kind " + std::to_string(ref.kind));
    }
    seg->sections_.push_back(ref);
    if (IsCoreKind(ref.kind)) core_entry_offset[ref.kind] = entry_offset;
  }
  for (uint32_t i = 0; i < section_count; ++i) {
    const SectionRef& ref = seg->sections_[i];
    if (IsCoreKind(ref.kind)) {
      core[ref.kind] = &ref;
      seg->core_index_[ref.kind] = i;
    }
  }
  for (uint32_t k = KindNumber(SectionKind::kIds); k <= kNumCoreKinds; ++k) {
    if (core[k] == nullptr) {
      return corrupt(table_offset, std::string("missing ") + CoreKindName(k) + " section (kind " + std::to_string(k) +
                                       ")");
    }
  }
  {
    const std::vector<SectionRef> by_offset = SortedByPosition(seg->sections_);
    for (size_t i = 1; i < by_offset.size(); ++i) {
      if (by_offset[i - 1].offset + by_offset[i - 1].length > by_offset[i].offset) {
        return corrupt(table_offset, "sections at " + std::to_string(by_offset[i - 1].offset) + " and " +
                                         std::to_string(by_offset[i].offset) + " overlap");
      }
    }
  }

  // Section sizes implied by the header's counts.
  uint64_t ids_len = 0, vec_len = 0, off_len = 0, tomb_len = 0;
  if (MulOverflows(row_count, sizeof(uint64_t), &ids_len) || MulOverflows(row_count, uint64_t{dim} * 4, &vec_len) ||
      AddOverflows(ids_len, sizeof(uint64_t), &off_len)) {
    return corrupt(32, "row count " + std::to_string(row_count) + " is impossibly large");
  }
  if (MulOverflows(tombstone_count, sizeof(uint64_t), &tomb_len)) {
    return corrupt(40, "tombstone count " + std::to_string(tombstone_count) + " is impossibly large");
  }
  const std::pair<SectionKind, uint64_t> expected[] = {{SectionKind::kIds, ids_len},
                                                        {SectionKind::kVectors, vec_len},
                                                        {SectionKind::kMetaOffsets, off_len},
                                                        {SectionKind::kTombstones, tomb_len}};
  for (auto [kind, len] : expected) {
    const uint32_t k = KindNumber(kind);
    if (core[k]->length != len) {
      return corrupt(core_entry_offset[k] + 16, std::string(CoreKindName(k)) + " section is " +
                                                    std::to_string(core[k]->length) + " bytes but the header implies " +
                                                    std::to_string(len) + " (rows " + std::to_string(row_count) +
                                                    ", dim " + std::to_string(dim) + ", tombstones " +
                                                    std::to_string(tombstone_count) + ")");
    }
  }

  auto at = [base](const SectionRef* s) { return base + s->offset; };
  seg->info_.dim = dim;
  seg->info_.metric = static_cast<simd::Metric>(metric);
  seg->info_.shard = DecodeFixed32(base + 24);
  seg->info_.min_seq = DecodeFixed64(base + 48);
  seg->info_.max_seq = DecodeFixed64(base + 56);
  seg->row_count_ = row_count;
  seg->tombstone_count_ = tombstone_count;
  seg->ids_ = reinterpret_cast<const uint64_t*>(at(core[1]));
  seg->vectors_ = reinterpret_cast<const float*>(at(core[2]));
  seg->meta_offsets_ = reinterpret_cast<const uint64_t*>(at(core[3]));
  seg->meta_blob_ = at(core[4]);
  seg->meta_blob_size_ = core[4]->length;
  seg->tombstones_ = reinterpret_cast<const uint64_t*>(at(core[5]));
  if (reinterpret_cast<uintptr_t>(base) % kSectionAlign != 0) {
    return Status::Internal("mapping of " + path + " is not 64-byte aligned");
  }
  seg->checks_.reset(new SectionCheck[section_count]);
  seg->file_ = std::move(file);
  return seg;
}

Status Segment::CheckSectionAt(size_t i) const {
  SectionCheck& c = checks_[i];
  if (c.good.load(std::memory_order_acquire)) return Status::OK();
  std::call_once(c.once, [&] {
    const SectionRef& s = sections_[i];
    if (crc32c::Value(file_->data() + s.offset, s.length) != s.crc) {
      c.status = Status::Corruption(path(), s.offset, std::string("checksum mismatch in ") + CoreKindName(s.kind) +
                                                          " section (kind " + std::to_string(s.kind) + ", " +
                                                          std::to_string(s.length) + " bytes)");
    } else {
      c.good.store(true, std::memory_order_release);
    }
  });
  return c.status;
}

Status Segment::CheckAllSections() const {
  for (size_t i = 0; i < sections_.size(); ++i) POMAI_RETURN_IF_ERROR(CheckSectionAt(i));
  return Status::OK();
}

Status Segment::Verify() const {
  const uint8_t* base = file_->data();
  POMAI_RETURN_IF_ERROR(CheckAllSections());

  // Padding between header, sections and table is not under any checksum:
  // require it to be zero so that every byte of the file is checked.
  const std::vector<SectionRef> by_offset = SortedByPosition(sections_);
  const uint64_t table_offset = DecodeFixed64(base + file_->size() - kFooterSize);
  uint64_t pos = kHeaderSize;
  auto check_gap = [&](uint64_t end) {
    if (end <= pos) return Status::OK();
    size_t i = FirstNonZero(base + pos, static_cast<size_t>(end - pos));
    if (pos + i != end) return Status::Corruption(path(), pos + i, "padding byte is not zero");
    return Status::OK();
  };
  for (const SectionRef& s : by_offset) {
    POMAI_RETURN_IF_ERROR(check_gap(s.offset));
    pos = s.offset + s.length;
  }
  POMAI_RETURN_IF_ERROR(check_gap(table_offset));

  const uint64_t ids_offset = reinterpret_cast<const uint8_t*>(ids_) - base;
  for (uint64_t i = 1; i < row_count_; ++i) {
    if (ids_[i] <= ids_[i - 1]) {
      return Status::Corruption(path(), ids_offset + i * 8, "ids are not strictly ascending: " +
                                                                std::to_string(ids_[i]) + " follows " +
                                                                std::to_string(ids_[i - 1]));
    }
  }
  const uint64_t tomb_offset = reinterpret_cast<const uint8_t*>(tombstones_) - base;
  for (uint64_t i = 1; i < tombstone_count_; ++i) {
    if (tombstones_[i] <= tombstones_[i - 1]) {
      return Status::Corruption(path(), tomb_offset + i * 8, "tombstones are not strictly ascending: " +
                                                                 std::to_string(tombstones_[i]) + " follows " +
                                                                 std::to_string(tombstones_[i - 1]));
    }
  }
  const uint64_t off_offset = reinterpret_cast<const uint8_t*>(meta_offsets_) - base;
  if (meta_offsets_[0] != 0) return Status::Corruption(path(), off_offset, "first metadata offset is not 0");
  for (uint64_t i = 1; i <= row_count_; ++i) {
    if (meta_offsets_[i] < meta_offsets_[i - 1]) {
      return Status::Corruption(path(), off_offset + i * 8, "metadata offsets decrease");
    }
  }
  if (meta_offsets_[row_count_] != meta_blob_size_) {
    return Status::Corruption(path(), off_offset + row_count_ * 8,
                              "last metadata offset " + std::to_string(meta_offsets_[row_count_]) +
                                  " is not the blob size " + std::to_string(meta_blob_size_));
  }
  return Status::OK();
}

const std::string& Segment::path() const { return file_->path(); }

uint64_t Segment::file_size() const { return file_->size(); }

bool Segment::FindRow(uint64_t id, uint64_t* row) const {
  const uint64_t* end = ids_ + row_count_;
  const uint64_t* it = std::lower_bound(ids_, end, id);
  if (it == end || *it != id) return false;
  *row = static_cast<uint64_t>(it - ids_);
  return true;
}

bool Segment::HasTombstone(uint64_t id) const {
  return std::binary_search(tombstones_, tombstones_ + tombstone_count_, id);
}

Result<std::string_view> Segment::Metadata(uint64_t row) const {
  if (row >= row_count_) {
    return Status::InvalidArgument("row " + std::to_string(row) + " is out of range: " + path() + " has " +
                                   std::to_string(row_count_) + " rows");
  }
  POMAI_RETURN_IF_ERROR(CheckSection(SectionKind::kMetaOffsets));
  POMAI_RETURN_IF_ERROR(CheckSection(SectionKind::kMetaBlob));
  const uint64_t start = meta_offsets_[row];
  const uint64_t end = meta_offsets_[row + 1];
  if (start > end || end > meta_blob_size_) {
    const uint64_t entry = static_cast<uint64_t>(reinterpret_cast<const uint8_t*>(meta_offsets_ + row) - file_->data());
    return Status::Corruption(path(), entry, "metadata of row " + std::to_string(row) + " spans [" +
                                                 std::to_string(start) + ", " + std::to_string(end) +
                                                 ") outside the blob of " + std::to_string(meta_blob_size_) + " bytes");
  }
  return std::string_view(reinterpret_cast<const char*>(meta_blob_ + start), static_cast<size_t>(end - start));
}

std::string_view Segment::Section(uint32_t kind) const {
  for (const SectionRef& s : sections_) {
    if (s.kind == kind) {
      return std::string_view(reinterpret_cast<const char*>(file_->data() + s.offset), static_cast<size_t>(s.length));
    }
  }
  return std::string_view();
}

}  // namespace pomai::segment
