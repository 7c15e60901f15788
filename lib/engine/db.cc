#include "engine/db.h"
#include "engine/db_impl.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "engine/filename.h"
#include "engine/topk.h"
#include "engine/version_set.h"
#include "index/hnsw.h"
#include "index/params.h"
#include "util/coding.h"
#include "util/limits.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"

namespace pomai::engine {
namespace {

constexpr uint64_t kDefaultBudget = 256ull << 20;
// Rows scored per kernel call: 256 rows of 128-d are 128 KiB, inside L2.
constexpr size_t kBlockRows = 256;
// Segments larger than this are split into several search tasks.
constexpr size_t kChunkRows = 1 << 16;

using Clock = std::chrono::steady_clock;

}  // namespace

DB::DB(const Options& options) : options_(options), env_(options.env ? options.env : Env::Default()) {
  budget_ = options_.memory_budget_bytes ? options_.memory_budget_bytes : kDefaultBudget;
}

DB::~DB() { (void)Close(); }

Result<std::unique_ptr<DB>> DB::Open(const Options& options) {
  if (options.path.empty()) return Status::InvalidArgument("path is empty");
  POMAI_RETURN_IF_ERROR(CheckDim(options.dim, "database"));
  POMAI_RETURN_IF_ERROR(CheckShards(options.shards, "shards"));
  if (static_cast<uint8_t>(options.metric) > 2)
    return Status::InvalidArgument("metric " + std::to_string(static_cast<int>(options.metric)) + " is not 0 (L2), 1 (IP) or 2 (COSINE)");
  if (options.build_graphs)
    POMAI_RETURN_IF_ERROR(index::CheckHnswParams(options.hnsw_m, options.hnsw_ef_construction, "hnsw_m",
                                                 "hnsw_ef_construction"));
  std::unique_ptr<DB> db(new DB(options));
  POMAI_RETURN_IF_ERROR(db->Recover());
  uint32_t threads = options.search_threads ? options.search_threads : std::max(1u, std::thread::hardware_concurrency());
  if (threads > 1) db->pool_ = std::make_unique<ThreadPool>(threads - 1);
  db->bg_thread_ = std::thread([raw = db.get()] { raw->BackgroundLoop(); });
  db->compact_thread_ = std::thread([raw = db.get()] { raw->CompactionLoop(); });
  return db;
}

uint64_t DB::NewFileNumber() {
  MutexLock l(&manifest_mu_);
  return manifest_.next_file_number++;
}

Status DB::Recover() {
  const std::string& dir = options_.path;
  POMAI_RETURN_IF_ERROR(CreateDirDurably(env_, dir));  // a new database must not vanish with its directory
  POMAI_ASSIGN_OR_RETURN(lock_, env_->LockFile(JoinPath(dir, "LOCK")));
  if (env_->FileExists(JoinPath(dir, "CURRENT")))
    return Status::InvalidArgument(dir + " holds a keyspace database (opened with pomai_db_open_ex), not a u64-id vector database");
  if (!env_->FileExists(JoinPath(dir, kManifestName))) POMAI_RETURN_IF_ERROR(CheckNotOldFormat(env_, dir));  // a KVMANIFEST

  POMAI_ASSIGN_OR_RETURN(std::vector<std::string> names, env_->ListDir(dir));
  uint64_t max_number = 0;
  std::vector<uint64_t> wal_numbers;
  std::vector<std::pair<uint64_t, std::string>> segment_files;
  for (const auto& name : names) {
    uint64_t number;
    files::FileType type;
    if (!files::ParseFileName(name, &type, &number)) continue;
    max_number = std::max(max_number, number);
    if (type == files::FileType::kLog) wal_numbers.push_back(number);
    if (type == files::FileType::kSegment) segment_files.emplace_back(number, name);
  }

  if (env_->FileExists(JoinPath(dir, kManifestName))) {
    POMAI_ASSIGN_OR_RETURN(manifest_, ReadManifest(env_, dir));
    if (manifest_.dim != options_.dim)
      return Status::InvalidArgument("dim " + std::to_string(options_.dim) + " does not match the database's dim " +
                                     std::to_string(manifest_.dim));
    if (manifest_.metric != options_.metric)
      return Status::InvalidArgument("metric " + simd::MetricName(options_.metric) +
                                     " does not match the database's metric " + simd::MetricName(manifest_.metric));
    if (manifest_.shards != options_.shards)
      return Status::InvalidArgument("shards " + std::to_string(options_.shards) +
                                     " does not match the database's shards " + std::to_string(manifest_.shards));
  } else {
    if (!wal_numbers.empty() || !segment_files.empty())
      return Status::Corruption(JoinPath(dir, kManifestName) + " is missing but the directory holds data files");
    manifest_.dim = options_.dim;
    manifest_.metric = options_.metric;
    manifest_.shards = options_.shards;
    manifest_.segments.assign(options_.shards, {});
    POMAI_RETURN_IF_ERROR(WriteManifest(env_, dir, manifest_));
  }
  manifest_.next_file_number = std::max(manifest_.next_file_number, max_number + 1);

  shards_.clear();
  std::set<uint64_t> live_segments;
  for (uint32_t s = 0; s < options_.shards; ++s) {
    auto shard = std::make_unique<Shard>();
    shard->index = s;
    // Memtables grow by doubling, so one may map up to twice the budget.
    shard->row_cache = std::make_shared<MappingCache>(2 * budget_);
    shard->mem = std::make_shared<MemTable>(options_.dim, shard->row_cache);
    const auto& entries = manifest_.segments[s];
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
      const std::string path = JoinPath(dir, files::FileName(files::FileType::kSegment, it->file_number));
      if (!env_->FileExists(path)) return Status::Corruption(JoinPath(dir, kManifestName) + " names " + path + ", which is missing");
      POMAI_ASSIGN_OR_RETURN(auto live, OpenSegment(it->file_number));
      shard->segments.push_back(std::move(live));
      live_segments.insert(it->file_number);
    }
    shards_.push_back(std::move(shard));
  }

