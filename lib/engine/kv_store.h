// The storage pieces of a keyspace database (engine/kv_db.h): values, the
// multi-version memtable, KV segment files, and the WAL commit record codec.
// Formats: docs/FORMAT.md, "Keyspace databases".
//
// Internal keys: every user key is stored as 0x00 + key; index configuration
// as 0x01 + name; index entries as 0x02 + name + 0x00 + key. User keys can
// therefore never reach the index namespaces, and every internal key sorts
// within its namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "segment/segment.h"
#include "simd/distance.h"
#include "util/env.h"
#include "util/mutex.h"
#include "util/status.h"
#include "wal/record_codec.h"

namespace pomai::engine::kv {

using wal::kIndexConfigNs;
using wal::kIndexEntryNs;
using wal::kUserNs;

inline std::string UserKey(std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(static_cast<char>(kUserNs));
  k.append(key);
  return k;
}
inline std::string IndexConfigKey(std::string_view name) {
  std::string k(1, static_cast<char>(kIndexConfigNs));
  k.append(name);
  return k;
}
// The prefix of every entry key of index `name`.
inline std::string IndexEntryPrefix(std::string_view name) {
  std::string k(1, static_cast<char>(kIndexEntryNs));
  k.append(name);
  k.push_back('\0');
  return k;
}

enum class ValueKind : uint8_t { kBytes = 1, kVector = 2, kTombstone = 3 };

// One value, immutable once shared.
struct Value {
  ValueKind kind = ValueKind::kTombstone;
  simd::Metric metric = simd::Metric::kL2;
  bool has_metadata = false;
  std::string bytes;        // a bytes value, or a vector record's metadata
  std::vector<float> vec;   // a vector record's data
  // Bytes this value holds in memory (approximate, includes allocations).
  size_t MemoryBytes() const { return sizeof(Value) + bytes.capacity() + vec.capacity() * sizeof(float); }
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
};

VersionView ViewOf(uint64_t seq, const Value& v);

// A write of a commit: an internal key and its new value.
struct Write {
  std::string key;
  ValuePtr value;
};

// ---------------------------------------------------------------------------
// Memtable: internal key -> versions, newest first. Readers take a shared
// lock for one lookup or scan; Apply takes it exclusively.
class MemTable {
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
  // under the shared lock: fn must not call back into this memtable.
  void Scan(std::string_view lo, std::string_view hi, uint64_t snap,
            const std::function<void(std::string_view key, const VersionView& v)>& fn) const;
  // For flush: every key with its newest version (the only one a reader of
  // the segment can need: snapshots older than the flush keep this memtable
  // pinned). Call only once the memtable is immutable.
  void Newest(const std::function<void(const std::string& key, uint64_t seq, const Value& v)>& fn) const;

  // The user keyspace's vector versions visible at `snap` (seq <= snap and
  // no newer version of the key at snap), in the order they were applied:
  // rows of one dimension are contiguous in blocks, so a flat search scores
  // runs of them in one pass. Rows, keys and values stay valid while the
  // memtable is held and `snap` is a live snapshot (its versions are kept).
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
  // the arena until the memtable is freed, so a view into one stays valid
  // for as long as a reader holds the memtable.
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

// ---------------------------------------------------------------------------
// KV segment files: a segment container (segment/segment.h) with no u64 rows
// and the keyspace in extra sections (SectionKind::kKv*). Entries are sorted
// by internal key, one (the newest) version per key.

using segment::SectionKind;
constexpr uint32_t kKvSegmentMarker = 0x4B565347;  // "GSVK": the header's shard field of a KV segment
constexpr uint32_t kKvFormatVersion = 2;
constexpr size_t kEntrySize = segment::ElementSize(SectionKind::kKvEntries);
constexpr size_t kGroupSize = segment::ElementSize(SectionKind::kKvGroups);

// A KV segment reader. Open reads only the container's header, footer and
// section table and the group descriptors (O(groups), nothing per entry);
// every accessor checks what it returns (bounds, kind and flags, the entry's
// CRC) and reports damage as Corruption naming the file and byte offset.
// Thread-safe: the object is immutable apart from the once-per-group checks.
class Segment {
 public:
  // One entry to write: the key and its value.
  struct Input {
    std::string_view key;
    uint64_t seq;
    const Value* value;
  };
  // Writes `entries` (sorted by key, unique) to dir/name durably.
  static Status Write(Env* env, const std::string& dir, const std::string& name, const std::vector<Input>& entries,
                      uint64_t min_seq, uint64_t max_seq);
  // Maps the file and checks the container (segment::Segment::Open), the
  // format version, the section sizes and the group descriptors' bounds. Reads
  // no entry, key, value or vector. Corruption naming the file and offset.
  static Result<std::shared_ptr<Segment>> Open(Env* env, const std::string& path, uint64_t number);

