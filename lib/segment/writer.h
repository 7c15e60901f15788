// segment::SegmentWriter: writes one segment file of format 2
// (docs/ENGINE.md 3.3, segment/format.h): the keyspace entries of a seq
// interval and its vector groups, with section, entry, descriptor and block
// CRCs, and per group an optional HNSW graph.
//
// Usage: declare the vector groups, add the entries in strictly ascending
// internal-key order, then Finish once:
//
//   SegmentWriter w;
//   GroupHandle g = w.AddRecordGroup(dim, metric);
//   w.AddBytes(key1, seq1, value);
//   w.AddVector(key2, seq2, g, vector, &metadata);
//   w.AddU64Group(rows);  // a u64 collection's columns
//   Status s = w.Finish(env, dir + "/seg-000012.pseg", 12);
//
// Nothing is copied: every view and pointer handed to an Add* or SetGraph
// call (keys, values, metadata, vectors, u64 columns) must stay valid and
// unchanged until Finish returns. The Add* calls never fail; Finish checks
// everything first and reports the first problem as InvalidArgument, before
// any file is created. One thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "index/hnsw.h"
#include "segment/format.h"
#include "simd/distance.h"
#include "util/attributes.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::segment {

// The writer's name for a vector group. The group's index in the file is its
// position among the descriptors sorted by (kind, cid, dim, metric), which
// Finish decides (SegmentFile::FindGroup looks it up).
using GroupHandle = uint32_t;

// The columns of one u64 collection's rows in one segment, ids ascending.
struct U64Rows {
  uint64_t cid = 0;
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  size_t rows = 0;
  const uint64_t* ids = nullptr;      // rows ids, strictly ascending
  const uint64_t* seqs = nullptr;     // rows seqs
  const float* vectors = nullptr;     // rows x dim floats, row-major
  // (rows + 1) offsets into metadata_blob: off[0] = 0, non-decreasing; row
  // r's metadata is blob[off[r], off[r + 1]). Null: no row has metadata.
  const uint64_t* metadata_offsets = nullptr;
  const uint8_t* metadata_blob = nullptr;
  size_t tombstones = 0;
  const uint64_t* tombstone_ids = nullptr;   // strictly ascending
  const uint64_t* tombstone_seqs = nullptr;
  // The rows' attribute columns (docs/FILTERS.md), each of `rows` rows in
  // row order, names distinct, in any order (CheckAttrColumns). Null or
  // empty: the group has none. Written as the group's attribute sections
  // (docs/FORMAT.md, "Attribute columns"), a column whose every row is null
  // included.
  const std::vector<AttrColumn>* columns = nullptr;
};

class SegmentWriter {
 public:
  // `block_bytes` sets each group's rows_per_block (RowsPerBlock); the
  // default is the format's 64 KiB (tests and measurements may pick others).
  explicit SegmentWriter(size_t block_bytes = kBlockBytes) : block_bytes_(block_bytes) {}
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  // A group of vector records (keys 0x00 + user key) of one dim and metric.
  GroupHandle AddRecordGroup(uint32_t dim, simd::Metric metric);
  // A byte-keyed collection's rows (keys 0x02 + BE64(cid) + user key).
  GroupHandle AddCollectionGroup(uint64_t cid, uint32_t dim, simd::Metric metric);
  // A u64 collection's rows and tombstones (no entries).
  GroupHandle AddU64Group(const U64Rows& rows);
  // The graph of group `g` (a u64 or collection group) as index::BuildHnsw
  // returns it (kinds kHnsw*: stored as kGraph*): node i is the group's row
  // i, i.e. for a collection group its i-th vector entry in key order.
  void SetGraph(GroupHandle g, std::vector<index::GraphSection> sections);

  // Entries, in strictly ascending order of internal key (bytewise), one
  // version per key. A plain value (0x00 + key) or a configuration (0x01 + name).
  void AddBytes(std::string_view key, uint64_t seq, std::string_view value);
  // A vector record (0x00 + key) or a collection row (0x02 + BE64(cid) + key)
  // of group `g`: dim floats at `vector`; `metadata` null for none; `attrs`
  // a collection row's attribute record (wal::EncodeAttrRecord), empty for
  // none. Its row in the group is the count of earlier vector entries of `g`.
  void AddVector(std::string_view key, uint64_t seq, GroupHandle g, const float* vector,
                 const std::string_view* metadata, std::string_view attrs = {});
  void AddTombstone(std::string_view key, uint64_t seq);

  // Writes the segment to `path` durably: streams it to path + ".tmp"
  // (CRCs computed as it goes), fdatasync, renames it to `path`, fsyncs the
  // directory. `file_number` is recorded in the header (the number in the
  // name seg-NNNNNN.pseg). Invalid input is InvalidArgument and nothing is
  // created; on an I/O error the .tmp is removed and no file is left under
  // `path`. Call once.
  Status Finish(Env* env, const std::string& path, uint64_t file_number);

  size_t entry_count() const { return entries_.size(); }
  size_t group_count() const { return groups_.size(); }

 private:
  // One attribute column as Finish writes it.
  struct AttrPlan {
    const AttrColumn* column = nullptr;
    bool has_valid = false;                // some row is null
    std::vector<std::string_view> dict;    // kString, kTags: the values used, strictly ascending
    std::vector<uint32_t> codes;           // kString: rows codes; kTags: one per tag
  };
  struct Group {
    GroupKind kind;
    uint64_t cid = 0;
    uint32_t dim = 0;
    simd::Metric metric = simd::Metric::kL2;
    U64Rows u64;                              // kind kU64
    std::vector<uint32_t> row_entries;        // kinds kBytes, kRecords: filled by Finish
    std::vector<const float*> row_vectors;    // likewise
    std::vector<index::GraphSection> graph;
    bool graph_set = false;
    std::vector<AttrPlan> attrs;              // kind kU64: by name, set by Finish
    // Set by Finish.
    uint32_t file_index = 0;
    uint32_t rows_per_block = 1;
    uint64_t min_seq = 0;
    uint64_t max_seq = 0;
  };
  struct Entry {
    std::string_view key;
    uint64_t seq;
    EntryKind kind;
    std::string_view value;  // bytes value or metadata
    bool has_metadata = false;
    std::string_view attrs = {};  // a collection row's attribute record, or empty
    // The entry's value length in the file: with attributes a u32 length,
    // the record, then the metadata (docs/FORMAT.md, "Entries").
    uint64_t stored_size() const { return attrs.empty() ? value.size() : 4 + attrs.size() + value.size(); }
    GroupHandle group = kNoGroup;
    const float* vector = nullptr;
    uint32_t row = kNoGroupRow;  // set by Finish
  };
  class Stream;

  Status Validate();
  // Checks g's attribute columns and builds their plans (names sorted, dictionaries).
  static Status PlanAttributes(const std::string& name, Group* g);
  Status WriteBody(WritableFile* file, uint64_t file_number) const;
  Status WriteGroup(Stream* out, const Group& g) const;
  Status WriteAttributes(Stream* out, const Group& g) const;

  size_t block_bytes_;
  std::vector<Group> groups_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> file_order_;  // file index -> handle, set by Validate
  std::string misuse_;  // a call Finish reports (SetGraph of an unknown group)
  uint64_t min_seq_ = 0;
  uint64_t max_seq_ = 0;
  bool finished_ = false;
};

}  // namespace pomai::segment
