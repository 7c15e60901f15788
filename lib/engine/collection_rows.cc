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
#include "engine/rows_view.h"
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

Status NoSuchId(uint64_t id) { return Status::NotFound("id " + std::to_string(id) + " not found"); }

// Where the live version of `id` is in `view`: *layer and *row, or *found false.
Status FindLive(const RowsView& view, uint64_t id, size_t* layer, uint64_t* row, bool* found) {
  *found = false;
  const auto& layers = view.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const RowLayer& l = *layers[i];
    if (l.set != nullptr) {
      ReaderLock lock(&l.set->mu);
      size_t r = 0;
      const RowTable::State state = l.set->table.FindAt(id, view.snap(), &r);
      if (state == RowTable::State::kAbsent) continue;
      *found = state == RowTable::State::kLive;
      *layer = i;
      *row = r;
      return Status::OK();
    }
    uint64_t seq = 0;
    POMAI_RETURN_IF_ERROR(l.seg->FindRow(l.group, id, row, found));  // checks the row's block
    if (*found) {
      *layer = i;
      return Status::OK();
    }
    bool deleted = false;
    POMAI_RETURN_IF_ERROR(l.seg->FindTombstone(l.group, id, &seq, &deleted));
    if (deleted) return Status::OK();
  }
  return Status::OK();
}


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
      POMAI_RETURN_IF_ERROR(d.LoadSchema(*now));
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
// Attribute columns

Status DBImpl::LoadSchema(const Layers& layers) {
  std::map<std::string, AttrType, std::less<>> cols;
  auto add = [&cols](const std::string& name, AttrType type, const std::string& where) {
    auto [it, fresh] = cols.emplace(name, type);
    if (fresh || it->second == type) return Status::OK();
    return Status::Corruption(where + ": attribute column '" + Printable(name) + "' is " + AttrTypeName(type) +
                              " where a newer layer has it as " + AttrTypeName(it->second));
  };
  for (const MemTable* m : {layers.mem.get(), layers.imm.get()}) {
    const RowSet* rs = m != nullptr ? m->rows() : nullptr;
    if (rs == nullptr || rs->cid != rows_cid) continue;
    ReaderLock lock(&rs->mu);
    for (const auto& [name, type] : rs->table.columns()) POMAI_RETURN_IF_ERROR(add(name, type, "the memtable"));
  }
  for (const auto& seg : layers.segs) {
    uint32_t g = 0;
    if (!seg->FindGroup(segment::GroupKind::kU64, rows_cid, rows_opt.dim, rows_opt.metric, &g)) continue;
    AttrSchema group_cols;
    POMAI_RETURN_IF_ERROR(seg->AttrColumns(g, &group_cols));
    for (const auto& [name, type] : group_cols) POMAI_RETURN_IF_ERROR(add(name, type, seg->path()));
  }
  MutexLock l(&schema_mu);
  attr_schema.assign(cols.begin(), cols.end());
  return Status::OK();
}

Status DBImpl::AddColumns(const std::vector<AttrColumn>& columns) {
  MutexLock l(&schema_mu);
  auto find = [this](std::string_view name) NO_THREAD_SAFETY_ANALYSIS {
    return std::lower_bound(attr_schema.begin(), attr_schema.end(), name,
                            [](const auto& c, std::string_view n) { return c.first < n; });
  };
  size_t added = 0;
  for (const AttrColumn& c : columns) {
    auto it = find(c.name);
    if (it == attr_schema.end() || it->first != c.name) {
      ++added;
    } else if (it->second != c.type) {
      return Status::InvalidArgument("attribute column '" + Printable(c.name) + "' is " + AttrTypeName(it->second) +
                                     "; this write gives it " + AttrTypeName(c.type) + " values");
    }
  }
  if (attr_schema.size() + added > kMaxAttrColumns)
    return Status::InvalidArgument("this write would give the collection " + std::to_string(attr_schema.size() + added) +
                                   " attribute columns (at most " + std::to_string(kMaxAttrColumns) + ")");
  for (const AttrColumn& c : columns) {
    auto it = find(c.name);
    if (it == attr_schema.end() || it->first != c.name) attr_schema.insert(it, {c.name, c.type});
  }
  return Status::OK();
}