  ~Segment();

  // Rows of vector records of one namespace and dimension, contiguous. The
  // pointers are inside the mapping (bounds checked at open); the bytes they
  // point to are trusted only after CheckGroup.
  struct Group {
    uint8_t ns;
    uint32_t dim;
    uint64_t rows;
    const float* data;          // rows * dim floats, 64-byte aligned
    const uint32_t* entries;    // rows entry indexes
    uint32_t data_crc;
    uint32_t rows_crc;
  };

  uint64_t number() const { return number_; }
  const std::string& path() const { return seg_->path(); }
  uint64_t file_size() const { return seg_->file_size(); }
  size_t size() const { return n_; }
  uint64_t max_seq() const { return seg_->info().max_seq; }
  const std::vector<Group>& groups() const { return groups_; }

  // Entry i's key, bounds-checked only (its bytes are not verified: use it to
  // navigate, never to answer). Requires i < size().
  Status Key(size_t i, std::string_view* key) const;
  // Entry i checked whole (bounds, kind, metric, flags, group and row, CRC):
  // its key and its version. Requires i < size().
  Status Read(size_t i, std::string_view* key, VersionView* out) const;
  // Index of the first entry with key >= `key` (binary search over the
  // checked key index).
  Status LowerBound(std::string_view key, size_t* out) const;
  // The version of `key` if this segment holds it with seq <= snap
  // (*found), its entry checked whole. A miss costs O(log n) key comparisons
  // and reads no value (the key index is checked once, CheckKeyIndex).
  Status Get(std::string_view key, uint64_t snap, VersionView* out, bool* found) const;
  // The seq of `key` here, 0 when absent; reads no value.
  Status LatestSeq(std::string_view key, uint64_t* seq) const;
  // Checks the CRCs of the entries and keys sections once per process (later
  // calls return the first result): after it, keys and the entries' fixed
  // fields (seq, offsets, kinds) are trusted for navigation, so a lookup's
  // binary search and a miss need no per-entry CRC. LowerBound calls it.
  Status CheckKeyIndex() const;
  // Entry i's seq. Requires i < size() and CheckKeyIndex() ok.
  uint64_t EntrySeq(size_t i) const;
  // Checks group g's float and row CRCs, once per process (later calls return
  // the first result).
  Status CheckGroup(size_t g) const;
  // The entry of row r of group g, checked, and that it names (g, r) back.
  // Once CheckGroup(g) has succeeded, a row's entry CRC is computed only the
  // first time (a bit per row, allocated then): later reads check bounds only.
  Status ReadRow(size_t g, uint64_t r, std::string_view* key, VersionView* out) const;
  // Every check: all section checksums, every entry, strictly ascending keys,
  // groups and entries agree. Reads the whole file (pomai-inspect, tests).
  Status VerifyAll() const;
  // Entry i's byte offset in the file (for error messages).
  uint64_t EntryOffset(size_t i) const;

 private:
  struct GroupCheck;
  struct KeyIndexCheck;
  Segment() = default;
  const uint8_t* entry(size_t i) const { return entries_ + i * kEntrySize; }
  Status ReadEntry(size_t i, std::string_view* key, VersionView* out, bool check_crc) const;
  Status Bad(uint64_t offset, const std::string& what) const;

  uint64_t number_ = 0;
  std::shared_ptr<segment::Segment> seg_;
  size_t n_ = 0;
  const uint8_t* entries_ = nullptr;
  const char* keys_ = nullptr;
  uint64_t keys_size_ = 0;
  const char* values_ = nullptr;
  uint64_t values_size_ = 0;
  std::vector<Group> groups_;
  std::unique_ptr<GroupCheck[]> group_checks_;
  std::unique_ptr<KeyIndexCheck> key_index_check_;
};

// ---------------------------------------------------------------------------
// A commit's WAL record is a write batch (wal/record_codec.h) of key ops,
// one per write.
std::string EncodeCommit(const std::vector<Write>& writes);
// The writes of a decoded write batch. Corruption naming `origin` when it
// holds a row op, which no commit writes.
Status WritesOf(const std::vector<wal::RecordOp>& ops, const std::string& origin, std::vector<Write>* out);

}  // namespace pomai::engine::kv
