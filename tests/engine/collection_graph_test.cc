// Graphs in segments for named collections (docs/ENGINE.md 4.5 to 4.8): the
// first search of an index flushes its rows into a segment group with an
// HNSW graph; a reopen searches that graph without building; rows replaced
// or deleted in newer layers are walked through, never returned; merges
// start the merged group's graph from the largest input graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/db.h"
#include "db_test_util.h"
#include "segment/file.h"

namespace pomai::engine {
namespace {

using testing::BeginRw;
using testing::FlushAndMerge;
using testing::OpenKv;
using testing::RandomVector;

constexpr uint32_t kDim = 16;

IndexConfig L2Config() {
  IndexConfig c;
  c.dim = kDim;
  c.metric = simd::Metric::kL2;
  return c;
}

// Live entries: key -> (vector, metadata or none).
struct Entry {
  std::vector<float> vec;
  bool has_meta = false;
  std::string meta;
};
using Live = std::map<std::string, Entry>;

void Upsert(DB& db, const std::string& index, Live* live, const std::vector<std::pair<std::string, Entry>>& rows) {
  auto t = BeginRw(db);
  for (const auto& [k, e] : rows) {
    const std::string_view mv = e.meta;
    ASSERT_TRUE(t->IndexUpsert(index, k, e.vec.data(), kDim, e.has_meta ? &mv : nullptr).ok());
    (*live)[k] = e;
  }
  Status s = t->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void Delete(DB& db, const std::string& index, Live* live, const std::string& prefix, int from, int to) {
  auto t = BeginRw(db);
  for (int i = from; i < to; ++i) {
    ASSERT_TRUE(t->IndexDelete(index, prefix + std::to_string(i)).ok());
    live->erase(prefix + std::to_string(i));
  }
  ASSERT_TRUE(t->Commit().ok());
}

std::vector<std::pair<std::string, Entry>> RandomRows(std::mt19937_64& rng, const std::string& prefix, int from, int n) {
  std::vector<std::pair<std::string, Entry>> rows;
  for (int i = from; i < from + n; ++i) {
    Entry e;
    e.vec = RandomVector(rng, kDim);
    e.has_meta = i % 3 != 0;
    e.meta = i % 3 == 1 ? "meta-" + std::to_string(i) : "";  // some empty but present
    rows.emplace_back(prefix + std::to_string(i), e);
  }
  return rows;
}

double Distance2(const std::vector<float>& q, const std::vector<float>& v) {
  double d = 0;
  for (uint32_t i = 0; i < kDim; ++i) d += (double(q[i]) - v[i]) * (double(q[i]) - v[i]);
  return d;
}

// The exact top k of `live` by L2.
std::vector<std::string> ExactTop(const Live& live, const std::vector<float>& q, size_t k) {
  std::vector<std::pair<double, std::string>> all;
  for (const auto& [key, e] : live) all.emplace_back(Distance2(q, e.vec), key);
  std::sort(all.begin(), all.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < std::min(k, all.size()); ++i) out.push_back(all[i].second);
  return out;
}

// Searches with ef above the index size (the walk then reaches every live
// row of these small graphs) and checks keys, metadata and scores against
// `live`: a replaced or deleted row is never returned, k rows come back.
void ExpectExact(DB& db, const std::string& index, const Live& live, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int qi = 0; qi < 20; ++qi) {
    const auto q = RandomVector(rng, kDim);
    std::vector<KeyHit> hits;
    Status s = db.SearchIndex(index, q.data(), kDim, 10, 4000, &hits, nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const auto want = ExactTop(live, q, 10);
    ASSERT_EQ(hits.size(), want.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      ASSERT_EQ(hits[i].key, want[i]) << "query " << qi << " rank " << i;
      const Entry& e = live.at(hits[i].key);
      EXPECT_EQ(hits[i].has_metadata, e.has_meta) << hits[i].key;
      EXPECT_EQ(hits[i].metadata, e.has_meta ? e.meta : "") << hits[i].key;
      EXPECT_NEAR(hits[i].score, -std::sqrt(Distance2(q, e.vec)), 1e-3);
    }
  }
}

// The live segment files of a directory, opened.
std::vector<std::shared_ptr<segment::SegmentFile>> Segments(const std::string& dir) {
  std::vector<std::shared_ptr<segment::SegmentFile>> out;
  for (const std::string& name : testing::SegmentFiles(dir)) {
    auto seg = segment::SegmentFile::Open(Env::Default(), dir + "/" + name);
    EXPECT_TRUE(seg.ok()) << seg.status().ToString();
    if (seg.ok()) out.push_back(std::move(seg).value());
  }
  return out;
}

// Graph nodes over every collection group of the segments, and how many
// were carried over from an input graph by a merge.
void GraphRows(const std::vector<std::shared_ptr<segment::SegmentFile>>& segs, uint64_t* rows, uint64_t* reused) {
  *rows = *reused = 0;
  for (const auto& seg : segs) {
    for (uint32_t g = 0; g < seg->group_count(); ++g) {
      const index::HnswGraph* graph = seg->graph(g);
      if (seg->group(g).kind != segment::GroupKind::kBytes || graph == nullptr) continue;
      *rows += seg->group(g).rows;
      *reused += graph->reused_rows();
    }
  }
}

TEST(CollectionGraph, TheFirstSearchPutsTheRowsInASegmentGraphThatAReopenSearchesWithoutABuild) {
  testing::TempDir dir;
  std::mt19937_64 rng(1);
  Live live;
  std::vector<std::vector<KeyHit>> before;
  IndexStats stats_before;
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 10; ++i) queries.push_back(RandomVector(rng, kDim));
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 700));
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 700, 300));
    EXPECT_EQ(db->TEST_SegmentCount(), 0u);  // below the background trigger: nothing built yet
    for (const auto& q : queries) {
      std::vector<KeyHit> hits;
      ASSERT_TRUE(db->SearchIndex("docs", q.data(), kDim, 10, 40, &hits, nullptr).ok());
      before.push_back(hits);
    }
    ASSERT_TRUE(db->GetIndexStats("docs", &stats_before).ok());
    EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    EXPECT_EQ(stats_before.node_count, 1000u);
    EXPECT_EQ(stats_before.delta_count, 0u);
  }
  uint64_t rows = 0, reused = 0;
  GraphRows(Segments(dir.path()), &rows, &reused);
  EXPECT_EQ(rows, 1000u);
  auto db = OpenKv(dir.path());
  for (size_t i = 0; i < queries.size(); ++i) {
    std::vector<KeyHit> hits;
    ASSERT_TRUE(db->SearchIndex("docs", queries[i].data(), kDim, 10, 40, &hits, nullptr).ok());
    ASSERT_EQ(hits.size(), before[i].size());
    for (size_t j = 0; j < hits.size(); ++j) {  // the same graph: the same approximate answer
      EXPECT_EQ(hits[j].key, before[i][j].key);
      EXPECT_EQ(hits[j].score, before[i][j].score);
      EXPECT_EQ(hits[j].has_metadata, before[i][j].has_metadata);
      EXPECT_EQ(hits[j].metadata, before[i][j].metadata);
    }
  }
  EXPECT_EQ(db->TEST_GraphBuilds(), 0u);
  IndexStats stats;
  ASSERT_TRUE(db->GetIndexStats("docs", &stats).ok());
  EXPECT_EQ(stats.node_count, 1000u);
  EXPECT_EQ(stats.level_distribution, stats_before.level_distribution);
  EXPECT_EQ(stats.avg_edges_per_node, stats_before.avg_edges_per_node);
  EXPECT_EQ(stats.memory_bytes, stats_before.memory_bytes);
  ExpectExact(*db, "docs", live, 2);
}

