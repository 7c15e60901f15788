#include "memtable/memtable.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace pomai::memtable {
namespace {

std::vector<Write> PlainWrite(const std::string& key, const std::string& bytes) {
  auto v = std::make_shared<Value>();
  v->kind = ValueKind::kBytes;
  v->bytes = bytes;
  return {Write{key, std::move(v)}};
}

// A memtable's size and emptiness count both tables: a database whose
// writes are all rows must still reach its flush budget.
TEST(MemTable, BytesAndEmptyCountTheKeysAndTheRows) {
  MemTable m;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.rows(), nullptr);
  EXPECT_EQ(m.bytes(), m.keys().bytes());
  RowSet* rows = m.AddRows(7, 2, nullptr);
  ASSERT_NE(rows, nullptr);
  EXPECT_TRUE(m.empty()) << "an empty row set holds nothing to flush";
  const float v[2] = {1, 2};
  {
    WriterLock l(&rows->mu);
    rows->table.Put(5, 1, v, "");
  }
  rows->bytes.fetch_add(100);
  EXPECT_FALSE(m.empty());
  EXPECT_EQ(m.bytes(), m.keys().bytes() + 100);

  MemTable k;
  k.keys().Apply(1, PlainWrite(std::string("\0a", 2), "x"), 1);
  EXPECT_FALSE(k.empty());
  EXPECT_EQ(k.bytes(), k.keys().bytes());
  EXPECT_GT(k.bytes(), 0u);
}

// The row set is made once: a second AddRows returns the first one, with
// its collection and dimension (the caller checks them), and its rows.
TEST(MemTable, AddRowsKeepsTheFirstRowSet) {
  MemTable m(3, 4, nullptr);
  RowSet* first = m.rows();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->cid, 3u);
  EXPECT_EQ(first->dim, 4u);
  RowSet* again = m.AddRows(9, 8, nullptr);
  EXPECT_EQ(again, first);
  EXPECT_EQ(again->cid, 3u);
  EXPECT_EQ(again->dim, 4u);
}

// Readers load the row set without a lock while writers add it: a reader
// sees null or the one row set that every AddRows returns.
TEST(MemTable, ConcurrentAddRowsPublishesOneRowSet) {
  MemTable m;
  std::vector<RowSet*> added(3, nullptr);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      RowSet* r = m.rows();
      if (r != nullptr) EXPECT_EQ(r->dim, 2u);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) writers.emplace_back([&, t] { added[t] = m.AddRows(1, 2, nullptr); });
  for (auto& th : writers) th.join();
  done = true;
  reader.join();
  for (RowSet* r : added) EXPECT_EQ(r, m.rows());
}

}  // namespace
}  // namespace pomai::memtable
