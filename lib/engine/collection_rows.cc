// The default collection (docs/ENGINE.md 2.2): a pomaidb database's u64-keyed
// rows in the keyspace engine. Writes are blind batches, one WAL record each
// (a write batch of row ops, or a row array written from the caller's
// arrays), staged into the active memtable's row set at the record's seq and
// published in log order. Reads see, per id, the newest version at their
// snapshot across the layers: the memtables' row sets, then each segment's
// u64 group of the collection (newest first); a row is hidden when a newer
// layer holds any version of its id (invariant 5).
#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>

#include "engine/db.h"
#include "engine/db_impl.h"
#include "engine/search.h"
#include "index/params.h"
#include "simd/distance.h"
#include "util/coding.h"
#include "util/limits.h"
#include "wal/log_format.h"
#include "wal/record_codec.h"

namespace pomai::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Checks the blocks of segment group g that hold rows [begin, end).
Status CheckRows(const segment::SegmentFile& seg, uint32_t g, uint64_t begin, uint64_t end) {
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

 private:
  uint64_t snap_;
  const uint64_t* ids_ = nullptr;  // a segment group's ids
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

 private:
  std::shared_ptr<const Layers> pin_;
  uint64_t snap_;
  std::vector<std::unique_ptr<RowLayer>> layers_;
  std::unique_ptr<Searcher<uint64_t>> searcher_;
};

Status NoSuchId(uint64_t id) { return Status::NotFound("id " + std::to_string(id) + " not found"); }

}  // namespace

// ---------------------------------------------------------------------------
// Opening the collection

Status DBImpl::CheckRowsOpen() const {
  if (closed) return Status::Closed("database is closed");
  if (!rows_open.load(std::memory_order_acquire))
    return Status::InvalidArgument(
        "the database has no default collection open: open the directory with pomai_open to use pomai_put, "
        "pomai_search, ...");
  return Status::OK();
}

Status DB::OpenDefaultCollection(const DefaultCollectionOptions& o) {
  DBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  if (d.rows_open) return Status::InvalidArgument("the default collection is already open");
  CollectionConfig want;
  want.key_type = KeyType::kU64;
  want.metric = o.metric;
  want.graph_vectors = o.hnsw_vectors;
  want.dim = o.dim;
  want.m = o.hnsw_m;
  want.ef_construction = o.hnsw_ef_construction;
  want.shards = o.shards;
  POMAI_RETURN_IF_ERROR(CheckDim(o.dim, "database"));
  POMAI_RETURN_IF_ERROR(CheckShards(o.shards, "shards"));
  if (static_cast<uint8_t>(o.metric) > 2)
    return Status::InvalidArgument("metric " + std::to_string(static_cast<int>(o.metric)) +
                                   " is not 0 (L2), 1 (IP) or 2 (COSINE)");
  if (o.build_graphs) {
    POMAI_RETURN_IF_ERROR(index::CheckHnswParams(o.hnsw_m, o.hnsw_ef_construction, "hnsw_m", "hnsw_ef_construction"));
  } else {
    // The stored value must pass its check whatever this open builds.
    want.m = std::clamp<uint32_t>(want.m, 2, 100);
    want.ef_construction = std::clamp<uint32_t>(want.ef_construction, want.m, 4096);
  }
  POMAI_RETURN_IF_ERROR(want.Validate());

  const std::string key = ConfigKey("");
  for (int attempt = 0;; ++attempt) {
    std::shared_ptr<const Layers> cur = d.Current();
    VersionView v;
    bool found = false;
    POMAI_RETURN_IF_ERROR(LookupLayers(*cur, key, d.last_seq.load(), &v, &found));
    if (found && v.kind == ValueKind::kBytes) {
      CollectionConfig have;
      POMAI_RETURN_IF_ERROR(CollectionConfig::Decode(v.bytes, "the configuration of the default collection", &have));
      if (have.key_type != KeyType::kU64)
        return Status::InvalidArgument("the default collection of " + d.opt.path + " is not a u64-keyed collection");
      if (have.dim != o.dim)
        return Status::InvalidArgument("dim " + std::to_string(o.dim) + " does not match the database's dim " +
                                       std::to_string(have.dim));
      if (have.metric != o.metric)
        return Status::InvalidArgument("metric " + simd::MetricName(o.metric) +
                                       " does not match the database's metric " + simd::MetricName(have.metric));
      if (have.shards != o.shards)
        return Status::InvalidArgument("shards " + std::to_string(o.shards) + " does not match the database's shards " +
                                       std::to_string(have.shards));
      MutexLock l(&d.commit_mu);  // no flush swaps the memtables meanwhile
      std::shared_ptr<const Layers> now = d.Current();
      for (const MemTable* m : {now->mem.get(), now->imm.get()}) {
        const RowSet* rs = m != nullptr ? m->rows() : nullptr;
        if (rs != nullptr && (rs->cid != v.seq || rs->dim != o.dim))
          return Status::Corruption(d.opt.path + ": the log holds rows of collection " + std::to_string(rs->cid) +
                                    " and dim " + std::to_string(rs->dim) +
                                    ", not of the default collection (" + std::to_string(v.seq) + ")");
      }
      d.rows_opt = o;
      d.rows_cid = v.seq;
      now->mem->AddRows(v.seq, o.dim, d.row_cache);
      d.rows_open.store(true, std::memory_order_release);
      return Status::OK();
    }
    if (attempt > 0) return Status::Internal("the default collection's configuration was not found after its commit");
    // Create it: one blind commit of its configuration (its seq is its cid).
    auto value = std::make_shared<Value>();
    value->kind = ValueKind::kBytes;
    value->bytes = want.Encode();
    std::vector<engine::Write> writes{engine::Write{key, std::move(value)}};
    POMAI_RETURN_IF_ERROR(d.CommitWrites(d.last_seq.load(), writes, {}));
  }
}