TEST(CollectionGraph, RowsReplacedOrDeletedInNewerLayersAreWalkedThroughAndCountedAsDeleted) {
  testing::TempDir dir;
  std::mt19937_64 rng(3);
  Live live;
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 800));
    IndexStats st;
    ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());  // the first build: one segment
    // 20 replaced in a newer segment (with its own graph), then 20 deleted
    // and 20 new in the WAL.
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 20));
    ASSERT_TRUE(db->Flush().ok());
    Delete(*db, "docs", &live, "d", 100, 120);
    Upsert(*db, "docs", &live, RandomRows(rng, "n", 0, 20));
    ExpectExact(*db, "docs", live, 5);
  }
  auto db = OpenKv(dir.path());
  IndexStats stats;
  ASSERT_TRUE(db->GetIndexStats("docs", &stats).ok());
  EXPECT_EQ(db->TEST_GraphBuilds(), 0u);  // the memtable's rows are searched exactly
  EXPECT_EQ(stats.node_count, live.size());
  EXPECT_EQ(stats.deleted_count, 40u);  // graph rows replaced or deleted by a newer layer
  EXPECT_EQ(stats.delta_count, 20u);    // the new entries, outside every graph
  uint64_t levels = 0;
  for (uint64_t n : stats.level_distribution) levels += n;
  EXPECT_EQ(levels, stats.node_count + stats.deleted_count);
  ExpectExact(*db, "docs", live, 4);
  // Small k with the default ef: still k live rows.
  const auto q = RandomVector(rng, kDim);
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("docs", q.data(), kDim, 5, 0, &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 5u);
  for (const KeyHit& h : hits) EXPECT_TRUE(live.count(h.key)) << h.key;
}

