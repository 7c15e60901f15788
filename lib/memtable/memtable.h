// MemTable: everything written since the last flush (docs/ENGINE.md 4.2).
// A database has one active MemTable and, while a flush runs, the frozen
// one it writes. It holds the byte-keyed versions (KeyTable: plain values,
// vector records, named collections' entries) and, once the database has a
// default collection, that collection's rows (a RowSet). Each table has its
// own lock; a MemTable is shared by the views that pin it and lives until
// the last of them lets go.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "memtable/key_table.h"
#include "memtable/row_table.h"
#include "util/mutex.h"

namespace pomai::memtable {

// The default collection's rows in one memtable: every version since the
// memtable was made. Writers hold `mu` exclusively, readers shared.
struct RowSet {
  RowSet(uint64_t cid_, uint32_t dim_, std::shared_ptr<MappingCache> cache)
      : cid(cid_), dim(dim_), table(dim_, std::move(cache)) {}
  const uint64_t cid;
  const uint32_t dim;
  mutable SharedMutex mu;
  RowTable table GUARDED_BY(mu);
  std::atomic<uint64_t> bytes{0};  // approximate, for the memtable budget
};

class MemTable {
 public:
  MemTable() = default;
  // With a row set for the default collection `cid` of dimension `dim`
  // (the memtable that follows one that had it).
  MemTable(uint64_t cid, uint32_t dim, std::shared_ptr<MappingCache> cache);
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  KeyTable& keys() { return keys_; }
  const KeyTable& keys() const { return keys_; }

  // The default collection's rows, or null while the database has none.
  // Once set it stays for the table's life.
  RowSet* rows() const { return rows_.load(std::memory_order_acquire); }
  // Adds the row set of collection `cid` (dimension `dim`) unless there is
  // one already; returns the table's row set (check its cid and dim).
  RowSet* AddRows(uint64_t cid, uint32_t dim, std::shared_ptr<MappingCache> cache);

  // Bytes held by both tables (approximate), for the memtable budget.
  uint64_t bytes() const;
  // No key versions and no rows.
  bool empty() const;

 private:
  KeyTable keys_;
  Mutex rows_mu_;  // AddRows
  std::unique_ptr<RowSet> own_rows_ GUARDED_BY(rows_mu_);
  std::atomic<RowSet*> rows_{nullptr};  // own_rows_, published with release
};

}  // namespace pomai::memtable
