// Internals of the keyspace engine (engine/db.h) shared by its .cc files:
// db.cc (open, transactions, flush, merge, named collections),
// collection_rows.cc (the default collection's rows), collection_scan.cc (its
// reads by filter; with rows_view.h) and txn_scan.cc (key-range scans in
// transactions). Not part of any API.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/collection.h"
#include "engine/filename.h"
#include "engine/db.h"
#include "engine/version_set.h"
#include "memtable/attr_columns.h"
#include "memtable/memtable.h"
#include "segment/file.h"
#include "util/env_memory.h"
#include "util/mutex.h"
#include "util/thread_pool.h"
#include "wal/log_writer.h"

namespace pomai::engine {

using memtable::KeyTable;
using memtable::MemTable;
using memtable::RowSet;

// ---------------------------------------------------------------------------
// Internal state

// The segment part of a collection's statistics (docs/ENGINE.md 4.8): what
// its groups in a view's segments hold, each row shadowed only by newer
// segments. Computed once per set of segments.
struct SegmentStats {
  uint64_t live_graph_rows = 0;     // rows in a graph, not shadowed
  uint64_t live_rows = 0;           // rows in a group without a graph, not shadowed
  uint64_t dead_graph_rows = 0;     // graph nodes shadowed by a newer segment
  std::vector<uint64_t> levels;     // graph nodes per top level
  uint64_t layer0_links = 0;
  uint64_t bytes = 0;               // the groups' vectors and graphs
};

// The layers a reader sees, newest first. Immutable once published.
struct Layers {
  std::shared_ptr<MemTable> mem;
  std::shared_ptr<MemTable> imm;  // being flushed, or null
  std::vector<std::shared_ptr<const segment::SegmentFile>> segs;  // newest first (highest seqs first)
  uint64_t generation = 0;  // set by Publish: each published view has its own
};

// A range [lo, hi) of internal keys that a read-write transaction scanned.
struct KeyRange {
  std::string lo, hi;
};

// Past this many times max_segments segments, the background flush thread
// runs the merges itself before its next flush (LevelDB's level-0 stop
// trigger): a writer faster than the compaction thread is held back instead
// of growing the number of segments every read visits without bound.
constexpr size_t kStallSegmentsPerMax = 3;

struct DBImpl {
  Options opt;
  std::unique_ptr<MemoryEnv> memory_env;  // in-memory mode: where segments and the manifest live
  Env* env = nullptr;
  std::unique_ptr<FileLock> lock;
  std::unique_ptr<ThreadPool> pool;  // null when search_threads == 1

  // Lock order: row_writes_mu -> compact_mu -> flush_mu -> commit_mu -> apply_mu ->
  // versions->install_mu() -> snap_mu -> layers_mu -> a memtable's own lock;
  // bg_mu, stats_mu, wals_mu and schema_mu are taken alone.
  Mutex commit_mu;  // conflict checks, pending, the memtable switch of a flush
  std::map<std::string, int, std::less<>> pending GUARDED_BY(commit_mu);  // keys of commits in the WAL, not yet applied
  uint64_t pending_bytes GUARDED_BY(commit_mu) = 0;                        // their WriteCost
  Mutex apply_mu;   // held while a commit is applied to the memtable
  std::unique_ptr<wal::Writer> wal;  // disk mode only
  std::atomic<bool> wal_file_open{false};  // this open has created a WAL file (NewLogFile)
  std::atomic<uint64_t> last_seq{0};  // every commit <= it is applied and visible

  mutable Mutex layers_mu;
  std::shared_ptr<const Layers> layers GUARDED_BY(layers_mu);

  Mutex snap_mu;
  std::multiset<uint64_t> snapshots GUARDED_BY(snap_mu);  // seqs of the live transactions

  // The manifest (docs/ENGINE.md 3.5): the live segments, log number, last
  // seq; changed only by versions->LogAndApply, by a flush (under flush_mu)
  // or a merge (under compact_mu), each installing its edit under install_mu.
  std::unique_ptr<VersionSet> versions;
  Mutex wals_mu;
  std::vector<uint64_t> live_wals GUARDED_BY(wals_mu);  // WAL files numbered >= the version's log number
  Status log_file_error GUARDED_BY(wals_mu);  // EnsureLogFile failed: commits refused

