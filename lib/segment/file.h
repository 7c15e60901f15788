// segment::SegmentFile: a read-only, mmap'd segment file of format 2
// (docs/ENGINE.md 3.3 and 3.4; layout in segment/format.h).
//
// Open checks the container and the group descriptors in O(sections) and
// reads no entry, row, key or vector. Every read then checks what it returns:
// a key lookup the entries and keys sections (once per open) and the entry
// it returns (entry CRC); a row read the block CRC of its rows' block (once
// per open per block); the tombstones by their section CRCs (once per open);
// an attribute column its sections' CRCs, offsets and codes (once per open
// per column).
// Damage is Corruption naming the file and a byte offset, never a crash and
// never a wrong answer. Verify checks every byte.
//
// Thread-safe: the object is immutable apart from the kept results of the
// once-per-open checks. The mapping lives as long as the object: hold it
// through the shared_ptr while using any pointer or view it handed out.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filter/column_source.h"
#include "index/hnsw.h"
#include "segment/format.h"
#include "simd/distance.h"
#include "util/attributes.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::segment {

// A group descriptor, as Open checked it.
struct GroupInfo {
  GroupKind kind = GroupKind::kU64;
  simd::Metric metric = simd::Metric::kL2;
  bool has_graph = false;
  uint32_t dim = 0;
  uint64_t cid = 0;
  uint64_t rows = 0;
  uint64_t tombstones = 0;
  uint32_t rows_per_block = 1;
  uint64_t min_seq = 0;
  uint64_t max_seq = 0;
  uint64_t blocks() const { return (rows + rows_per_block - 1) / rows_per_block; }
};

// One entry, checked whole (fields, bounds, CRC; a vector also its block and
// the group's row naming it back). Views point into the mapping.
struct EntryView {
  uint64_t index = 0;  // in the entries section
  std::string_view key;
  EntryKind kind = EntryKind::kTombstone;
  uint64_t seq = 0;
  std::string_view value;  // bytes value or configuration; a vector's metadata
  // Vector entries only.
  bool has_metadata = false;
  std::string_view attrs;  // a collection row's attribute record, or empty
  simd::Metric metric = simd::Metric::kL2;
  uint32_t group = kNoGroup;
  uint32_t row = kNoGroupRow;
  const float* vector = nullptr;  // the group's dim floats
};

class SegmentFile {
 public:
  // Maps `path` and checks, reading only the header, the footer, the section
  // table, the group descriptors and the attribute directories: the header
  // (magic, version 2, CRC, size, reserved bytes, the file number when the
  // name is seg-N.pseg), the footer, the table CRC, every table entry (known
  // kind in the right scope and group kind, column field, aligned, inside the
  // file, no overlap, no duplicate), every descriptor (CRC, kind, metric,
  // flags, dim, rows_per_block, ascending order), every section's exact
  // length, the required sections, opens each group's graph
  // (index::HnswGraph::Open), and checks each attribute directory's
  // structure and its columns' sections (presence, lengths). Damage is
  // Corruption naming the file and the offset.
  static Result<std::shared_ptr<SegmentFile>> Open(Env* env, const std::string& path);
  ~SegmentFile();

  const std::string& path() const;
  uint64_t file_size() const;
  uint64_t file_number() const { return file_number_; }
  uint64_t min_seq() const { return min_seq_; }
  uint64_t max_seq() const { return max_seq_; }
  uint64_t entry_count() const { return entry_count_; }
  uint32_t group_count() const { return group_count_; }
  // Requires g < group_count().
  const GroupInfo& group(uint32_t g) const;
  // The group with these fields (binary search over the descriptors).
  bool FindGroup(GroupKind kind, uint64_t cid, uint32_t dim, simd::Metric metric, uint32_t* g) const;

  // ---- Entries (the keyspace).

  // The entry of internal key `key` (*found), checked whole. Checks the
  // entries and keys sections' CRCs once per open (CheckKeyIndex), key bounds
  // at each comparison, and on a miss that the entries on both sides bracket
  // the key.
  Status Get(std::string_view key, EntryView* out, bool* found) const;
  // Index of the first entry with key >= `key` (after CheckKeyIndex).
  Status LowerBound(std::string_view key, uint64_t* index) const;
  // Entry i checked whole. Requires i < entry_count().
  Status ReadEntry(uint64_t i, EntryView* out) const;
  // The entries and keys sections' CRCs, computed on the first call only.
  Status CheckKeyIndex() const;

  // ---- Rows of a group. Row data is trusted only once the row's block was
  // checked (CheckBlock); the accessors below that return row data check it.

  // Block b's CRC (rows [b * B, min((b + 1) * B, rows))), computed the first
  // time it succeeds on this object (an atomic bit per block). Requires
  // g < group_count(), b < group(g).blocks().
  Status CheckBlock(uint32_t g, uint64_t b) const;
  // CheckBlock of the block holding `row`.
  Status CheckRow(uint32_t g, uint64_t row) const { return CheckBlock(g, row / group(g).rows_per_block); }

  // u64 groups: the row holding `id` (*found). Checks the hit's block, or on
  // a miss the blocks of the two neighbours, and that they bracket `id`.
  Status FindRow(uint32_t g, uint64_t id, uint64_t* row, bool* found) const;
  // u64 groups: whether this segment deletes `id` in group g, and at which
  // seq. Checks the tombstone sections' CRCs once per open.
  Status FindTombstone(uint32_t g, uint64_t id, uint64_t* seq, bool* found) const;
  // u64 groups: the tombstone columns (tombstones ids, strictly ascending
  // as Verify checks, and their seqs), after their section CRCs (once per open).
  Status Tombstones(uint32_t g, const uint64_t** ids, const uint64_t** seqs) const;
  // u64 groups: row's metadata, after CheckRow.
  Result<std::string_view> Metadata(uint32_t g, uint64_t row) const;
  // Byte-keyed and record groups: row's entry, checked (the block, then the
  // entry; its entry CRC once per open per row).
  Status ReadRowEntry(uint32_t g, uint64_t row, EntryView* out) const;

