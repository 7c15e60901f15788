#include "engine/kv_db.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <list>
#include <map>
#include <set>
#include <tuple>
#include <thread>
#include <unordered_set>

#include "engine/collection.h"
#include "engine/compaction.h"
#include "engine/filename.h"
#include "engine/kv_index.h"
#include "engine/kv_store.h"
#include "engine/topk.h"
#include "engine/manifest.h"
#include "engine/version_set.h"
#include "index/params.h"
#include "memtable/key_table.h"
#include "segment/file.h"
#include "segment/segment.h"
#include "segment/writer.h"
#include "util/env_memory.h"
#include "util/limits.h"
#include "util/mutex.h"
#include "util/thread_pool.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"
#include "wal/record_codec.h"

namespace pomai::engine {

using kv::ValueKind;
using kv::ValuePtr;
using kv::VersionView;
using memtable::KeyTable;

namespace {

constexpr uint64_t kDefaultMemtableBudget = uint64_t{64} << 20;

// The metric as alopex's Metric constants name it (the keyspace face's messages).
std::string MetricConstantName(simd::Metric m) {
  switch (m) {
    case simd::Metric::kL2: return "L2";
    case simd::Metric::kIP: return "INNER_PRODUCT";
    case simd::Metric::kCosine: return "COSINE";
  }
  return "metric " + std::to_string(static_cast<int>(m));
}

Status IndexNotFound(std::string_view name) { return Status::NotFound("index not found: " + Printable(name)); }

// A named index is a byte-keyed collection (engine/collection.h) with float32 graph vectors.
CollectionConfig CollectionOf(const IndexConfig& c) {
  CollectionConfig out;
  out.key_type = KeyType::kBytes;
  out.metric = c.metric;
  out.graph_vectors = GraphVectors::kFloat32;
  out.dim = c.dim;
  out.m = c.m;
  out.ef_construction = c.ef_construction;
  return out;
}

IndexConfig IndexConfigOf(const CollectionConfig& c) {
  IndexConfig out;
  out.dim = c.dim;
  out.m = c.m;
  out.ef_construction = c.ef_construction;
  out.metric = c.metric;
  return out;
}

// The configuration of index `name` as stored (a tombstone is no index).
Status DecodeIndexConfig(const VersionView& v, std::string_view name, IndexConfig* out) {
  if (v.kind != ValueKind::kBytes) return IndexNotFound(name);
  CollectionConfig c;
  POMAI_RETURN_IF_ERROR(CollectionConfig::Decode(v.bytes, "the configuration of index '" + Printable(name) + "'", &c));
  if (c.key_type != KeyType::kBytes)
    return Status::InvalidArgument("collection '" + Printable(name) + "' has u64 ids, not the byte keys of an index");
  *out = IndexConfigOf(c);
  return Status::OK();
}

uint64_t PhysicalMemory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

// Extra bytes a commit's writes will take in the memtable (an upper bound).
uint64_t WriteCost(const std::vector<kv::Write>& writes) {
  uint64_t n = 0;
  for (const kv::Write& w : writes) n += w.key.capacity() + w.value->MemoryBytes() + 96;
  return n;
}

}  // namespace

Status CheckVector(const float* v, uint32_t dim, const char* what) {
  POMAI_RETURN_IF_ERROR(CheckDim(dim, what));
  if (v == nullptr) return Status::InvalidArgument(std::string(what) + " is NULL");
  if (simd::FirstRowOutOfRange(v, 1, dim) == 0) {
    // One pass when the vector is fine; the message says which rule it breaks.
    if (const size_t i = simd::FirstNonFinite(v, dim); i < dim)
      return Status::InvalidArgument(std::string(what) + "[" + std::to_string(i) + "] is " +
                                     (std::isnan(v[i]) ? "NaN" : "infinite") + "; every component must be finite");
    return Status::InvalidArgument(std::string(what) + " " + simd::RowRangeError(v, dim));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Internal state

// The layers a reader sees, newest first. Immutable once published.
struct Layers {
  std::shared_ptr<KeyTable> mem;
  std::shared_ptr<KeyTable> imm;  // being flushed, or null
  std::vector<std::shared_ptr<const segment::SegmentFile>> segs;  // newest first (highest seqs first)
};

struct KvDBImpl {
  KvOptions opt;
  std::unique_ptr<MemoryEnv> memory_env;  // in-memory mode: where segments and the manifest live
  Env* env = nullptr;
  std::unique_ptr<FileLock> lock;
  std::unique_ptr<ThreadPool> pool;  // null when search_threads == 1

  // Lock order: flush_mu -> index_load_mu -> commit_mu -> apply_mu ->
  // versions->install_mu() -> snap_mu -> layers_mu -> a memtable's or an
  // index's own lock; bg_mu, rebuild_mu and wals_mu are taken alone.
  Mutex commit_mu;  // conflict checks, pending, the memtable switch of a flush
  std::map<std::string, int, std::less<>> pending GUARDED_BY(commit_mu);  // keys of commits in the WAL, not yet applied
  uint64_t pending_bytes GUARDED_BY(commit_mu) = 0;                        // their WriteCost
  Mutex apply_mu;   // held while a commit is applied to the memtable and the indexes
  std::unique_ptr<wal::Writer> wal;  // disk mode only
  std::atomic<bool> wal_file_open{false};  // this open has created a WAL file (NewLogFile)
  std::atomic<uint64_t> last_seq{0};  // every commit <= it is applied and visible

  mutable Mutex layers_mu;
  std::shared_ptr<const Layers> layers GUARDED_BY(layers_mu);

  Mutex snap_mu;
  std::multiset<uint64_t> snapshots GUARDED_BY(snap_mu);  // seqs of the live transactions

  // The manifest (docs/ENGINE.md 3.5): the live segments, log number, last
  // seq; changed only by versions->LogAndApply, under flush_mu.
  std::unique_ptr<VersionSet> versions;
  Mutex wals_mu;
  std::vector<uint64_t> live_wals GUARDED_BY(wals_mu);  // WAL files numbered >= the version's log number
  Status log_file_error GUARDED_BY(wals_mu);  // EnsureLogFile failed: commits refused

  Mutex flush_mu;  // one flush or merge at a time
  uint64_t imm_log_number GUARDED_BY(flush_mu) = 0;  // the first WAL file not needed by imm
  uint64_t imm_seq GUARDED_BY(flush_mu) = 0;         // the last seq in imm

  Mutex bg_mu;
  CondVar bg_cv;
  bool bg_stop GUARDED_BY(bg_mu) = false;
  bool bg_pending GUARDED_BY(bg_mu) = false;
  std::thread bg_thread;

  std::unique_ptr<kv::IndexRegistry> indexes;
  Mutex index_load_mu;  // one index load or rebuild at a time
  uint64_t open_seq = 0;     // last_seq when recovery ended: every version <= it survived the last close or crash
  std::atomic<uint64_t> graph_builds{0};
  struct Rebuild {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  Mutex rebuild_mu;
  std::list<Rebuild> rebuilds GUARDED_BY(rebuild_mu);
  std::atomic<bool> closed{false};

  Result<std::shared_ptr<kv::IndexRuntime>> LoadIndex(const std::string& name, bool rebuild,
                                                      const std::function<void(uint64_t, uint64_t)>& progress = nullptr);
  // Deletes the graph files of index `name` (docs/FORMAT.md), except the one
  // of configuration `keep_config_seq` (0: all). Under index_load_mu.
  void RemoveIndexGraphFiles(const std::string& name, uint64_t keep_config_seq) REQUIRES(index_load_mu);
  void ScheduleRebuild(const std::string& name);
  Status WriteIndexConfig(const std::string& name, const IndexConfig* config);

  std::shared_ptr<const Layers> Current() const {
    MutexLock l(&layers_mu);
    return layers;
  }
  void Publish(std::shared_ptr<const Layers> next) {
    MutexLock l(&layers_mu);
    layers = std::move(next);
  }
  uint64_t NewFileNumber() { return versions->NewFileNumber(); }
  std::string FilePath(files::FileType type, uint64_t number) const {
    return JoinPath(opt.path, files::FileName(type, number));
  }

  // Runs inside Open, before any other thread can reach the database: it
  // reads and writes the guarded state without the locks.
  Status Recover() NO_THREAD_SAFETY_ANALYSIS;
  Status NewLogFile();  // inside wal->RunExclusive
  // Creates this open's first WAL file unless there is one (disk mode);
  // called with no lock held, before a commit's record is written.
  Status EnsureLogFile();
  Status FlushLocked() REQUIRES(flush_mu);
  // Merges runs of segments while the policy (PickMergeRun) picks one.
  Status MergeLocked() REQUIRES(flush_mu);
  Status MergeRunLocked(bool* merged) REQUIRES(flush_mu);
  void BackgroundLoop();
  void MaybeScheduleFlush();
  // Commits `writes` (sorted by key) for a transaction that read at `snap`:
  // CONFLICT when a key written or a key of `checks` has a version newer
  // than snap.
  Status CommitWrites(uint64_t snap, const std::vector<kv::Write>& writes, const std::set<std::string, std::less<>>& checks);
  uint64_t UsedBytes(const Layers& l) const;
};

// ---------------------------------------------------------------------------
// Segments (segment/file.h, docs/ENGINE.md 3.3): one version per key; every
// entry read is checked whole (its CRC, and a vector's block).

// An entry as the version of its key.
VersionView ViewOfEntry(const segment::SegmentFile& seg, const segment::EntryView& e) {
  VersionView v;
  v.seq = e.seq;
  switch (e.kind) {
    case segment::EntryKind::kBytes:
      v.kind = ValueKind::kBytes;
      v.bytes = e.value;
      break;
    case segment::EntryKind::kVector:
      v.kind = ValueKind::kVector;
      v.metric = e.metric;
      v.has_metadata = e.has_metadata;
      v.bytes = e.value;
      v.vec = e.vector;
      v.dim = seg.group(e.group).dim;
      break;
    case segment::EntryKind::kTombstone:
      v.kind = ValueKind::kTombstone;
      break;
  }
  return v;
}

// The version of `key` in `seg` when its seq is <= snap (*found).
Status SegmentGet(const segment::SegmentFile& seg, std::string_view key, uint64_t snap, VersionView* out, bool* found) {
  segment::EntryView e;
  POMAI_RETURN_IF_ERROR(seg.Get(key, &e, found));
  if (*found && e.seq > snap) *found = false;
  if (*found) *out = ViewOfEntry(seg, e);
  return Status::OK();
}

// Calls fn(key, version) for every entry of `seg` with a key in [lo, hi),
// in key order, each checked whole.
template <class Fn>
Status ForEachEntry(const segment::SegmentFile& seg, std::string_view lo, std::string_view hi, Fn&& fn) {
  uint64_t from = 0, to = 0;
  POMAI_RETURN_IF_ERROR(seg.LowerBound(lo, &from));
  POMAI_RETURN_IF_ERROR(seg.LowerBound(hi, &to));
  for (uint64_t i = from; i < to; ++i) {
    segment::EntryView e;
    POMAI_RETURN_IF_ERROR(seg.ReadEntry(i, &e));
    fn(e.key, ViewOfEntry(seg, e));
  }
  return Status::OK();
}

// One version of a key, to write into a segment.
struct SegmentInput {
  std::string_view key;
  VersionView v;
};

// Writes `inputs` (keys strictly ascending, one version each) as segment
// `number` of `dir`: plain values, configurations and tombstones as entries,
// vectors in one group per collection (0x02 keys: cid, dim, metric) or per
// (dim, metric) of vector records (0x00 keys). Every view must stay valid
// until it returns. On failure no file is left under the name.
Status WriteSegment(Env* env, const std::string& dir, uint64_t number, const std::vector<SegmentInput>& inputs) {
  segment::SegmentWriter w;
  std::map<std::tuple<uint64_t, uint32_t, simd::Metric, bool>, segment::GroupHandle> groups;
  for (const SegmentInput& in : inputs) {
    const VersionView& v = in.v;
    switch (v.kind) {
      case ValueKind::kBytes:
        w.AddBytes(in.key, v.seq, v.bytes);
        break;
      case ValueKind::kTombstone:
        w.AddTombstone(in.key, v.seq);
        break;
      case ValueKind::kVector: {
        uint64_t cid = 0;
        std::string_view row_key;
        const bool row = ParseRowKey(in.key, &cid, &row_key);
        auto [it, added] = groups.try_emplace({cid, v.dim, v.metric, row}, 0);
        if (added) it->second = row ? w.AddCollectionGroup(cid, v.dim, v.metric) : w.AddRecordGroup(v.dim, v.metric);
        w.AddVector(in.key, v.seq, it->second, v.vec, v.has_metadata ? &v.bytes : nullptr);
        break;
      }
    }
  }
  return w.Finish(env, JoinPath(dir, files::FileName(files::FileType::kSegment, number)), number);
}

// The newest version of `key` visible at `snap` in `layers` (*found false
// when no layer has one). A damaged segment entry is Corruption.
Status LookupLayers(const Layers& layers, std::string_view key, uint64_t snap, VersionView* out, bool* found) {
  *found = true;
  if (layers.mem->Get(key, snap, out)) return Status::OK();
  if (layers.imm && layers.imm->Get(key, snap, out)) return Status::OK();
  for (const auto& s : layers.segs) {
    POMAI_RETURN_IF_ERROR(SegmentGet(*s, key, snap, out, found));
    if (*found) return Status::OK();
  }
  *found = false;
  return Status::OK();
}

// Whether `key` has a version newer than `snap` in any layer. A segment
// whose versions are all <= snap is not searched.
Status ChangedSince(const Layers& layers, std::string_view key, uint64_t snap, bool* changed) {
  *changed = layers.mem->LatestSeq(key) > snap || (layers.imm && layers.imm->LatestSeq(key) > snap);
  for (const auto& seg : layers.segs) {
    if (*changed) break;
    if (seg->max_seq() <= snap) continue;
    segment::EntryView e;
    bool found = false;
    POMAI_RETURN_IF_ERROR(seg->Get(key, &e, &found));
    *changed = found && e.seq > snap;
  }
  return Status::OK();
}

struct KvTxnState {
  KvDBImpl* db = nullptr;
  TxnMode mode = TxnMode::kReadOnly;
  uint64_t snap = 0;
  std::shared_ptr<const Layers> layers;
  std::multiset<uint64_t>::iterator reg;
  bool active = true;
  std::map<std::string, ValuePtr, std::less<>> writes;  // internal key -> new value
  std::set<std::string, std::less<>> checks;            // keys that must not change before commit

  void End() {
    if (!active) return;
    active = false;
    {
      MutexLock l(&db->snap_mu);
      db->snapshots.erase(reg);
    }
    layers.reset();
    writes.clear();
    checks.clear();
  }
  // Own writes first, then the snapshot.
  // *found false when absent; Corruption when a segment entry is damaged.
  Status Lookup(std::string_view key, VersionView* out, bool* found) const {
    auto it = writes.find(key);
    if (it != writes.end()) {
      *out = kv::ViewOf(snap + 1, *it->second);
      *found = true;
      return Status::OK();
    }
    return LookupLayers(*layers, key, snap, out, found);
  }
  Status CheckActive() const { return active ? Status::OK() : Status::Closed("transaction is closed"); }
  Status CheckWritable() const {
    POMAI_RETURN_IF_ERROR(CheckActive());
    if (mode != TxnMode::kReadWrite) return Status::ReadOnly("transaction is read-only");
    return Status::OK();
  }
};

// ---------------------------------------------------------------------------
// Open, recovery, close

KvDB::KvDB() : impl_(std::make_unique<KvDBImpl>()) {}

KvDB::~KvDB() { (void)Close(); }

bool KvDB::in_memory() const { return impl_->opt.in_memory; }

Status KvDB::WithFilesHeld(const std::function<void(const std::string& dir)>& fn) {
  KvDBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  // Flushes and merges change the manifest and delete files under flush_mu;
  // index builds and drops write and delete graph files under index_load_mu
  // (which is never held while waiting for flush_mu).
  MutexLock f(&d.flush_mu);
  MutexLock i(&d.index_load_mu);
  if (d.closed) return Status::Closed("database is closed");
  fn(d.opt.path);
  return Status::OK();
}

Result<std::unique_ptr<KvDB>> KvDB::Open(const KvOptions& options) {
  if (!options.in_memory && options.path.empty()) return Status::InvalidArgument("path is empty for a disk database");
  std::unique_ptr<KvDB> db(new KvDB());
  KvDBImpl& d = *db->impl_;
  d.opt = options;
  d.env = options.env ? options.env : Env::Default();
  if (options.in_memory) {
    // Segments and the manifest go to process memory: the same flush and
    // merge as on disk, no WAL (nothing has to survive the process).
    d.memory_env = std::make_unique<MemoryEnv>();
    d.env = d.memory_env.get();
    d.opt.path = "in-memory";
    POMAI_ASSIGN_OR_RETURN(d.versions, VersionSet::Create(d.env, d.opt.path));
  }
  if (d.opt.memtable_budget_bytes == 0) d.opt.memtable_budget_bytes = kDefaultMemtableBudget;
  const uint32_t threads =
      options.search_threads ? options.search_threads : std::max(1u, std::thread::hardware_concurrency());
  if (threads > 1) d.pool = std::make_unique<ThreadPool>(threads - 1);
  d.indexes = std::make_unique<kv::IndexRegistry>([&d](const std::string& name) { d.ScheduleRebuild(name); });
  auto layers = std::make_shared<Layers>();
  layers->mem = std::make_shared<KeyTable>();
  d.Publish(layers);
  if (!options.in_memory) POMAI_RETURN_IF_ERROR(d.Recover());
  d.bg_thread = std::thread([&d] { d.BackgroundLoop(); });
  return db;
}

Status KvDBImpl::Recover() {
  const std::string& dir = opt.path;
  POMAI_RETURN_IF_ERROR(CreateDirDurably(env, dir));  // a new database must not vanish with its directory
  POMAI_ASSIGN_OR_RETURN(lock, env->LockFile(JoinPath(dir, files::FileName(files::FileType::kLock, 0))));
  if (env->FileExists(JoinPath(dir, kManifestName)))
    return Status::InvalidArgument(dir + " holds a u64-id vector database (opened with pomai_open), not a keyspace database");

  POMAI_ASSIGN_OR_RETURN(std::vector<std::string> names, env->ListDir(dir));
  // One pass over the listing: the WAL files, the first data file (a
  // directory without CURRENT must have none), and every number in use.
  std::vector<uint64_t> wal_numbers, numbers;
  const std::string* data_file = nullptr;
  for (const auto& name : names) {
    files::FileType type;
    uint64_t number;
    if (!files::ParseFileName(name, &type, &number)) continue;
    numbers.push_back(number);
    if (type == files::FileType::kLog) wal_numbers.push_back(number);
    if (data_file == nullptr && (type == files::FileType::kLog || type == files::FileType::kSegment)) data_file = &name;
  }
  auto recovered = VersionSet::Recover(env, dir);  // refuses a directory of format version 1
  if (recovered.ok()) {
    versions = std::move(recovered).value();
  } else if (recovered.status().code() == Code::kNotFound) {
    if (data_file != nullptr)
      return Status::Corruption(JoinPath(dir, "CURRENT") + " is missing but the directory holds data files (" +
                                *data_file + ")");
    POMAI_ASSIGN_OR_RETURN(versions, VersionSet::Create(env, dir));
  } else {
    return recovered.status();
  }
  // Files made after the last edit (a WAL, an unfinished segment) keep their numbers.
  for (uint64_t number : numbers) versions->MarkFileNumberUsed(number);
  const std::shared_ptr<const Version> version = versions->current();

  auto next = std::make_shared<Layers>();
  next->mem = std::make_shared<KeyTable>();
  std::set<uint64_t> live_segments;
  for (const SegmentMeta& meta : version->segments) {  // newest first
    const std::string path = FilePath(files::FileType::kSegment, meta.number);
    if (!env->FileExists(path)) return Status::Corruption("the manifest of " + dir + " names " + path + ", which is missing");
    POMAI_ASSIGN_OR_RETURN(std::shared_ptr<segment::SegmentFile> seg, segment::SegmentFile::Open(env, path));
    next->segs.push_back(std::move(seg));
    live_segments.insert(meta.number);
  }

  std::sort(wal_numbers.begin(), wal_numbers.end());
  uint64_t seq = version->last_seq;
  std::vector<kv::Write> writes;
  wal::DecodedRecord decoded;
  for (uint64_t number : wal_numbers) {
    if (number < version->log_number) continue;
    const std::string path = FilePath(files::FileType::kLog, number);
    POMAI_ASSIGN_OR_RETURN(auto file, env->MapFile(path));
    if (file->size() == 0) {
      (void)env->RemoveFile(path);
      continue;
    }
    wal::Reader reader(file->data(), file->size(), path);
    wal::Record rec;
    while (reader.Next(&rec)) {
      const std::string origin = path + " at offset " + std::to_string(rec.offset);
      if (rec.type != static_cast<uint8_t>(wal::RecordType::kWriteBatch)) {
        // Names a record type of format version 1 or an unknown one.
        POMAI_RETURN_IF_ERROR(wal::DecodeRecord(rec.type, rec.payload, origin, &decoded));
        return Status::Corruption(origin + ": a row array in a keyspace database");
      }
      if (rec.seq <= version->last_seq) continue;  // already in a segment
      if (rec.seq <= seq)
        return Status::Corruption(path, rec.offset, "sequence number " + std::to_string(rec.seq) + " is not above " +
                                                        std::to_string(seq));
      POMAI_RETURN_IF_ERROR(wal::DecodeWriteBatch(rec.payload, origin, &decoded.ops));
      POMAI_RETURN_IF_ERROR(kv::WritesOf(decoded.ops, origin, &writes));
      next->mem->Apply(rec.seq, writes, rec.seq);
      seq = rec.seq;
    }
    POMAI_RETURN_IF_ERROR(reader.status());
    live_wals.push_back(number);
  }
  {
    MutexLock l(versions->install_mu());
    files::RemoveObsoleteFiles(env, dir, names, live_segments, version->log_number, versions->manifest_number());
  }
  last_seq = seq;
  open_seq = seq;
  // An index graph file holding a version newer than what survived was
  // written from commits a crash lost; their seqs will be reused by new
  // commits, so the file goes before any commit (made durable by the
  // SyncDir of the first commit's EnsureLogFile).
  for (const auto& name : names) {
    if (!kv::IsIndexGraphFileName(name)) continue;
    const std::string path = JoinPath(dir, name);
    auto seg = segment::Segment::Open(env, path);
    if (seg.ok() && (seg.value()->info().max_seq > seq || seg.value()->info().min_seq > seq))
      (void)env->RemoveFile(path);
  }
  layers = next;
  // The new WAL file is created by the first commit (EnsureLogFile): an
  // open that only reads creates no file and pays no directory fsync.
  wal = std::make_unique<wal::Writer>(nullptr, opt.fsync ? wal::SyncPolicy::kAlways : wal::SyncPolicy::kNever, seq + 1);
  return Status::OK();
}

Status KvDBImpl::EnsureLogFile() {
  if (!wal || wal_file_open.load(std::memory_order_acquire)) return Status::OK();
  return wal->RunExclusive([this] {
    if (wal_file_open.load()) return Status::OK();
    {
      MutexLock l(&wals_mu);
      if (!log_file_error.ok()) return log_file_error;
    }
    // A failure is sticky, as a failed WAL write is: every later commit
    // reports it (a new open tries again).
    Status s = NewLogFile();
    if (!s.ok()) {
      MutexLock l(&wals_mu);
      log_file_error = s;
    }
    return s;
  });
}

Status KvDBImpl::NewLogFile() {
  const uint64_t number = NewFileNumber();
  const std::string path = FilePath(files::FileType::kLog, number);
  POMAI_ASSIGN_OR_RETURN(auto file, env->NewWritableFile(path));
  Status s = env->SyncDir(opt.path);
  if (s.ok()) s = wal->SwitchFile(std::move(file));
  if (!s.ok()) {
    (void)env->RemoveFile(path);
    return s;
  }
  {
    MutexLock l(&wals_mu);
    live_wals.push_back(number);
  }
  wal_file_open.store(true, std::memory_order_release);
  return Status::OK();
}

Status KvDB::Close() {
  KvDBImpl& d = *impl_;
  if (d.closed.exchange(true)) return Status::OK();
  if (d.bg_thread.joinable()) {
    {
      MutexLock l(&d.bg_mu);
      d.bg_stop = true;
    }
    d.bg_cv.SignalAll();
    d.bg_thread.join();
  }
  {
    std::list<KvDBImpl::Rebuild> rebuilds;
    {
      MutexLock l(&d.rebuild_mu);
      rebuilds.swap(d.rebuilds);
    }
    for (auto& r : rebuilds) r.thread.join();
  }
  Status s;
  if (d.wal && !d.opt.fsync) s = d.wal->Sync();
  d.wal.reset();
  d.lock.reset();
  return s;
}

// ---------------------------------------------------------------------------
// Transactions

KvTxn::KvTxn(std::unique_ptr<KvTxnState> state) : state_(std::move(state)) {}
KvTxn::~KvTxn() {
  if (state_) state_->End();
}
bool KvTxn::active() const { return state_->active; }
TxnMode KvTxn::mode() const { return state_->mode; }

Result<std::unique_ptr<KvTxn>> KvDB::Begin(TxnMode mode) {
  KvDBImpl& d = *impl_;
  if (d.closed) return Status::Closed("database is closed");
  auto st = std::make_unique<KvTxnState>();
  st->db = &d;
  st->mode = mode;
  {
    // The layers are taken while no commit can publish a newer sequence
    // number (commits store last_seq under snap_mu), as PinnedSnapshot does:
    // taken after the lock, they could include a merged segment built after
    // a newer commit was flushed, which keeps only the newest version of a
    // key and so has lost the one this snapshot must see.
    MutexLock l(&d.snap_mu);
    st->snap = d.last_seq.load();
    st->reg = d.snapshots.insert(st->snap);
    st->layers = d.Current();
  }
  return std::unique_ptr<KvTxn>(new KvTxn(std::move(st)));
}

namespace {
// The internal key of user key `key` for a lookup: on the stack for keys up
// to 255 bytes (no allocation, no thread-local access per get).
class LookupKey {
 public:
  explicit LookupKey(std::string_view key) {
    if (key.size() < sizeof(buf_)) {
      buf_[0] = static_cast<char>(kv::kUserNs);
      std::memcpy(buf_ + 1, key.data(), key.size());
      view_ = std::string_view(buf_, key.size() + 1);
    } else {
      long_ = kv::UserKey(key);
      view_ = long_;
    }
  }
  LookupKey(const LookupKey&) = delete;
  LookupKey& operator=(const LookupKey&) = delete;
  std::string_view view() const { return view_; }

 private:
  char buf_[256];
  std::string long_;
  std::string_view view_;
};
}  // namespace

Status KvTxn::GetView(std::string_view key, std::string_view* value, bool* found) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  VersionView v;
  POMAI_RETURN_IF_ERROR(t.Lookup(LookupKey(key).view(), &v, found));
  *found = *found && v.kind != ValueKind::kTombstone;
  *value = *found ? v.bytes : std::string_view();
  return Status::OK();
}

Status KvTxn::Get(std::string_view key, std::string* value, bool* found) {
  std::string_view view;
  POMAI_RETURN_IF_ERROR(GetView(key, &view, found));
  if (*found) value->assign(view.data(), view.size());
  return Status::OK();
}

Status KvTxn::Put(std::string_view key, std::string_view value) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckValueSize(value.size(), "value"));
  auto v = std::make_shared<kv::Value>();
  v->kind = ValueKind::kBytes;
  v->bytes.assign(value);
  t.writes[kv::UserKey(key)] = std::move(v);
  return Status::OK();
}

Status KvTxn::Delete(std::string_view key) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  t.writes[kv::UserKey(key)] = std::make_shared<kv::Value>();
  return Status::OK();
}