uint32_t DB::dim() const { return impl_->rows_open ? impl_->rows_opt.dim : 0; }
simd::Metric DB::metric() const { return impl_->rows_open ? impl_->rows_opt.metric : simd::Metric::kL2; }
uint32_t DB::shards() const { return impl_->rows_open ? impl_->rows_opt.shards : 0; }

// ---------------------------------------------------------------------------
// Writes

Status DBImpl::StageRowOps(RowSet& rows, uint64_t seq, const std::vector<wal::RecordOp>& ops,
                             const std::string& origin) {
  const uint32_t dim = rows.dim;
  for (const wal::RecordOp& op : ops) {
    const bool put = op.kind == wal::OpKind::kPutRow;
    if ((!put && op.kind != wal::OpKind::kDeleteRow) || op.cid != rows.cid || (put && op.dim != dim))
      return Status::Corruption(origin + ": " + wal::OpKindName(op.kind) + " op of collection " + std::to_string(op.cid) +
                                (put ? " and dim " + std::to_string(op.dim) : std::string()) +
                                " where the default collection is " + std::to_string(rows.cid) + " of dim " +
                                std::to_string(dim));
  }
  uint64_t bytes = 0;
  {
    WriterLock l(&rows.mu);
    for (const wal::RecordOp& op : ops) {
      if (op.kind == wal::OpKind::kPutRow) {
        rows.table.Put(op.id, seq, static_cast<const float*>(op.vector), op.bytes);
        bytes += op.bytes.size();
      } else {
        rows.table.Delete(op.id, seq);
      }
    }
  }
  rows.bytes.fetch_add(bytes + ops.size() * (size_t{dim} * 4 + 8 + 48), std::memory_order_relaxed);
  return Status::OK();
}

