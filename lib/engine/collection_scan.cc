// Reads of the default collection by filter (docs/FILTERS.md): the merge of
// the layers' live rows in id order, and on it Count, DeleteWhere and Scan.
#include <algorithm>
#include <cstring>
#include <tuple>

#include "engine/rows_view.h"
#include "util/limits.h"
#include "wal/record_codec.h"

namespace pomai::engine {

// ---------------------------------------------------------------------------
// Filters

// A memtable's table is read between Pin and Unpin (its shared lock), which
// the analysis cannot follow.
Status RowLayer::EvaluateFilter(const filter::Filter& f, bool defer) NO_THREAD_SAFETY_ANALYSIS {
  struct Source final : filter::ColumnSource {
    const RowLayer& l;
    const uint64_t* id_array;
    explicit Source(const RowLayer& layer, const uint64_t* ids) : l(layer), id_array(ids) {}
    uint64_t rows() const override { return l.rows(); }
    const uint64_t* ids() const override { return id_array; }
    Status Column(std::string_view name, filter::ColumnRef* out, bool* present) const override {
      return l.Column(name, out, present);
    }
  };
  if (set != nullptr) {  // a memtable's table may move: evaluated under its lock
    Pin();
    Status s = ApplyFilter(f, Source(*this, set->table.ids()), false);
    Unpin();
    return s;
  }
  if (f.reads_ids()) POMAI_RETURN_IF_ERROR(CheckRows(*seg, group, 0, rows_));
  // A segment's mapping outlives the layer: its filter may be deferred.
  return ApplyFilter(f, Source(*this, ids_), defer && graph_ != nullptr);
}

Result<std::unique_ptr<filter::Filter>> CompileFilter(DBImpl& d, const RowFilterSpec* spec) {
  if (spec == nullptr || spec->empty()) return std::unique_ptr<filter::Filter>();
  if (spec->ids == nullptr && spec->id_count > 0)
    return Status::InvalidArgument("filter ids is NULL with id_count " + std::to_string(spec->id_count));
  POMAI_ASSIGN_OR_RETURN(filter::Filter f,
                         filter::Filter::Compile(spec->expression, d.Schema(), spec->ids, spec->id_count));
  return std::make_unique<filter::Filter>(std::move(f));
}

// ---------------------------------------------------------------------------
// The merge of live rows

namespace {

// The live rows of a view in id order: per layer its versions at the
// snapshot (live rows and tombstones) in id order, merged; per id the
// newest layer's version decides.
class LiveRowMerge {
 public:
  explicit LiveRowMerge(const RowsView& view) : view_(view) {}

  Status Init() {
    const auto& layers = view_.layers();
    streams_.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      const RowLayer& l = *layers[i];
      Stream& s = streams_[i];
      if (l.set != nullptr) {
        ReaderLock lock(&l.set->mu);
        const memtable::RowTable& t = l.set->table;
        for (size_t r = 0; r < l.rows(); ++r) {
          if (t.VisibleAt(r, view_.snap())) {
            s.mem.push_back({t.id(r), r, false});
          } else if (t.deleted(r) && t.first_seq(r) <= view_.snap()) {
            size_t at = 0;  // a tombstone row counts when it is the id's version at the snapshot
            if (t.FindAt(t.id(r), view_.snap(), &at) == memtable::RowTable::State::kDeleted && at == r)
              s.mem.push_back({t.id(r), r, true});
          }
        }
        std::sort(s.mem.begin(), s.mem.end());
        s.size = s.mem.size();
      } else {
        POMAI_RETURN_IF_ERROR(CheckRows(*l.seg, l.group, 0, l.rows()));
        const uint64_t* seqs = nullptr;
        POMAI_RETURN_IF_ERROR(l.seg->Tombstones(l.group, &s.tombs, &seqs));
        s.ids = l.seg->ids(l.group);
        s.rows = l.rows();
        s.ntombs = l.seg->group(l.group).tombstones;
      }
    }
    return Status::OK();
  }

  // The next live row passing its layer's filter, or *done.
  bool Next(size_t* layer, uint64_t* row, uint64_t* id) {
    const auto& layers = view_.layers();
    for (;;) {
      uint64_t min_id = UINT64_MAX;
      bool any = false;
      for (const Stream& s : streams_) {
        uint64_t x;
        if (s.Peek(&x) && (!any || x < min_id)) {
          min_id = x;
          any = true;
        }
      }
      if (!any) return false;
      bool decided = false, emit = false;
      for (size_t i = 0; i < streams_.size(); ++i) {
        Stream& s = streams_[i];
        uint64_t x, r;
        bool tomb;
        if (!s.Peek(&x) || x != min_id) continue;
        s.Take(&r, &tomb);
        if (decided) continue;  // an older version
        decided = true;
        const Bitmap* pass = layers[i]->pass();
        if (!tomb && (pass == nullptr || pass->Get(r))) {
          emit = true;
          *layer = i;
          *row = r;
          *id = min_id;
        }
      }
      if (emit) return true;
    }
  }