AttrSchema DB::Schema() { return impl_->Schema(); }

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

Status DBImpl::StageRowBatch(RowSet& rows, uint64_t seq, const uint8_t* ids, const void* vectors, size_t n,
                             const uint64_t* meta_offsets, std::string_view meta_blob,
                             const std::vector<AttrColumn>& columns) {
  size_t bytes = n * (size_t{rows.dim} * 4 + 8 + 48) + meta_blob.size();
  for (const AttrColumn& c : columns) bytes += c.ByteSize();
  Status s;
  {
    WriterLock l(&rows.mu);
    // The record's float32 matrix, little-endian like the host.
    s = rows.table.PutBatch(seq, ids, static_cast<const float*>(vectors), n, meta_offsets, meta_blob, columns);
  }
  rows.bytes.fetch_add(bytes, std::memory_order_relaxed);
  return s;
}

Status DBImpl::CommitRowBatch(const RowsIn& in) {
  static_assert(std::endian::native == std::endian::little, "row batches log the host's ids and floats as they are");
  const uint32_t dim = rows_opt.dim;
  const size_t n = in.n;
  const uint64_t meta_bytes = in.metadata_offsets != nullptr ? in.metadata_offsets[n] : 0;
  const uint64_t size = wal::RowBatchSize(dim, n, in.metadata_offsets != nullptr, meta_bytes, in.columns);
  if (size > wal::kMaxPayload)
    return Status::InvalidArgument("batch of " + std::to_string(n) + " rows is " + std::to_string(size) +
                                   " bytes; at most " + std::to_string(wal::kMaxPayload) + " bytes per batch: split it");
  const std::string_view blob(reinterpret_cast<const char*>(in.metadata), meta_bytes);
  const std::string payload =
      wal ? wal::EncodeRowBatch(rows_cid, dim, static_cast<uint32_t>(n), in.ids, in.vectors, in.metadata_offsets, blob,
                                in.columns)
          : std::string();
  const std::string_view piece(payload);
  uint64_t bytes = n * (size_t{dim} * 4 + 56) + meta_bytes;
  for (const AttrColumn& c : in.columns) bytes += c.ByteSize();
  Status staged;
  POMAI_RETURN_IF_ERROR(CommitRows(
      wal::RecordType::kRowBatch, &piece, 1,
      [&](RowSet& rows, uint64_t seq) {
        staged = StageRowBatch(rows, seq, reinterpret_cast<const uint8_t*>(in.ids), in.vectors, n, in.metadata_offsets,
                               blob, in.columns);
      },
      bytes));
  if (!staged.ok()) return Status::Internal("applying a row batch failed: " + staged.message());
  return Status::OK();
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
  ReaderLock rw(&d.row_writes_mu);  // no UpdateAttributes between its read and its write
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
  ReaderLock rw(&d.row_writes_mu);
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

Status DB::PutRows(const RowsIn& in) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  POMAI_RETURN_IF_ERROR(d.CheckWritable("writes"));
  const size_t n = in.n;
  if (n == 0) return Status::OK();
  if (in.ids == nullptr) return Status::InvalidArgument("ids is NULL");
  if (in.vectors == nullptr) return Status::InvalidArgument("vectors is NULL");
  const uint32_t dim = d.rows_opt.dim;
  if (n > UINT32_MAX) return Status::InvalidArgument("batch of " + std::to_string(n) + " rows: split it");
  if (const size_t r = simd::FirstRowOutOfRange(in.vectors, n, dim); r < n)
    return Status::InvalidArgument("row " + std::to_string(r) + " (id " + std::to_string(in.ids[r]) + ") " +
                                   simd::RowRangeError(in.vectors + r * dim, dim));
  if (in.metadata_offsets != nullptr) {
    if (in.metadata_offsets[0] != 0)
      return Status::InvalidArgument("metadata offsets start at " + std::to_string(in.metadata_offsets[0]) + ", not 0");
    for (size_t i = 0; i < n; ++i) {
      if (in.metadata_offsets[i + 1] < in.metadata_offsets[i])
        return Status::InvalidArgument("metadata offsets decrease at row " + std::to_string(i + 1));
      POMAI_RETURN_IF_ERROR(CheckValueSize(in.metadata_offsets[i + 1] - in.metadata_offsets[i],
                                           "the metadata of row " + std::to_string(i)));
    }
    if (in.metadata_offsets[n] > 0 && in.metadata == nullptr)
      return Status::InvalidArgument("metadata is NULL but its offsets span " + std::to_string(in.metadata_offsets[n]) +
                                     " bytes");
  }
  POMAI_RETURN_IF_ERROR(CheckAttrColumns(in.columns, n));
  ReaderLock rw(&d.row_writes_mu);
  POMAI_RETURN_IF_ERROR(d.AddColumns(in.columns));
  return d.CommitRowBatch(in);
}