  std::sort(wal_numbers.begin(), wal_numbers.end());
  uint64_t last_seq = manifest_.last_seq;
  wal::DecodedRecord decoded;
  for (uint64_t number : wal_numbers) {
    if (number < manifest_.log_number) continue;
    const std::string path = JoinPath(dir, files::FileName(files::FileType::kLog, number));
    POMAI_ASSIGN_OR_RETURN(auto file, env_->MapFile(path));
    if (file->size() == 0) {  // a log that never got a record holds nothing to keep
      (void)env_->RemoveFile(path);
      continue;
    }
    wal::Reader reader(file->data(), file->size(), path);
    wal::Record rec;
    while (reader.Next(&rec)) {
      if (rec.seq <= manifest_.last_seq) continue;  // already in a segment
      if (rec.seq <= last_seq)
        return Status::Corruption(path, rec.offset, "sequence number " + std::to_string(rec.seq) + " is not above " +
                                                        std::to_string(last_seq));
      const std::string origin = path + " at offset " + std::to_string(rec.offset);
      POMAI_RETURN_IF_ERROR(wal::DecodeRecord(rec.type, rec.payload, origin, &decoded));
      if (decoded.type == wal::RecordType::kWriteBatch) {
        POMAI_RETURN_IF_ERROR(StageOps(rec.seq, decoded.ops, rec.payload.size(), origin));
      } else {
        const wal::RowArray& a = decoded.array;
        if (a.cid != 0 || a.dim != options_.dim)
          return Status::Corruption(origin + ": row array of collection " + std::to_string(a.cid) + " and dim " +
                                    std::to_string(a.dim) + " in a database of dim " + std::to_string(options_.dim));
        StageArray(rec.seq, a.ids, a.vectors, a.rows);
      }
      Publish(rec.seq);
      last_seq = std::max(last_seq, rec.seq);
    }
    POMAI_RETURN_IF_ERROR(reader.status());
    live_wal_numbers_.push_back(number);
  }

  // Files no version names: segments of a freeze that did not reach the
  // manifest, WALs already frozen, temporary files.
  files::RemoveObsoleteFiles(env_, dir, names, live_segments, manifest_.log_number, 0);

  // The new log file is created by the first write (EnsureLogFile), so an
  // open that only reads creates no file and pays no directory fsync.
  wal_ = std::make_unique<wal::Writer>(nullptr, options_.fsync ? wal::SyncPolicy::kAlways : wal::SyncPolicy::kNever,
                                       last_seq + 1);
  applied_seq_ = last_seq;
  return Status::OK();
}

Status DB::EnsureLogFile() {
  if (wal_file_open_.load(std::memory_order_acquire)) return Status::OK();
  return wal_->RunExclusive([&]() -> Status {
    if (wal_file_open_.load()) return Status::OK();
    return SwitchLogFile();
  });
}

Status DB::SwitchLogFile() {
  const uint64_t number = NewFileNumber();
  const std::string path = JoinPath(options_.path, files::FileName(files::FileType::kLog, number));
  POMAI_ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(path));
  Status s = env_->SyncDir(options_.path);  // the file must survive a crash for its records to
  if (s.ok()) s = wal_->SwitchFile(std::move(file));
  if (!s.ok()) {
    (void)env_->RemoveFile(path);
    return s;
  }
  {
    MutexLock m(&manifest_mu_);
    live_wal_numbers_.push_back(number);
  }
  wal_file_open_.store(true, std::memory_order_release);
  return Status::OK();
}

Result<std::shared_ptr<DB::LiveSegment>> DB::OpenSegment(uint64_t number) {
  const std::string path = JoinPath(options_.path, files::FileName(files::FileType::kSegment, number));
  auto live = std::make_shared<LiveSegment>();
  live->number = number;
  POMAI_ASSIGN_OR_RETURN(live->seg, segment::Segment::Open(env_, path));
  const segment::Segment& seg = *live->seg;
  if (seg.dim() != options_.dim || seg.info().metric != options_.metric)
    return Status::Corruption(path, 16, "segment dim/metric differ from the manifest's");
  if (!seg.Section(segment::SectionKind::kHnswHeader).empty()) {
    auto graph = index::HnswGraph::Open([&](uint32_t kind) { return seg.Section(kind); }, seg.vectors(),
                                        seg.row_count(), seg.dim(), seg.info().metric, path, seg.base());
    if (!graph.ok()) return graph.status();
    live->graph = std::make_unique<index::HnswGraph>(std::move(graph).value());
  }
  return live;
}