namespace {
Status CheckMetric(simd::Metric m) {
  if (static_cast<uint32_t>(m) > 2)
    return Status::InvalidArgument("metric " + std::to_string(static_cast<uint32_t>(m)) +
                                   " is unknown (0 L2, 1 INNER_PRODUCT, 2 COSINE)");
  return Status::OK();
}

ValuePtr MakeVector(const float* vector, uint32_t dim, simd::Metric metric, const std::string_view* metadata) {
  auto v = std::make_shared<kv::Value>();
  v->kind = ValueKind::kVector;
  v->metric = metric;
  v->vec.assign(vector, vector + dim);
  if (metadata != nullptr) {
    v->has_metadata = true;
    v->bytes.assign(*metadata);
  }
  return v;
}
}  // namespace

Status KvTxn::UpsertVector(std::string_view key, const float* vector, uint32_t dim, simd::Metric metric,
                           const std::string_view* metadata) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  POMAI_RETURN_IF_ERROR(CheckVector(vector, dim));
  if (metadata != nullptr) POMAI_RETURN_IF_ERROR(CheckValueSize(metadata->size(), "metadata"));
  t.writes[kv::UserKey(key)] = MakeVector(vector, dim, metric, metadata);
  return Status::OK();
}

Status KvTxn::GetVector(std::string_view key, simd::Metric metric, std::vector<float>* out) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  VersionView v;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(LookupKey(key).view(), &v, &found));
  if (!found || v.kind == ValueKind::kTombstone)
    return Status::NotFound("key '" + Printable(key) + "' not found");
  if (v.kind != ValueKind::kVector) return Status::NotFound("key '" + Printable(key) + "' holds bytes, not a vector");
  if (v.metric != metric)
    return Status::InvalidArgument("key '" + Printable(key) + "' holds a vector stored with metric " +
                                   MetricConstantName(v.metric) + ", not " + MetricConstantName(metric));
  out->assign(v.vec, v.vec + v.dim);
  return Status::OK();
}