void DBImpl::StageRowArray(RowSet& rows, uint64_t seq, const uint8_t* ids, const uint8_t* vectors, size_t n) {
  {
    WriterLock l(&rows.mu);
    // The record's float32 matrix, little-endian like the host (big-endian hosts log through Write).
    rows.table.PutRows(seq, ids, reinterpret_cast<const float*>(vectors), nullptr, n);
  }
  rows.bytes.fetch_add(n * (size_t{rows.dim} * 4 + 8 + 48), std::memory_order_relaxed);
}

Status DBImpl::CommitRows(wal::RecordType type, const std::string_view* pieces, size_t count,
                            const std::function<void(RowSet&, uint64_t)>& stage, uint64_t bytes) {
  if (opt.memory_limit_bytes != 0 && UsedBytes(*Current()) + bytes > opt.memory_limit_bytes)
    return Status::ResourceExhausted("memory limit exceeded");
  if (!wal) {
    // In memory: seqs are handed out under the commit lock, as commits do.
    MutexLock l(&commit_mu);
    if (closed) return Status::Closed("database is closed");
    const uint64_t seq = last_seq.load() + 1;
    stage(*Current()->mem->rows(), seq);
    last_seq.store(seq, std::memory_order_release);
  } else {
    POMAI_RETURN_IF_ERROR(EnsureLogFile());
    // The stage runs with no freeze in between (the WAL's exclusive section
    // switches memtables), so the active row set is the record's.
    POMAI_RETURN_IF_ERROR(wal->Commit(
        static_cast<uint8_t>(type), pieces, count, [&](uint64_t seq) { stage(*Current()->mem->rows(), seq); },
        [&](uint64_t seq) { last_seq.store(seq, std::memory_order_release); }));
  }
  if (Current()->mem->bytes() > opt.memtable_budget_bytes) {
    MaybeScheduleFlush();
    BackPressure();
  }
  return Status::OK();
}

void DBImpl::BackPressure() {
  MutexLock l(&bg_mu);
  while (Current()->mem->bytes() >= 2 * opt.memtable_budget_bytes && (bg_pending || bg_flushing) && !bg_stop)
    bg_cv.Wait(&bg_mu);
}

Status DB::Write(const WriteOp* ops, size_t n) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  POMAI_RETURN_IF_ERROR(d.CheckWritable("writes"));
  if (n == 0) return Status::OK();
  if (ops == nullptr) return Status::InvalidArgument("ops is NULL");
  const uint32_t dim = d.rows_opt.dim;
  std::vector<wal::RecordOp> rops(n);
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    const WriteOp& op = ops[i];
    wal::RecordOp& r = rops[i];
    r.cid = d.rows_cid;
    r.id = op.id;
    if (op.kind == WriteOp::Kind::kDelete) {
      r.kind = wal::OpKind::kDeleteRow;
      continue;
    }
    if (op.kind != WriteOp::Kind::kPut) return Status::InvalidArgument("item " + std::to_string(i) + " has an unknown kind");
    if (op.vector == nullptr)
      return Status::InvalidArgument("item " + std::to_string(i) + " (id " + std::to_string(op.id) + ") has a NULL vector");
    if (simd::FirstRowOutOfRange(op.vector, 1, dim) == 0)
      return Status::InvalidArgument("item " + std::to_string(i) + " (id " + std::to_string(op.id) + ") " +
                                     simd::RowRangeError(op.vector, dim));
    if (op.metadata.size() > wal::kMaxPayload)
      return Status::InvalidArgument("item " + std::to_string(i) + " has metadata of " +
                                     std::to_string(op.metadata.size()) + " bytes");
    r.kind = wal::OpKind::kPutRow;
    r.dim = dim;
    r.vector = op.vector;
    r.bytes = op.metadata;
    bytes += op.metadata.size() + size_t{dim} * 4 + 56;
  }
  const uint64_t size = wal::WriteBatchSize(rops.data(), n);
  if (size > wal::kMaxPayload || n > UINT32_MAX)
    return Status::InvalidArgument("batch of " + std::to_string(n) + " items is " + std::to_string(size) +
                                   " bytes; at most " + std::to_string(wal::kMaxPayload) + " bytes per batch: split it");
  const std::string payload = d.wal ? wal::EncodeWriteBatch(rops.data(), n) : std::string();
  const std::string_view piece(payload);
  Status staged;
  Status s = d.CommitRows(
      wal::RecordType::kWriteBatch, &piece, 1,
      [&](RowSet& rows, uint64_t seq) { staged = DBImpl::StageRowOps(rows, seq, rops, "batch"); }, bytes);
  if (!s.ok()) return s;
  if (!staged.ok()) return Status::Internal("applying a batch failed: " + staged.message());
  return Status::OK();
}