Status DB::StageOps(uint64_t seq, const std::vector<wal::RecordOp>& ops, size_t record_bytes, const std::string& origin) {
  for (const wal::RecordOp& op : ops) {
    const bool put = op.kind == wal::OpKind::kPutRow;
    if ((!put && op.kind != wal::OpKind::kDeleteRow) || op.cid != 0 || (put && op.dim != options_.dim))
      return Status::Corruption(origin + ": " + wal::OpKindName(op.kind) + " op of collection " + std::to_string(op.cid) +
                                (put ? " and dim " + std::to_string(op.dim) : std::string()) + " in a database of dim " +
                                std::to_string(options_.dim));
  }
  auto stage = [&](Shard& sh, const wal::RecordOp& op) {
    if (op.kind == wal::OpKind::kPutRow)
      sh.mem->Put(op.id, seq, static_cast<const float*>(op.vector), op.bytes);
    else
      sh.mem->Delete(op.id, seq);
  };
  const uint32_t nshards = options_.shards;
  if (nshards == 1) {
    Shard& sh = *shards_[0];
    WriterLock l(&sh.mem_mu);
    for (const auto& op : ops) stage(sh, op);
  } else {
    std::vector<std::vector<uint32_t>> by_shard(nshards);
    for (uint32_t i = 0; i < ops.size(); ++i) by_shard[ops[i].id % nshards].push_back(i);
    for (uint32_t sh_index = 0; sh_index < nshards; ++sh_index) {
      if (by_shard[sh_index].empty()) continue;
      Shard& sh = *shards_[sh_index];
      WriterLock l(&sh.mem_mu);
      for (uint32_t i : by_shard[sh_index]) stage(sh, ops[i]);
    }
  }
  mem_bytes_ += record_bytes + ops.size() * 48;
  return Status::OK();
}

void DB::StageArray(uint64_t seq, const uint8_t* ids, const uint8_t* vectors, size_t n) {
  const uint32_t nshards = options_.shards;
  const size_t row_bytes = size_t{options_.dim} * 4;
  // The record's float32 matrix, little-endian like the host (big-endian hosts log through Write).
  const auto* rows = reinterpret_cast<const float*>(vectors);
  if (nshards == 1) {
    Shard& sh = *shards_[0];
    WriterLock l(&sh.mem_mu);
    sh.mem->PutRows(seq, ids, rows, nullptr, n);
  } else {
    std::vector<std::vector<uint32_t>> by_shard(nshards);
    for (uint32_t i = 0; i < n; ++i) by_shard[DecodeFixed64(ids + size_t{i} * 8) % nshards].push_back(i);
    for (uint32_t sh_index = 0; sh_index < nshards; ++sh_index) {
      if (by_shard[sh_index].empty()) continue;
      Shard& sh = *shards_[sh_index];
      WriterLock l(&sh.mem_mu);
      sh.mem->PutRows(seq, ids, rows, by_shard[sh_index].data(), by_shard[sh_index].size());
    }
  }
  mem_bytes_ += n * (row_bytes + 8 + 48);
}

Status DB::CheckWritable() {
  if (closed_) return Status::Closed("database is closed");
  return wal_->sticky_error().ok()
             ? Status::OK()
             : Status(wal_->sticky_error().code(),
                      "database refuses writes after a failed log write: " + wal_->sticky_error().message());
}

Status DB::Write(const WriteOp* ops, size_t n) {
  POMAI_RETURN_IF_ERROR(CheckWritable());
  if (n == 0) return Status::OK();
  if (ops == nullptr) return Status::InvalidArgument("ops is NULL");
  const uint32_t dim = options_.dim;
  std::vector<wal::RecordOp> rops(n);
  for (size_t i = 0; i < n; ++i) {
    const WriteOp& op = ops[i];
    wal::RecordOp& r = rops[i];
    r.id = op.id;
    if (op.kind == WriteOp::Kind::kDelete) {
      r.kind = wal::OpKind::kDeleteRow;
      continue;
    }
    if (op.kind != WriteOp::Kind::kPut) return Status::InvalidArgument("item " + std::to_string(i) + " has an unknown kind");
    if (op.vector == nullptr) return Status::InvalidArgument("item " + std::to_string(i) + " (id " + std::to_string(op.id) + ") has a NULL vector");
    if (simd::FirstRowOutOfRange(op.vector, 1, dim) == 0) {
      return Status::InvalidArgument("item " + std::to_string(i) + " (id " + std::to_string(op.id) + ") " +
                                     simd::RowRangeError(op.vector, dim));
    }
    if (op.metadata.size() > wal::kMaxPayload)
      return Status::InvalidArgument("item " + std::to_string(i) + " has metadata of " + std::to_string(op.metadata.size()) + " bytes");
    r.kind = wal::OpKind::kPutRow;
    r.dim = dim;
    r.vector = op.vector;
    r.bytes = op.metadata;
  }
  const uint64_t size = wal::WriteBatchSize(rops.data(), n);
  if (size > wal::kMaxPayload || n > UINT32_MAX)
    return Status::InvalidArgument("batch of " + std::to_string(n) + " items is " + std::to_string(size) +
                                   " bytes; at most " + std::to_string(wal::kMaxPayload) + " bytes per batch: split it");
  const std::string payload = wal::EncodeWriteBatch(rops.data(), n);
  POMAI_RETURN_IF_ERROR(EnsureLogFile());
  Status apply_status;
  const std::string_view piece(payload);
  Status s = wal_->Commit(
      static_cast<uint8_t>(wal::RecordType::kWriteBatch), &piece, 1,
      [&](uint64_t seq) { apply_status = StageOps(seq, rops, payload.size(), "batch"); },
      [&](uint64_t seq) { Publish(seq); });
  if (!s.ok()) return s;
  if (!apply_status.ok()) return Status::Internal("applying a batch failed: " + apply_status.message());
  MaybeScheduleFreeze();
  return Status::OK();
}

