// KeyTable: the byte-keyed part of the memtable (docs/ENGINE.md 4.2), and
// the values it holds. Keys are internal keys (wal/record_codec.h: a
// namespace byte, then the key); the user namespace's vector versions are
// also copied into per-dimension rows for flat searches.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "simd/distance.h"
#include "util/mutex.h"

namespace pomai::memtable {

enum class ValueKind : uint8_t { kBytes = 1, kVector = 2, kTombstone = 3 };

// One value, immutable once shared.
struct Value {
  ValueKind kind = ValueKind::kTombstone;
  simd::Metric metric = simd::Metric::kL2;
  bool has_metadata = false;
  std::string bytes;        // a bytes value, or a vector record's metadata
  std::vector<float> vec;   // a vector record's data
  // A named-index entry's attributes: wal::EncodeAttrRecord's bytes, or empty.
  std::string attrs;
  // Bytes this value holds in memory (approximate, includes allocations).
  size_t MemoryBytes() const {
    return sizeof(Value) + bytes.capacity() + vec.capacity() * sizeof(float) + attrs.capacity();
  }
};
using ValuePtr = std::shared_ptr<const Value>;

// A version found in some layer. Pointers stay valid while the layer is
// pinned and the version is visible to a live snapshot.
struct VersionView {
  uint64_t seq = 0;
  ValueKind kind = ValueKind::kTombstone;
  simd::Metric metric = simd::Metric::kL2;
  bool has_metadata = false;
  std::string_view bytes;
  const float* vec = nullptr;
  uint32_t dim = 0;
  std::string_view attrs;  // a vector's attribute record, or empty
};

VersionView ViewOf(uint64_t seq, const Value& v);

// A write of a commit: an internal key and its new value.
struct Write {
  std::string key;
  ValuePtr value;
};

// Every byte-keyed version written since the last freeze: internal key ->
// versions, newest first (docs/ENGINE.md 4.2). Thread-safe: readers take a
// shared lock for one lookup or scan; Apply takes it exclusively.
class KeyTable {
 public:
  // The newest version of `key` with seq <= snap; false when there is none.
  bool Get(std::string_view key, uint64_t snap, VersionView* out) const;
  // The newest version's seq of `key`, 0 when absent.
  uint64_t LatestSeq(std::string_view key) const;
  // Adds `writes` under `seq`, dropping versions no snapshot >= min_snapshot
  // can see; returns bytes() after.
  uint64_t Apply(uint64_t seq, const std::vector<Write>& writes, uint64_t min_snapshot);
  // Calls fn(key, view) for every key in [lo, hi) (hi empty = to the end)
  // with its newest version <= snap (tombstones included), in key order,
  // under the shared lock: fn must not call back into this table.
  void Scan(std::string_view lo, std::string_view hi, uint64_t snap,
            const std::function<void(std::string_view key, const VersionView& v)>& fn) const;
  // For flush: every key with its newest version (the only one a reader of
  // the segment can need: snapshots older than the flush keep this table
  // pinned). Call only once the table is immutable.
  void Newest(const std::function<void(const std::string& key, uint64_t seq, const Value& v)>& fn) const;

  // The user keyspace's vector versions visible at `snap` (seq <= snap and
  // no newer version of the key at snap), in the order they were applied:
  // rows of one dimension are contiguous in blocks, so a flat search scores
  // runs of them in one pass. Rows, keys and values stay valid while the
  // table is held and `snap` is a live snapshot (its versions are kept).
  struct VisibleVector {
    const float* row;
    std::string_view key;  // internal key
    const Value* value;
    uint64_t seq;
    uint32_t dim;
    simd::Metric metric;
  };
  void VisibleVectors(uint64_t snap, std::vector<VisibleVector>* out) const;

  uint64_t bytes() const;
  bool empty() const;
  uint64_t max_seq() const;