  // The group's columns in the mapping; their bytes are trusted per block
  // after CheckBlock. Null when the group kind has no such column.
  const uint64_t* ids(uint32_t g) const;
  const uint64_t* seqs(uint32_t g) const;
  const uint32_t* row_entries(uint32_t g) const;
  const float* vectors(uint32_t g) const;
  const float* vector(uint32_t g, uint64_t row) const { return vectors(g) + row * group(g).dim; }

  // ---- Attribute columns of a u64 group (docs/FORMAT.md, "Attribute
  // columns"). Open checked the directory's structure (count, records,
  // names ascending) and that each column has exactly the sections its type
  // needs, of the lengths the rows fix; it read no column data.

  // The group's columns (name, type) in name order; empty when it has none.
  // Checks the directory's CRC (once per open). InvalidArgument for a group
  // that is not a u64 group.
  Status AttrColumns(uint32_t g, std::vector<std::pair<std::string, AttrType>>* out) const;
  // The column `name` of group g, *present false when the group has none.
  // Before handing out pointers into the mapping it checks, once per open
  // per column, the directory's and the column's section CRCs and what a
  // read relies on: tag offsets start at 0, never decrease and end at the
  // codes' count; dictionary offsets likewise end at the dictionary bytes;
  // the codes of rows with a value are below the dictionary size. Damage is
  // Corruption naming the file and the offset. Verify checks the rest.
  Status Column(uint32_t g, std::string_view name, filter::ColumnRef* out, bool* present) const;

  // ---- Graphs.

  // The graph view of group g (opened by Open), or null when it has none.
  // Its walks read links and codes unchecked (they only choose rows); check
  // the blocks of the rows a search re-scores or returns.
  const index::HnswGraph* graph(uint32_t g) const;
  // The group's graph sections by index::HnswGraph's kind numbers (kHnsw*,
  // as HnswGraph::Open and BuildHnswFrom ask): empty when absent.
  std::function<std::string_view(uint32_t kind)> GraphSections(uint32_t g) const;
  // The CRCs of group g's graph sections (once per open each): what a merge
  // that starts its graph from this one checks first.
  Status CheckGraph(uint32_t g) const;

  // ---- Whole file.

  // Every check: every section CRC, every block CRC, every entry, zero
  // padding, keys strictly ascending and laid out back to back, ids and
  // tombstones strictly ascending, metadata offsets, groups and entries
  // naming each other, seq bounds, every graph's Verify, every attribute
  // column (names, valid and bool bytes, no NaN, null slots zero,
  // dictionaries strictly ascending, valid UTF-8 and all used). Reads the
  // whole file.
  Status Verify() const;

  // One section table entry as Open read it.
  struct SectionRef {
    SectionKind kind;
    uint32_t group;  // kFileLevel for a file-level section
    uint64_t offset;
    uint64_t length;
    uint32_t crc;  // checked lazily or by Verify, not by Open
    uint16_t column = 0;  // attribute kinds 169..173: the column's index, else 0
  };
  const std::vector<SectionRef>& sections() const { return sections_; }
  // Section (kind, group, column) in the mapping; empty when absent. group
  // is kFileLevel for a file-level kind; column is 0 but for kinds 169..173.
  std::string_view Section(SectionKind kind, uint32_t group, uint16_t column = 0) const;
  const char* base() const;

  // How many of group g's blocks have been checked (tests).
  uint64_t TEST_CheckedBlocks(uint32_t g) const;

 private:
  struct SectionCheck;
  struct AttrCol;
  struct Group;

  SegmentFile() = default;
  // The check kept for sections_[i] (its CRC computed once).
  Status CheckSection(size_t i) const;
  Status CheckSectionOf(SectionKind kind, uint32_t group) const;
  Status ReadEntryImpl(uint64_t i, bool check_crc, EntryView* out) const;
  // Entry i's key, bounds-checked only (for navigation).
  Status KeyAt(uint64_t i, std::string_view* key) const;
  Status Bad(uint64_t offset, const std::string& what) const;
  uint64_t OffsetOf(const void* p) const;
  Status VerifyGroup(uint32_t g, uint64_t* min_seq, uint64_t* max_seq, bool* any) const;
  // Open's structural check of every group's attribute directory and of the
  // columns' sections (presence, lengths); `entry_at` is each section's
  // table entry offset. Reads the directories only.
  static Status OpenAttributes(SegmentFile* f, const std::vector<uint64_t>& entry_at);
  // Column c of group g checked for reading (once per open): CRCs, offsets, codes.
  Status CheckAttrColumn(uint32_t g, uint32_t c) const;
  Status VerifyAttrColumn(uint32_t g, uint32_t c) const;

  std::unique_ptr<MappedFile> file_;
  uint64_t file_number_ = 0;
  uint64_t min_seq_ = 0;
  uint64_t max_seq_ = 0;
  uint64_t entry_count_ = 0;
  uint32_t group_count_ = 0;
  uint64_t table_offset_ = 0;
  const uint8_t* entries_ = nullptr;
  const char* keys_ = nullptr;
  uint64_t keys_size_ = 0;
  const char* values_ = nullptr;
  uint64_t values_size_ = 0;
  std::vector<SectionRef> sections_;
  std::unique_ptr<SectionCheck[]> checks_;  // one per sections_ entry
  std::unique_ptr<Group[]> groups_;         // group_count_
  size_t file_section_[4] = {};             // index in sections_ of kinds 128..131
};

}  // namespace pomai::segment
