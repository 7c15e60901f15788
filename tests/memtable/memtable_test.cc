#include "memtable/memtable.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <memory>
#include <vector>

namespace pomai {
namespace {

TEST(MemTable, OverwriteAppendsAVersionAndKeepsVectorsContiguous) {
  MemTable m(2);
  float a[2] = {1, 2}, b[2] = {3, 4}, c[2] = {5, 6};
  m.Put(10, 1, a, "a");
  m.Put(20, 2, b, "b");
  m.Put(10, 3, c, "c");
  ASSERT_EQ(m.rows(), 3u);
  EXPECT_EQ(m.live_count(), 2u);
  EXPECT_EQ(m.vectors()[0], 1) << "the old version stays for older snapshots";
  EXPECT_EQ(m.vectors()[3], 4);
  EXPECT_EQ(m.vectors()[4], 5);
  EXPECT_TRUE(m.superseded(0));
  EXPECT_FALSE(m.superseded(2));
  size_t row;
  ASSERT_EQ(m.Find(10, &row), MemTable::State::kLive);
  EXPECT_EQ(row, 2u);
  EXPECT_EQ(m.metadata(row), "c");
  EXPECT_EQ(m.metadata(0), "a");
  EXPECT_EQ(m.min_seq(), 1u);
  EXPECT_EQ(m.max_seq(), 3u);
}

// Exactly one version of an id is visible at any snapshot: the newest one
// written at or before it (none when that one is a tombstone).
TEST(MemTable, EachSnapshotSeesTheNewestVersionAtOrBeforeIt) {
  MemTable m(1);
  float v[1];
  v[0] = 1;
  m.Put(7, 10, v, "");  // row 0
  m.Delete(7, 20);      // row 1
  v[0] = 3;
  m.Put(7, 30, v, "");  // row 2
  m.Put(8, 25, v, "");  // row 3 (another id)
  ASSERT_EQ(m.rows(), 4u);
  auto visible = [&](uint64_t seq) {
    std::vector<size_t> rows;
    for (size_t r = 0; r < m.rows(); ++r)
      if (m.VisibleAt(r, seq)) rows.push_back(r);
    return rows;
  };
  EXPECT_EQ(visible(9), (std::vector<size_t>{}));
  EXPECT_EQ(visible(10), (std::vector<size_t>{0}));
  EXPECT_EQ(visible(19), (std::vector<size_t>{0}));
  EXPECT_EQ(visible(20), (std::vector<size_t>{}));
  EXPECT_EQ(visible(25), (std::vector<size_t>{3}));
  EXPECT_EQ(visible(30), (std::vector<size_t>{2, 3}));
  EXPECT_EQ(visible(UINT64_MAX), (std::vector<size_t>{2, 3}));
  // The memtable shadows older layers for id 7 from its first version on,
  // tombstone included; for id 8 only from seq 25.
  EXPECT_FALSE(m.HoldsAt(7, 9));
  EXPECT_TRUE(m.HoldsAt(7, 10));
  EXPECT_TRUE(m.HoldsAt(7, 20));
  EXPECT_FALSE(m.HoldsAt(8, 24));
  EXPECT_TRUE(m.HoldsAt(8, 25));
  EXPECT_FALSE(m.HoldsAt(9, UINT64_MAX));
  // A freeze writes the newest versions only.
  auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.ids, (std::vector<uint64_t>{7, 8}));
  EXPECT_EQ(sorted.vectors, (std::vector<float>{3, 3}));
  EXPECT_TRUE(sorted.tombstones.empty());
}

TEST(MemTable, DeletingADeletedIdAddsNoRow) {
  MemTable m(1);
  float v[1] = {1};
  m.Put(1, 1, v, "");
  m.Delete(1, 2);
  m.Delete(1, 3);
  EXPECT_EQ(m.rows(), 2u);
  EXPECT_EQ(m.live_count(), 0u);
  EXPECT_EQ(m.max_seq(), 3u);
  auto sorted = m.SortedContents();
  EXPECT_TRUE(sorted.ids.empty());
  EXPECT_EQ(sorted.tombstones, (std::vector<uint64_t>{1}));
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

TEST(MemTable, MetadataBelongsToItsVersion) {
  MemTable m(2);
  const float v[2] = {1, 2};
  m.Put(1, 1, v, {});
  m.Put(2, 2, v, "two");
  m.Put(3, 3, v, {});
  EXPECT_EQ(m.metadata(0), "");
  EXPECT_EQ(m.metadata(1), "two");
  EXPECT_EQ(m.metadata(2), "");
  m.Put(2, 4, v, {});
  size_t row;
  ASSERT_EQ(m.Find(2, &row), MemTable::State::kLive);
  EXPECT_EQ(m.metadata(row), "");
  EXPECT_EQ(m.metadata(1), "two") << "an older snapshot's version keeps its metadata";
  m.Put(3, 5, v, "three");
  ASSERT_EQ(m.Find(3, &row), MemTable::State::kLive);
  EXPECT_EQ(m.metadata(row), "three");
  m.Delete(3, 6);
  ASSERT_EQ(m.Find(3, &row), MemTable::State::kDeleted);
  EXPECT_EQ(m.metadata(row), "");
  auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(sorted.meta_blob, "");
}

}  // namespace pomai
