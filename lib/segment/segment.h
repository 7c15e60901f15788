// Immutable segment files: writer and mmap reader.
//
// A segment holds the rows of one shard frozen from a memtable (or merged by
// compaction): sorted ids, a float32 vector matrix, per-row metadata, and the
// ids this segment deletes (tombstones), plus any extra sections (indexes).
// See segment_format.h for the byte layout.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "segment/segment_format.h"
#include "simd/distance.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::segment {

struct SegmentInfo {
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  uint32_t shard = 0;
  uint64_t min_seq = 0;
  uint64_t max_seq = 0;
};

// What a segment is built from. All pointers must stay valid during Write.
struct SegmentContents {
  SegmentInfo info;
  size_t row_count = 0;
  const uint64_t* ids = nullptr;          // row_count ids, strictly ascending
  const float* vectors = nullptr;         // row_count * dim floats, row-major
  const uint64_t* meta_offsets = nullptr; // row_count + 1 offsets into meta_blob (may be null: no metadata)
  const uint8_t* meta_blob = nullptr;
  size_t tombstone_count = 0;
  const uint64_t* tombstones = nullptr;   // strictly ascending
  // Extra sections (kind >= 16), written after the core sections.
  struct Extra {
    uint32_t kind;
    std::string_view bytes;
  };
  std::vector<Extra> extra;
};

// Writes `contents` to dir/name durably: to dir/name + ".tmp", fdatasync,
// rename to dir/name, fsync dir. On error the temporary file is removed and
// dir/name is untouched. Invalid contents (unsorted ids, bad offsets) are
// InvalidArgument and nothing is written.
Status WriteSegment(Env* env, const std::string& dir, const std::string& name, const SegmentContents& contents);

// A read-only, mmap'd segment. Thread-safe (immutable). The mapping lives as
// long as the object: hold it through a shared_ptr while reading.
class Segment {
 public:
  // Maps `path` and checks the header (magic, version, checksum), the footer,
  // the section table's checksum and that every section lies inside the file,
  // is aligned and has the size the header's counts imply (overflow-checked).
  // Reads no row data and no section checksum: O(1) in the segment's size.
  // Damage is Corruption naming the file and the offset; never a crash.
  static Result<std::shared_ptr<Segment>> Open(Env* env, const std::string& path);

  // Checks core section `kind` (kIds .. kTombstones, no other kind) against
  // its CRC32C in the section table, the first time it is asked for on this
  // object; later calls return that result without reading the section
  // again. Thread-safe (concurrent first calls wait for one check). A
  // mismatch is Corruption naming the file, the section and its offset.
  Status CheckSection(SectionKind kind) const {
    assert(kind >= SectionKind::kIds && kind <= SectionKind::kTombstones);
    const uint32_t i = core_index_[KindNumber(kind)];
    return checks_[i].good.load(std::memory_order_acquire) ? Status::OK() : CheckSectionAt(i);
  }
  // CheckSection for every section of the table, extra sections included.
  Status CheckAllSections() const;

  // Full check: every section checksum (CheckAllSections), zero padding, ids
  // strictly ascending, tombstones strictly ascending, metadata offsets
  // non-decreasing and inside the blob. Reads the whole file.
  Status Verify() const;

  const std::string& path() const;
  const SegmentInfo& info() const { return info_; }
  uint32_t dim() const { return info_.dim; }
  uint64_t row_count() const { return row_count_; }
  uint64_t tombstone_count() const { return tombstone_count_; }
  uint64_t file_size() const;

  // The core sections in place. Reading them stays inside the mapping (Open
  // checked their sizes), but their bytes are trusted only after
  // CheckSection of their kind succeeded: before it, they may be damaged.
  const uint64_t* ids() const { return ids_; }
  // Row i's vector is vectors() + i * dim(); the matrix is 64-byte aligned.
  const float* vectors() const { return vectors_; }
  const float* vector(uint64_t row) const { return vectors_ + row * info_.dim; }
  const uint64_t* tombstones() const { return tombstones_; }

  // Binary search in ids() (trusted after CheckSection(kIds)): the row
  // holding `id`, or false.
  bool FindRow(uint64_t id, uint64_t* row) const;
  // Binary search in tombstones() (trusted after CheckSection(kTombstones)):
  // whether this segment deletes `id`.
  bool HasTombstone(uint64_t id) const;
  // Row's metadata bytes, after CheckSection of the metadata offsets and
  // blob; Corruption (not a crash) when they or the row's offsets are bad.
  Result<std::string_view> Metadata(uint64_t row) const;

  // An extra section by kind, or an empty view when absent.
  std::string_view Section(uint32_t kind) const;
  std::string_view Section(SectionKind kind) const { return Section(KindNumber(kind)); }

  // One entry of the section table, as read (and checked) by Open.
  struct SectionRef {
    uint32_t kind;
    uint64_t offset;  // from the start of the file
    uint64_t length;
    uint32_t crc;     // CRC32C recorded in the table (checked by CheckSection and Verify, not Open)
  };
  // The section table in file order (for tools/pomai-inspect).
  const std::vector<SectionRef>& sections() const { return sections_; }
  // Start of the mapping (for turning section pointers into file offsets).
  const char* base() const { return reinterpret_cast<const char*>(file_->data()); }

 private:
  // The kept result of one section's check.
  struct SectionCheck {
    std::once_flag once;
    std::atomic<bool> good{false};  // the CRC matched: later checks return at once
    Status status;                  // written once, inside `once`
  };

  Segment() = default;
  // CheckSection of sections_[i]: its CRC is computed by the first call only.
  Status CheckSectionAt(size_t i) const;

  std::unique_ptr<MappedFile> file_;
  SegmentInfo info_;
  uint64_t row_count_ = 0;
  uint64_t tombstone_count_ = 0;
  const uint64_t* ids_ = nullptr;
  const float* vectors_ = nullptr;
  const uint64_t* meta_offsets_ = nullptr;
  const uint8_t* meta_blob_ = nullptr;
  uint64_t meta_blob_size_ = 0;
  const uint64_t* tombstones_ = nullptr;
  std::vector<SectionRef> sections_;
  std::unique_ptr<SectionCheck[]> checks_;  // one per entry of sections_
  // Index in sections_ of each core kind (kIds .. kTombstones).
  uint32_t core_index_[KindNumber(SectionKind::kTombstones) + 1] = {};
};

}  // namespace pomai::segment