Status DB::PutArray(const uint64_t* ids, const float* vectors, size_t n) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  POMAI_RETURN_IF_ERROR(d.CheckWritable("writes"));
  if (n == 0) return Status::OK();
  if (ids == nullptr) return Status::InvalidArgument("ids is NULL");
  if (vectors == nullptr) return Status::InvalidArgument("vectors is NULL");
  const uint32_t dim = d.rows_opt.dim;
  const size_t row_bytes = size_t{dim} * 4;
  if (n > UINT32_MAX || n > (wal::kMaxPayload - wal::kRowArrayHeadSize) / (8 + row_bytes))
    return Status::InvalidArgument("batch of " + std::to_string(n) + " rows of dim " + std::to_string(dim) +
                                   " is above " + std::to_string(wal::kMaxPayload) + " bytes per batch: split it");
  if (const size_t r = simd::FirstRowOutOfRange(vectors, n, dim); r < n)
    return Status::InvalidArgument("row " + std::to_string(r) + " (id " + std::to_string(ids[r]) + ") " +
                                   simd::RowRangeError(vectors + r * dim, dim));
  if constexpr (std::endian::native != std::endian::little) {
    // The record holds little-endian ids and floats: encode through Write.
    std::vector<WriteOp> ops(n);
    for (size_t i = 0; i < n; ++i) {
      ops[i].id = ids[i];
      ops[i].vector = vectors + i * dim;
    }
    return Write(ops.data(), n);
  }
  // The caller's arrays are the record's payload: no copy before the write.
  uint8_t head[wal::kRowArrayHeadSize];
  wal::EncodeRowArrayHead(d.rows_cid, dim, static_cast<uint32_t>(n), head);
  const std::string_view pieces[3] = {
      {reinterpret_cast<const char*>(head), wal::kRowArrayHeadSize},
      {reinterpret_cast<const char*>(ids), n * 8},
      {reinterpret_cast<const char*>(vectors), n * row_bytes},
  };
  return d.CommitRows(
      wal::RecordType::kRowArray, pieces, 3,
      [&](RowSet& rows, uint64_t seq) {
        DBImpl::StageRowArray(rows, seq, reinterpret_cast<const uint8_t*>(ids),
                                reinterpret_cast<const uint8_t*>(vectors), n);
      },
      n * (row_bytes + 56));
}

// ---------------------------------------------------------------------------
// Reads

Status DB::Get(uint64_t id, std::vector<float>* vector, std::string* metadata) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  const RowsView view(d);
  const uint32_t dim = d.rows_opt.dim;
  for (const auto& layer : view.layers()) {
    const RowLayer& l = *layer;
    if (l.set != nullptr) {
      ReaderLock lock(&l.set->mu);
      const RowTable& t = l.set->table;
      size_t row = 0;
      const RowTable::State state = t.FindAt(id, view.snap(), &row);
      if (state == RowTable::State::kDeleted) return NoSuchId(id);
      if (state == RowTable::State::kLive) {
        if (vector) vector->assign(t.vector(row), t.vector(row) + dim);
        if (metadata) metadata->assign(t.metadata(row));
        return Status::OK();
      }
      continue;
    }
    uint64_t row = 0, seq = 0;
    bool found = false;
    POMAI_RETURN_IF_ERROR(l.seg->FindRow(l.group, id, &row, &found));  // checks the row's block
    if (found) {
      if (vector) vector->assign(l.seg->vector(l.group, row), l.seg->vector(l.group, row) + dim);
      if (metadata) {
        POMAI_ASSIGN_OR_RETURN(std::string_view m, l.seg->Metadata(l.group, row));
        metadata->assign(m);
      }
      return Status::OK();
    }
    POMAI_RETURN_IF_ERROR(l.seg->FindTombstone(l.group, id, &seq, &found));
    if (found) return NoSuchId(id);
  }
  return NoSuchId(id);
}