namespace {
// A live row UpdateAttributes replaces: where it is.
struct OldRow {
  size_t layer;
  uint64_t row;
};
Status ReadOldRows(const std::vector<std::unique_ptr<RowLayer>>& layers, const std::vector<OldRow>& old,
                   const AttrSchema& schema, const std::vector<const AttrColumn*>& given, uint32_t dim,
                   std::vector<float>* vectors, std::vector<uint64_t>* meta_offsets, std::string* meta,
                   std::vector<AttrColumn>* columns);
}  // namespace

Status DB::UpdateAttributes(const uint64_t* ids, size_t n, std::vector<AttrColumn> columns) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  POMAI_RETURN_IF_ERROR(d.CheckWritable("writes"));
  if (n == 0) return Status::OK();
  if (ids == nullptr) return Status::InvalidArgument("ids is NULL");
  if (n > UINT32_MAX) return Status::InvalidArgument("batch of " + std::to_string(n) + " rows: split it");
  POMAI_RETURN_IF_ERROR(CheckAttrColumns(columns, n));
  WriterLock rw(&d.row_writes_mu);  // what is read below is what the new versions replace
  POMAI_RETURN_IF_ERROR(d.AddColumns(columns));
  const uint32_t dim = d.rows_opt.dim;
  RowsView view(d);
  const auto& layers = view.layers();
  std::vector<OldRow> old(n);
  for (size_t i = 0; i < n; ++i) {
    bool found = false;
    POMAI_RETURN_IF_ERROR(FindLive(view, ids[i], &old[i].layer, &old[i].row, &found));
    if (!found)
      return Status::NotFound("update_attributes: id " + std::to_string(ids[i]) + " (item " + std::to_string(i) +
                              ") has no live row; nothing was changed");
  }
  // The new versions: the old vectors and metadata; each column of the
  // collection from `columns` when given, else the old row's value.
  const AttrSchema schema = d.Schema();
  std::vector<const AttrColumn*> given(schema.size(), nullptr);
  for (const AttrColumn& c : columns) {
    for (size_t k = 0; k < schema.size(); ++k)
      if (schema[k].first == c.name) given[k] = &c;
  }
  RowsIn in;
  in.n = n;
  in.ids = ids;
  std::vector<float> vectors(n * size_t{dim});
  std::vector<uint64_t> meta_offsets(1, 0);
  std::string meta;
  for (const auto& [name, type] : schema) in.columns.push_back(AttrColumn::Make(name, type));
  POMAI_RETURN_IF_ERROR(ReadOldRows(layers, old, schema, given, dim, &vectors, &meta_offsets, &meta, &in.columns));
  for (size_t k = 0; k < schema.size(); ++k) {
    if (given[k] != nullptr) in.columns[k] = *given[k];
  }
  in.vectors = vectors.data();
  in.metadata_offsets = meta_offsets.data();
  in.metadata = reinterpret_cast<const uint8_t*>(meta.data());
  return d.CommitRowBatch(in);
}