  // One merge at a time. Taken before flush_mu when both are (WithFilesHeld);
  // a merge runs beside a flush: a flush only adds the newest segment, so
  // the run a merge read stays contiguous and in place relative to its
  // neighbours, and the merge installs it where it finds it then.
  Mutex compact_mu;
  Mutex flush_mu;  // one flush at a time
  uint64_t imm_log_number GUARDED_BY(flush_mu) = 0;  // the first WAL file not needed by imm
  uint64_t imm_seq GUARDED_BY(flush_mu) = 0;         // the last seq in imm

  Mutex bg_mu;
  CondVar bg_cv;
  bool bg_stop GUARDED_BY(bg_mu) = false;
  bool bg_pending GUARDED_BY(bg_mu) = false;
  bool bg_flushing GUARDED_BY(bg_mu) = false;  // the background thread is flushing (back-pressure waits for it)
  bool compact_pending GUARDED_BY(bg_mu) = false;  // a merge is asked of the compaction thread
  bool TEST_merges_paused GUARDED_BY(bg_mu) = false;  // TEST_PauseBackgroundMerges
  std::thread bg_thread;       // background flushes
  std::thread compact_thread;  // background merges (the tiered policy after each flush)

  std::atomic<bool> closed{false};

  // The attribute columns of named-index segment groups (one slot per row,
  // decoded from the entries' attribute records: db.cc, KeyLayer), by
  // (segment file number, group): built by the first filtered search over
  // the group, dropped when the segment is no longer live (segments are
  // immutable, numbers unique).
  Mutex index_attrs_mu;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<const memtable::AttrColumns>> index_attrs
      GUARDED_BY(index_attrs_mu);
  // Each named index's attribute types (by cid): built from its layers by
  // the first commit of this open that gives its entries attributes, then
  // extended by each such commit when its check passes (db.cc,
  // CheckIndexAttributes). An attribute's type is fixed by its first write.
  std::map<uint64_t, std::map<std::string, AttrType, std::less<>>> index_schemas GUARDED_BY(commit_mu);

  // The default collection (OpenDefaultCollection): `rows` is set once, with
  // release, after rows_opt and rows_cid are written; readers load it first.
  std::atomic<bool> rows_open{false};
  DefaultCollectionOptions rows_opt;
  uint64_t rows_cid = 0;
  // The vector mapping of the last retired row set, for the next one (RowSet).
  std::shared_ptr<MappingCache> row_cache = std::make_shared<MappingCache>(uint64_t{512} << 20);
  std::atomic<uint64_t> graph_builds{0};
  // last_seq + 1 when a first build's flush failed at last_seq (0: none):
  // reads do not try again until a commit changes what there is to flush.
  std::atomic<uint64_t> failed_build_seq{0};

  // Rows written to each collection in the active memtable (every row write
  // of a commit counts): the background flush trigger of ENGINE.md 4.6.
  std::map<uint64_t, uint64_t> mem_rows GUARDED_BY(apply_mu);

  // The last statistics computed per collection (ENGINE.md 4.8).
  struct StatsCache {
    std::vector<uint64_t> segments;  // file numbers of the view the segment part is of
    SegmentStats seg;
    uint64_t generation = 0;  // the view and seq the result is of
    uint64_t seq = 0;
    IndexStats result;
  };
  Mutex stats_mu;
  std::map<uint64_t, StatsCache> stats_cache GUARDED_BY(stats_mu);

