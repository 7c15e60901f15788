// DB: one database directory of float32 vectors keyed by u64 id.
//
// Layout of the write path: one WAL (group commit, one record per batch, so a
// batch is atomic across shards) feeding `shards` memtables (id % shards);
// Freeze turns every shard's memtable into an immutable, mmap'd segment file.
// Searches run over each shard's memtable, its memtable being frozen and its
// segments, in parallel on the search pool, newest version wins.
//
// Thread-safety: every method may be called concurrently from any thread,
// except that Close must not race with other calls (lib/capi serialises that).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/kv_db.h"
#include "engine/manifest.h"
#include "engine/topk.h"
#include "index/hnsw.h"
#include "memtable/memtable.h"
#include "segment/segment.h"
#include "simd/distance.h"
#include "util/env.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_pool.h"
#include "wal/log_writer.h"
#include "wal/record_codec.h"

namespace pomai::engine {

struct Options {
  std::string path;
  uint32_t dim = 0;
  uint32_t shards = 1;
  simd::Metric metric = simd::Metric::kL2;
  uint32_t search_threads = 0;          // 0 = all cores
  bool fsync = false;                    // fdatasync the WAL before acknowledging
  uint64_t memory_budget_bytes = 0;      // memtables size that triggers a freeze; 0 = 256 MiB
  uint32_t deadline_ms = 0;              // default per-call budget; 0 = none
  bool build_graphs = true;              // HNSW graph per segment (false: IVF requested; searches stay exact)
  uint32_t hnsw_m = 32;                  // for segments built by this open (each segment records its own)
  uint32_t hnsw_ef_construction = 200;
  uint32_t hnsw_ef_search = 64;          // default ef of graph searches; never below k
  uint32_t adaptive_threshold = 5000;    // segments with at least this many rows are searched through their graph
  index::Traversal hnsw_vectors = index::Traversal::kSq8;  // what graph walks score, for segments built by this open
  Env* env = nullptr;                    // nullptr = Env::Default()
};

struct ShardView;  // a consistent view of one shard (engine/db_impl.h)

class DB {
 public:
  // Opens or creates the database. See pomai_open in include/pomai/pomai.h
  // for the errors.
  static Result<std::unique_ptr<DB>> Open(const Options& options);
  // Closes if still open.
  ~DB();

  // Stops background work, syncs the WAL, releases the lock. Idempotent.
  Status Close();

  // Applies `ops` atomically, in order (a later op on the same id wins).
  // Every vector is checked first (finite values); nothing is written when
  // any op is invalid.
  Status Write(const WriteOp* ops, size_t n);
  // Puts n rows of a dense row-major matrix.
  Status PutArray(const uint64_t* ids, const float* vectors, size_t n);

  // Freezes every shard's memtable into a durable segment (see pomai_freeze).
  Status Freeze(const ProgressFn& progress = nullptr);

  // Merges segments. force: every shard's segments into one segment (tombstones
  // dropped); otherwise only what the tiered policy asks for (runs of adjacent
  // segments of similar size once a shard has more than kMaxSegments). The
  // merged graph starts from the largest input's when index::BuildHnswFrom
  // can reuse it. Every input is checked whole (its section checksums) before
  // anything is written: a damaged input is Corruption, and the database is
  // left as it was. Readers are never blocked: the merged segment replaces its
  // inputs atomically (manifest first, then the in-memory version); the old
  // files are deleted after the manifest names the new one.
  Status Compact(bool force, const ProgressFn& progress = nullptr);

  // Database statistics as a JSON object: shards, segments (file, rows,
  // tombstones, bytes, graph stats), memtable rows, live rows.
  Result<std::string> StatsJson();

  // Runs fn(dir) while the files of the database stay as they are: until it
  // returns, no freeze or compaction replaces the MANIFEST or deletes a file
  // (a freeze, and a compaction's install, wait for it). Writes go on,
  // appending to the current WAL, and a compaction may write its output
  // segment, which no MANIFEST names until it is installed. For checking the
  // files of an open database (pomai_verify). Closed when the database is.
  Status WithFilesHeld(const std::function<void(const std::string& dir)>& fn);

  // Reads (Exists, Get, Count, Search) use a segment section only after its
  // checksum matched (segment::Segment::CheckSection: once per section per
  // open, on first use); damage is Corruption naming the file, the section
  // and its offset, never another answer.
  Result<bool> Exists(uint64_t id);
  // NotFound when `id` has no live row. Checks only the sections it reads
  // (a vector is not checked when `vector` is null, nor metadata when
  // `metadata` is).
  Status Get(uint64_t id, std::vector<float>* vector, std::string* metadata);
  Result<uint64_t> Count();

  // Top-k of `n` queries (n * dim floats, finite) with topks[i] results
  // each; (*out)[i] is sorted by score descending, then id ascending. The
  // memtables and segments below adaptive_threshold rows are searched
  // exactly, larger segments through their HNSW graph with ef =
  // max(k, ef_search) (ef_search 0 = the open's hnsw_ef_search). Rows
  // shadowed by newer layers are never returned. deadline_ms 0 = the
  // database's default.
  Status Search(const float* queries, size_t n, const uint32_t* topks, uint32_t deadline_ms, uint32_t ef_search,
                std::vector<std::vector<Hit>>* out);

