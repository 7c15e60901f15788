// Internal to lib/engine: the default collection's layers at one snapshot
// (docs/ENGINE.md 2.2, docs/FILTERS.md "Execution"), shared by its reads
// (collection_rows.cc: get, search, statistics; collection_scan.cc: count,
// delete and scan by filter, the merge of live rows in id order).
#pragma once

#include <memory>
#include <vector>

#include "engine/db_impl.h"
#include "engine/search.h"
#include "filter/column_source.h"
#include "filter/filter.h"
#include "util/bitmap.h"

namespace pomai::engine {

// Checks the blocks of segment group g that hold rows [begin, end).
inline Status CheckRows(const segment::SegmentFile& seg, uint32_t g, uint64_t begin, uint64_t end) {
  const uint64_t per = seg.group(g).rows_per_block;
  for (uint64_t b = begin / per; b * per < end; ++b) POMAI_RETURN_IF_ERROR(seg.CheckBlock(g, b));
  return Status::OK();
}

// One layer of the default collection as a read sees it at snapshot `snap`:
// a memtable's row set (`set`), or a segment's u64 group (`seg`, `group`).
// Its rows, for the search executor, are the row set's rows at the
// snapshot (every version: Row says which is visible) or the group's rows.
class RowLayer final : public SearchLayer<uint64_t> {
 public:
  // A memtable holding no version at or before the snapshot hides nothing.
  RowLayer(const RowSet* rows, uint64_t snap) : set(rows), snap_(snap) {
    ReaderLock lock(&set->mu);
    rows_ = set->table.rows();
    may_hide_ = rows_ > 0 && set->table.first_seq(0) <= snap;
    all_visible_ = false;
  }
  RowLayer(const segment::SegmentFile* file, uint32_t g, uint64_t snap)
      : seg(file), group(g), snap_(snap), ids_(file->ids(g)) {
    rows_ = seg->group(group).rows;
    graph_ = seg->graph(group);
  }
  const RowSet* const set = nullptr;
  const segment::SegmentFile* const seg = nullptr;
  const uint32_t group = 0;
  uint64_t snap() const { return snap_; }

  // A task reads a row set's table under its shared lock, taken by Pin and
  // released by Unpin (the analysis cannot follow it across the calls).
  void Pin() const override NO_THREAD_SAFETY_ANALYSIS {
    if (set != nullptr) set->mu.LockShared();
  }
  void Unpin() const override NO_THREAD_SAFETY_ANALYSIS {
    if (set != nullptr) set->mu.UnlockShared();
  }
  Status Vectors(uint64_t begin, size_t n, const float** matrix, const float**) const override NO_THREAD_SAFETY_ANALYSIS {
    if (set != nullptr) {
      *matrix = set->table.vector(begin);  // the table may have moved since the last Pin: read under this one
      return Status::OK();
    }
    POMAI_RETURN_IF_ERROR(CheckRows(*seg, group, begin, begin + n));
    *matrix = seg->vector(group, begin);
    return Status::OK();
  }
  Status Row(uint64_t r, uint64_t* id, bool* visible) const override NO_THREAD_SAFETY_ANALYSIS {
    if (set != nullptr) {
      *id = set->table.id(r);
      *visible = set->table.VisibleAt(r, snap_);
    } else {
      *id = ids_[r];
      *visible = true;
    }
    return Status::OK();
  }
  Status CheckRow(uint64_t r) const override { return seg != nullptr ? seg->CheckRow(group, r) : Status::OK(); }
  Status Holds(const uint64_t& id, bool* holds) const override {
    if (set != nullptr) {
      ReaderLock lock(&set->mu);
      *holds = set->table.HoldsAt(id, snap_);
      return Status::OK();
    }
    uint64_t row = 0, seq = 0;
    POMAI_RETURN_IF_ERROR(seg->FindRow(group, id, &row, holds));
    if (!*holds) POMAI_RETURN_IF_ERROR(seg->FindTombstone(group, id, &seq, holds));
    return Status::OK();
  }

  // The layer's attribute column `name` (a memtable's: call between Pin and Unpin).
  Status Column(std::string_view name, filter::ColumnRef* out, bool* present) const NO_THREAD_SAFETY_ANALYSIS {
    if (set != nullptr) return set->table.Column(name, out, present);
    return seg->Column(group, name, out, present);
  }