Status DB::PutArray(const uint64_t* ids, const float* vectors, size_t n) {
  POMAI_RETURN_IF_ERROR(CheckWritable());
  if (n == 0) return Status::OK();
  if (ids == nullptr) return Status::InvalidArgument("ids is NULL");
  if (vectors == nullptr) return Status::InvalidArgument("vectors is NULL");
  const uint32_t dim = options_.dim;
  const size_t row_bytes = size_t{dim} * 4;
  if (n > UINT32_MAX || n > (wal::kMaxPayload - wal::kRowArrayHeadSize) / (8 + row_bytes))
    return Status::InvalidArgument("batch of " + std::to_string(n) + " rows of dim " + std::to_string(dim) +
                                   " is above " + std::to_string(wal::kMaxPayload) + " bytes per batch: split it");
  if (const size_t r = simd::FirstRowOutOfRange(vectors, n, dim); r < n) {
    return Status::InvalidArgument("row " + std::to_string(r) + " (id " + std::to_string(ids[r]) + ") " +
                                   simd::RowRangeError(vectors + r * dim, dim));
  }
  if constexpr (std::endian::native != std::endian::little) {
    // The record holds little-endian ids and floats: encode through Write.
    std::vector<WriteOp> ops(n);
    for (size_t i = 0; i < n; ++i) {
      ops[i].kind = WriteOp::Kind::kPut;
      ops[i].id = ids[i];
      ops[i].vector = vectors + i * dim;
    }
    return Write(ops.data(), n);
  }
  // The caller's arrays are the record's payload: no copy before the write.
  uint8_t head[wal::kRowArrayHeadSize];
  wal::EncodeRowArrayHead(0, dim, static_cast<uint32_t>(n), head);
  const std::string_view pieces[3] = {
      {reinterpret_cast<const char*>(head), wal::kRowArrayHeadSize},
      {reinterpret_cast<const char*>(ids), n * 8},
      {reinterpret_cast<const char*>(vectors), n * row_bytes},
  };
  POMAI_RETURN_IF_ERROR(EnsureLogFile());
  Status s = wal_->Commit(
      static_cast<uint8_t>(wal::RecordType::kRowArray), pieces, 3,
      [&](uint64_t seq) {
        StageArray(seq, reinterpret_cast<const uint8_t*>(ids), reinterpret_cast<const uint8_t*>(vectors), n);
      },
      [&](uint64_t seq) { Publish(seq); });
  if (!s.ok()) return s;
  MaybeScheduleFreeze();
  return Status::OK();
}

void DB::MaybeScheduleFreeze() {
  if (mem_bytes_.load() < budget_) return;
  MutexLock l(&bg_mu_);
  if (!bg_pending_ && !freezing_) {
    bg_pending_ = true;
    bg_cv_.SignalAll();
  }
  // Back-pressure: past twice the budget, wait for the running freeze.
  while (mem_bytes_.load() >= 2 * budget_ && (bg_pending_ || freezing_) && !bg_stop_) bg_cv_.Wait(&bg_mu_);
}

void DB::BackgroundLoop() {
  MutexLock l(&bg_mu_);
  for (;;) {
    while (!bg_stop_ && !bg_pending_) bg_cv_.Wait(&bg_mu_);
    if (bg_stop_) return;
    bg_pending_ = false;
    freezing_ = true;
    l.Unlock();
    Status s;
    {
      MutexLock f(&freeze_mu_);
      s = FreezeLocked(nullptr);  // a failure leaves the memtables in place; the next trigger retries
    }
    l.Lock();
    freezing_ = false;
    if (s.ok()) compact_pending_ = true;
    bg_cv_.SignalAll();
  }
}

void DB::CompactionLoop() {
  MutexLock l(&bg_mu_);
  for (;;) {
    while (!bg_stop_ && !compact_pending_) bg_cv_.Wait(&bg_mu_);
    if (bg_stop_) return;
    compact_pending_ = false;
    l.Unlock();
    // Merges what the tiered policy asks for; a failure leaves the inputs in
    // place and the next freeze retries.
    (void)Compact(false, nullptr);
    l.Lock();
  }
}

Status DB::Freeze(const ProgressFn& progress_fn) {
  if (closed_) return Status::Closed("database is closed");
  Status s;
  {
    MutexLock l(&freeze_mu_);
    Progress progress(progress_fn);
    s = FreezeLocked(progress.enabled() ? &progress : nullptr);
    if (s.ok()) progress.Finish();
  }
  if (s.ok()) {
    MutexLock l(&bg_mu_);
    compact_pending_ = true;
    bg_cv_.SignalAll();
  }
  return s;
}