  uint32_t dim() const { return options_.dim; }
  uint32_t shards() const { return options_.shards; }
  simd::Metric metric() const { return options_.metric; }
  const std::string& path() const { return options_.path; }

  // Test hook: the live segment files.
  uint64_t TEST_SegmentCount();

  struct Shard;  // one shard's layers (defined in db.cc)

  // A live segment file and its graph (when it has one); immutable.
  struct LiveSegment {
    uint64_t number = 0;
    std::shared_ptr<segment::Segment> seg;
    std::unique_ptr<index::HnswGraph> graph;
  };

 private:
  struct LayerTask;
  explicit DB(const Options& options);

  // Runs inside Open, before any other thread can reach the DB: it reads and
  // writes the guarded state without the locks.
  Status Recover() NO_THREAD_SAFETY_ANALYSIS;
  Status ReplayWal(const std::string& path);
  // A record reaches readers in two steps: staged (its rows appended to the
  // memtables at `seq`, which no snapshot sees yet: the WAL writer may do this
  // while the record is being written) and then published (applied_seq_
  // moves to `seq`, in log order, once the record is written).
  // Stages a write batch's row ops (Corruption naming `origin` for an op no
  // write of this database makes); record_bytes feed the memtable budget.
  Status StageOps(uint64_t seq, const std::vector<wal::RecordOp>& ops, size_t record_bytes, const std::string& origin);
  // Puts n rows: ids as n little-endian u64 and vectors as n * dim
  // little-endian floats, either alignment (a caller's arrays or a record).
  void StageArray(uint64_t seq, const uint8_t* ids, const uint8_t* vectors, size_t n);
  void Publish(uint64_t seq) { applied_seq_.store(seq, std::memory_order_release); }
  class Progress;
  Status FreezeLocked(Progress* progress) REQUIRES(freeze_mu_);
  Status FlushImmutables(Progress* progress) REQUIRES(freeze_mu_);
  Status CompactShard(size_t shard, bool force, Progress* progress, bool* did_work);
  // `base`, if given, is a graph to start the new segment's from (index::BuildHnswFrom).
  Result<std::shared_ptr<LiveSegment>> WriteLiveSegment(const MemTable::Sorted& rows, uint32_t shard,
                                                        uint64_t min_seq, uint64_t max_seq, Progress* progress,
                                                        const index::GraphBase* base = nullptr);
  Result<std::shared_ptr<LiveSegment>> OpenSegment(uint64_t number);
  void BackgroundLoop();
  void CompactionLoop();
  void MaybeScheduleFreeze();
  uint64_t NewFileNumber();
  // Creates the first log file of this open if no write has yet.
  Status EnsureLogFile();
  // Inside wal_->RunExclusive: a new log file, durable in the directory, becomes current.
  Status SwitchLogFile();
  Status CheckWritable();
  // Every shard's layers and the sequence number they are read at, taken
  // together: what one search (or count) sees.
  std::vector<ShardView> SnapshotViews();

  Options options_;
  Env* env_;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<ThreadPool> pool_;  // null when search_threads == 1

  // Lock order: compact_mu_ -> freeze_mu_ -> manifest_mu_ -> version_mu_ ->
  // a shard's mem_mu; bg_mu_ is taken alone.
  Mutex manifest_mu_;  // guards manifest_ and file numbers
  Manifest manifest_ GUARDED_BY(manifest_mu_);
  std::vector<uint64_t> live_wal_numbers_ GUARDED_BY(manifest_mu_);  // WAL files still needed, oldest first
  std::unique_ptr<wal::Writer> wal_;
  std::atomic<bool> wal_file_open_{false};  // the writer has a file (created by the first write)

  std::vector<std::unique_ptr<Shard>> shards_;
  Mutex version_mu_;  // guards the layer pointers of every shard (Shard says which)

  Mutex freeze_mu_;   // one freeze (or compaction install) at a time
  Mutex compact_mu_;  // one compaction at a time
  std::atomic<uint64_t> mem_bytes_{0};
  std::atomic<uint64_t> applied_seq_{0};  // every batch up to it is in the memtables
  uint64_t budget_;

  Mutex bg_mu_;
  CondVar bg_cv_;
  bool bg_stop_ GUARDED_BY(bg_mu_) = false;
  bool bg_pending_ GUARDED_BY(bg_mu_) = false;
  bool compact_pending_ GUARDED_BY(bg_mu_) = false;
  bool freezing_ GUARDED_BY(bg_mu_) = false;
  std::thread bg_thread_;       // freezes when the memtables pass the budget
  std::thread compact_thread_;  // merges segments after freezes

  std::atomic<bool> closed_{false};
};

}  // namespace pomai::engine
