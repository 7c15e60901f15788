// The pieces of a keyspace database (engine/kv_db.h) beside its layers:
// internal keys and the WAL commit record codec. Its memtable is
// memtable::KeyTable (memtable/key_table.h), its segments segment::SegmentFile
// (segment/file.h). Formats: docs/FORMAT.md, "Keyspace databases".
//
// Internal keys: every user key is stored as 0x00 + key; a collection's
// configuration as 0x01 + name; its rows as 0x02 + BE64(cid) + key
// (engine/collection.h). User keys can therefore never reach the collection
// namespaces, and every internal key sorts within its namespace.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memtable/key_table.h"
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
// A commit's WAL record is a write batch (wal/record_codec.h) of key ops,
// one per write.
std::string EncodeCommit(const std::vector<Write>& writes);
// The writes of a decoded write batch. Corruption naming `origin` when it
// holds a row op, which no commit writes.
Status WritesOf(const std::vector<wal::RecordOp>& ops, const std::string& origin, std::vector<Write>* out);

}  // namespace pomai::engine::kv