TEST(CollectionGraph, AMergeStartsItsGraphFromTheLargestInputGraph) {
  testing::TempDir dir;
  std::mt19937_64 rng(5);
  Live live;
  Options o;
  o.max_segments = 1;
  auto db = OpenKv(dir.path(), o);
  ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
  Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 900));
  IndexStats st;
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 50));    // replaces 50 graph rows
  Upsert(*db, "docs", &live, RandomRows(rng, "e", 0, 100));
  Delete(*db, "docs", &live, "d", 200, 210);
  FlushAndMerge(*db);  // a second segment, then the merge of both
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  EXPECT_EQ(db->TEST_GraphBuilds(), 3u);  // the first build, the flush's, the merge's
  uint64_t rows = 0, reused = 0;
  GraphRows(Segments(dir.path()), &rows, &reused);
  EXPECT_EQ(rows, live.size());
  EXPECT_EQ(reused, 900u - 50u - 10u);  // the first graph's rows that are still live
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  EXPECT_EQ(st.node_count, live.size());
  EXPECT_EQ(st.deleted_count, 0u);
  EXPECT_EQ(st.delta_count, 0u);
  ExpectExact(*db, "docs", live, 6);
}

// A merge checks the graph it starts from (its sections' CRCs) before it
// reuses it: a layer-0 link flipped to name another valid row passes the
// graph's structural Verify, and would otherwise be copied into the merged
// segment under a valid checksum.
TEST(CollectionGraph, AMergeFailsOnADamagedLinkOfTheGraphItStartsFrom) {
  testing::TempDir dir;
  std::mt19937_64 rng(6);
  Live live;
  Options o;
  o.max_segments = 100;
  std::string older;
  {
    auto db = OpenKv(dir.path(), o);
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 900));
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_EQ(Segments(dir.path()).size(), 1u);
    older = Segments(dir.path())[0]->path();
    Upsert(*db, "docs", &live, RandomRows(rng, "e", 0, 100));
    ASSERT_TRUE(db->Flush().ok());
  }
  {
    auto opened = segment::SegmentFile::Open(Env::Default(), older);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const segment::SegmentFile& seg = *opened.value();
    uint32_t g = 0;
    ASSERT_TRUE(seg.FindGroup(segment::GroupKind::kBytes, seg.group(0).cid, kDim, simd::Metric::kL2, &g));
    ASSERT_NE(seg.graph(g), nullptr);
    uint64_t at = 0;
    for (const auto& ref : seg.sections())
      if (ref.kind == segment::SectionKind::kGraphLayer0 && ref.group == g) at = ref.offset;
    ASSERT_NE(at, 0u);
    // Row 0's first link, flipped in its lowest bit that names another row
    // of the group not yet in row 0's list.
    const uint32_t* block = reinterpret_cast<const uint32_t*>(seg.base() + at);
    const std::set<uint32_t> links(block + 1, block + 1 + block[0]);
    int bit = 0;
    while (bit < 9 && (links.count(block[1] ^ (1u << bit)) || (block[1] ^ (1u << bit)) >= 900)) ++bit;
    ASSERT_LT(bit, 9);
    testing::FlipBit(older, at + 4, bit);
  }
  auto db = OpenKv(dir.path(), o);
  Status s = db->Compact(true);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(older), std::string::npos) << s.message();
  EXPECT_EQ(db->TEST_SegmentCount(), 2u) << "a failed merge installs nothing";
}

TEST(CollectionGraph, ADroppedIndexsRowsGetNoGraph) {
  testing::TempDir dir;
  std::mt19937_64 rng(7);
  Live live, other;
  auto db = OpenKv(dir.path());
  ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
  ASSERT_TRUE(db->CreateIndex("gone", L2Config()).ok());
  Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 300));
  Upsert(*db, "gone", &other, RandomRows(rng, "g", 0, 300));
  ASSERT_TRUE(db->DropIndex("gone").ok());
  IndexStats st;
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  EXPECT_EQ(db->TEST_GraphBuilds(), 1u);  // "docs" only
  uint64_t rows = 0, reused = 0;
  GraphRows(Segments(dir.path()), &rows, &reused);
  EXPECT_EQ(rows, 300u);
  std::vector<KeyHit> hits;
  const auto q = RandomVector(rng, kDim);
  EXPECT_TRUE(db->SearchIndex("gone", q.data(), kDim, 3, 0, &hits, nullptr).IsNotFound());
  ExpectExact(*db, "docs", live, 8);
}

TEST(CollectionGraph, AnInMemoryDatabaseBuildsIntoItsMemorySegments) {
  std::mt19937_64 rng(9);
  Live live;
  auto db = OpenKv("");
  ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
  Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 500));
  ExpectExact(*db, "docs", live, 10);
  EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  Delete(*db, "docs", &live, "d", 0, 30);
  ExpectExact(*db, "docs", live, 11);
  IndexStats st;
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  EXPECT_EQ(st.node_count, 470u);
  EXPECT_EQ(st.deleted_count, 30u);
}

}  // namespace
}  // namespace pomai::engine