 private:
  struct Stream {
    std::vector<std::tuple<uint64_t, uint64_t, bool>> mem;  // a memtable: (id, row, tombstone), sorted
    const uint64_t* ids = nullptr;                          // a segment: its rows' ids and its tombstones
    const uint64_t* tombs = nullptr;
    uint64_t rows = 0, ntombs = 0;
    size_t size = 0;
    uint64_t i = 0, t = 0;  // next memtable entry or segment row; next tombstone

    bool Peek(uint64_t* id) const {
      if (ids == nullptr && tombs == nullptr) {
        if (i >= size) return false;
        *id = std::get<0>(mem[i]);
        return true;
      }
      const bool has_row = i < rows, has_tomb = t < ntombs;
      if (!has_row && !has_tomb) return false;
      *id = !has_tomb || (has_row && ids[i] <= tombs[t]) ? ids[i] : tombs[t];
      return true;
    }
    // Takes the version Peek showed (a row before a tombstone of the same id).
    void Take(uint64_t* row, bool* tomb) {
      if (ids == nullptr && tombs == nullptr) {
        *row = std::get<1>(mem[i]);
        *tomb = std::get<2>(mem[i]);
        ++i;
        return;
      }
      const bool has_row = i < rows, has_tomb = t < ntombs;
      if (has_row && (!has_tomb || ids[i] <= tombs[t])) {
        const uint64_t id = ids[i];
        *row = i++;
        *tomb = false;
        if (t < ntombs && tombs[t] == id) ++t;  // both in one group: the row is the version written last
        return;
      }
      *row = 0;
      *tomb = true;
      ++t;
    }
  };

  const RowsView& view_;
  std::vector<Stream> streams_;
};

}  // namespace

Status ForEachLiveRow(const RowsView& view, const std::function<bool(size_t, uint64_t, uint64_t)>& live) {
  LiveRowMerge merge(view);
  POMAI_RETURN_IF_ERROR(merge.Init());
  size_t layer;
  uint64_t row, id;
  while (merge.Next(&layer, &row, &id)) {
    if (!live(layer, row, id)) break;
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Count, DeleteWhere

Result<uint64_t> DB::Count(const RowFilterSpec* filter) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<filter::Filter> f, CompileFilter(d, filter));
  RowsView view(d);
  if (f) POMAI_RETURN_IF_ERROR(view.EvaluateFilter(*f));
  // One segment group holding every row and version (the other layers are
  // empty memtables or groups without rows or tombstones): each of its rows
  // is an id's only version, so the count is the passing rows'.
  const RowLayer* only = nullptr;
  bool alone = true;
  for (const auto& l : view.layers()) {
    if (l->rows() == 0 && (l->seg == nullptr || l->seg->group(l->group).tombstones == 0)) continue;
    alone = alone && only == nullptr && l->seg != nullptr;
    only = l.get();
  }
  if (only != nullptr && alone) return only->passing();
  uint64_t n = 0;
  POMAI_RETURN_IF_ERROR(ForEachLiveRow(view, [&n](size_t, uint64_t, uint64_t) { return ++n, true; }));
  return n;
}

Result<uint64_t> DB::DeleteWhere(const RowFilterSpec& filter) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  if (filter.empty())
    return Status::InvalidArgument("delete_where needs a filter: an expression or ids (an empty one would delete "
                                   "every row)");
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<filter::Filter> f, CompileFilter(d, &filter));
  std::vector<WriteOp> ops;
  {
    RowsView view(d);
    POMAI_RETURN_IF_ERROR(view.EvaluateFilter(*f));
    POMAI_RETURN_IF_ERROR(ForEachLiveRow(view, [&ops](size_t, uint64_t, uint64_t id) {
      WriteOp op;
      op.kind = WriteOp::Kind::kDelete;
      op.id = id;
      ops.push_back(op);
      return true;
    }));
  }
  if (!ops.empty()) POMAI_RETURN_IF_ERROR(Write(ops.data(), ops.size()));
  return static_cast<uint64_t>(ops.size());
}

// ---------------------------------------------------------------------------
// Scan

namespace {

class RowScanImpl final : public RowScan {
 public:
  RowScanImpl(const DBImpl& d, const ScanSpec& spec, AttrSchema columns)
      : view_(d), dim_(d.rows_opt.dim), spec_(spec), columns_(std::move(columns)), merge_(view_) {
    if (spec_.batch_rows == 0) spec_.batch_rows = 65536;
  }
  Status Init(const filter::Filter* f) {
    spec_.filter = RowFilterSpec();  // the caller's expression and ids are not kept past the call
    if (f != nullptr) POMAI_RETURN_IF_ERROR(view_.EvaluateFilter(*f));
    return merge_.Init();
  }
  const AttrSchema& columns() const override { return columns_; }

