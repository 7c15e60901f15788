// The storage pieces of a keyspace database (engine/kv_db.h): internal keys,
// KV segment files, the WAL commit record codec and the KV manifest. Its
// memtable is memtable::KeyTable (memtable/key_table.h).
// Formats: docs/FORMAT.md, "Keyspace databases".
//
// Internal keys: every user key is stored as 0x00 + key; index configuration
// as 0x01 + name; index entries as 0x02 + name + 0x00 + key. User keys can
// therefore never reach the index namespaces, and every internal key sorts
// within its namespace.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memtable/key_table.h"
#include "segment/segment.h"
#include "util/env.h"
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

// The keyspace's values and its memtable's writes live with the memtable
// (memtable/key_table.h); the engine's files name them here.
using memtable::Value;
using memtable::ValueKind;
using memtable::ValuePtr;
using memtable::VersionView;
using memtable::ViewOf;
using memtable::Write;

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