Status DB::FreezeLocked(Progress* progress) {
  POMAI_RETURN_IF_ERROR(FlushImmutables(progress));
  POMAI_RETURN_IF_ERROR(CheckWritable());
  bool switched = false;
  // The next memtables, their id indexes sized for as many rows as the ones
  // they replace, made before writers are held up: a memtable that grows its
  // index rehashes every id while a write waits.
  std::vector<std::shared_ptr<MemTable>> next(shards_.size());
  for (size_t i = 0; i < shards_.size(); ++i) {
    Shard& sh = *shards_[i];
    size_t rows = 0;
    {
      ReaderLock l(&sh.mem_mu);
      rows = sh.mem->rows();
    }
    next[i] = std::make_shared<MemTable>(options_.dim, sh.row_cache);
    next[i]->Reserve(rows);
  }
  POMAI_RETURN_IF_ERROR(wal_->RunExclusive([&]() -> Status {
    // Again, now that no group is in flight: a group that failed after the
    // check above left its staged rows in the memtables, unpublished, and
    // they must never reach a segment.
    POMAI_RETURN_IF_ERROR(CheckWritable());
    bool all_empty = true;
    for (auto& sh : shards_) all_empty = all_empty && sh->mem->empty();
    if (all_empty) return Status::OK();
    // Everything logged so far goes into the immutables; new writes to a new log.
    POMAI_RETURN_IF_ERROR(SwitchLogFile());
    {
      MutexLock v(&version_mu_);
      for (size_t i = 0; i < shards_.size(); ++i) {
        shards_[i]->imm = std::move(shards_[i]->mem);
        shards_[i]->mem = std::move(next[i]);
      }
    }
    mem_bytes_ = 0;
    switched = true;
    return Status::OK();
  }));
  return switched ? FlushImmutables(progress) : Status::OK();
}

Result<std::shared_ptr<DB::LiveSegment>> DB::WriteLiveSegment(const MemTable::Sorted& rows, uint32_t shard,
                                                               uint64_t min_seq, uint64_t max_seq, Progress* progress,
                                                               const index::GraphBase* base) {
  segment::SegmentContents c;
  c.info.dim = options_.dim;
  c.info.metric = options_.metric;
  c.info.shard = shard;
  c.info.min_seq = min_seq;
  c.info.max_seq = max_seq;
  c.row_count = rows.ids.size();
  c.ids = rows.ids.data();
  c.vectors = rows.vectors.data();
  c.meta_offsets = rows.meta_offsets.data();
  c.meta_blob = reinterpret_cast<const uint8_t*>(rows.meta_blob.data());
  c.tombstone_count = rows.tombstones.size();
  c.tombstones = rows.tombstones.data();
  std::vector<index::GraphSection> graph;
  if (options_.build_graphs && c.row_count > 0 && c.row_count >= options_.adaptive_threshold) {
    index::HnswParams params;
    params.m = options_.hnsw_m;
    params.ef_construction = options_.hnsw_ef_construction;
    params.sq8 = options_.hnsw_vectors == index::Traversal::kSq8;
    auto on_progress = progress ? progress->ForSegment() : nullptr;
    POMAI_ASSIGN_OR_RETURN(graph, base ? index::BuildHnswFrom(*base, rows.vectors.data(), c.row_count, options_.dim,
                                                              options_.metric, params, pool_.get(), on_progress)
                                       : index::BuildHnsw(rows.vectors.data(), c.row_count, options_.dim,
                                                          options_.metric, params, pool_.get(), on_progress));
    for (const auto& g : graph) c.extra.push_back({g.kind, g.bytes});
  }
  const uint64_t number = NewFileNumber();
  POMAI_RETURN_IF_ERROR(segment::WriteSegment(env_, options_.path, files::FileName(files::FileType::kSegment, number), c));
  auto opened = OpenSegment(number);
  if (!opened.ok()) (void)env_->RemoveFile(JoinPath(options_.path, files::FileName(files::FileType::kSegment, number)));
  return opened;
}

Status DB::FlushImmutables(Progress* progress) {
  std::vector<std::shared_ptr<MemTable>> imms(shards_.size());
  bool any = false;
  {
    MutexLock v(&version_mu_);
    for (size_t s = 0; s < shards_.size(); ++s) {
      imms[s] = shards_[s]->imm;
      any = any || imms[s] != nullptr;
    }
  }
  if (!any) return Status::OK();

  if (progress != nullptr)
    for (const auto& imm : imms)
      if (imm && options_.build_graphs && imm->live_count() >= options_.adaptive_threshold) progress->AddTotal(imm->live_count());
  std::vector<std::shared_ptr<LiveSegment>> made(shards_.size());
  std::vector<uint64_t> numbers(shards_.size(), 0);
  std::vector<Status> statuses(shards_.size());
  auto build = [&](size_t s) {
    const auto& imm = imms[s];
    if (!imm || imm->empty()) return;
    auto live = WriteLiveSegment(imm->SortedContents(), static_cast<uint32_t>(s), imm->min_seq(), imm->max_seq(),
                                 progress);
    if (!live.ok()) {
      statuses[s] = live.status();
      return;
    }
    made[s] = std::move(live).value();
    numbers[s] = made[s]->number;
  };
  if (pool_) {
    pool_->ParallelFor(shards_.size(), build);
  } else {
    for (size_t s = 0; s < shards_.size(); ++s) build(s);
  }
  auto discard = [&] {
    for (size_t s = 0; s < shards_.size(); ++s) {
      made[s].reset();
      if (numbers[s]) (void)env_->RemoveFile(JoinPath(options_.path, files::FileName(files::FileType::kSegment, numbers[s])));
    }
  };
  for (const auto& st : statuses) {
    if (!st.ok()) {
      discard();
      return st;
    }
  }

  Manifest next;
  std::vector<uint64_t> obsolete_wals;
  {
    MutexLock m(&manifest_mu_);
    next = manifest_;
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (made[s]) next.segments[s].push_back({numbers[s], made[s]->seg->row_count()});
      if (imms[s]) next.last_seq = std::max(next.last_seq, imms[s]->max_seq());
    }
    // Every WAL but the current one holds only what the immutables hold.
    next.log_number = live_wal_numbers_.back();
    for (uint64_t w : live_wal_numbers_)
      if (w < next.log_number) obsolete_wals.push_back(w);
  }
  Status ms = WriteManifest(env_, options_.path, next);
  if (!ms.ok()) {
    // The new manifest may be in place all the same (the rename done, the
    // directory fsync failed): the segments it names stay, and the next
    // recovery removes them if no manifest names them.
    for (auto& seg : made) seg.reset();
    return ms;
  }
  {
    MutexLock m(&manifest_mu_);
    const uint64_t next_file = manifest_.next_file_number;
    manifest_ = next;
    manifest_.next_file_number = std::max(next_file, next.next_file_number);
    live_wal_numbers_.erase(std::remove_if(live_wal_numbers_.begin(), live_wal_numbers_.end(),
                                           [&](uint64_t w) { return w < next.log_number; }),
                            live_wal_numbers_.end());
  }
  {
    MutexLock v(&version_mu_);
    for (size_t s = 0; s < shards_.size(); ++s) {
      if (made[s]) shards_[s]->segments.insert(shards_[s]->segments.begin(), made[s]);
      shards_[s]->imm.reset();
    }
  }
  for (uint64_t w : obsolete_wals) (void)env_->RemoveFile(JoinPath(options_.path, files::FileName(files::FileType::kLog, w)));
  return Status::OK();
}

