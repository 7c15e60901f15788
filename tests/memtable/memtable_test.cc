#include "memtable/memtable.h"

#include <gtest/gtest.h>

namespace pomai {
namespace {

TEST(MemTable, OverwriteReusesTheRowAndKeepsVectorsContiguous) {
  MemTable m(2);
  float a[2] = {1, 2}, b[2] = {3, 4}, c[2] = {5, 6};
  m.Put(10, 1, a, "a");
  m.Put(20, 2, b, "b");
  m.Put(10, 3, c, "c");
  ASSERT_EQ(m.rows(), 2u);
  EXPECT_EQ(m.vectors()[0], 5);
  EXPECT_EQ(m.vectors()[3], 4);
  size_t row;
  ASSERT_EQ(m.Find(10, &row), MemTable::State::kLive);
  EXPECT_EQ(m.metadata(row), "c");
  EXPECT_EQ(m.min_seq(), 1u);
  EXPECT_EQ(m.max_seq(), 3u);
}

TEST(MemTable, DeleteLeavesATombstoneThatAPutRevives) {
  MemTable m(1);
  float v[1] = {1};
  m.Delete(5, 1);  // never seen: still a tombstone, to shadow older layers
  size_t row;
  EXPECT_EQ(m.Find(5, &row), MemTable::State::kDeleted);
  EXPECT_EQ(m.live_count(), 0u);
  m.Put(5, 2, v, "");
  EXPECT_EQ(m.Find(5, &row), MemTable::State::kLive);
  EXPECT_EQ(m.live_count(), 1u);
  m.Delete(5, 3);
  EXPECT_EQ(m.Find(5, &row), MemTable::State::kDeleted);
  EXPECT_EQ(m.Find(6, &row), MemTable::State::kAbsent);
}

TEST(MemTable, SortedContentsSplitsLiveRowsAndTombstonesInIdOrder) {
  MemTable m(1);
  float v[1];
  for (uint64_t id : {9, 2, 7, 4}) {
    v[0] = static_cast<float>(id);
    m.Put(id, id, v, std::string(id, 'x'));
  }
  m.Delete(7, 10);
  m.Delete(1, 11);
  auto s = m.SortedContents();
  EXPECT_EQ(s.ids, (std::vector<uint64_t>{2, 4, 9}));
  EXPECT_EQ(s.vectors, (std::vector<float>{2, 4, 9}));
  EXPECT_EQ(s.tombstones, (std::vector<uint64_t>{1, 7}));
  EXPECT_EQ(s.meta_offsets, (std::vector<uint64_t>{0, 2, 6, 15}));
  EXPECT_EQ(s.meta_blob.size(), 15u);
}

}  // namespace
}  // namespace pomai