namespace {

// A hit of search_similar: its score, internal key and version.
struct Candidate {
  float score;
  std::string_view key;  // internal key
  VersionView v;
};
std::string_view HitKey(const Candidate& c) { return c.key; }
using CandidateTopK = TopKOf<Candidate>;

Status Mismatch(std::string_view ikey, const VersionView& v, uint32_t dim, simd::Metric metric) {
  return Status::InvalidArgument("key '" + Printable(ikey.substr(1)) + "' holds a vector of metric " +
                                 MetricConstantName(v.metric) + " and dimension " + std::to_string(v.dim) +
                                 " but the query has metric " + MetricConstantName(metric) + " and dimension " +
                                 std::to_string(dim));
}

// Rows of `dim` floats per task of a search split over the pool: about 4
// MiB, at least 64 rows.
size_t RowsPerTask(size_t dim) { return std::max<size_t>(64, (size_t{1} << 20) / dim); }

// Scores rows [0, n) with ScoreMany, split over the pool when large.
void ScoreRows(ThreadPool* pool, simd::Metric metric, const float* query, const float* rows, size_t n, size_t dim,
               float* out) {
  const size_t per = RowsPerTask(dim);
  if (pool == nullptr || n <= per) {
    simd::ScoreMany(metric, query, rows, n, dim, dim, out);
    return;
  }
  const size_t chunks = (n + per - 1) / per;
  pool->ParallelFor(chunks, [&](size_t c) {
    const size_t from = c * per, to = std::min(n, from + per);
    simd::ScoreMany(metric, query, rows + from * dim, to - from, dim, dim, out + from);
  });
}

// Offers `top` the vectors of memtable `m` visible at `snap` and not hidden
// by a key of `shadow`, scored by runs of contiguous rows; a visible vector of another
// dimension or metric is the usual mismatch. Per-thread scratch buffers keep
// a query from allocating (and faulting in) memory in proportion to the rows.
Status ScoreMemtableVectors(ThreadPool* pool, const KeyTable& m, uint64_t snap, const float* query, uint32_t dim,
                            simd::Metric metric, const std::unordered_set<std::string_view>& shadow,
                            CandidateTopK* top) {
  struct Run {
    const float* rows;
    size_t n;
    size_t out;  // index of its first score
  };
  struct Scratch {
    std::vector<KeyTable::VisibleVector> visible;
    std::vector<float> scores;
    std::vector<Run> runs;
  };
  // This thread's buffers, named through references: the pool's threads
  // must use the caller's, not their own thread_local copies. Kept between
  // queries up to kKeepRows rows (about 3.6 MB), freed after larger ones.
  constexpr size_t kKeepRows = 65536;
  thread_local Scratch scratch;
  Scratch& s = scratch;
  struct Trim {
    Scratch& s;
    ~Trim() {
      if (s.visible.capacity() > kKeepRows) s = Scratch{};
    }
  } trim{s};
  auto& visible = s.visible;
  auto& scores = s.scores;
  auto& runs = s.runs;
  m.VisibleVectors(snap, &visible);
  if (!shadow.empty()) {
    visible.erase(std::remove_if(visible.begin(), visible.end(),
                                 [&](const KeyTable::VisibleVector& x) { return shadow.count(x.key) != 0; }),
                  visible.end());
  }
  runs.clear();
  const size_t per = RowsPerTask(dim);
  for (size_t i = 0; i < visible.size(); ++i) {
    const KeyTable::VisibleVector& x = visible[i];
    if (x.dim != dim || x.metric != metric) return Mismatch(x.key, kv::ViewOf(x.seq, *x.value), dim, metric);
    if (!runs.empty() && runs.back().rows + runs.back().n * dim == x.row && runs.back().n < per) {
      ++runs.back().n;
    } else {
      runs.push_back(Run{x.row, 1, i});
    }
  }
  scores.resize(visible.size());
  auto score = [&](size_t i) {
    simd::ScoreMany(metric, query, runs[i].rows, runs[i].n, dim, dim, scores.data() + runs[i].out);
  };
  if (pool == nullptr || visible.size() <= per) {
    for (size_t i = 0; i < runs.size(); ++i) score(i);
  } else {
    pool->ParallelFor(runs.size(), score);
  }
  for (size_t i = 0; i < visible.size(); ++i) {
    const KeyTable::VisibleVector& x = visible[i];
    float score = scores[i];
    if (top->MayAccept(score) && top->Accepts(score, x.key)) top->Push(Candidate{score, x.key, kv::ViewOf(x.seq, *x.value)});
  }
  return Status::OK();
}

void FillHits(CandidateTopK& top, simd::Metric metric, bool return_vectors, std::vector<KvHit>* out) {
  const std::vector<Candidate> best = top.TakeSorted();
  out->clear();
  out->reserve(best.size());
  for (const Candidate& c : best) {
    KvHit h;
    h.key.assign(c.key.substr(1));
    // The kernels give -||q - r||^2 for L2; the keyspace reports -||q - r||.
    h.score = metric == simd::Metric::kL2 ? -std::sqrt(std::max(0.0f, -c.score)) : c.score;
    h.has_metadata = c.v.has_metadata;
    if (c.v.has_metadata) h.metadata.assign(c.v.bytes);
    if (return_vectors) h.vector.assign(c.v.vec, c.v.vec + c.v.dim);
    out->push_back(std::move(h));
  }
}
}  // namespace