Status DB::Close() {
  if (closed_.exchange(true)) return Status::OK();
  {
    MutexLock l(&bg_mu_);
    bg_stop_ = true;
    bg_cv_.SignalAll();
  }
  if (bg_thread_.joinable()) bg_thread_.join();
  if (compact_thread_.joinable()) compact_thread_.join();
  Status s;
  if (wal_ && wal_file_open_ && wal_->sticky_error().ok()) s = wal_->Sync();
  wal_.reset();
  pool_.reset();
  {
    MutexLock v(&version_mu_);
    shards_.clear();
  }
  lock_.reset();
  return s;
}

Status DB::WithFilesHeld(const std::function<void(const std::string& dir)>& fn) {
  if (closed_) return Status::Closed("database is closed");
  // Every manifest write and every file deletion of a freeze or a
  // compaction happens under freeze_mu_ (FlushImmutables, CompactShard).
  MutexLock f(&freeze_mu_);
  if (closed_) return Status::Closed("database is closed");
  fn(options_.path);
  return Status::OK();
}

Result<bool> DB::Exists(uint64_t id) {
  Status s = Get(id, nullptr, nullptr);
  if (s.ok()) return true;
  if (s.IsNotFound()) return false;
  return s;
}

Status DB::Get(uint64_t id, std::vector<float>* vector, std::string* metadata) {
  if (closed_) return Status::Closed("database is closed");
  Shard* sh = shards_[id % options_.shards].get();
  std::shared_ptr<MemTable> imm;
  std::vector<std::shared_ptr<const LiveSegment>> segs;
  std::shared_ptr<MemTable> mem;
  uint64_t snapshot;
  {
    MutexLock v(&version_mu_);
    snapshot = applied_seq_.load(std::memory_order_acquire);  // staged, unpublished rows stay unseen
    mem = sh->mem;
    imm = sh->imm;
    segs = sh->segments;
  }
  const uint32_t dim = options_.dim;
  auto not_found = [id] { return Status::NotFound("id " + std::to_string(id) + " not found"); };
  for (const MemTable* table : {mem.get(), imm.get()}) {
    if (table == nullptr) continue;
    ReaderLock l(&sh->mem_mu);
    size_t row;
    auto state = table->FindAt(id, snapshot, &row);
    if (state == MemTable::State::kDeleted) return not_found();
    if (state == MemTable::State::kLive) {
      if (vector) vector->assign(table->vector(row), table->vector(row) + dim);
      if (metadata) metadata->assign(table->metadata(row));
      return Status::OK();
    }
  }
  for (const auto& live : segs) {
    const segment::Segment* seg = live->seg.get();
    uint64_t row;
    POMAI_RETURN_IF_ERROR(seg->CheckSection(segment::SectionKind::kIds));
    if (seg->FindRow(id, &row)) {
      if (vector) {
        POMAI_RETURN_IF_ERROR(seg->CheckSection(segment::SectionKind::kVectors));
        vector->assign(seg->vector(row), seg->vector(row) + dim);
      }
      if (metadata) {
        POMAI_ASSIGN_OR_RETURN(std::string_view m, seg->Metadata(row));
        metadata->assign(m);
      }
      return Status::OK();
    }
    POMAI_RETURN_IF_ERROR(seg->CheckSection(segment::SectionKind::kTombstones));
    if (seg->HasTombstone(id)) return not_found();
  }
  return not_found();
}

