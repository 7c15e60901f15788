// Collections (docs/ENGINE.md 2.1, 2.2): a named set of rows with a fixed key
// type, dim, metric and graph parameters, stored as one configuration value
// under 0x01 + name. Its cid (collection id) is the seq of the commit that
// wrote that value, so re-creating a name gives a new cid and the rows of the
// old incarnation (keyed by their cid) become unreachable at once: no
// tombstone per row; merges drop them.
//
// alopex's named HNSW indexes are byte-keyed collections (rows 0x02 +
// BE64(cid) + user key); pomaidb's default collection is a u64 one, its rows
// in u64 groups (docs/FORMAT.md, "Segment files").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <vector>

#include "memtable/key_table.h"
#include "memtable/row_table.h"
#include "simd/distance.h"
#include "util/status.h"
#include "wal/record_codec.h"

namespace pomai::engine {

// Internal keys: every user key is stored as 0x00 + key; a collection's
// configuration as 0x01 + name; its rows as 0x02 + BE64(cid) + key. User keys
// can therefore never reach the collection namespaces, and every internal key
// sorts within its namespace.
using wal::kIndexConfigNs;
using wal::kIndexEntryNs;
using wal::kUserNs;

// 0x00 + key: where a plain value or vector record of user key `key` lives.
std::string UserKey(std::string_view key);

// The keyspace's values and its memtable's writes live with the memtable
// (memtable/key_table.h); the engine's files name them here.
using memtable::Value;
using memtable::ValueKind;
using memtable::ValuePtr;
using memtable::VersionView;
using memtable::ViewOf;
using memtable::Write;
// The default collection's rows (memtable/row_table.h).
using memtable::RowTable;

// A commit's WAL record is a write batch (wal/record_codec.h) of key ops,
// one per write.
std::string EncodeCommit(const std::vector<Write>& writes);
// The writes of a decoded write batch. Corruption naming `origin` when it
// holds a row op, which no commit writes.
Status WritesOf(const std::vector<wal::RecordOp>& ops, const std::string& origin, std::vector<Write>* out);

enum class KeyType : uint8_t { kU64 = 1, kBytes = 2 };

// How a collection's graphs hold their vectors (ENGINE.md section 7, question 3).
enum class GraphVectors : uint8_t { kSq8 = 0, kFloat32 = 1 };

// The configuration value (32 bytes, little-endian):
//   0  u32 config version (1)    4  u8 key type   5  u8 metric
//   6  u8 graph vectors          7  u8 zero       8  u32 dim (1..65535)
//   12 u32 m (2..100)            16 u32 ef_construction (m..4096)
//   20 u32 shards (1..1024; 1 for byte keys)     24 u64 zero
struct CollectionConfig {
  KeyType key_type = KeyType::kBytes;
  simd::Metric metric = simd::Metric::kCosine;
  GraphVectors graph_vectors = GraphVectors::kFloat32;
  uint32_t dim = 0;
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  uint32_t shards = 1;

  static constexpr size_t kEncodedSize = 32;
  static constexpr uint32_t kVersion = 1;

  // The one check of every field: InvalidArgument naming the field and its value.
  Status Validate() const;
  std::string Encode() const;
  // Decodes a stored value: Corruption "<origin>: ..." for a wrong size,
  // version, nonzero reserved byte or a field Validate refuses.
  static Status Decode(std::string_view value, const std::string& origin, CollectionConfig* out);
  bool operator==(const CollectionConfig&) const = default;
};

// 0x01 + name: where a collection's configuration lives.
std::string ConfigKey(std::string_view name);
// 0x02 + BE64(cid): the prefix of every row key of byte-keyed collection `cid`.
std::string RowPrefix(uint64_t cid);
// 0x02 + BE64(cid) + key.
std::string RowKey(uint64_t cid, std::string_view key);
// Splits a row key (0x02 + BE64(cid) + key); false for any other key.
bool ParseRowKey(std::string_view ikey, uint64_t* cid, std::string_view* key);

}  // namespace pomai::engine