Status KvTxn::SearchSimilar(const float* query, uint32_t dim, simd::Metric metric, uint32_t k,
                            const std::vector<std::string_view>* filter, bool return_vectors,
                            std::vector<KvHit>* out) {
  KvTxnState& t = *state_;
  out->clear();
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  POMAI_RETURN_IF_ERROR(CheckMetric(metric));
  POMAI_RETURN_IF_ERROR(CheckVector(query, dim, "query"));
  ThreadPool* pool = t.db->pool.get();
  CandidateTopK top(k);
  // Candidates given by row pointers, scored together with ScoreGather.
  std::vector<Candidate> gathered;
  std::vector<std::string> filter_keys;

  if (filter != nullptr) {
    filter_keys.reserve(filter->size());
    for (std::string_view f : *filter) {
      POMAI_RETURN_IF_ERROR(CheckKey(f, "filter key"));
      filter_keys.push_back(kv::UserKey(f));
    }
    std::sort(filter_keys.begin(), filter_keys.end());
    filter_keys.erase(std::unique(filter_keys.begin(), filter_keys.end()), filter_keys.end());
    for (const std::string& ik : filter_keys) {
      VersionView v;
      bool found = false;
      POMAI_RETURN_IF_ERROR(t.Lookup(ik, &v, &found));
      if (!found || v.kind != ValueKind::kVector) continue;
      if (v.dim != dim || v.metric != metric) return Mismatch(ik, v, dim, metric);
      gathered.push_back(Candidate{0, ik, v});
    }
  } else {
    const Layers& layers = *t.layers;
    const std::string lo(1, static_cast<char>(kv::kUserNs)), hi(1, static_cast<char>(kv::kUserNs + 1));
    std::unordered_set<std::string_view> shadow;  // keys whose visible version is in a newer layer
    // The transaction's own writes hide every layer's versions of their keys.
    for (auto it = t.writes.lower_bound(lo); it != t.writes.end() && it->first < hi; ++it) {
      shadow.insert(it->first);
      const VersionView v = kv::ViewOf(t.snap + 1, *it->second);
      if (v.kind != ValueKind::kVector) continue;
      if (v.dim != dim || v.metric != metric) return Mismatch(it->first, v, dim, metric);
      gathered.push_back(Candidate{0, it->first, v});
    }
    // A memtable's vectors are scored from its blocks of contiguous rows;
    // then, when older layers follow, its keys (of any kind) hide theirs.
    auto memtable = [&](const KeyTable& m, bool hides_older) -> Status {
      POMAI_RETURN_IF_ERROR(ScoreMemtableVectors(pool, m, t.snap, query, dim, metric, shadow, &top));
      if (hides_older) m.Scan(lo, hi, t.snap, [&](std::string_view key, const VersionView&) { shadow.insert(key); });
      return Status::OK();
    };
    POMAI_RETURN_IF_ERROR(memtable(*layers.mem, layers.imm || !layers.segs.empty()));
    if (layers.imm) POMAI_RETURN_IF_ERROR(memtable(*layers.imm, !layers.segs.empty()));
    std::vector<float> scores;
    for (size_t si = 0; si < layers.segs.size(); ++si) {
      const segment::SegmentFile& seg = *layers.segs[si];
      const bool check_shadow = !shadow.empty();
      // A row's entry, checked (its block, then its entry CRC once per open),
      // when it is visible and not hidden by a newer layer.
      auto visible_row = [&](uint32_t g, uint64_t r, segment::EntryView* e, bool* visible) -> Status {
        POMAI_RETURN_IF_ERROR(seg.ReadRowEntry(g, r, e));
        *visible = e->seq <= t.snap && !(check_shadow && shadow.count(e->key));
        return Status::OK();
      };
      for (uint32_t gi = 0; gi < seg.group_count(); ++gi) {
        const segment::GroupInfo& g = seg.group(gi);
        if (g.kind != segment::GroupKind::kRecords) continue;
        segment::EntryView e;
        bool visible = false;
        if (g.dim != dim || g.metric != metric) {
          for (uint64_t r = 0; r < g.rows; ++r) {
            POMAI_RETURN_IF_ERROR(visible_row(gi, r, &e, &visible));
            if (visible) return Mismatch(e.key, ViewOfEntry(seg, e), dim, metric);
          }
          continue;
        }
        // Every block is checked (once per open) before its floats are scored.
        for (uint64_t b = 0; b < g.blocks(); ++b) POMAI_RETURN_IF_ERROR(seg.CheckBlock(gi, b));
        scores.resize(g.rows);
        ScoreRows(pool, metric, query, seg.vectors(gi), g.rows, dim, scores.data());
        // Only a row whose score could enter the top k has its entry read
        // (and checked): its key and seq decide whether it is visible.
        for (uint64_t r = 0; r < g.rows; ++r) {
          float score = scores[r];
          if (!top.MayAccept(score)) continue;
          POMAI_RETURN_IF_ERROR(visible_row(gi, r, &e, &visible));
          if (visible && top.Accepts(score, e.key)) top.Push(Candidate{score, e.key, ViewOfEntry(seg, e)});
        }
      }
      if (si + 1 < layers.segs.size()) {
        // Every key of this segment hides the older segments' versions.
        POMAI_RETURN_IF_ERROR(ForEachEntry(seg, lo, hi, [&](std::string_view key, const VersionView& v) {
          if (v.seq <= t.snap) shadow.insert(key);
        }));
      }
    }
  }
  if (!gathered.empty()) {
    std::vector<const float*> rows(gathered.size());
    std::vector<float> scores(gathered.size());
    for (size_t i = 0; i < gathered.size(); ++i) rows[i] = gathered[i].v.vec;
    const size_t per = RowsPerTask(dim);
    if (pool == nullptr || rows.size() <= per) {
      simd::ScoreGather(metric, query, rows.data(), rows.size(), dim, scores.data());
    } else {
      pool->ParallelFor((rows.size() + per - 1) / per, [&](size_t c) {
        const size_t from = c * per, to = std::min(rows.size(), from + per);
        simd::ScoreGather(metric, query, rows.data() + from, to - from, dim, scores.data() + from);
      });
    }
    for (size_t i = 0; i < gathered.size(); ++i) {
      gathered[i].score = scores[i];
      top.Offer(gathered[i]);
    }
  }
  FillHits(top, metric, return_vectors, out);
  return Status::OK();
}

