// RowTable: every version of every row id of a u64 collection written since
// the last flush (the memtable part of the default collection, beside
// KeyTable): vectors with metadata and attributes, and tombstones.
//
// Vectors sit in one contiguous row-major matrix, so an exact search of the
// memtable is one SIMD pass over rows(). Rows are only ever appended: a put
// or delete of an id the memtable holds appends a new row (a tombstone row
// for a delete) and links the old row to it. So a search at snapshot s sees
// exactly the rows VisibleAt(row, s) -- one version per id, the newest with
// sequence number <= s -- while writers keep appending: a batch applied after
// the snapshot is invisible to it, in every shard, whole.
//
// Attributes (docs/FILTERS.md) are columns with one slot per row
// (memtable/attr_columns.h): a version written without a column -- by
// Put, PutRows, Delete, or a PutBatch that does not name it, or before the
// column existed -- is null there.
//
// At most 2^32 - 2 rows. Not thread-safe: the engine serialises writers
// against readers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filter/column_source.h"
#include "memtable/attr_columns.h"
#include "memtable/id_index.h"
#include "memtable/row_buffer.h"
#include "util/attributes.h"
#include "util/status.h"

namespace pomai::memtable {

class RowTable {
 public:
  // `cache` (may be null): where the vector matrix's mapping comes from and
  // returns to, so consecutive memtables of a shard reuse faulted-in pages.
  explicit RowTable(uint32_t dim, std::shared_ptr<MappingCache> cache = nullptr);

  uint32_t dim() const { return dim_; }

  // Sizes the id index for `rows` ids (a hint), so a memtable that will take
  // about as many rows as its predecessor never rehashes while writes wait.
  void Reserve(size_t rows) { index_.Reserve(rows); }

  // Stores `vec` (dim floats, any alignment: copied with memcpy) and `meta`
  // as the newest version of `id`, null in every attribute column. Sequence
  // numbers must not decrease.
  void Put(uint64_t id, uint64_t seq, const float* vec, std::string_view meta);
  // Puts a batch, all at `seq` and without metadata: row j of the batch is
  // id ids[sel[j]] (little-endian u64, any alignment) with vector
  // vectors + sel[j] * dim(), for j in [0, n); sel == nullptr selects 0..n-1.
  // The same as n Puts (attributes null), but faster for large batches:
  // index lookups are prefetched ahead and vectors are copied with
  // non-temporal stores (they bypass the cache: a memtable is larger than
  // it, and a cold destination otherwise costs a read per line written),
  // fenced before returning, so the rows are visible to a thread that
  // synchronises with this one after.
  void PutRows(uint64_t seq, const uint8_t* ids, const float* vectors, const uint32_t* sel, size_t n);
  // Puts a batch with attributes, all at `seq`: row j is id ids[j]
  // (little-endian u64, any alignment), vector vectors + j * dim(), metadata
  // meta_blob[meta_offsets[j], meta_offsets[j + 1]) (none when meta_offsets
  // is null), and row j of each of `columns` (other columns null). A later
  // row with the same id wins, as in PutRows. Requires
  // CheckAttrColumns(columns, n) OK and meta_offsets (when given) within
  // meta_blob. A column of `columns` that exists here with another type is
  // INVALID_ARGUMENT naming it and both types, and nothing is stored (the
  // engine checks its schema before logging, so this is a caller's bug).
  Status PutBatch(uint64_t seq, const uint8_t* ids, const float* vectors, size_t n, const uint64_t* meta_offsets,
                  std::string_view meta_blob, const std::vector<AttrColumn>& columns);
  // Records that `id` is deleted as of `seq` (a tombstone shadows older layers).
  void Delete(uint64_t id, uint64_t seq);

  enum class State { kAbsent, kLive, kDeleted };
  // What the newest version of `id` says; *row is set for kLive and kDeleted.
  State Find(uint64_t id, size_t* row) const;
  // What the newest version of `id` at snapshot `seq` says (kAbsent when
  // every version here is newer than the snapshot).
  State FindAt(uint64_t id, uint64_t seq, size_t* row) const;

