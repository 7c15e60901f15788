// DB: the database both faces open. One ordered keyspace of byte-string keys
// whose values are plain bytes or vector records (metric, dimension, optional
// metadata, float32 data), with MVCC by sequence number, optimistic
// transactions (snapshot isolation, first committer wins) and collections
// (docs/ENGINE.md 2): named HNSW indexes (byte-keyed) and the default u64
// collection of pomaidb, whose configurations and rows live in the same
// keyspace.
//
// Two storage modes run the same code: disk (a directory with a LOCK,
// CURRENT, a manifest log, WAL files and segment files; docs/FORMAT.md) and
// in-memory (no WAL; the manifest and segments in process memory).
//
// Layers, newest first: the active memtable, the memtable being flushed, the
// segments (newest first). A transaction pins the layers and a sequence
// number S at begin and reads, per key, the newest version with seq <= S. A
// commit checks, under the commit lock, every key it wrote (and every index
// configuration its index writes depend on, and every key range its scans
// returned) for a version newer than S or a commit still on its way through
// the WAL (CONFLICT), and the memory limit
// (RESOURCE_EXHAUSTED); then, outside the lock (so concurrent commits share
// one write and one fdatasync), appends one WAL record with every write (atomic
// after a crash), applies the writes to the memtable under the record's
// sequence number, in log order, and publishes it.
//
// Thread-safety: DB methods may be called from any thread concurrently,
// except Close, which must not race with other calls and must come after
// every Txn is destroyed (lib/capi guarantees both). A Txn is used by one
// thread at a time (lib/capi serialises calls on it). Readers never wait for
// a flush or a merge (except the first search of an index, which flushes its
// rows into a graph); they take a shared memtable lock only for the duration
// of a lookup or a scan.
//
// Named indexes are collections (docs/ENGINE.md 2.2): each segment holds an
// index's rows as one vector group with its HNSW graph, built by the flush
// that wrote the segment and started from the largest input graph by a merge.
//
// The default collection (ENGINE.md 2.2, the empty name) is a u64-keyed
// collection: a pomaidb database's rows. OpenDefaultCollection creates or
// opens it; Write, PutArray, Get, Exists, Count, Search and StatsJson work on
// it. Its rows are applied as blind batches (one WAL record each, no conflict
// check), kept column-wise in the memtable, and written as one u64 group per
// segment with an HNSW graph when the group has at least adaptive_threshold
// rows (built at flush, started from the largest input's graph at a merge).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/collection.h"
#include "simd/distance.h"
#include "util/attributes.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::engine {

struct Options {
  std::string path;                       // disk mode: the directory, created if missing
  bool in_memory = false;                 // no files, no WAL: segments and manifest in process memory (MemoryEnv)
  bool fsync = false;                     // fdatasync the WAL before a commit returns
  uint64_t memory_limit_bytes = 0;        // 0 = none; else a commit passing it is RESOURCE_EXHAUSTED
  uint32_t search_threads = 0;            // 0 = all cores
  uint64_t memtable_budget_bytes = 0;     // flush in the background past this (both modes); 0 = 64 MiB
  uint32_t max_segments = 4;              // merge the segments when there are more than this
  Env* env = nullptr;                     // disk mode; nullptr = Env::Default()
};

enum class TxnMode { kReadOnly = 0, kReadWrite = 1 };

// One pomaidb search hit: a row of the default collection.
struct Hit {
  uint64_t id;
  float score;     // higher is better
  uint32_t shard;  // id % shards
};
inline uint64_t HitKey(const Hit& h) { return h.id; }

// One search hit (flat or HNSW).
struct KeyHit {
  std::string key;
  float score = 0;
  bool has_metadata = false;
  std::string metadata;
  std::vector<float> vector;  // filled only when asked for
};

struct IndexConfig {
  uint32_t dim = 0;
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  simd::Metric metric = simd::Metric::kCosine;
};

// An index's statistics over all its graphs (docs/ENGINE.md 4.8).
struct IndexStats {
  uint64_t node_count = 0;     // live entries
  uint64_t deleted_count = 0;  // graph nodes whose entry was deleted or replaced in a newer layer
  uint64_t memory_bytes = 0;   // the segments' vectors and graphs of the index, its memtable entries
  double avg_edges_per_node = 0;  // layer-0 links per graph node
  // [l] = graph nodes whose top level is l; entries in no graph (the
  // memtables', searched exactly) count at level 0.
  std::vector<uint64_t> level_distribution;
  uint64_t delta_count = 0;  // live entries in no graph
};

struct MemoryStats {
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;
};


// One op of a batch write to the default collection.
struct WriteOp {
  enum class Kind : uint8_t { kPut = 1, kDelete = 2 };
  Kind kind = Kind::kPut;
  uint64_t id = 0;
  const float* vector = nullptr;  // dim floats, for kPut
  std::string_view metadata;      // for kPut
};