Status KvTxn::IndexUpsert(std::string_view name, std::string_view key, const float* vector, uint32_t dim,
                          const std::string_view* metadata) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  const std::string ck = ConfigKey(name);
  VersionView v;
  IndexConfig config;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(ck, &v, &found));
  if (!found) return IndexNotFound(name);
  POMAI_RETURN_IF_ERROR(DecodeIndexConfig(v, name, &config));
  if (dim != config.dim)
    return Status::InvalidArgument("dimension mismatch: expected " + std::to_string(config.dim) + ", got " +
                                   std::to_string(dim) + " (index '" +
                                   Printable(name) + "')");
  POMAI_RETURN_IF_ERROR(CheckVector(vector, dim));
  if (metadata != nullptr) POMAI_RETURN_IF_ERROR(CheckValueSize(metadata->size(), "metadata"));
  t.writes[RowKey(v.seq, key)] = MakeVector(vector, dim, config.metric, metadata);  // the cid is the config's seq
  t.checks.insert(ck);
  return Status::OK();
}

Status KvTxn::IndexDelete(std::string_view name, std::string_view key) {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckWritable());
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckKey(key, "key"));
  const std::string ck = ConfigKey(name);
  VersionView v;
  bool found = false;
  POMAI_RETURN_IF_ERROR(t.Lookup(ck, &v, &found));
  if (!found || v.kind != ValueKind::kBytes) return IndexNotFound(name);
  t.writes[RowKey(v.seq, key)] = std::make_shared<kv::Value>();
  t.checks.insert(ck);
  return Status::OK();
}

Status KvTxn::Rollback() {
  POMAI_RETURN_IF_ERROR(state_->CheckActive());
  state_->End();
  return Status::OK();
}

Status KvTxn::Commit() {
  KvTxnState& t = *state_;
  POMAI_RETURN_IF_ERROR(t.CheckActive());
  if (t.writes.empty()) {
    t.End();
    return Status::OK();
  }
  std::vector<kv::Write> writes;
  writes.reserve(t.writes.size());
  for (auto& [key, value] : t.writes) writes.push_back(kv::Write{key, value});
  const uint64_t snap = t.snap;
  std::set<std::string, std::less<>> checks = std::move(t.checks);
  t.End();  // the snapshot is released first: the commit's own versions need not be kept for it
  return t.db->CommitWrites(snap, writes, checks);
}

uint64_t KvDBImpl::UsedBytes(const Layers& l) const {
  uint64_t used = l.mem->bytes();
  if (l.imm) used += l.imm->bytes();
  for (const auto& s : l.segs) used += s->file_size();
  used += indexes->MemoryBytes();
  return used;
}