  Status Next(ScanBatch* out, bool* done) override {
    *out = ScanBatch();
    *done = false;
    picks_.clear();
    size_t layer;
    uint64_t row, id;
    while (picks_.size() < spec_.batch_rows && merge_.Next(&layer, &row, &id)) picks_.push_back({layer, row, id});
    if (picks_.empty()) {
      *done = true;
      return Status::OK();
    }
    // The memtables are read under their shared locks, held for the batch
    // (their buffers move when writers grow them).
    const PinnedLayers pinned(view_.layers());
    return Fill(out);
  }

 private:
  struct Pick {
    size_t layer;
    uint64_t row;
    uint64_t id;
  };

  // The batch of picks_, with every layer pinned.
  Status Fill(ScanBatch* out) NO_THREAD_SAFETY_ANALYSIS {
    const auto& layers = view_.layers();
    const size_t n = picks_.size(), ncols = columns_.size();
    std::vector<filter::ColumnRef> refs(layers.size() * ncols);
    std::vector<uint8_t> present(layers.size() * ncols, 0);
    for (size_t i = 0; i < layers.size(); ++i) {
      for (size_t c = 0; c < ncols; ++c) {
        bool has = false;
        POMAI_RETURN_IF_ERROR(layers[i]->Column(columns_[c].first, &refs[i * ncols + c], &has));
        present[i * ncols + c] = has;
      }
    }
    out->ids.resize(n);
    if (spec_.vectors) out->vectors.reserve(n * dim_);  // filled by insert: no zeroing first
    if (spec_.metadata) out->meta_offsets.assign(1, 0);
    for (const auto& [name, type] : columns_) out->columns.push_back(AttrColumn::Make(name, type));
    size_t run_end = 0;  // picks [j, run_end) are consecutive rows of one layer: their vectors copied at once
    for (size_t j = 0; j < n; ++j) {
      const Pick& p = picks_[j];
      const RowLayer& l = *layers[p.layer];
      out->ids[j] = p.id;
      if (spec_.vectors && j >= run_end) {
        run_end = j + 1;
        while (run_end < n && picks_[run_end].layer == p.layer && picks_[run_end].row == p.row + (run_end - j))
          ++run_end;
        const float* vec;
        if (l.set != nullptr) {
          vec = l.set->table.vector(p.row);
        } else {
          POMAI_RETURN_IF_ERROR(CheckRows(*l.seg, l.group, p.row, p.row + (run_end - j)));
          vec = l.seg->vector(l.group, p.row);
        }
        out->vectors.insert(out->vectors.end(), vec, vec + (run_end - j) * dim_);
      }
      if (spec_.metadata) {
        std::string_view meta;
        if (l.set != nullptr) {
          meta = l.set->table.metadata(p.row);
        } else {
          POMAI_RETURN_IF_ERROR(l.seg->CheckRow(l.group, p.row));
          POMAI_ASSIGN_OR_RETURN(meta, l.seg->Metadata(l.group, p.row));
        }
        out->meta_blob.append(meta);
        out->meta_offsets.push_back(out->meta_blob.size());
      }
      for (size_t c = 0; c < ncols; ++c)
        filter::AppendRow(refs[p.layer * ncols + c], present[p.layer * ncols + c] != 0, p.row, &out->columns[c]);
    }
    return Status::OK();
  }

  RowsView view_;
  uint32_t dim_;
  ScanSpec spec_;
  AttrSchema columns_;
  LiveRowMerge merge_;
  std::vector<Pick> picks_;
};

}  // namespace

Result<std::unique_ptr<RowScan>> DB::Scan(const ScanSpec& spec) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  const AttrSchema schema = d.Schema();
  AttrSchema columns;
  if (spec.all_columns) {
    columns = schema;
  } else {
    for (const std::string& name : spec.columns) {
      auto it = std::find_if(schema.begin(), schema.end(), [&](const auto& c) { return c.first == name; });
      if (it == schema.end()) {
        std::string have;
        for (const auto& c : schema) have += (have.empty() ? "" : ", ") + c.first;
        return Status::InvalidArgument("scan: no column '" + Printable(name) + "' (columns: " +
                                       (have.empty() ? "none" : have) + ")");
      }
      if (std::find_if(columns.begin(), columns.end(), [&](const auto& c) { return c.first == name; }) != columns.end())
        return Status::InvalidArgument("scan: column '" + Printable(name) + "' is asked for twice");
      columns.push_back(*it);
    }
  }
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<filter::Filter> f, CompileFilter(d, &spec.filter));
  auto scan = std::make_unique<RowScanImpl>(d, spec, std::move(columns));
  POMAI_RETURN_IF_ERROR(scan->Init(f.get()));
  return std::unique_ptr<RowScan>(std::move(scan));
}

}  // namespace pomai::engine
