#include "memtable/row_table.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <memory>
#include <string>
#include <vector>

namespace pomai::memtable {
namespace {

TEST(RowTable, OverwriteAppendsAVersionAndKeepsVectorsContiguous) {
  RowTable m(2);
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
  ASSERT_EQ(m.Find(10, &row), RowTable::State::kLive);
  EXPECT_EQ(row, 2u);
  EXPECT_EQ(m.metadata(row), "c");
  EXPECT_EQ(m.metadata(0), "a");
  EXPECT_EQ(m.min_seq(), 1u);
  EXPECT_EQ(m.max_seq(), 3u);
}

// Exactly one version of an id is visible at any snapshot: the newest one
// written at or before it (none when that one is a tombstone).
TEST(RowTable, EachSnapshotSeesTheNewestVersionAtOrBeforeIt) {
  RowTable m(1);
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

TEST(RowTable, DeletingADeletedIdAddsNoRow) {
  RowTable m(1);
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

TEST(RowTable, DeleteLeavesATombstoneThatAPutRevives) {
  RowTable m(1);
  float v[1] = {1};
  m.Delete(5, 1);  // never seen: still a tombstone, to shadow older layers
  size_t row;
  EXPECT_EQ(m.Find(5, &row), RowTable::State::kDeleted);
  EXPECT_EQ(m.live_count(), 0u);
  m.Put(5, 2, v, "");
  EXPECT_EQ(m.Find(5, &row), RowTable::State::kLive);
  EXPECT_EQ(m.live_count(), 1u);
  m.Delete(5, 3);
  EXPECT_EQ(m.Find(5, &row), RowTable::State::kDeleted);
  EXPECT_EQ(m.Find(6, &row), RowTable::State::kAbsent);
}

TEST(RowTable, SortedContentsSplitsLiveRowsAndTombstonesInIdOrder) {
  RowTable m(1);
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
TEST(RowTable, NextMemtableReusesTheRetiredMemtablesMappingAndOverwritesItsRows) {
  auto cache = std::make_shared<MappingCache>(64u << 20);
  const float* first_rows = nullptr;
  {
    RowTable m(4, cache);
    const float v[4] = {1, 2, 3, 4};
    for (uint64_t id = 0; id < 100; ++id) m.Put(id, id + 1, v, "meta");
    first_rows = m.vectors();
  }
  RowTable next(4, cache);
  const float w[4] = {5, 6, 7, 8};
  next.Put(42, 1, w, {});
  EXPECT_EQ(next.vectors(), first_rows) << "the retired mapping is reused, not faulted in again";
  EXPECT_EQ(next.rows(), 1u);
  EXPECT_EQ(std::vector<float>(next.vector(0), next.vector(0) + 4), std::vector<float>(w, w + 4));
  EXPECT_EQ(next.metadata(0), "");
}

TEST(RowTable, MappingCacheKeepsOneMappingWithinItsLimit) {
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

TEST(RowTable, MetadataBelongsToItsVersion) {
  RowTable m(2);
  const float v[2] = {1, 2};
  m.Put(1, 1, v, {});
  m.Put(2, 2, v, "two");
  m.Put(3, 3, v, {});
  EXPECT_EQ(m.metadata(0), "");
  EXPECT_EQ(m.metadata(1), "two");
  EXPECT_EQ(m.metadata(2), "");
  m.Put(2, 4, v, {});
  size_t row;
  ASSERT_EQ(m.Find(2, &row), RowTable::State::kLive);
  EXPECT_EQ(m.metadata(row), "");
  EXPECT_EQ(m.metadata(1), "two") << "an older snapshot's version keeps its metadata";
  m.Put(3, 5, v, "three");
  ASSERT_EQ(m.Find(3, &row), RowTable::State::kLive);
  EXPECT_EQ(m.metadata(row), "three");
  m.Delete(3, 6);
  ASSERT_EQ(m.Find(3, &row), RowTable::State::kDeleted);
  EXPECT_EQ(m.metadata(row), "");
  auto sorted = m.SortedContents();
  EXPECT_EQ(sorted.ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(sorted.meta_blob, "");
}

// FindAt answers what the newest version at a snapshot says: absent before
// the first version, each version from its sequence number on, a tombstone
// as deleted, whatever newer versions were appended since.
TEST(RowTable, FindAtSeesTheVersionOfEachSnapshot) {
  RowTable m(2);
  float v1[2] = {1, 1}, v3[2] = {3, 3}, v5[2] = {5, 5}, other[2] = {9, 9};
  m.Put(7, 1, v1, {});
  m.Put(8, 2, other, {});
  m.Put(7, 3, v3, {});
  m.Delete(7, 4);
  m.Put(7, 5, v5, {});
  const struct {
    uint64_t seq;
    RowTable::State state;
    float first;
  } want[] = {{0, RowTable::State::kAbsent, 0}, {1, RowTable::State::kLive, 1}, {2, RowTable::State::kLive, 1},
              {3, RowTable::State::kLive, 3},   {4, RowTable::State::kDeleted, 0}, {5, RowTable::State::kLive, 5},
              {99, RowTable::State::kLive, 5}};
  for (const auto& w : want) {
    size_t row = 12345;
    ASSERT_EQ(m.FindAt(7, w.seq, &row), w.state) << "seq " << w.seq;
    if (w.state == RowTable::State::kLive) EXPECT_EQ(m.vector(row)[0], w.first) << "seq " << w.seq;
    if (w.state == RowTable::State::kAbsent) EXPECT_EQ(row, 12345u) << "row set for an absent id";
  }
  size_t row;
  EXPECT_EQ(m.FindAt(8, 1, &row), RowTable::State::kAbsent);
  EXPECT_EQ(m.FindAt(8, 2, &row), RowTable::State::kLive);
  EXPECT_EQ(m.FindAt(99, 99, &row), RowTable::State::kAbsent);
}

// PutRows stores what the same Puts would, for every dim (streamed or
// copied), from unaligned source rows, for all rows or a selection, with an
// id repeated inside the batch (its later row wins).
TEST(RowTable, PutRowsStoresWhatPutsWould) {
  for (uint32_t dim : {1u, 3u, 4u, 8u, 17u, 128u}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    constexpr size_t kN = 50;
    std::vector<uint64_t> ids(kN);
    for (size_t i = 0; i < kN; ++i) ids[i] = (i * 7919) % 40;  // repeats within the batch
    std::vector<float> storage(kN * dim + 1);
    float* rows = storage.data() + 1;  // 4 bytes past an aligned start
    for (size_t i = 0; i < kN * dim; ++i) rows[i] = static_cast<float>(i) * 0.5f;
    std::vector<uint32_t> sel;
    for (uint32_t i = 0; i < kN; i += 3) sel.push_back(i);
    for (bool selected : {false, true}) {
      RowTable a(dim), b(dim);
      std::vector<float> zero(dim, 0.0f);
      a.Put(ids[0], 1, zero.data(), "old");  // an older version, replaced by the batch
      b.Put(ids[0], 1, zero.data(), "old");
      const size_t n = selected ? sel.size() : kN;
      a.PutRows(2, reinterpret_cast<const uint8_t*>(ids.data()), rows, selected ? sel.data() : nullptr, n);
      for (size_t j = 0; j < n; ++j) {
        const size_t i = selected ? sel[j] : j;
        b.Put(ids[i], 2, rows + i * dim, {});
      }
      ASSERT_EQ(a.rows(), b.rows());
      EXPECT_EQ(a.live_count(), b.live_count());
      for (uint64_t id = 0; id < 40; ++id) {
        size_t ra = 0, rb = 0;
        const auto state = a.Find(id, &ra);
        ASSERT_EQ(state, b.Find(id, &rb)) << id;
        if (state != RowTable::State::kLive) continue;
        EXPECT_EQ(ra, rb);
        EXPECT_EQ(std::vector<float>(a.vector(ra), a.vector(ra) + dim),
                  std::vector<float>(b.vector(rb), b.vector(rb) + dim));
        EXPECT_EQ(a.metadata(ra), "") << "a batch row inherited the old version's metadata";
        EXPECT_EQ(a.first_seq(ra), 2u);
      }
      size_t old_row;
      EXPECT_EQ(a.FindAt(ids[0], 1, &old_row), RowTable::State::kLive);
      EXPECT_EQ(a.metadata(old_row), "old");
    }
  }
}

}  // namespace pomai::memtable