  // Whether `row` is the live version of its id at snapshot `seq`: created
  // at or before it, not a tombstone, and not replaced at or before it.
  bool VisibleAt(size_t row, uint64_t seq) const {
    if (deleted_[row] || first_seq_[row] > seq) return false;
    const uint32_t next = next_[row];
    return next == IdIndex::kNone || first_seq_[next] > seq;
  }
  // Whether some version of `id` (live or tombstone) exists at snapshot
  // `seq`: then older layers have nothing to say about `id`.
  bool HoldsAt(uint64_t id, uint64_t seq) const {
    const uint32_t r = index_.Find(id);
    return r != IdIndex::kNone && first_seq_[origin_[r]] <= seq;
  }

  // Rows: every version, tombstones included; row r's vector is vectors() + r * dim().
  size_t rows() const { return ids_.size(); }
  const float* vectors() const { return static_cast<const float*>(vectors_.data()); }
  const float* vector(size_t row) const { return vectors() + row * dim_; }
  uint64_t id(size_t row) const { return ids_[row]; }
  // Every row's id: ids()[row] == id(row).
  const uint64_t* ids() const { return ids_.data(); }
  // Sequence number of the write that created this row.
  uint64_t first_seq(size_t row) const { return first_seq_[row]; }
  // A tombstone row.
  bool deleted(size_t row) const { return deleted_[row] != 0; }
  // Replaced by a newer version of its id.
  bool superseded(size_t row) const { return next_[row] != IdIndex::kNone; }
  std::string_view metadata(size_t row) const { return row < metadata_.size() ? std::string_view(metadata_[row]) : std::string_view(); }
  // The attribute column `name` over rows(), as the memtable's
  // filter::ColumnSource hands it out (dict_sorted false: entries in order of
  // first write). *present is false when no write named the column. Always
  // OK. The buffers stay valid until the next write (the caller holds the
  // table's lock shared).
  Status Column(std::string_view name, filter::ColumnRef* out, bool* present) const;
  // (name, type) of every attribute column, in order of first write.
  std::vector<std::pair<std::string, AttrType>> columns() const { return attrs_.columns(); }

  // Bytes the table holds (vectors, per-row arrays, id index, metadata,
  // attribute columns and dictionaries), for the memtable budget.
  size_t bytes() const;

  // Ids whose newest version is live.
  size_t live_count() const { return index_.size() - deleted_count_; }
  bool empty() const { return ids_.empty(); }

  uint64_t min_seq() const { return min_seq_; }
  uint64_t max_seq() const { return max_seq_; }

  // Newest versions in ascending id order, for writing a segment: live rows and deleted ids.
  struct Sorted {
    std::vector<uint64_t> ids;           // live ids, ascending
    std::vector<uint64_t> seqs;          // the seq of each live row
    std::vector<float> vectors;          // ids.size() * dim
    std::vector<uint64_t> meta_offsets;  // ids.size() + 1
    std::string meta_blob;
    // Every attribute column of the table (columns() order), row r being
    // that of ids[r] (null where the version has none).
    std::vector<AttrColumn> columns;
    std::vector<uint64_t> tombstones;    // deleted ids, ascending
    std::vector<uint64_t> tombstone_seqs;  // the seq of each delete
  };
  Sorted SortedContents() const;

 private:
  void NoteSeq(uint64_t seq);
  // Appends a row for `id` (zero vector when `vec` is null) and makes it the
  // id's newest version.
  uint32_t AppendVersion(uint64_t id, uint64_t seq, const float* vec, bool tombstone, bool stream = false);
  void SetMetadata(uint32_t row, std::string_view meta);
  // PutRows without the attribute columns' rows.
  void AppendRows(uint64_t seq, const uint8_t* ids, const float* vectors, const uint32_t* sel, size_t n);

  uint32_t dim_;
  MappedArray<uint64_t> ids_;
  RowBuffer vectors_;  // row r is the vector of ids_[r]
  // Metadata of row r when r < size(); rows after the last row that ever had
  // metadata have none (so batches without metadata cost nothing here).
  std::vector<std::string> metadata_;
  MappedArray<uint8_t> deleted_;
  MappedArray<uint64_t> first_seq_;
  MappedArray<uint32_t> next_;    // the row that replaced this one, or kNone
  MappedArray<uint32_t> origin_;  // the id's first row in this memtable
  AttrColumns attrs_;  // rows() rows
  IdIndex index_;  // id -> newest row
  size_t deleted_count_ = 0;  // ids whose newest version is a tombstone
  size_t metadata_bytes_ = 0;
  uint64_t min_seq_ = 0;
  uint64_t max_seq_ = 0;
};

}  // namespace pomai::memtable