// Which rows of the default collection a read takes (docs/FILTERS.md): those
// passing `expression` whose id is among ids[0, id_count) (ids null: any id).
struct RowFilterSpec {
  std::string_view expression;
  const uint64_t* ids = nullptr;
  size_t id_count = 0;
  bool empty() const { return expression.find_first_not_of(" \t\r\n") == std::string_view::npos && ids == nullptr; }
};

// A batch of rows for PutRows: n ids, n x dim floats, optional metadata
// (metadata_offsets: n + 1 offsets into metadata, or null) and attribute
// columns of n rows each.
struct RowsIn {
  size_t n = 0;
  const uint64_t* ids = nullptr;
  const float* vectors = nullptr;
  const uint64_t* metadata_offsets = nullptr;
  const uint8_t* metadata = nullptr;
  std::vector<AttrColumn> columns;
};

// The attribute columns of the default collection, by name.
using AttrSchema = std::vector<std::pair<std::string, AttrType>>;

// What a scan returns per row, and which rows.
struct ScanSpec {
  RowFilterSpec filter;
  bool vectors = true;
  bool metadata = true;
  bool all_columns = true;            // every attribute column, in name order
  std::vector<std::string> columns;   // else these, in this order
  size_t batch_rows = 65536;          // at most, per batch (0 = 65536)
};

// One batch of a scan, columnar: rows in ascending id order.
struct ScanBatch {
  std::vector<uint64_t> ids;
  std::vector<float> vectors;          // ids.size() x dim, when the scan asks for vectors
  std::vector<uint64_t> meta_offsets;  // ids.size() + 1, when it asks for metadata (none = empty)
  std::string meta_blob;
  std::vector<AttrColumn> columns;     // the scan's columns, each ids.size() rows
};

// A scan of the default collection at one snapshot (DB::Scan). It pins the
// snapshot's layers until destroyed. Not thread-safe; may be used from any
// thread, one call at a time, while the DB is open.
class RowScan {
 public:
  virtual ~RowScan() = default;
  // The attribute columns each batch has, in order.
  virtual const AttrSchema& columns() const = 0;
  // The next batch (at most batch_rows rows, at least one), or *done.
  virtual Status Next(ScanBatch* out, bool* done) = 0;
};

// Progress of a long flush or compaction: (rows linked into graphs so far,
// rows to link). Called from one thread at a time, from engine threads.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

// What pomai_open asks of the default collection (include/pomai/pomai.h).
// dim, metric and shards are the collection's and fixed at its creation; the
// rest are this open's settings (each segment records what it was built with).
struct DefaultCollectionOptions {
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  uint32_t shards = 1;                 // search hits report shard = id % shards
  bool build_graphs = true;            // false: no graphs (IVF requested; searches stay exact)
  uint32_t hnsw_m = 32;
  uint32_t hnsw_ef_construction = 200;
  GraphVectors hnsw_vectors = GraphVectors::kSq8;  // what graph walks score
  uint32_t hnsw_ef_search = 64;        // default ef of graph searches; never below k
  uint32_t adaptive_threshold = 5000;  // groups with at least this many rows get (and are searched through) a graph
  uint32_t deadline_ms = 0;            // default per-search budget; 0 = none
};

class DB;
struct DBImpl;
struct TxnState;

// A transaction. Destroying an active transaction rolls it back. Every
// method returns CLOSED "transaction is closed" once it has committed or
// rolled back. Arguments are copied before a method returns.
class Txn {
 public:
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  bool active() const;
  TxnMode mode() const;

  // The value of `key` (snapshot plus own writes); *found false when absent
  // or deleted. For a vector record the value is its metadata.
  Status Get(std::string_view key, std::string* value, bool* found);
  // Same without a copy: *value stays valid until the next call on this
  // transaction (the version is pinned by the snapshot or the write set).
  Status GetView(std::string_view key, std::string_view* value, bool* found);
  Status Put(std::string_view key, std::string_view value);
  Status Delete(std::string_view key);
  // Stores a vector record; `metadata` null = none.
  Status UpsertVector(std::string_view key, const float* vector, uint32_t dim, simd::Metric metric,
                      const std::string_view* metadata);
  // NotFound unless `key` holds a vector record; InvalidArgument when it was
  // stored with another metric.
  Status GetVector(std::string_view key, simd::Metric metric, std::vector<float>* out);
  // Exact top-k over the visible vector records (or the records of `filter`
  // when not null), sorted by score descending then key ascending.
  Status SearchSimilar(const float* query, uint32_t dim, simd::Metric metric, uint32_t k,
                       const std::vector<std::string_view>* filter, bool return_vectors, std::vector<KeyHit>* out);
  // Index entries, applied at commit. NotFound for a missing index.
  // `attrs` (may be null): the entry's typed attributes, columns of one row
  // each (CheckAttrColumns; INVALID_ARGUMENT naming the column otherwise);
  // a null value is an attribute the entry lacks. Stored with the entry for
  // SearchIndex's `where`. An attribute's type is fixed by its first write
  // to the index: Commit refuses another (INVALID_ARGUMENT).
  Status IndexUpsert(std::string_view name, std::string_view key, const float* vector, uint32_t dim,
                     const std::string_view* metadata, const std::vector<AttrColumn>* attrs = nullptr);
  Status IndexDelete(std::string_view name, std::string_view key);