  // Makes collection `name` searchable through graphs (ENGINE.md 4.6): when
  // it has committed rows in the memtables and no segment group of it has a
  // graph, flushes now, reporting the graph builds to `progress`. For a
  // read (`for_read`), a failed flush is not an error (the rows are searched
  // exactly) and is not tried again before the next commit.
  Status PrepareCollection(std::string_view name, bool for_read, const std::function<void(uint64_t, uint64_t)>& progress);
  Status CollectionStats(const Layers& layers, uint64_t snap, uint64_t cid, const IndexConfig& config, IndexStats* out);
  Status WriteIndexConfig(const std::string& name, const IndexConfig* config);
  // Counts a commit's row writes per collection (mem_rows); true when a
  // collection's rows in the active memtable reach max(1024, its segment
  // rows / 8), the background flush that puts them into a graph.
  // Checks the attribute types of the named-index entries in `writes`
  // against index_schemas (built from `cur` for an index met the first
  // time) and adds their new attributes there: INVALID_ARGUMENT naming the
  // entry, the attribute and both types, nothing added, when one differs.
  Status CheckIndexAttributes(const Layers& cur, const std::vector<Write>& writes) REQUIRES(commit_mu);
  bool CountRowWrites(const Layers& cur, const std::vector<Write>& writes) REQUIRES(apply_mu);