Result<bool> DB::Exists(uint64_t id) {
  Status s = Get(id, nullptr, nullptr);
  if (s.ok()) return true;
  if (s.IsNotFound()) return false;
  return s;
}

namespace {

// Calls live(id) for every live row of the view (O(rows) lookups in newer layers).
Status ForEachLiveRow(const RowsView& view, const std::function<void(uint64_t id)>& live) {
  const auto& layers = view.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const RowLayer& l = *layers[i];
    const Searcher<uint64_t>& searcher = view.searcher();
    const bool unhidden = searcher.NothingNewerThan(i);
    bool hidden = false;
    if (l.set != nullptr) {
      std::vector<uint64_t> ids;
      {
        ReaderLock lock(&l.set->mu);
        const RowTable& t = l.set->table;
        for (size_t r = 0; r < t.rows(); ++r)
          if (t.VisibleAt(r, view.snap())) ids.push_back(t.id(r));
      }
      for (uint64_t id : ids) {
        if (!unhidden) POMAI_RETURN_IF_ERROR(searcher.Hidden(id, i, &hidden));
        if (!hidden) live(id);
      }
      continue;
    }
    const uint64_t rows = l.rows();
    POMAI_RETURN_IF_ERROR(CheckRows(*l.seg, l.group, 0, rows));
    const uint64_t* ids = l.seg->ids(l.group);
    for (uint64_t r = 0; r < rows; ++r) {
      if (!unhidden) POMAI_RETURN_IF_ERROR(searcher.Hidden(ids[r], i, &hidden));
      if (!hidden) live(ids[r]);
    }
  }
  return Status::OK();
}

}  // namespace

Result<uint64_t> DB::Count() {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  const RowsView view(d);
  uint64_t n = 0;
  POMAI_RETURN_IF_ERROR(ForEachLiveRow(view, [&n](uint64_t) { ++n; }));
  return n;
}

// ---------------------------------------------------------------------------
// Search (ENGINE.md 4.5): the executor over the view's layers; a hit's shard
// is id % shards.