  // One entry of a scan: views valid until the next call on this transaction.
  struct ScanEntry {
    std::string_view key;
    std::string_view value;
  };
  // The user keys in [lo, hi) (hi null: no upper bound) that hold plain
  // bytes at the snapshot plus own writes, in ascending key order (engine
  // scan.cc; the semantics are pomai_txn_scan's in include/pomai/kv.h): at
  // most max_entries (>= 1) of them and, when max_bytes > 0, at most
  // max_bytes of keys plus values, except that a non-empty batch always has
  // its first entry. *more: another entry follows the last one returned
  // (resume with lo = that key followed by one 0x00 byte). A read-write
  // transaction's commit then conflicts with any write committed since its
  // snapshot to a key in the range returned ([lo, hi) when !*more, else up
  // to and including the last key). InvalidArgument when lo > hi or
  // max_entries is 0.
  Status Scan(std::string_view lo, const std::string_view* hi, size_t max_entries, size_t max_bytes,
              std::vector<ScanEntry>* out, bool* more);

  // Commits (see the file comment) and closes the transaction, whatever the outcome.
  Status Commit();
  // Discards the writes and closes the transaction.
  Status Rollback();

 private:
  friend class DB;
  explicit Txn(std::unique_ptr<TxnState> state);
  std::unique_ptr<TxnState> state_;
};

class DB {
 public:
  // Opens or creates the database (see pomai_db_open_ex in include/pomai/kv.h
  // for the errors). Disk mode replays the WAL.
  static Result<std::unique_ptr<DB>> Open(const Options& options);
  ~DB();

  // Stops background work, syncs the WAL, releases the lock. Idempotent.
  // Every transaction must have been destroyed.
  Status Close();

  Result<std::unique_ptr<Txn>> Begin(TxnMode mode);

  // Disk mode: writes the memtable to a segment and returns once the manifest
  // names it; the merges the tiered policy then asks for run on the
  // compaction thread (Compact(false) runs them now). `progress` gets the
  // graph builds' (rows linked, rows). In-memory: InvalidArgument "in-memory
  // database cannot be flushed".
  Status Flush(const ProgressFn& progress = nullptr);

  // Merges segments. force: every segment into one (a lone segment only when
  // it holds tombstones or rows of dropped collections to drop); otherwise
  // what the tiered policy asks for. Every row and entry copied is checked
  // first, and a graph the merge starts from is checked whole: a damaged
  // input is Corruption and the database is left as it was.
  Status Compact(bool force, const ProgressFn& progress = nullptr);

  // ---- The default collection (pomaidb). Every call below but
  // OpenDefaultCollection is InvalidArgument "the database has no default
  // collection open: ..." until OpenDefaultCollection succeeded.

