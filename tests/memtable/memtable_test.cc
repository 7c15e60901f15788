#include "memtable/memtable.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <memory>
#include <vector>

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
TEST(MemTable, NextMemtableReusesTheRetiredMemtablesMappingAndOverwritesItsRows) {
  auto cache = std::make_shared<MappingCache>(64u << 20);
  const float* first_rows = nullptr;
  {
    MemTable m(4, cache);
    const float v[4] = {1, 2, 3, 4};
    for (uint64_t id = 0; id < 100; ++id) m.Put(id, id + 1, v, "meta");
    first_rows = m.vectors();
  }
  MemTable next(4, cache);
  const float w[4] = {5, 6, 7, 8};
  next.Put(42, 1, w, {});
  EXPECT_EQ(next.vectors(), first_rows) << "the retired mapping is reused, not faulted in again";
  EXPECT_EQ(next.rows(), 1u);
  EXPECT_EQ(std::vector<float>(next.vector(0), next.vector(0) + 4), std::vector<float>(w, w + 4));
  EXPECT_EQ(next.metadata(0), "");
}

TEST(MemTable, MappingCacheKeepsOneMappingWithinItsLimit) {
  MappingCache cache(4u << 20);
  void* a = ::mmap(nullptr, 2u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* b = ::mmap(nullptr, 8u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_TRUE(cache.Put(a, 2u << 20));
  EXPECT_FALSE(cache.Put(b, 2u << 20)) << "one mapping at a time";
  auto [p, n] = cache.Take();
  EXPECT_EQ(p, a);
  EXPECT_EQ(n, 2u << 20);
  EXPECT_FALSE(cache.Put(b, 8u << 20)) << "above the limit";
  EXPECT_EQ(cache.Take().first, nullptr);
  ::munmap(a, 2u << 20);
  ::munmap(b, 8u << 20);
}

TEST(MemTable, MetadataOnALaterRowAndClearingItOnOverwrite) {
  MemTable m(2);
  const float v[2] = {1, 2};
  m.Put(1, 1, v, {});
  m.Put(2, 2, v, "two");
  m.Put(3, 3, v, {});
  EXPECT_EQ(m.metadata(0), "");
  EXPECT_EQ(m.metadata(1), "two");
  EXPECT_EQ(m.metadata(2), "");
  m.Put(2, 4, v, {});
  EXPECT_EQ(m.metadata(1), "");
  m.Put(3, 5, v, "three");
  EXPECT_EQ(m.metadata(2), "three");
  m.Delete(3, 6);
  EXPECT_EQ(m.metadata(2), "");
}

}  // namespace pomai