Status DB::Search(const float* queries, size_t n, const uint32_t* topks, uint32_t deadline_ms, uint32_t ef_search,
                    std::vector<std::vector<Hit>>* out) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  out->assign(n, {});
  if (n == 0) return Status::OK();
  if (queries == nullptr) return Status::InvalidArgument("queries is NULL");
  if (topks == nullptr) return Status::InvalidArgument("topks is NULL");
  const DefaultCollectionOptions& o = d.rows_opt;
  if (const size_t r = simd::FirstRowOutOfRange(queries, n, o.dim); r < n)
    return Status::InvalidArgument("query " + std::to_string(r) + " " + simd::RowRangeError(queries + r * o.dim, o.dim));
  SearchSpec spec;
  spec.queries = queries;
  spec.n = n;
  spec.topks = topks;
  spec.dim = o.dim;
  spec.metric = o.metric;
  spec.ef = ef_search ? ef_search : o.hnsw_ef_search;
  spec.adaptive_threshold = o.adaptive_threshold;
  spec.deadline_ms = deadline_ms ? deadline_ms : o.deadline_ms;
  spec.deadline = Clock::now() + std::chrono::milliseconds(spec.deadline_ms);
  spec.pool = d.pool.get();
  const RowsView view(d);
  std::vector<std::vector<SearchHit<uint64_t>>> hits;
  POMAI_RETURN_IF_ERROR(view.searcher().Search(spec, &hits));
  for (size_t q = 0; q < n; ++q) {
    (*out)[q].reserve(hits[q].size());
    for (const SearchHit<uint64_t>& h : hits[q])
      (*out)[q].push_back(Hit{h.key, h.score, static_cast<uint32_t>(h.key % o.shards)});
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Statistics

Result<std::string> DB::StatsJson() {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  const RowsView view(d);
  const uint32_t shards = d.rows_opt.shards;
  std::vector<uint64_t> shard_rows(shards, 0);
  uint64_t mem_rows = 0, segments = 0, rows = 0, tombstones = 0, bytes = 0, reused_rows = 0;
  std::string file_list;
  for (const auto& l : view.layers()) {
    if (l->set != nullptr) {
      ReaderLock lock(&l->set->mu);
      const RowTable& t = l->set->table;
      for (size_t r = 0; r < t.rows(); ++r) ++shard_rows[t.id(r) % shards];
      mem_rows += t.rows();
    }
  }
  for (const auto& seg : view.pinned().segs) {
    uint32_t g = 0;
    const bool has = seg->FindGroup(segment::GroupKind::kU64, d.rows_cid, d.rows_opt.dim, d.rows_opt.metric, &g);
    const uint64_t seg_rows = has ? seg->group(g).rows : 0, seg_tombs = has ? seg->group(g).tombstones : 0;
    ++segments;
    rows += seg_rows;
    tombstones += seg_tombs;
    bytes += seg->file_size();
    file_list += (file_list.empty() ? "{\"file\": \"" : ", {\"file\": \"") +
             files::FileName(files::FileType::kSegment, seg->file_number()) + "\", \"rows\": " + std::to_string(seg_rows) +
             ", \"tombstones\": " + std::to_string(seg_tombs) + ", \"bytes\": " + std::to_string(seg->file_size());
    const index::HnswGraph* graph = has ? seg->graph(g) : nullptr;
    if (graph != nullptr) {
      POMAI_ASSIGN_OR_RETURN(index::HnswStats gs, graph->Stats());
      file_list += ", \"graph\": {\"m\": " + std::to_string(gs.m) + ", \"ef_construction\": " +
               std::to_string(gs.ef_construction) + ", \"max_level\": " + std::to_string(gs.max_level) +
               ", \"avg_degree0\": " + std::to_string(gs.avg_degree0) + ", \"bytes\": " + std::to_string(gs.bytes) +
               ", \"vectors\": \"" + (gs.sq8 ? "sq8" : "float32") +
               "\", \"reused_rows\": " + std::to_string(gs.reused_rows) + "}}";
      reused_rows += gs.reused_rows;
    } else {
      file_list += ", \"graph\": null}";
    }
  }
  uint64_t live_rows = 0;
  POMAI_RETURN_IF_ERROR(ForEachLiveRow(view, [&live_rows](uint64_t) { ++live_rows; }));
  std::string j = "{\"dim\": " + std::to_string(d.rows_opt.dim) + ", \"shards\": [";
  for (uint32_t s = 0; s < shards; ++s)
    j += (s ? ", " : "") + std::string("{\"shard\": ") + std::to_string(s) +
         ", \"memtable_rows\": " + std::to_string(shard_rows[s]) + "}";
  j += "], \"segment_files\": [" + file_list + "], \"segments\": " + std::to_string(segments) +
       ", \"segment_rows\": " + std::to_string(rows) + ", \"segment_tombstones\": " + std::to_string(tombstones) +
       ", \"segment_bytes\": " + std::to_string(bytes) + ", \"memtable_rows\": " + std::to_string(mem_rows) +
       ", \"live_rows\": " + std::to_string(live_rows) +
       ", \"dead_rows\": " + std::to_string(rows + mem_rows > live_rows ? rows + mem_rows - live_rows : 0) +
       ", \"graph_reused_rows\": " + std::to_string(reused_rows) + "}";
  return j;
}

}  // namespace pomai::engine