  // Evaluates `f` over the layer's rows into its pass bitmap (Search and the
  // scans then read only rows that pass); when `defer` and the layer is a
  // segment group with a graph, binds it instead (DeferFilter). A
  // segment's ids are read for `id` predicates only after their blocks are
  // checked.
  Status EvaluateFilter(const filter::Filter& f, bool defer = false);

 private:
  uint64_t snap_;
  const uint64_t* ids_ = nullptr;  // a segment group's ids
};

// Every layer of `layers` pinned (RowLayer::Pin) for the object's life: a
// reader of several layers' rows at once (a scan's batch, UpdateAttributes).
class PinnedLayers {
 public:
  explicit PinnedLayers(const std::vector<std::unique_ptr<RowLayer>>& layers) : layers_(layers) {
    for (const auto& l : layers_) l->Pin();
  }
  ~PinnedLayers() {
    for (const auto& l : layers_) l->Unpin();
  }
  PinnedLayers(const PinnedLayers&) = delete;
  PinnedLayers& operator=(const PinnedLayers&) = delete;

 private:
  const std::vector<std::unique_ptr<RowLayer>>& layers_;
};

// The default collection's layers at one snapshot, newest first. The layers
// are loaded first and the seq second (ENGINE.md 2.3, rule 4), so every
// segment holds only versions at or below the snapshot.
class RowsView {
 public:
  explicit RowsView(const DBImpl& d) : pin_(d.Current()), snap_(d.last_seq.load(std::memory_order_acquire)) {
    const uint32_t dim = d.rows_opt.dim;
    for (const MemTable* m : {pin_->mem.get(), pin_->imm.get()}) {
      const RowSet* rs = m != nullptr ? m->rows() : nullptr;
      if (rs != nullptr && rs->cid == d.rows_cid) layers_.push_back(std::make_unique<RowLayer>(rs, snap_));
    }
    for (const auto& seg : pin_->segs) {
      uint32_t g = 0;
      if (seg->FindGroup(segment::GroupKind::kU64, d.rows_cid, dim, d.rows_opt.metric, &g))
        layers_.push_back(std::make_unique<RowLayer>(seg.get(), g, snap_));
    }
    std::vector<const SearchLayer<uint64_t>*> search;
    for (const auto& l : layers_) search.push_back(l.get());
    searcher_ = std::make_unique<Searcher<uint64_t>>(std::move(search));
  }

  const std::vector<std::unique_ptr<RowLayer>>& layers() const { return layers_; }
  const Searcher<uint64_t>& searcher() const { return *searcher_; }
  uint64_t snap() const { return snap_; }
  const Layers& pinned() const { return *pin_; }
  std::shared_ptr<const Layers> pin() const { return pin_; }

  // Evaluates `f` on every layer (RowLayer::EvaluateFilter). For a search
  // of `queries` queries, a graph layer walked (at least
  // `adaptive_threshold` rows) that has kDeferRowsPerQuery rows per query
  // defers it.
  Status EvaluateFilter(const filter::Filter& f, size_t queries = 0, uint64_t adaptive_threshold = 0) {
    for (const auto& l : layers_) {
      const bool defer = queries > 0 && l->graph() != nullptr && l->rows() >= adaptive_threshold &&
                         l->rows() >= kDeferRowsPerQuery * queries;
      POMAI_RETURN_IF_ERROR(l->EvaluateFilter(f, defer));
    }
    return Status::OK();
  }

 private:
  std::shared_ptr<const Layers> pin_;
  uint64_t snap_;
  std::vector<std::unique_ptr<RowLayer>> layers_;
  std::unique_ptr<Searcher<uint64_t>> searcher_;
};

// Calls live(layer, row, id) for every live row of `view` (the version of
// its id visible at the snapshot, not hidden by a newer layer), in ascending
// id order, by a merge of the layers' ids: a memtable's versions at the
// snapshot sorted once, a segment group's ids and tombstones as stored. Rows
// that do not pass a layer's filter bitmap are skipped (a newer version that
// does not pass still hides older ones). live returns false to stop.
Status ForEachLiveRow(const RowsView& view, const std::function<bool(size_t layer, uint64_t row, uint64_t id)>& live);

// The collection's filter for `spec` (compiled against its columns), or null
// when spec is null or empty.
Result<std::unique_ptr<filter::Filter>> CompileFilter(DBImpl& d, const RowFilterSpec* spec);

}  // namespace pomai::engine