Status KvDBImpl::CommitWrites(uint64_t snap, const std::vector<kv::Write>& writes,
                              const std::set<std::string, std::less<>>& checks) {
  auto conflict = [] { return Status(Code::kConflict, "transaction conflict"); };  // built only when returned
  const uint64_t cost = WriteCost(writes);
  MutexLock l(&commit_mu);
  if (closed) return Status::Closed("database is closed");
  // A key is taken when a newer version is applied, or when a commit that
  // passed this check is still on its way through the WAL (pending).
  auto taken = [&](const std::string& key, const Layers& cur, bool* is_taken) {
    commit_mu.AssertHeld();
    POMAI_RETURN_IF_ERROR(ChangedSince(cur, key, snap, is_taken));
    *is_taken = *is_taken || pending.count(key) != 0;
    return Status::OK();
  };
  {
    std::shared_ptr<const Layers> cur = Current();
    bool is_taken = false;
    for (const kv::Write& w : writes) {
      POMAI_RETURN_IF_ERROR(taken(w.key, *cur, &is_taken));
      if (is_taken) return conflict();
    }
    for (const std::string& c : checks) {
      POMAI_RETURN_IF_ERROR(taken(c, *cur, &is_taken));
      if (is_taken) return conflict();
    }
    if (opt.memory_limit_bytes != 0 && UsedBytes(*cur) + pending_bytes + cost > opt.memory_limit_bytes)
      return Status::ResourceExhausted("memory limit exceeded");
  }
  // Runs in log order (disk: on the WAL group's leader thread). The
  // memtable is the current one at that moment: a flush switches memtables
  // and WAL files together, inside the WAL's exclusive section.
  uint64_t mem_bytes = 0;  // of the memtable this commit went to, once applied
  auto apply = [&](uint64_t seq) {
    MutexLock al(&apply_mu);
    std::shared_ptr<const Layers> cur = Current();
    {
      // No transaction begins between choosing which old versions to drop
      // and publishing seq, so none can need a dropped one.
      MutexLock sl(&snap_mu);
      const uint64_t min_snap = snapshots.empty() ? seq : std::min(seq, *snapshots.begin());
      mem_bytes = cur->mem->Apply(seq, writes, min_snap);
      last_seq.store(seq);
    }
    indexes->OnCommit(seq, writes);
  };
  Status s;
  if (!wal) {
    apply(last_seq.load() + 1);
  } else {
    // Leave the commit lock while the record is written (and synced), so
    // that concurrent commits share one write and one fdatasync.
    for (const kv::Write& w : writes) ++pending[w.key];
    pending_bytes += cost;
    l.Unlock();
    std::string payload = kv::EncodeCommit(writes);
    if (payload.size() > wal::kMaxPayload) {
      s = Status::InvalidArgument("transaction of " + std::to_string(payload.size()) +
                                  " bytes exceeds the 1 GiB commit limit");
    } else {
      s = EnsureLogFile();
      if (s.ok()) s = wal->Commit(static_cast<uint8_t>(wal::RecordType::kWriteBatch), payload, apply);
    }
    l.Lock();
    for (const kv::Write& w : writes) {
      auto it = pending.find(w.key);
      if (--it->second == 0) pending.erase(it);
    }
    pending_bytes -= cost;
  }
  const bool over = mem_bytes > opt.memtable_budget_bytes;
  l.Unlock();
  if (s.ok() && over) MaybeScheduleFlush();
  return s;
}

// ---------------------------------------------------------------------------
// Flush and merge

void KvDBImpl::MaybeScheduleFlush() {
  MutexLock l(&bg_mu);
  if (bg_pending) return;
  bg_pending = true;
  bg_cv.SignalAll();
}

void KvDBImpl::BackgroundLoop() {
  MutexLock l(&bg_mu);
  for (;;) {
    while (!bg_stop && !bg_pending) bg_cv.Wait(&bg_mu);
    if (bg_stop) return;
    l.Unlock();
    {
      // A failure leaves the frozen memtable (and, on disk, its WAL file) in
      // place: nothing is lost, and the next trigger (a commit over the
      // budget, or Flush(), which returns its own result) writes it again.
      MutexLock f(&flush_mu);
      if (FlushLocked().ok()) (void)MergeLocked();
    }
    l.Lock();
    bg_pending = false;
  }
}

Status KvDB::Flush() {
  KvDBImpl& d = *impl_;
  if (d.opt.in_memory) return Status::InvalidArgument("in-memory database cannot be flushed");
  if (d.closed) return Status::Closed("database is closed");
  MutexLock f(&d.flush_mu);
  // A memtable left frozen by a failed flush is written first, then the
  // current one.
  const bool leftover = d.Current()->imm != nullptr;
  POMAI_RETURN_IF_ERROR(d.FlushLocked());
  if (leftover) POMAI_RETURN_IF_ERROR(d.FlushLocked());
  // The flush is done and durable: a merge that fails (out of space, a
  // damaged input it refuses to copy) changes nothing, is retried after the
  // next flush, and is not this call's failure.
  (void)d.MergeLocked();
  return Status::OK();
}

Status KvDBImpl::FlushLocked() {
  std::shared_ptr<const Layers> frozen;
  {
    MutexLock l(&commit_mu);
    std::shared_ptr<const Layers> cur = Current();
    if (cur->imm) {
      // A failed flush left its memtable frozen: write that one first.
      frozen = cur;
    } else {
      if (cur->mem->empty()) return Status::OK();
      auto freeze = [&]() -> Status {
        flush_mu.AssertHeld();
        std::shared_ptr<const Layers> now = Current();
        auto next = std::make_shared<Layers>(*now);
        next->imm = now->mem;
        next->mem = std::make_shared<KeyTable>();
        imm_seq = last_seq.load();
        Publish(next);
        frozen = next;
        return Status::OK();
      };
      if (!wal) {
        // In memory: commits are applied under commit_mu, which we hold.
        POMAI_RETURN_IF_ERROR(freeze());
      } else {
        // The WAL file and the memtable switch together while no commit is
        // being written or applied: the records of the old file are exactly
        // the versions of the frozen memtable.
        POMAI_RETURN_IF_ERROR(wal->RunExclusive([&]() -> Status {
          flush_mu.AssertHeld();
          POMAI_RETURN_IF_ERROR(NewLogFile());
          {
            MutexLock m(&wals_mu);
            imm_log_number = live_wals.back();
          }
          return freeze();
        }));
      }
    }
  }
  const uint64_t log_number = imm_log_number, flush_seq = imm_seq;
  const KeyTable& imm = *frozen->imm;
  std::vector<SegmentInput> inputs;
  imm.Newest([&](const std::string& key, uint64_t seq, const kv::Value& v) { inputs.push_back({key, kv::ViewOf(seq, v)}); });
  const uint64_t number = NewFileNumber();
  const std::string name = files::FileName(files::FileType::kSegment, number);
  Status s = WriteSegment(env, opt.path, number, inputs);
  std::shared_ptr<const segment::SegmentFile> seg;
  if (s.ok()) {
    auto r = segment::SegmentFile::Open(env, JoinPath(opt.path, name));
    if (r.ok()) {
      seg = std::move(r).value();
    } else {
      s = r.status();
    }
  }
  std::vector<uint64_t> obsolete;
  bool manifest_tried = false;
  if (s.ok()) {
    // The segment stands for the seqs after the last flush up to the frozen
    // memtable's last one (docs/ENGINE.md 3.5).
    MutexLock m(versions->install_mu());
    manifest_tried = true;
    VersionEdit edit;
    edit.log_number = log_number;
    edit.last_seq = flush_seq;
    edit.added.push_back({number, seg->file_size(), versions->current()->last_seq + 1, flush_seq});
    s = versions->LogAndApply(&edit);
  }
  if (s.ok()) {
    MutexLock w(&wals_mu);
    for (uint64_t n : live_wals) {
      if (n < log_number) obsolete.push_back(n);
    }
    live_wals.erase(std::remove_if(live_wals.begin(), live_wals.end(), [&](uint64_t n) { return n < log_number; }),
                    live_wals.end());
  }
  if (!s.ok()) {
    // The frozen memtable stays readable as imm (and its WAL files stay
    // live) until a later flush writes it. A failed LogAndApply may have
    // made its edit durable all the same (the record written, its sync
    // failed): the segment it names must stay. The next recovery removes
    // it if the manifest does not name it.
    if (!manifest_tried) (void)env->RemoveFile(JoinPath(opt.path, name));
    return s;
  }
  {
    MutexLock l(&commit_mu);  // the active memtable does not change under us
    std::shared_ptr<const Layers> cur = Current();
    auto next = std::make_shared<Layers>(*cur);
    next->imm.reset();
    next->segs.insert(next->segs.begin(), seg);
    Publish(next);
  }
  for (uint64_t w : obsolete) (void)env->RemoveFile(FilePath(files::FileType::kLog, w));
  return Status::OK();
}

Status KvDBImpl::MergeLocked() {
  // The policy may ask for several merges in a row.
  for (bool merged = true; merged;) POMAI_RETURN_IF_ERROR(MergeRunLocked(&merged));
  return Status::OK();
}

