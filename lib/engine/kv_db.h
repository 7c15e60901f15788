// KvDB: a keyspace database. One ordered keyspace of byte-string keys whose
// values are plain bytes or vector records (metric, dimension, optional
// metadata, float32 data), with MVCC by sequence number, optimistic
// transactions (snapshot isolation, first committer wins) and named HNSW
// indexes whose configuration and entries live in the same keyspace.
//
// Two storage modes run the same code: disk (a directory with a LOCK, a
// KVMANIFEST, WAL files and KV segment files; docs/FORMAT.md, "Keyspace
// databases") and in-memory (no files: no WAL, no segments).
//
// Layers, newest first: the active memtable, the memtable being flushed, the
// segments (newest first). A transaction pins the layers and a sequence
// number S at begin and reads, per key, the newest version with seq <= S. A
// commit checks, under the commit lock, every key it wrote (and every index
// configuration its index writes depend on) for a version newer than S or a
// commit still on its way through the WAL (CONFLICT), and the memory limit
// (RESOURCE_EXHAUSTED); then, outside the lock (so concurrent commits share
// one write and one fdatasync), appends one WAL record with every write (atomic
// after a crash), applies the writes to the memtable under the record's
// sequence number, in log order, and publishes it.
//
// Thread-safety: KvDB methods may be called from any thread concurrently,
// except Close, which must not race with other calls and must come after
// every KvTxn is destroyed (lib/capi guarantees both). A KvTxn is used by one
// thread at a time (lib/capi serialises calls on it). Readers never wait for
// a flush or a merge (except the first search of an index, which flushes its
// rows into a graph); they take a shared memtable lock only for the duration
// of a lookup or a scan.
//
// Named indexes are collections (docs/ENGINE.md 2.2): each segment holds an
// index's rows as one vector group with its HNSW graph, built by the flush
// that wrote the segment and started from the largest input graph by a merge.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "simd/distance.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::engine {

struct KvOptions {
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

// One search hit (flat or HNSW).
struct KvHit {
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


class KvDB;
struct KvDBImpl;
struct KvTxnState;

// A transaction. Destroying an active transaction rolls it back. Every
// method returns CLOSED "transaction is closed" once it has committed or
// rolled back. Arguments are copied before a method returns.
class KvTxn {
 public:
  ~KvTxn();
  KvTxn(const KvTxn&) = delete;
  KvTxn& operator=(const KvTxn&) = delete;

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
                       const std::vector<std::string_view>* filter, bool return_vectors, std::vector<KvHit>* out);
  // Index entries, applied at commit. NotFound for a missing index.
  Status IndexUpsert(std::string_view name, std::string_view key, const float* vector, uint32_t dim,
                     const std::string_view* metadata);
  Status IndexDelete(std::string_view name, std::string_view key);

  // Commits (see the file comment) and closes the transaction, whatever the outcome.
  Status Commit();
  // Discards the writes and closes the transaction.
  Status Rollback();

 private:
  friend class KvDB;
  explicit KvTxn(std::unique_ptr<KvTxnState> state);
  std::unique_ptr<KvTxnState> state_;
};

class KvDB {
 public:
  // Opens or creates the database (see pomai_db_open_ex in include/pomai/kv.h
  // for the errors). Disk mode replays the WAL.
  static Result<std::unique_ptr<KvDB>> Open(const KvOptions& options);
  ~KvDB();

  // Stops background work, syncs the WAL, releases the lock. Idempotent.
  // Every transaction must have been destroyed.
  Status Close();

  Result<std::unique_ptr<KvTxn>> Begin(TxnMode mode);

  // Disk mode: writes the memtable to a segment and returns once the manifest
  // names it. In-memory: InvalidArgument "in-memory database cannot be flushed".
  Status Flush();

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
  // entries exactly.
  Status SearchIndex(std::string_view name, const float* query, uint32_t dim, uint32_t k, uint32_t ef_search,
                     std::vector<KvHit>* out, IndexStats* stats);

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

 private:
  KvDB();
  std::unique_ptr<KvDBImpl> impl_;
};

// Shared with lib/capi: dim, pointer and finiteness, naming the argument.
Status CheckVector(const float* v, uint32_t dim, const char* what = "vector");

}  // namespace pomai::engine