namespace {

// UpdateAttributes' read of the rows it replaces: their vectors, metadata and
// the columns not `given`, with every layer pinned (a memtable's shared lock,
// which the analysis cannot follow through Pin).
Status ReadOldRows(const std::vector<std::unique_ptr<RowLayer>>& layers, const std::vector<OldRow>& old,
                   const AttrSchema& schema, const std::vector<const AttrColumn*>& given, uint32_t dim,
                   std::vector<float>* vectors, std::vector<uint64_t>* meta_offsets, std::string* meta,
                   std::vector<AttrColumn>* columns) NO_THREAD_SAFETY_ANALYSIS {
  const size_t n = old.size();
  std::vector<filter::ColumnRef> refs(layers.size() * schema.size());
  std::vector<uint8_t> present(layers.size() * schema.size(), 0);
  {
    const PinnedLayers pinned(layers);
    for (size_t i = 0; i < layers.size(); ++i) {
      for (size_t k = 0; k < schema.size(); ++k) {
        if (given[k] != nullptr) continue;
        bool has = false;
        POMAI_RETURN_IF_ERROR(layers[i]->Column(schema[k].first, &refs[i * schema.size() + k], &has));
        present[i * schema.size() + k] = has;
      }
    }
    for (size_t j = 0; j < n; ++j) {
      const RowLayer& l = *layers[old[j].layer];
      const uint64_t row = old[j].row;
      std::string_view m;
      const float* vec;
      if (l.set != nullptr) {
        vec = l.set->table.vector(row);
        m = l.set->table.metadata(row);
      } else {
        vec = l.seg->vector(l.group, row);  // FindLive checked its block
        POMAI_ASSIGN_OR_RETURN(m, l.seg->Metadata(l.group, row));
      }
      std::memcpy(vectors->data() + j * dim, vec, size_t{dim} * sizeof(float));
      meta->append(m);
      meta_offsets->push_back(meta->size());
      for (size_t k = 0; k < schema.size(); ++k) {
        if (given[k] != nullptr) continue;
        const size_t at = old[j].layer * schema.size() + k;
        filter::AppendRow(refs[at], present[at] != 0, row, &(*columns)[k]);
      }
    }
  }
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------------------
// Reads

Status DB::Get(uint64_t id, std::vector<float>* vector, std::string* metadata) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  const RowsView view(d);
  const uint32_t dim = d.rows_opt.dim;
  size_t layer = 0;
  uint64_t row = 0;
  bool found = false;
  POMAI_RETURN_IF_ERROR(FindLive(view, id, &layer, &row, &found));
  if (!found) return NoSuchId(id);
  const RowLayer& l = *view.layers()[layer];
  if (l.set != nullptr) {
    ReaderLock lock(&l.set->mu);
    if (vector) vector->assign(l.set->table.vector(row), l.set->table.vector(row) + dim);
    if (metadata) metadata->assign(l.set->table.metadata(row));
    return Status::OK();
  }
  if (vector) vector->assign(l.seg->vector(l.group, row), l.seg->vector(l.group, row) + dim);
  if (metadata) {
    POMAI_ASSIGN_OR_RETURN(std::string_view m, l.seg->Metadata(l.group, row));
    metadata->assign(m);
  }
  return Status::OK();
}

Result<bool> DB::Exists(uint64_t id) {
  Status s = Get(id, nullptr, nullptr);
  if (s.ok()) return true;
  if (s.IsNotFound()) return false;
  return s;
}

// ---------------------------------------------------------------------------
// Search (ENGINE.md 4.5): the executor over the view's layers; a hit's shard
// is id % shards.

Status DB::Search(const float* queries, size_t n, const uint32_t* topks, uint32_t deadline_ms, uint32_t ef_search,
                    std::vector<std::vector<Hit>>* out, const RowFilterSpec* filter) {
  DBImpl& d = *impl_;
  POMAI_RETURN_IF_ERROR(d.CheckRowsOpen());
  out->assign(n, {});
  // A bad filter is an error even when there is nothing to search.
  POMAI_ASSIGN_OR_RETURN(std::unique_ptr<filter::Filter> f, CompileFilter(d, filter));
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
  RowsView view(d);
  if (f) POMAI_RETURN_IF_ERROR(view.EvaluateFilter(*f, n, o.adaptive_threshold));
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
  POMAI_RETURN_IF_ERROR(ForEachLiveRow(view, [&live_rows](size_t, uint64_t, uint64_t) { return ++live_rows, true; }));
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
