#include "memtable/memtable.h"

namespace pomai::memtable {

MemTable::MemTable(uint64_t cid, uint32_t dim, std::shared_ptr<MappingCache> cache) {
  AddRows(cid, dim, std::move(cache));
}

RowSet* MemTable::AddRows(uint64_t cid, uint32_t dim, std::shared_ptr<MappingCache> cache) {
  MutexLock l(&rows_mu_);
  if (own_rows_ == nullptr) {
    own_rows_ = std::make_unique<RowSet>(cid, dim, std::move(cache));
    rows_.store(own_rows_.get(), std::memory_order_release);
  }
  return own_rows_.get();
}

uint64_t MemTable::bytes() const {
  const RowSet* r = rows();
  return keys_.bytes() + (r != nullptr ? r->bytes.load(std::memory_order_relaxed) : 0);
}

bool MemTable::empty() const {
  if (!keys_.empty()) return false;
  const RowSet* r = rows();
  if (r == nullptr) return true;
  ReaderLock l(&r->mu);
  return r->table.empty();
}

}  // namespace pomai::memtable