 private:
  struct Version {
    uint64_t seq;
    ValuePtr value;
  };
  // A key's versions: the newest inline (one cache line with the key in the
  // map node), older ones still visible to some snapshot, newest first.
  static constexpr uint32_t kNoRow = UINT32_MAX;
  struct Versions {
    uint64_t newest_seq = 0;
    ValuePtr newest;
    std::vector<Version> older;
    // When the newest version is a user-keyspace vector: its row.
    uint32_t column = kNoRow;
    uint32_t row = 0;
    // The newest version with seq <= snap, or null.
    const Value* Visible(uint64_t snap, uint64_t* seq) const;
  };
  // Point lookups go through an open-addressing hash of 16-byte slots (a
  // 1 MiB table holds 64k keys at half load, small enough to stay in the
  // core's L2) that point at each key's Head: an arena record of what a
  // lookup of the newest version needs, followed by the key's bytes and,
  // for a plain value (bytes without metadata, up to kInlineValueMax, or a
  // tombstone), the value's bytes. A lookup reads the slot and then one
  // contiguous record, never the map node or the Value. Apply writes a new
  // Head for every version it adds and repoints the slot; old heads stay in
  // the arena until the table is freed, so a view into one stays valid
  // for as long as a reader holds the table.
  struct Head {
    uint64_t seq;        // versions->newest_seq
    Versions* versions;  // the map node's versions (never moves)
    uint32_t key_len;    // the key's bytes follow this header
    uint32_t bytes_len;  // when `plain`: the value's bytes follow the key
    ValueKind kind;      // when `plain`: the newest value's kind
    bool plain;
    const char* key() const { return reinterpret_cast<const char*>(this + 1); }
    const char* bytes() const { return key() + key_len; }
  };
  static_assert(sizeof(Head) == 32, "a head is half a cache line");
  struct Slot {
    uint64_t hash = 0;      // 0: empty slot (HashKey never returns 0)
    const Head* head = nullptr;
  };
  // The largest plain value copied into its head; a larger one is read from
  // its Value (the copy would double its memory for one cache miss saved).
  static constexpr size_t kInlineValueMax = 4096;
  // The slot of `key` (hash h), or null.
  const Slot* FindSlot(std::string_view key, uint64_t h) const REQUIRES_SHARED(mu_);
  Slot* Index(uint64_t h) REQUIRES(mu_);
  // A new head for the newest version of `versions` under `key`.
  const Head* NewHead(std::string_view key, Versions* versions) REQUIRES(mu_);
  char* Allocate(size_t n) REQUIRES(mu_);  // from the arena, 8-byte aligned

  // The user keyspace's vector versions of one dimension: a copy of each
  // version's floats in blocks that never move, so a flat search scores a
  // block of rows in one pass instead of gathering one allocation per key.
  struct RowInfo {
    uint64_t seq;
    uint64_t superseded;  // the seq of the key's next version, UINT64_MAX while newest
    std::string_view key;  // the key's bytes in its head (never moves)
    const Value* value;    // valid while the version is visible to a live snapshot
    simd::Metric metric;
  };
  struct VectorColumn {
    uint32_t dim = 0;
    uint32_t rows_per_block = 0;
    std::vector<std::unique_ptr<float[]>> blocks;
    std::vector<RowInfo> rows;
  };
  // Adds the row of a new user vector version (after superseding the old).
  void AddVectorRow(std::string_view key, uint64_t seq, const Value& v, Versions* versions) REQUIRES(mu_);

  mutable SharedMutex mu_;
  std::map<std::string, Versions, std::less<>> map_ GUARDED_BY(mu_);
  std::vector<Slot> slots_ GUARDED_BY(mu_);  // size a power of two, at most half full
  std::vector<VectorColumn> columns_ GUARDED_BY(mu_);  // one per dimension seen
  std::vector<std::unique_ptr<char[]>> arena_ GUARDED_BY(mu_);  // the heads' blocks (never move)
  char* arena_next_ GUARDED_BY(mu_) = nullptr;  // the free part of the newest small-head block
  size_t arena_left_ GUARDED_BY(mu_) = 0;
  size_t arena_block_ GUARDED_BY(mu_) = 0;      // the newest small-head block's size
  uint64_t bytes_ GUARDED_BY(mu_) = 0;
  uint64_t max_seq_ GUARDED_BY(mu_) = 0;
};

}  // namespace pomai::memtable