  std::shared_ptr<const Layers> Current() const {
    MutexLock l(&layers_mu);
    return layers;
  }
  void Publish(std::shared_ptr<Layers> next) {
    MutexLock l(&layers_mu);
    next->generation = layers ? layers->generation + 1 : 1;
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
  // `progress` gets the graph builds' (rows linked, rows).
  Status FlushLocked(const std::function<void(uint64_t, uint64_t)>& progress = nullptr) REQUIRES(flush_mu);
  // Flushes what the memtables hold (a memtable a failed flush left frozen
  // first). Merges are the caller's to ask for (ScheduleCompaction, or
  // MergeLocked under compact_mu).
  Status FlushAllLocked(const std::function<void(uint64_t, uint64_t)>& progress) REQUIRES(flush_mu);
  // Merges runs of segments while the policy (PickMergeRun) picks one.
  // force: one merge of every segment (PickMergeRun's force); then none.
  Status MergeLocked(bool force, const ProgressFn& progress) REQUIRES(compact_mu);
  Status MergeRunLocked(bool force, const ProgressFn& progress, bool* merged) REQUIRES(compact_mu);
  void BackgroundLoop();
  void CompactionLoop();
  void MaybeScheduleFlush();
  // The WAL's sticky error as the refusal of `what` ("writes", "flushes"):
  // after a failed log write, staged rows may sit unpublished in the
  // memtable, so nothing more is written or flushed.
  Status CheckWritable(const char* what) const;
  // Past kStallSegmentsPerMax x max_segments segments, runs the policy's
  // merges on the calling thread (after a flush: the background flush thread
  // and Flush()).
  void MergeIfStalled();
  // Asks the compaction thread for the policy's merges (after a flush).
  void ScheduleCompaction();
  // Commits `writes` (sorted by key) for a transaction that read at `snap`:
  // CONFLICT when a key written, a key of `checks` or a key in a range of
  // `ranges` has a version newer than snap (or is in a commit still on its
  // way through the WAL).
  Status CommitWrites(uint64_t snap, const std::vector<Write>& writes, const std::set<std::string, std::less<>>& checks,
                      const std::vector<KeyRange>& ranges = {});
  uint64_t UsedBytes(const Layers& l) const;

  // ---- The default collection's attribute columns (docs/FILTERS.md).
  // Loaded by OpenDefaultCollection from the segments and memtables, grown by
  // writes (a new column's type is fixed when a write first names it).
  mutable Mutex schema_mu;
  AttrSchema attr_schema GUARDED_BY(schema_mu);  // sorted by name
  AttrSchema Schema() const {
    MutexLock l(&schema_mu);
    return attr_schema;
  }
  // Checks `columns` against the schema and adds the new ones; InvalidArgument
  // naming a column whose type differs, or past kMaxAttrColumns columns.
  Status AddColumns(const std::vector<AttrColumn>& columns);
  // The columns the layers hold (segments' u64 groups of the collection,
  // the memtables' row sets): Corruption when two disagree on a type.
  Status LoadSchema(const Layers& layers);
  // Row writes hold it shared; UpdateAttributes exclusively, so that what it
  // reads is what its new versions replace. Taken before commit_mu.
  SharedMutex row_writes_mu;

  // ---- The default collection (collection_rows.cc).
  // InvalidArgument unless OpenDefaultCollection succeeded; Closed after Close.
  Status CheckRowsOpen() const;
  // Commits one row record (a write batch of row ops, or a row array given as
  // its pieces) blindly: stage = the rows into the active row set at the
  // record's seq, apply = publish. Then the budget: a flush is scheduled past
  // it, and past twice it the writer waits for the running flush.
  Status CommitRows(wal::RecordType type, const std::string_view* pieces, size_t count,
                    const std::function<void(RowSet&, uint64_t seq)>& stage, uint64_t bytes);
  // Stages a decoded row record into `rows` (recovery and CommitRows).
  // Corruption naming `origin` for an op of another collection or dim.
  static Status StageRowOps(RowSet& rows, uint64_t seq, const std::vector<wal::RecordOp>& ops, const std::string& origin);
  static void StageRowArray(RowSet& rows, uint64_t seq, const uint8_t* ids, const uint8_t* vectors, size_t n);
  // Stages a row batch (ids little-endian u64, vectors rows x dim f32, both
  // any alignment; metadata when meta_offsets is set; columns).
  static Status StageRowBatch(RowSet& rows, uint64_t seq, const uint8_t* ids, const void* vectors, size_t n,
                              const uint64_t* meta_offsets, std::string_view meta_blob,
                              const std::vector<AttrColumn>& columns);
  // Logs and applies `in` (checked by the caller, its columns in the schema)
  // as one row-batch record.
  Status CommitRowBatch(const RowsIn& in);
  // Waits while the memtables are past twice the budget and a flush is running or pending.
  void BackPressure();
};


// The newest version of `key` visible at `snap` in `layers` (*found false
// when no layer has one). A damaged segment entry is Corruption.
Status LookupLayers(const Layers& layers, std::string_view key, uint64_t snap, VersionView* out, bool* found);

// A segment entry as the version of its key (db.cc).
VersionView ViewOfEntry(const segment::SegmentFile& seg, const segment::EntryView& e);

// ---- Scans (txn_scan.cc)

// A scan's memtable versions, kept for the scan's next batches (txn_scan.cc).
struct ScanCache;

// Whether any key in [lo, hi) has a version newer than `snap` in `layers`
// (a commit's range check). Memtables whose newest seq is <= snap and
// segments whose versions are all <= snap are not read.
Status RangeChangedSince(const Layers& layers, std::string_view lo, std::string_view hi, uint64_t snap, bool* changed);

// ---- Transactions (db.cc, txn_scan.cc)

struct TxnState {
  DBImpl* db = nullptr;
  TxnMode mode = TxnMode::kReadOnly;
  uint64_t snap = 0;
  std::shared_ptr<const Layers> layers;
  std::multiset<uint64_t>::iterator reg;
  bool active = true;
  std::map<std::string, ValuePtr, std::less<>> writes;  // internal key -> new value
  std::set<std::string, std::less<>> checks;            // keys that must not change before commit
  // Read-write only: the ranges its scans returned, sorted and disjoint;
  // no key in them may change before commit.
  std::vector<KeyRange> scanned;
  // The memtable versions of its latest scans, most recent first (txn_scan.cc).
  std::vector<std::shared_ptr<ScanCache>> scan_caches;

  void End() {
    if (!active) return;
    active = false;
    {
      MutexLock l(&db->snap_mu);
      db->snapshots.erase(reg);
    }
    scan_caches.clear();  // before the layers its keys point into
    layers.reset();
    writes.clear();
    checks.clear();
    scanned.clear();
  }
  // Own writes first, then the snapshot.
  // *found false when absent; Corruption when a segment entry is damaged.
  Status Lookup(std::string_view key, VersionView* out, bool* found) const {
    auto it = writes.find(key);
    if (it != writes.end()) {
      *out = ViewOf(snap + 1, *it->second);
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

}  // namespace pomai::engine