std::vector<ShardView> DB::SnapshotViews() {
  std::vector<ShardView> views;
  views.reserve(shards_.size());
  MutexLock v(&version_mu_);
  const uint64_t snapshot = applied_seq_.load(std::memory_order_acquire);
  for (auto& sh : shards_) views.push_back({sh.get(), sh->mem, sh->imm, sh->segments, snapshot});
  // Every version at or before `snapshot` was applied before applied_seq_
  // published it, and rows are appended in sequence order: a memtable whose
  // first row is newer than the snapshot (or that has none) hides nothing.
  for (ShardView& view : views) {
    ReaderLock l(&view.shard->mem_mu);
    view.mem_may_shadow = view.mem->rows() > 0 && view.mem->first_seq(0) <= snapshot;
  }
  return views;
}

Result<uint64_t> DB::Count() {
  if (closed_) return Status::Closed("database is closed");
  const std::vector<ShardView> views = SnapshotViews();  // one snapshot for every shard, as a search takes it
  uint64_t total = 0;
  for (const ShardView& view : views) {
    ReaderLock l(&view.shard->mem_mu);
    // Ids named by newer layers; a row of an older layer with such an id is shadowed.
    std::unordered_set<uint64_t> seen;
    const bool older_layers = view.imm || !view.segments.empty();
    for (const MemTable* table : {view.mem.get(), view.imm.get()}) {
      if (table == nullptr) continue;
      for (size_t r = 0; r < table->rows(); ++r)
        if (table->VisibleAt(r, view.snapshot_seq) && !seen.count(table->id(r))) ++total;
      if (older_layers)
        for (size_t r = 0; r < table->rows(); ++r)
          if (table->first_seq(r) <= view.snapshot_seq) seen.insert(table->id(r));
    }
    for (size_t j = 0; j < view.segments.size(); ++j) {
      const auto& seg = view.segments[j]->seg;
      POMAI_RETURN_IF_ERROR(seg->CheckSection(segment::SectionKind::kIds));
      uint64_t shadowed = 0;
      for (uint64_t id : seen) {
        uint64_t row;
        if (seg->FindRow(id, &row)) ++shadowed;
      }
      total += seg->row_count() - shadowed;
      if (j + 1 < view.segments.size()) {
        POMAI_RETURN_IF_ERROR(seg->CheckSection(segment::SectionKind::kTombstones));
        for (uint64_t r = 0; r < seg->row_count(); ++r) seen.insert(seg->ids()[r]);
        for (uint64_t t = 0; t < seg->tombstone_count(); ++t) seen.insert(seg->tombstones()[t]);
      }
    }
  }
  return total;
}

uint64_t DB::TEST_SegmentCount() {
  MutexLock v(&version_mu_);
  uint64_t n = 0;
  for (auto& sh : shards_) n += sh->segments.size();
  return n;
}

// One unit of search work: a row range of one layer of one shard, for the
// queries [q_begin, q_end).
struct DB::LayerTask {
  size_t view;        // index into the views
  int layer;          // -2 mem, -1 imm, >= 0 segment index
  bool graph;         // search the segment's HNSW graph instead of its rows
  size_t begin, end;  // row range (exact search)
  size_t q_begin, q_end;
};