Status KvDBImpl::MergeRunLocked(bool* merged) {
  *merged = false;
  std::shared_ptr<const Layers> cur = Current();
  if (cur->imm) return Status::OK();  // a failed flush goes first
  std::vector<uint64_t> weights;
  for (const auto& seg : cur->segs) weights.push_back(seg->entry_count() + 1);
  const MergeRun run = PickMergeRun(weights, opt.max_segments, false, false);
  if (run.count == 0) return Status::OK();
  const bool reaches_oldest = run.first + run.count == cur->segs.size();
  const std::vector<std::shared_ptr<const segment::SegmentFile>> in(
      cur->segs.begin() + static_cast<std::ptrdiff_t>(run.first),
      cur->segs.begin() + static_cast<std::ptrdiff_t>(run.first + run.count));

  // Snapshots and collections (docs/ENGINE.md 4.7). A tombstone is dropped
  // only when the run reaches the oldest segment (nothing older is left for
  // it to hide) and no live transaction began before it (that one's commit
  // must still see the delete as a newer version of the key). Rows of a
  // collection no current configuration names are dropped when every live
  // transaction began after the newest configuration change.
  uint64_t oldest_snapshot = 0;
  {
    MutexLock l(&snap_mu);
    oldest_snapshot = snapshots.empty() ? last_seq.load() : *snapshots.begin();
  }
  const uint64_t view_seq = last_seq.load();
  std::set<uint64_t> live_cids;
  uint64_t newest_config_change = 0;
  {
    const std::string lo(1, static_cast<char>(wal::kIndexConfigNs)), hi(1, static_cast<char>(wal::kIndexConfigNs + 1));
    std::set<std::string, std::less<>> seen;
    auto take = [&](std::string_view key, const VersionView& v) {
      if (v.seq > view_seq) return;
      newest_config_change = std::max(newest_config_change, v.seq);
      if (seen.emplace(key).second && v.kind == ValueKind::kBytes) live_cids.insert(v.seq);
    };
    cur->mem->Scan(lo, hi, view_seq, take);
    for (const auto& seg : cur->segs) POMAI_RETURN_IF_ERROR(ForEachEntry(*seg, lo, hi, take));
  }
  const bool drop_dead_rows = oldest_snapshot >= newest_config_change;

  // k-way merge of the run's entries, newest version per key (the run is
  // newest first). Every entry read is checked whole (ReadEntry: its CRC, a
  // vector's block): a damaged one fails the merge before anything is written.
  const size_t n = in.size();
  std::vector<uint64_t> pos(n, 0);
  std::vector<segment::EntryView> head(n);
  auto load = [&](size_t i) -> Status {
    if (pos[i] >= in[i]->entry_count()) return Status::OK();
    const std::string_view prev = head[i].key;
    POMAI_RETURN_IF_ERROR(in[i]->ReadEntry(pos[i], &head[i]));
    if (pos[i] > 0 && !(prev < head[i].key))
      return Status::Corruption(in[i]->path() + ": entry " + std::to_string(pos[i]) + "'s key is not above the previous one");
    return Status::OK();
  };
  for (size_t i = 0; i < n; ++i) POMAI_RETURN_IF_ERROR(load(i));
  std::vector<SegmentInput> inputs;
  for (;;) {
    int best = -1;
    for (size_t i = 0; i < n; ++i) {
      if (pos[i] < in[i]->entry_count() && (best < 0 || head[i].key < head[best].key)) best = static_cast<int>(i);
    }
    if (best < 0) break;
    const SegmentInput next{head[best].key, ViewOfEntry(*in[best], head[best])};
    for (size_t i = 0; i < n; ++i) {
      if (pos[i] < in[i]->entry_count() && head[i].key == next.key) {
        ++pos[i];
        POMAI_RETURN_IF_ERROR(load(i));
      }
    }
    uint64_t cid = 0;
    std::string_view row_key;
    if (drop_dead_rows && ParseRowKey(next.key, &cid, &row_key) && !live_cids.count(cid)) continue;
    if (next.v.kind == ValueKind::kTombstone && reaches_oldest && next.v.seq <= oldest_snapshot) continue;
    inputs.push_back(next);
  }

  std::shared_ptr<const segment::SegmentFile> out;
  uint64_t number = 0;
  if (!inputs.empty()) {
    number = NewFileNumber();
    POMAI_RETURN_IF_ERROR(WriteSegment(env, opt.path, number, inputs));
    auto opened = segment::SegmentFile::Open(env, FilePath(files::FileType::kSegment, number));
    if (!opened.ok()) {
      (void)env->RemoveFile(FilePath(files::FileType::kSegment, number));
      return opened.status();
    }
    out = std::move(opened).value();
  }
  {
    // The merged segment stands for the union of its inputs' seq intervals
    // (adjacent in the interval order). On failure the edit may be durable
    // all the same (see FlushLocked): the merged segment stays for the next
    // recovery to keep or remove.
    MutexLock m(versions->install_mu());
    VersionEdit edit;
    SegmentMeta meta{number, out ? out->file_size() : 0, UINT64_MAX, 0};
    const std::vector<SegmentMeta>& live_segments = versions->current()->segments;
    for (const auto& seg : in) {
      auto live = std::find_if(live_segments.begin(), live_segments.end(),
                               [&](const SegmentMeta& m) { return m.number == seg->file_number(); });
      if (live == live_segments.end()) return Status::Internal("merge input " + seg->path() + " is not in the manifest");
      edit.removed.push_back(live->number);
      meta.first_seq = std::min(meta.first_seq, live->first_seq);
      meta.last_seq = std::max(meta.last_seq, live->last_seq);
    }
    if (out) edit.added.push_back(meta);
    POMAI_RETURN_IF_ERROR(versions->LogAndApply(&edit));
  }
  {
    MutexLock l(&commit_mu);
    auto next = std::make_shared<Layers>(*Current());
    // Flushes wait for flush_mu, which we hold: the run is where we read it.
    auto at = next->segs.erase(next->segs.begin() + static_cast<std::ptrdiff_t>(run.first),
                               next->segs.begin() + static_cast<std::ptrdiff_t>(run.first + run.count));
    if (out) next->segs.insert(at, out);
    Publish(next);
  }
  // Readers still holding the old segments keep their mappings alive.
  for (const auto& seg : in) (void)env->RemoveFile(FilePath(files::FileType::kSegment, seg->file_number()));
  *merged = true;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Memory, indexes, test hooks

MemoryStats KvDB::MemoryUsage() {
  KvDBImpl& d = *impl_;
  MemoryStats m;
  m.used_bytes = d.UsedBytes(*d.Current());
  m.total_bytes = d.opt.memory_limit_bytes ? d.opt.memory_limit_bytes : PhysicalMemory();
  m.free_bytes = m.total_bytes > m.used_bytes ? m.total_bytes - m.used_bytes : 0;
  return m;
}

size_t KvDB::TEST_SegmentCount() { return impl_->Current()->segs.size(); }
uint64_t KvDB::TEST_LastSequence() { return impl_->last_seq.load(); }

namespace {

// The end of the key range of `prefix` (whose last byte is below 0xff).
std::string PrefixEnd(std::string prefix) {
  prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

// Every entry of the range [prefix, PrefixEnd(prefix)) visible at `snap`, as
// the newest layer holding it says: key (without the prefix) -> view.
// Tombstones are left out.
// A damaged segment entry in the range is Corruption.
using RangeMap = std::map<std::string, VersionView, std::less<>>;
Status ScanRange(const Layers& layers, const std::string& prefix, uint64_t snap, RangeMap* result) {
  const std::string end = PrefixEnd(prefix);
  RangeMap& out = *result;
  out.clear();
  std::unordered_set<std::string> seen;
  auto take = [&](std::string_view key, const VersionView& v) {
    if (!seen.insert(std::string(key)).second) return;
    if (v.kind != ValueKind::kTombstone) out.emplace(std::string(key.substr(prefix.size())), v);
  };
  layers.mem->Scan(prefix, end, snap, take);
  if (layers.imm) layers.imm->Scan(prefix, end, snap, take);
  for (const auto& seg : layers.segs) {
    POMAI_RETURN_IF_ERROR(ForEachEntry(*seg, prefix, end, [&](std::string_view key, const VersionView& v) {
      if (v.seq <= snap) take(key, v);
    }));
  }
  return Status::OK();
}

std::map<std::string, kv::IndexEntry, std::less<>> EntriesOf(const std::map<std::string, VersionView, std::less<>>& range,
                                                             uint32_t dim) {
  std::map<std::string, kv::IndexEntry, std::less<>> out;
  for (const auto& [key, v] : range) {
    if (v.kind != ValueKind::kVector || v.dim != dim) continue;
    out.emplace(key, kv::IndexEntry{v.seq, v.vec, v.has_metadata, v.bytes});
  }
  return out;
}

Status CheckIndexConfig(const IndexConfig& c) {
  if (!CheckDim(c.dim, "index").ok())
    return Status::InvalidArgument("invalid parameter dimension: must be between 1 and 65535 (got " +
                                   std::to_string(c.dim) + ")");
  POMAI_RETURN_IF_ERROR(index::CheckHnswParams(c.m, c.ef_construction));
  if (static_cast<uint32_t>(c.metric) > 2)
    return Status::InvalidArgument("invalid parameter metric: must be 0 (L2), 1 (INNER_PRODUCT) or 2 (COSINE) (got " +
                                   std::to_string(static_cast<uint32_t>(c.metric)) + ")");
  return Status::OK();
}

}  // namespace

// A registered snapshot, released at destruction.
struct PinnedSnapshot {
  KvDBImpl* db;
  uint64_t snap;
  std::shared_ptr<const Layers> layers;
  std::multiset<uint64_t>::iterator reg;
  explicit PinnedSnapshot(KvDBImpl* d) : db(d) {
    MutexLock l(&db->snap_mu);
    snap = db->last_seq.load();
    reg = db->snapshots.insert(snap);
    layers = db->Current();
  }
  ~PinnedSnapshot() {
    MutexLock l(&db->snap_mu);
    db->snapshots.erase(reg);
  }
};

Result<std::shared_ptr<kv::IndexRuntime>> KvDBImpl::LoadIndex(const std::string& name, bool rebuild,
                                                               const std::function<void(uint64_t, uint64_t)>& progress) {
  MutexLock lm(&index_load_mu);
  if (!rebuild) {
    if (auto rt = indexes->Find(name)) return rt;
  }
  const std::string ck = ConfigKey(name);
  for (;;) {
    if (closed) return Status::Closed("database is closed");
    std::shared_ptr<kv::IndexRuntime> rt;
    uint64_t config_seq = 0;
    IndexConfig config;
    bool built = false;
    {
      PinnedSnapshot pin(this);
      VersionView cv;
      bool found = false;
      POMAI_RETURN_IF_ERROR(LookupLayers(*pin.layers, ck, pin.snap, &cv, &found));
      if (!found) return IndexNotFound(name);
      POMAI_RETURN_IF_ERROR(DecodeIndexConfig(cv, name, &config));
      config_seq = cv.seq;
      // After a reopen: the graph the last build wrote, when it only holds
      // versions this open recovered (a commit lost in a crash may have had
      // a seq that a later commit reuses).
      if (!rebuild && !opt.in_memory && config_seq <= open_seq) {
        auto loaded = kv::IndexRuntime::OpenGraphFile(env, JoinPath(opt.path, kv::IndexGraphFileName(name, config_seq)),
                                                      name, config, config_seq);
        if (loaded.ok() && loaded.value()->base_max_seq() <= open_seq) rt = std::move(loaded).value();
      }
      if (!rt) {
        RangeMap range;
        POMAI_RETURN_IF_ERROR(ScanRange(*pin.layers, RowPrefix(config_seq), pin.snap, &range));
        const auto entries = EntriesOf(range, config.dim);
        POMAI_ASSIGN_OR_RETURN(rt, kv::IndexRuntime::Build(config, config_seq, entries, pool.get(), progress));
        graph_builds.fetch_add(1);
        built = true;
      }
    }
    if (built && !opt.in_memory) {
      // A cache of the build: when the write fails, the next build tries again.
      (void)rt->WriteGraphFile(env, opt.path, name);
      RemoveIndexGraphFiles(name, config_seq);
    }
    // No commit is applied while the runtime catches up and is installed:
    // every later one reaches it through OnCommit.
    MutexLock l(&apply_mu);
    std::shared_ptr<const Layers> cur = Current();
    const uint64_t latest = last_seq.load();
    VersionView cv;
    bool found = false;
    POMAI_RETURN_IF_ERROR(LookupLayers(*cur, ck, latest, &cv, &found));
    if (!found || cv.kind == ValueKind::kTombstone) return IndexNotFound(name);
    if (cv.seq != config_seq) continue;  // replaced while we built: again
    RangeMap range;
    POMAI_RETURN_IF_ERROR(ScanRange(*cur, RowPrefix(config_seq), latest, &range));
    rt->CatchUp(EntriesOf(range, config.dim));
    indexes->Install(name, rt);
    // Commits made during the build may already call for the next one.
    if (rt->ClaimRebuild()) ScheduleRebuild(name);
    return rt;
  }
}

void KvDBImpl::RemoveIndexGraphFiles(const std::string& name, uint64_t keep_config_seq) {
  auto names = env->ListDir(opt.path);
  if (!names.ok()) return;  // left for the next build or drop
  const std::string prefix = kv::IndexGraphFilePrefix(name);
  const std::string keep = keep_config_seq != 0 ? kv::IndexGraphFileName(name, keep_config_seq) : std::string();
  for (const std::string& f : names.value()) {
    // A name with the same hash has files of the same prefix: this removes
    // them too, which costs that index a rebuild, never data.
    if (f.rfind(prefix, 0) == 0 && f != keep) (void)env->RemoveFile(JoinPath(opt.path, f));
  }
}

void KvDBImpl::ScheduleRebuild(const std::string& name) {
  MutexLock l(&rebuild_mu);
  if (closed) return;
  // Reap finished rebuilds.
  for (auto it = rebuilds.begin(); it != rebuilds.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = rebuilds.erase(it);
    } else {
      ++it;
    }
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([this, name, done] {
    auto old = indexes->Find(name);
    auto r = LoadIndex(name, true);
    if (!r.ok() && old) old->RebuildDone();  // try again after more writes
    done->store(true);
  });
  rebuilds.push_back(Rebuild{std::move(t), done});
}

Status KvDBImpl::WriteIndexConfig(const std::string& name, const IndexConfig* config) {
  // One commit of the configuration key (ENGINE.md 2.4): the entries of the
  // configuration it replaces are keyed by that one's cid, so none of them
  // is reachable from the new one, and merges drop them.
  const std::string ck = ConfigKey(name);
  for (int attempt = 0;; ++attempt) {
    uint64_t snap = 0;
    {
      PinnedSnapshot pin(this);
      snap = pin.snap;
      VersionView cv;
      bool exists = false;
      POMAI_RETURN_IF_ERROR(LookupLayers(*pin.layers, ck, pin.snap, &cv, &exists));
      if (config == nullptr && (!exists || cv.kind == ValueKind::kTombstone)) return IndexNotFound(name);
    }
    auto cfg = std::make_shared<kv::Value>();
    if (config != nullptr) {
      cfg->kind = ValueKind::kBytes;
      cfg->bytes = CollectionOf(*config).Encode();
    }
    Status s = CommitWrites(snap, {kv::Write{ck, std::move(cfg)}}, {ck});
    if (s.code() != Code::kConflict || attempt >= 100) return s;
  }
}

Status KvDB::CreateIndex(std::string_view name, const IndexConfig& config) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(CheckIndexConfig(config));
  return impl_->WriteIndexConfig(std::string(name), &config);
}

Status KvDB::DropIndex(std::string_view name) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_RETURN_IF_ERROR(impl_->WriteIndexConfig(std::string(name), nullptr));
  if (!impl_->opt.in_memory) {
    MutexLock lm(&impl_->index_load_mu);
    impl_->RemoveIndexGraphFiles(std::string(name), 0);
  }
  return Status::OK();
}