  // Opens the default collection, creating it (one commit of its
  // configuration) when the database has none. InvalidArgument naming both
  // values when dim, metric or shards differ from the stored configuration
  // (or when it is not a u64 collection); InvalidArgument when called twice.
  Status OpenDefaultCollection(const DefaultCollectionOptions& options);
  // Applies `ops` atomically, in order (a later op on the same id wins), as
  // one WAL record. Every op is checked first (kind, vector, finite values,
  // metadata size): nothing is written when any op is invalid.
  Status Write(const WriteOp* ops, size_t n);
  // Puts n rows of a dense row-major matrix (one row-array WAL record,
  // written from the caller's arrays).
  Status PutArray(const uint64_t* ids, const float* vectors, size_t n);
  // NotFound "id N not found" when `id` has no live row. Reads only what it
  // returns (a block it reads is checked first: damage is Corruption).
  Status Get(uint64_t id, std::vector<float>* vector, std::string* metadata);
  Result<bool> Exists(uint64_t id);
  // Puts a batch of rows with metadata and attributes (one row-batch WAL
  // record): the checks of Write, then of the columns (CheckAttrColumns)
  // and their types against the collection's (a new column's type is fixed
  // here); nothing is written when any is invalid.
  Status PutRows(const RowsIn& rows);
  // Sets `columns` (n rows each) of the live rows `ids`, keeping their
  // vectors, metadata and other columns: one row-batch record of their new
  // versions, written while no other write to the rows runs. NotFound naming
  // the first id without a live row, and nothing changes.
  Status UpdateAttributes(const uint64_t* ids, size_t n, std::vector<AttrColumn> columns);
  // The collection's attribute columns, in name order.
  AttrSchema Schema();
  // Live rows (O(rows)), those passing `filter` when it is not null.
  Result<uint64_t> Count(const RowFilterSpec* filter = nullptr);
  // Deletes the live rows passing `filter` at one snapshot, as one batch;
  // returns how many. An empty filter is InvalidArgument.
  Result<uint64_t> DeleteWhere(const RowFilterSpec& filter);
  // A scan of the live rows passing spec.filter, in id order.
  Result<std::unique_ptr<RowScan>> Scan(const ScanSpec& spec);
  // Top-k of `n` queries (n * dim floats, finite) with topks[i] results
  // each; (*out)[i] sorted by score descending, then id ascending (scores as
  // simd::Score gives them: -d^2 for L2). Memtables and groups below
  // adaptive_threshold rows are searched exactly, larger groups through their
  // graph with ef = max(k, ef_search) (0 = the open's hnsw_ef_search). Rows
  // shadowed by newer layers are never returned, and k come back when k live
  // rows exist. deadline_ms 0 = the open's; past it DeadlineExceeded.
  // With a filter (not null), only rows passing it are returned, and k come
  // back whenever k live rows pass (docs/FILTERS.md, "Execution").
  Status Search(const float* queries, size_t n, const uint32_t* topks, uint32_t deadline_ms, uint32_t ef_search,
                std::vector<std::vector<Hit>>* out, const RowFilterSpec* filter = nullptr);
  // The default collection's statistics as a JSON object (pomai_stats_json):
  // dim, shards [{shard, memtable_rows}], segment_files [{file, rows,
  // tombstones, bytes, graph}], segments, segment_rows, segment_tombstones,
  // segment_bytes, memtable_rows, live_rows, dead_rows, graph_reused_rows.
  Result<std::string> StatsJson();
  // The default collection's dim, metric and shards (0s before it is open).
  uint32_t dim() const;
  simd::Metric metric() const;
  uint32_t shards() const;

  MemoryStats MemoryUsage();

  // Named HNSW indexes. Create replaces an existing index and its entries.
  Status CreateIndex(std::string_view name, const IndexConfig& config);
  Status DropIndex(std::string_view name);
  Status GetIndexStats(std::string_view name, IndexStats* out);
  // Makes index `name` searchable through graphs now, as its first search or
  // stats call would: when it has committed entries in the memtables and no
  // graph in any segment, flushes them into a segment with its graph,
  // reporting (rows linked, rows) to `progress` from one thread at a time.
  // Nothing to do (and no callback) otherwise. The flush's error when it
  // fails (a search or stats call then searches those entries exactly).
  Status PrepareIndex(std::string_view name, const std::function<void(uint64_t done, uint64_t total)>& progress);
  // ef = max(k, ef_search), ef_search 0 = max(k, 50). Committed entries
  // only: each segment's graph of the index (entries replaced or deleted in
  // a newer layer are walked through, never returned) and the memtables'
  // entries exactly. A non-empty `where` (docs/FILTERS.md) returns only
  // entries whose attributes it passes, min(k, passing live entries) of
  // them; INVALID_ARGUMENT for a bad expression, an attribute no entry has
  // and `id` (entries have byte keys).
  Status SearchIndex(std::string_view name, const float* query, uint32_t dim, uint32_t k, uint32_t ef_search,
                     std::string_view where, std::vector<KeyHit>* out, IndexStats* stats);

  bool in_memory() const;

  // Runs fn(dir) while the files of the database stay as they are: until it
  // returns, no flush or merge changes the manifest or deletes a file (they
  // wait for it; so does a search that must first build an index's graph).
  // Commits go on, appending to the current WAL. In-memory
  // mode: dir names no directory (the files live in process memory). For
  // checking the files of an open database (pomai_verify). Closed when the
  // database is.
  Status WithFilesHeld(const std::function<void(const std::string& dir)>& fn);

  // Test hooks: the live segment files, and the last applied sequence number.
  size_t TEST_SegmentCount();
  uint64_t TEST_LastSequence();
  // Test hook: how many index graphs this open's flushes and merges have built.
  uint64_t TEST_GraphBuilds();
  // Test hook: while paused, the compaction thread starts no merge (the
  // merges a flush asks for wait, as they would for a busy thread).
  void TEST_PauseBackgroundMerges(bool paused);
  // Test hook: waits until no background flush is asked for or running.
  void TEST_WaitForBackgroundFlush();

 private:
  DB();
  std::unique_ptr<DBImpl> impl_;
};

// Shared with lib/capi: dim, pointer and finiteness, naming the argument.
Status CheckVector(const float* v, uint32_t dim, const char* what = "vector");

}  // namespace pomai::engine
