// The searchable side of the named HNSW indexes of a keyspace database.
//
// An index's configuration and entries are keyspace values (kv_store.h:
// 0x01 + name, 0x02 + name + 0x00 + key), so they are written, logged,
// recovered and conflict-checked like any other write. What lives here is
// derived: per index a base HNSW graph built with index::BuildHnsw over a
// snapshot of its entries, and a delta of the entries committed since
// (searched exactly). Base rows whose entry was replaced or deleted are
// filtered during the graph walk. When the delta passes max(1024, base
// rows / 8) the owner rebuilds the base in the background and swaps it in;
// searches keep using the old one meanwhile. In disk mode the owner writes
// each base it builds to a graph file (WriteGraphFile) and loads it after a
// reopen (OpenGraphFile) instead of building again; docs/FORMAT.md, "Named-
// index graph files".
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/kv_db.h"
#include "engine/kv_store.h"
#include "index/hnsw.h"
#include "segment/segment.h"
#include "util/mutex.h"
#include "util/status.h"
#include "util/thread_pool.h"

namespace pomai::engine::kv {

// One committed entry of an index, as read from the keyspace.
struct IndexEntry {
  uint64_t seq = 0;
  const float* vec = nullptr;  // config.dim floats
  bool has_metadata = false;
  std::string_view metadata;
};

// Graph files: "idx-<FNV-1a 64 of name, 16 hex digits>-" and that prefix
// plus "<config_seq>.pgraph"; beside the graph's sections they hold the
// SectionKind::kGraphFile* ones.
constexpr uint32_t kIndexGraphMarker = 0x49445847;  // the container's shard field
std::string IndexGraphFilePrefix(std::string_view name);
std::string IndexGraphFileName(std::string_view name, uint64_t config_seq);
// Whether a directory entry is named like a graph file ("idx-*.pgraph"; a
// "*.pgraph.tmp" left by an interrupted write is not one).
bool IsIndexGraphFileName(std::string_view file);

// The in-memory search structure of one index. Thread-safe: Search and
// Stats take a shared lock, Apply an exclusive one.
class IndexRuntime {
 public:
  // Builds the base graph over `entries` (key -> entry; the pointers need
  // only live during the call). `config_seq` is the seq of the
  // configuration version the entries belong to. `progress`, if set, gets
  // (rows linked, rows) from one thread at a time (index::BuildHnsw).
  static Result<std::shared_ptr<IndexRuntime>> Build(
      const IndexConfig& config, uint64_t config_seq, const std::map<std::string, IndexEntry, std::less<>>& entries,
      ThreadPool* pool, const std::function<void(uint64_t done, uint64_t total)>& progress = nullptr);

  // The base a graph file holds (the base some earlier Build produced), for
  // index `name` with `config` at `config_seq`. Checks the whole file first
  // (every section CRC, marker, dim, metric, configuration seq, name,
  // section sizes, the graph); any failure is an error (Corruption naming
  // the file, or the IOError of a missing file) and the caller builds
  // instead. The result still needs CatchUp like a built one.
  static Result<std::shared_ptr<IndexRuntime>> OpenGraphFile(Env* env, const std::string& path, std::string_view name,
                                                             const IndexConfig& config, uint64_t config_seq);
  // Writes the base to dir/IndexGraphFileName(name, config_seq) durably
  // (segment write protocol); writes nothing for an empty base.
  Status WriteGraphFile(Env* env, const std::string& dir, std::string_view name) const;
  // The largest entry seq in the base (0 when empty).
  uint64_t base_max_seq() const { return base_max_seq_; }

  // Brings the runtime to the committed state `now` (every entry of the
  // index at the newest seq): base rows whose seq differs become dead, newer
  // entries go to the delta. Call under the commit lock, before installing.
  void CatchUp(const std::map<std::string, IndexEntry, std::less<>>& now);

  // A committed write of entry `key` (a vector record or a tombstone).
  void Apply(std::string_view key, uint64_t seq, const Value& v);

  // Top-k by score (engine scores; L2 is converted to -distance), ties by key.
  Status Search(const float* query, uint32_t k, uint32_t ef, std::vector<KvHit>* out) const;
  IndexStats Stats() const;
  uint64_t MemoryBytes() const;

  const IndexConfig& config() const { return config_; }
  uint64_t config_seq() const { return config_seq_; }
  // Whether the delta is large enough for a rebuild (and none is running);
  // marks one as running when it returns true.
  bool ClaimRebuild();
  void RebuildDone();

 private:
  IndexRuntime() = default;
  // Opens the graph over base_vecs_ from sections_ and computes the
  // per-base figures (levels, degree, bytes). Runs before the runtime is
  // shared, so it sets the guarded state without the lock.
  Status FinishBase() NO_THREAD_SAFETY_ANALYSIS;

  struct DeltaEntry {
    uint64_t seq;
    std::vector<float> vec;
    bool has_metadata;
    std::string metadata;
  };

  IndexConfig config_;
  uint64_t config_seq_ = 0;

  // The base, immutable after Build.
  std::vector<float> base_vecs_;
  std::vector<std::string> base_keys_;
  std::vector<uint64_t> base_seqs_;
  std::vector<std::string> base_meta_;
  std::vector<uint8_t> base_has_meta_;
  std::unordered_map<std::string, uint32_t> base_row_;
  std::vector<index::GraphSection> sections_;
  std::optional<index::HnswGraph> graph_;
  // Computed once per base (it never changes): Stats and MemoryBytes are O(1).
  std::vector<uint64_t> base_levels_;
  uint64_t base_max_seq_ = 0;
  double base_avg_degree0_ = 0;
  uint64_t base_bytes_ = 0;

  mutable SharedMutex mu_;
  std::vector<uint8_t> dead_ GUARDED_BY(mu_);  // base rows whose entry was replaced or deleted
  uint64_t dead_count_ GUARDED_BY(mu_) = 0;
  std::map<std::string, DeltaEntry, std::less<>> delta_ GUARDED_BY(mu_);  // live entries not in the base
  uint64_t delta_bytes_ GUARDED_BY(mu_) = 0;
  bool rebuilding_ GUARDED_BY(mu_) = false;
};

// The runtimes of the indexes loaded so far, by name.
class IndexRegistry {
 public:
  // `rebuild(name)` is called (under the commit lock) when an index's delta
  // has grown enough; it should rebuild in the background.
  explicit IndexRegistry(std::function<void(const std::string& name)> rebuild) : rebuild_(std::move(rebuild)) {}

  std::shared_ptr<IndexRuntime> Find(std::string_view name) const;
  void Install(const std::string& name, std::shared_ptr<IndexRuntime> rt);
  void Erase(std::string_view name);
  // Keeps the loaded runtimes in step with a commit. Under the commit lock.
  void OnCommit(uint64_t seq, const std::vector<Write>& writes);
  uint64_t MemoryBytes() const;

 private:
  std::function<void(const std::string&)> rebuild_;
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<IndexRuntime>, std::less<>> loaded_ GUARDED_BY(mu_);
  // !loaded_.empty(), readable without mu_: OnCommit runs for every commit
  // and has nothing to do while no index is loaded. Written under mu_; a
  // commit is applied under the owner's apply lock, which Install's caller
  // holds too, so OnCommit never misses a runtime installed before it.
  std::atomic<bool> any_loaded_{false};
};

}  // namespace pomai::engine::kv