uint64_t KvDB::TEST_GraphBuilds() { return impl_->graph_builds.load(); }

Status KvDB::GetIndexStats(std::string_view name, IndexStats* out) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_ASSIGN_OR_RETURN(auto rt, impl_->LoadIndex(std::string(name), false));
  *out = rt->Stats();
  return Status::OK();
}

Status KvDB::PrepareIndex(std::string_view name, const std::function<void(uint64_t done, uint64_t total)>& progress) {
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  return impl_->LoadIndex(std::string(name), false, progress).status();
}

Status KvDB::SearchIndex(std::string_view name, const float* query, uint32_t dim, uint32_t k, uint32_t ef_search,
                         std::vector<KvHit>* out, IndexStats* stats) {
  out->clear();
  if (impl_->closed) return Status::Closed("database is closed");
  POMAI_RETURN_IF_ERROR(CheckCollectionName(name));
  POMAI_ASSIGN_OR_RETURN(auto rt, impl_->LoadIndex(std::string(name), false));
  if (dim != rt->config().dim)
    return Status::InvalidArgument("dimension mismatch: expected " + std::to_string(rt->config().dim) + ", got " +
                                   std::to_string(dim) + " (index '" +
                                   Printable(name) + "')");
  POMAI_RETURN_IF_ERROR(CheckVector(query, dim, "query"));
  const uint32_t ef = std::max(k, ef_search != 0 ? ef_search : 50u);
  POMAI_RETURN_IF_ERROR(rt->Search(query, k, ef, out));
  if (stats != nullptr) *stats = rt->Stats();
  return Status::OK();
}

}  // namespace pomai::engine