Status DB::Search(const float* queries, size_t n, const uint32_t* topks, uint32_t deadline_ms, uint32_t ef_search,
                  std::vector<std::vector<Hit>>* out) {
  if (closed_) return Status::Closed("database is closed");
  out->assign(n, {});
  if (n == 0) return Status::OK();
  const uint32_t dim = options_.dim;
  if (const size_t r = simd::FirstRowOutOfRange(queries, n, dim); r < n)
    return Status::InvalidArgument("query " + std::to_string(r) + " " + simd::RowRangeError(queries + r * dim, dim));
  const uint32_t budget_ms = deadline_ms ? deadline_ms : options_.deadline_ms;
  const bool has_deadline = budget_ms > 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(budget_ms);
  const size_t ef_default = ef_search ? ef_search : options_.hnsw_ef_search;

  const std::vector<ShardView> views = SnapshotViews();
  // Graph searches are one task per few queries; exact scans one task per row chunk, all queries.
  const size_t workers = pool_ ? pool_->size() + 1 : 1;
  const size_t q_chunk = std::max<size_t>(1, std::min<size_t>(16, n / (2 * workers)));
  std::vector<LayerTask> tasks;
  for (size_t v = 0; v < views.size(); ++v) {
    tasks.push_back({v, -2, false, 0, 0, 0, n});  // memtable: range read under its lock
    if (views[v].imm) tasks.push_back({v, -1, false, 0, views[v].imm->rows(), 0, n});
    for (size_t j = 0; j < views[v].segments.size(); ++j) {
      const LiveSegment& live = *views[v].segments[j];
      const size_t rows = live.seg->row_count();
      if (live.graph && rows >= options_.adaptive_threshold) {
        for (size_t q = 0; q < n; q += q_chunk) tasks.push_back({v, static_cast<int>(j), true, 0, 0, q, std::min(n, q + q_chunk)});
      } else {
        for (size_t b = 0; b < rows; b += kChunkRows)
          tasks.push_back({v, static_cast<int>(j), false, b, std::min(rows, b + kChunkRows), 0, n});
      }
    }
  }

  const simd::Metric metric = options_.metric;
  std::vector<std::vector<TopK>> results(tasks.size());
  std::vector<Status> errors(tasks.size());
  std::atomic<bool> expired{false};

  auto run = [&](size_t t) {
    const LayerTask& task = tasks[t];
    const ShardView& view = views[task.view];
    std::vector<TopK>& heaps = results[t];
    heaps.reserve(task.q_end - task.q_begin);
    for (size_t q = task.q_begin; q < task.q_end; ++q) heaps.emplace_back(topks[q]);
    if (task.layer >= 0) {
      Status s = view.CheckSegmentReads(task.layer);
      if (!s.ok()) {
        errors[t] = s;
        return;
      }
    }

    std::vector<float> scores(kBlockRows);
    // Scores rows [begin, end) of a matrix against queries [qb, qe); `id_of`
    // and `live` are only asked about rows good enough to enter a heap.
    auto scan_queries = [&](size_t qb, size_t qe, const float* rows, size_t begin, size_t end, auto&& id_of,
                            auto&& live) {
      size_t blocks = 0;
      for (size_t b = begin; b < end; b += kBlockRows) {
        if (has_deadline && (++blocks & 63) == 0 && Clock::now() > deadline) {
          expired = true;
          return;
        }
        if (expired.load(std::memory_order_relaxed)) return;
        const size_t cnt = std::min(kBlockRows, end - b);
        for (size_t q = qb; q < qe; ++q) {
          TopK& heap = heaps[q - task.q_begin];
          if (heap.k() == 0) continue;
          simd::ScoreMany(metric, queries + q * dim, rows + b * dim, cnt, dim, dim, scores.data());
          for (size_t r = 0; r < cnt; ++r) {
            float s = scores[r];
            if (!heap.MayAccept(s)) continue;
            const uint64_t id = id_of(b + r);
            if (!heap.Accepts(s, id) || !live(b + r, id)) continue;
            heap.Push({id, s, view.shard->index});
          }
        }
      }
    };

    auto scan = [&](const float* rows, size_t begin, size_t end, auto&& id_of, auto&& live) {
      scan_queries(task.q_begin, task.q_end, rows, begin, end, id_of, live);
    };

    if (task.graph) {
      const LiveSegment& live = *view.segments[task.layer];
      const uint64_t* ids = live.seg->ids();
      auto is_live = [&](uint32_t row) { return !view.Hidden(ids[row], task.layer); };
      // With nothing newer, every row is live: the walk skips the filter.
      const index::RowFilter filter =
          view.NothingNewerThan(task.layer) ? index::RowFilter() : index::RowFilter(is_live);
      std::vector<index::Neighbor> found;
      for (size_t q = task.q_begin; q < task.q_end; ++q) {
        if (expired.load(std::memory_order_relaxed) || (has_deadline && Clock::now() > deadline)) {
          expired = true;
          return;
        }
        TopK& heap = heaps[q - task.q_begin];
        if (heap.k() == 0) continue;
        const size_t k = std::min<size_t>(heap.k(), live.seg->row_count());
        if (k * 4 >= live.seg->row_count()) {  // most of the segment is wanted: a scan is cheaper and exact
          scan_queries(q, q + 1, live.seg->vectors(), 0, live.seg->row_count(), [&](size_t r) { return ids[r]; },
                       [&](size_t r, uint64_t) { return is_live(static_cast<uint32_t>(r)); });
          continue;
        }
        Status s = live.graph->Search(queries + q * dim, k, std::max(k, ef_default), filter, &found);
        if (!s.ok()) {
          errors[t] = s;
          return;
        }
        for (const auto& nb : found) heap.Push({ids[nb.row], nb.score, view.shard->index});
      }
      return;
    }

    if (task.layer == -2) {
      ReaderLock l(&view.shard->mem_mu);
      const MemTable& mem = *view.mem;
      scan(mem.vectors(), 0, mem.rows(), [&](size_t r) { return mem.id(r); },
           [&](size_t r, uint64_t) { return mem.VisibleAt(r, view.snapshot_seq); });
    } else if (task.layer == -1) {
      const MemTable& imm = *view.imm;
      scan(imm.vectors(), task.begin, task.end, [&](size_t r) { return imm.id(r); },
           [&](size_t r, uint64_t id) {
             return imm.VisibleAt(r, view.snapshot_seq) && !view.Hidden(id, -1);
           });
    } else {
      const segment::Segment& seg = *view.segments[task.layer]->seg;
      const uint64_t* ids = seg.ids();
      scan(seg.vectors(), task.begin, task.end, [&](size_t r) { return ids[r]; },
           [&](size_t, uint64_t id) { return !view.Hidden(id, task.layer); });
    }
  };
  if (pool_ && tasks.size() > 1) {
    pool_->ParallelFor(tasks.size(), run);
  } else {
    for (size_t t = 0; t < tasks.size(); ++t) run(t);
  }
  for (const Status& e : errors) POMAI_RETURN_IF_ERROR(e);
  if (expired) return Status::DeadlineExceeded("search exceeded its deadline of " + std::to_string(budget_ms) + " ms");

  for (size_t t = 0; t < tasks.size(); ++t)
    for (size_t q = tasks[t].q_begin; q < tasks[t].q_end; ++q) results[t][q - tasks[t].q_begin].AppendTo(&(*out)[q]);
  for (size_t q = 0; q < n; ++q) {
    std::vector<Hit>& hits = (*out)[q];
    const size_t k = std::min<size_t>(topks[q], hits.size());
    std::partial_sort(hits.begin(), hits.begin() + k, hits.end(), Better<Hit>);
    hits.resize(k);
  }
  return Status::OK();
}

}  // namespace pomai::engine
