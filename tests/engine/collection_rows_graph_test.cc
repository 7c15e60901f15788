// The default collection's graphs and merges (docs/ENGINE.md 3.3, 4.5-4.7).
// One segment file per flush for the whole database
// (shards are no storage units, ENGINE.md 2.5), one u64 group in it for the
// default collection, with its HNSW graph when it has at least
// adaptive_threshold rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "engine/db.h"
#include "db_test_util.h"
#include "segment/file.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::Json;
using testing::OpenRows;
using testing::SearchRows;
using testing::TempDir;
using testing::TryOpenRows;
using testing::VectorFor;

using testing::RowsOptions;

Status PutMany(DB* db, const std::map<uint64_t, std::vector<float>>& rows) {
  std::vector<WriteOp> ops;
  for (const auto& [id, v] : rows) ops.push_back({WriteOp::Kind::kPut, id, v.data(), {}});
  return db->Write(ops.data(), ops.size());
}

// Puts ids [first, first + n) with VectorFor(id, version, dim) in one row array.
Status PutIds(DB* db, uint64_t first, uint64_t n, uint32_t version = 0, uint32_t dim = 8) {
  std::vector<uint64_t> ids;
  std::vector<float> vecs;
  for (uint64_t id = first; id < first + n; ++id) {
    ids.push_back(id);
    const std::vector<float> v = VectorFor(id, version, dim);
    vecs.insert(vecs.end(), v.begin(), v.end());
  }
  return db->PutArray(ids.data(), vecs.data(), ids.size());
}

// The share of the true top-10 (brute force over `live`) that the searches
// for query(0) .. query(n - 1), made in that order, find.
template <class Query>
double RecallAt10(DB* db, const std::map<uint64_t, std::vector<float>>& live, simd::Metric metric, uint32_t dim,
                  int n, Query query) {
  size_t found = 0, total = 0;
  for (int qn = 0; qn < n; ++qn) {
    const std::vector<float> q = query(qn);
    const auto truth = testing::BruteForce(live, metric, q.data(), dim, 10);
    std::set<uint64_t> want;
    for (const Hit& t : truth) want.insert(t.id);
    for (const Hit& h : SearchRows(db, q.data(), 10)) found += want.count(h.id);
    total += truth.size();
  }
  return static_cast<double>(found) / static_cast<double>(total);
}

// Whether every hit is a live row with its true score (and no id twice): what
// a search through a damaged graph may return instead of an error.
::testing::AssertionResult HitsAreTrue(const std::vector<Hit>& hits, const std::map<uint64_t, std::vector<float>>& live,
                                       simd::Metric metric, const float* q, uint32_t dim) {
  std::set<uint64_t> seen;
  for (const Hit& h : hits) {
    auto it = live.find(h.id);
    if (it == live.end()) return ::testing::AssertionFailure() << "id " << h.id << " is no live row";
    if (!seen.insert(h.id).second) return ::testing::AssertionFailure() << "id " << h.id << " returned twice";
    const float truth = simd::ScalarScore(metric, q, it->second.data(), dim);
    if (std::fabs(h.score - truth) > 1e-4f * (1 + std::fabs(truth)))
      return ::testing::AssertionFailure() << "id " << h.id << " scored " << h.score << ", truly " << truth;
  }
  return ::testing::AssertionSuccess();
}

// ======================= graph search =======================
// Searching segments through their HNSW graphs: newest version wins, deleted
// rows never come back, k live results while k live rows exist, graphs
// survive reopen, recall stays high.

RowsOptions GraphOptions(const std::string& path, uint32_t dim, uint32_t shards, simd::Metric metric) {
  RowsOptions o{testing::DiskOptions(path), testing::RowsCollection(dim, shards, metric)};
  o.coll.adaptive_threshold = 0;  // every segment's group gets a graph and is searched through it
  o.coll.hnsw_m = 16;
  o.coll.hnsw_ef_construction = 100;
  o.coll.hnsw_ef_search = 64;
  return o;
}

class CollectionRowsGraphShadowing : public ::testing::TestWithParam<simd::Metric> {};

TEST_P(CollectionRowsGraphShadowing, DeletedAndOverwrittenRowsNeverReturnedAndKLiveResultsCome) {
  TempDir dir;
  const uint32_t dim = 12;
  auto db = OpenRows(GraphOptions(dir.path(), dim, 2, GetParam()));
  ASSERT_NE(db, nullptr);
  std::map<uint64_t, std::vector<float>> model;
  std::mt19937_64 rng(7);
  uint32_t version = 0;
  // Three generations of segments: each overwrites and deletes rows of the older ones.
  for (int gen = 0; gen < 3; ++gen) {
    std::map<uint64_t, std::vector<float>> batch;
    for (int i = 0; i < 1500; ++i) {
      uint64_t id = rng() % 3000;
      batch[id] = VectorFor(id, ++version, dim);
    }
    ASSERT_TRUE(PutMany(db.get(), batch).ok());
    for (auto& [id, v] : batch) model[id] = v;
    std::vector<WriteOp> dels;
    for (int i = 0; i < 400; ++i) {
      uint64_t id = rng() % 3000;
      dels.push_back({WriteOp::Kind::kDelete, id, nullptr, {}});
      model.erase(id);
    }
    ASSERT_TRUE(db->Write(dels.data(), dels.size()).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  // One segment per flush (shards are no storage units); 3 stay under max_segments.
  ASSERT_EQ(db->TEST_SegmentCount(), 3u);
  size_t found = 0, expected_total = 0;
  for (int qn = 0; qn < 50; ++qn) {
    auto q = VectorFor(900000 + qn, 0, dim);
    auto hits = SearchRows(db.get(), q.data(), 10);
    auto truth = testing::BruteForce(model, GetParam(), q.data(), dim, 10);
    ASSERT_EQ(hits.size(), truth.size()) << "k live results must come back";
    std::set<uint64_t> truth_ids;
    for (auto& t : truth) truth_ids.insert(t.id);
    ASSERT_TRUE(HitsAreTrue(hits, model, GetParam(), q.data(), dim)) << "a deleted row or a stale version came back";
    for (auto& h : hits) {
      ASSERT_EQ(h.shard, h.id % 2);
      found += truth_ids.count(h.id);
    }
    expected_total += truth.size();
  }
  EXPECT_GE(static_cast<double>(found) / expected_total, 0.9) << "recall@10 over live rows";
}

INSTANTIATE_TEST_SUITE_P(Metrics, CollectionRowsGraphShadowing,
                         ::testing::Values(simd::Metric::kL2, simd::Metric::kIP, simd::Metric::kCosine));

TEST(CollectionRowsGraph, MostlyDeletedSegmentStillGivesKLiveResults) {
  TempDir dir;
  const uint32_t dim = 8;
  auto db = OpenRows(GraphOptions(dir.path(), dim, 1, simd::Metric::kL2));
  ASSERT_NE(db, nullptr);
  std::map<uint64_t, std::vector<float>> all;
  for (uint64_t id = 0; id < 4000; ++id) all[id] = VectorFor(id, 0, dim);
  ASSERT_TRUE(PutMany(db.get(), all).ok());
  ASSERT_TRUE(db->Flush().ok());
  std::vector<WriteOp> dels;
  for (uint64_t id = 0; id < 4000; ++id)
    if (id % 50 != 0) dels.push_back({WriteOp::Kind::kDelete, id, nullptr, {}});
  ASSERT_TRUE(db->Write(dels.data(), dels.size()).ok());  // 80 live rows left, tombstones in the memtable
  for (int qn = 0; qn < 10; ++qn) {
    auto q = VectorFor(77777, qn, dim);
    auto hits = SearchRows(db.get(), q.data(), 10);
    ASSERT_EQ(hits.size(), 10u);
    for (auto& h : hits) ASSERT_EQ(h.id % 50, 0u) << "deleted id " << h.id;
  }
  ASSERT_TRUE(db->Flush().ok());  // the tombstones now live in a newer segment
  ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  auto q = VectorFor(5, 5, dim);
  auto hits = SearchRows(db.get(), q.data(), 100);
  ASSERT_EQ(hits.size(), 80u);
  for (auto& h : hits) ASSERT_EQ(h.id % 50, 0u);
  EXPECT_EQ(db->Count().value(), 80u);
}

TEST(CollectionRowsGraph, GraphsPersistAcrossReopenWithIdenticalAnswers) {
  TempDir dir;
  const uint32_t dim = 16;
  RowsOptions o = GraphOptions(dir.path(), dim, 2, simd::Metric::kCosine);
  std::vector<std::vector<Hit>> before;
  uint64_t builds = 0;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    std::map<uint64_t, std::vector<float>> rows;
    for (uint64_t id = 0; id < 3000; ++id) rows[id] = VectorFor(id, 1, dim);
    ASSERT_TRUE(PutMany(db.get(), rows).ok());
    ASSERT_TRUE(db->Flush().ok());
    builds = db->TEST_GraphBuilds();
    for (int qn = 0; qn < 20; ++qn) before.push_back(SearchRows(db.get(), VectorFor(1, qn + 100, dim).data(), 10));
  }
  EXPECT_GE(builds, 1u);
  o.coll.hnsw_m = 8;  // a later open's build parameters do not change existing segments
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  for (int qn = 0; qn < 20; ++qn) {
    auto hits = SearchRows(db.get(), VectorFor(1, qn + 100, dim).data(), 10);
    ASSERT_EQ(hits.size(), before[qn].size());
    for (size_t i = 0; i < hits.size(); ++i) {
      EXPECT_EQ(hits[i].id, before[qn][i].id);
      EXPECT_EQ(hits[i].score, before[qn][i].score);
    }
  }
  EXPECT_EQ(db->TEST_GraphBuilds(), 0u) << "the graph is in the segment: a reopen builds nothing";
}

TEST(CollectionRowsGraph, ClusteredRecallAtDefaultSettingsIsAtLeast095) {
  TempDir dir;
  const uint32_t dim = 64;
  const size_t rows = 20000;
  Options kv;
  kv.path = dir.path();
  DefaultCollectionOptions c = testing::RowsCollection(dim);
  c.adaptive_threshold = 0;  // defaults otherwise: m 32, ef_construction 200, ef_search 64
  auto db = OpenRows(kv, c);
  ASSERT_NE(db, nullptr);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> centers(100, std::vector<float>(dim));
  for (auto& center : centers)
    for (auto& x : center) x = 3.0f * g(rng);
  std::map<uint64_t, std::vector<float>> model;
  for (uint64_t id = 0; id < rows; ++id) {
    std::vector<float> v = centers[rng() % centers.size()];
    for (auto& x : v) x += g(rng);
    model[id] = v;
  }
  ASSERT_TRUE(PutMany(db.get(), model).ok());
  ASSERT_TRUE(db->Flush().ok());
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  const double recall = RecallAt10(db.get(), model, simd::Metric::kL2, dim, 200, [&](int) {
    std::vector<float> q = centers[rng() % centers.size()];
    for (auto& x : q) x += g(rng);
    return q;
  });
  EXPECT_GE(recall, 0.95);
  RecordProperty("recall_at_10", std::to_string(recall));
}

TEST(CollectionRowsGraph, SegmentsBelowTheThresholdGetNoGraphAndAreSearchedExactly) {
  TempDir dir;
  const uint32_t dim = 8;
  RowsOptions o = GraphOptions(dir.path(), dim, 1, simd::Metric::kIP);
  o.coll.adaptive_threshold = 1000;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  std::map<uint64_t, std::vector<float>> rows;
  for (uint64_t id = 0; id < 500; ++id) rows[id] = VectorFor(id, 0, dim);
  ASSERT_TRUE(PutMany(db.get(), rows).ok());
  ASSERT_TRUE(db->Flush().ok());
  EXPECT_EQ(db->TEST_GraphBuilds(), 0u);
  const auto segs = testing::SegmentFiles(dir.path());
  ASSERT_EQ(segs.size(), 1u);
  auto seg = segment::SegmentFile::Open(Env::Default(), dir.file(segs[0]));
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  const uint32_t g = testing::U64Group(*seg.value());
  ASSERT_LT(g, seg.value()->group_count());
  EXPECT_EQ(seg.value()->group(g).rows, 500u);
  EXPECT_FALSE(seg.value()->group(g).has_graph) << "a 500-row group under a 1000-row threshold got a graph";
  EXPECT_TRUE(seg.value()->Section(segment::SectionKind::kGraphHeader, g).empty());
  EXPECT_EQ(seg.value()->graph(g), nullptr);
  const Json stats = testing::Stats(db.get());
  ASSERT_EQ(stats["segment_files"].items.size(), 1u) << "one segment file";
  EXPECT_TRUE(stats["segment_files"].items[0]["graph"].is_null());
  auto q = VectorFor(3, 3, dim);
  auto hits = SearchRows(db.get(), q.data(), 10);
  auto truth = testing::BruteForce(rows, simd::Metric::kIP, q.data(), dim, 10);
  ASSERT_EQ(hits.size(), truth.size());
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].id, truth[i].id);
}

// Format 2 (ENGINE.md 3.3-3.4): graph sections only choose rows; a search
// re-scores and returns rows through their checked blocks. So a damaged
// graph may be refused at open (Corruption), or make a search fail with
// Corruption naming the segment, or make it find other rows: but every row
// it returns is live with its true score, and nothing crashes.
TEST(CollectionRowsGraph, DamagedGraphSectionIsCorruptionOrTrueRowsNeverACrash) {
  TempDir dir;
  const uint32_t dim = 8;
  RowsOptions o = GraphOptions(dir.path(), dim, 1, simd::Metric::kL2);
  std::map<uint64_t, std::vector<float>> rows;
  for (uint64_t id = 0; id < 600; ++id) rows[id] = VectorFor(id, 0, dim);
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(PutMany(db.get(), rows).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  const auto segs = testing::SegmentFiles(dir.path());
  ASSERT_EQ(segs.size(), 1u);
  const std::string seg_name = segs[0];
  std::string original;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(seg_name), &original).ok());
  size_t start = 0, length = 0;
  {
    auto seg = segment::SegmentFile::Open(Env::Default(), dir.file(seg_name));
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    const uint32_t g = testing::U64Group(*seg.value());
    ASSERT_LT(g, seg.value()->group_count());
    ASSERT_TRUE(seg.value()->group(g).has_graph);
    std::string_view layer0 = seg.value()->Section(segment::SectionKind::kGraphLayer0, g);
    ASSERT_FALSE(layer0.empty());
    start = static_cast<size_t>(layer0.data() - seg.value()->base());
    length = layer0.size();
  }
  // Overwrite layer-0 links with huge ids, as a crafted file would (the
  // section CRC is only checked by Verify and by a merge reusing the graph).
  std::string damaged = original;
  for (size_t i = start; i < start + std::min<size_t>(4096, length) && i + 4 <= damaged.size(); i += 4)
    damaged.replace(i, 4, "\xff\xff\xff\x7f", 4);
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(seg_name), damaged).ok());
  auto db = TryOpenRows(o.kv, o.coll);
  if (!db.ok()) {
    EXPECT_TRUE(db.status().IsCorruption()) << db.status().ToString();
    EXPECT_NE(db.status().message().find(seg_name), std::string::npos) << db.status().message();
    return;
  }
  size_t errors = 0;
  for (int qn = 0; qn < 20; ++qn) {
    std::vector<std::vector<Hit>> out;
    uint32_t k = 10;
    auto q = VectorFor(1, qn + 1, dim);
    Status s = (*db)->Search(q.data(), 1, &k, 0, 0, &out);
    if (!s.ok()) {
      ++errors;
      EXPECT_TRUE(s.IsCorruption()) << s.ToString();
      EXPECT_NE(s.message().find(seg_name), std::string::npos) << s.message();
      continue;
    }
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].size(), k);
    EXPECT_TRUE(HitsAreTrue(out[0], rows, simd::Metric::kL2, q.data(), dim)) << "query " << qn;
  }
  RecordProperty("searches_failed", std::to_string(errors));
  // Rows are read through their blocks, not through the graph.
  std::vector<float> v;
  ASSERT_TRUE((*db)->Get(42, &v, nullptr).ok());
  EXPECT_EQ(v, rows[42]);
}

// ======================= compaction =======================
// Compaction keeps every live row with its newest vector and metadata, drops
// what is shadowed, never blocks or misleads readers, and leaves a consistent
// database when it fails half-way.

RowsOptions CompactionOptions(const std::string& path, uint32_t shards, uint32_t adaptive_threshold) {
  RowsOptions o{testing::DiskOptions(path), testing::RowsCollection(8, shards, simd::Metric::kL2)};
  o.coll.adaptive_threshold = adaptive_threshold;
  o.coll.hnsw_m = 8;
  o.coll.hnsw_ef_construction = 40;
  o.coll.hnsw_ef_search = 200;
  return o;
}

// The model test of merges and reopens: default_collection_test.cc (DefaultCollectionModel).

TEST(CollectionRowsCompaction, ForcedCompactionLeavesOneSegmentWithoutTombstones) {
  TempDir dir;
  auto db = OpenRows(CompactionOptions(dir.path(), 2, 0));
  ASSERT_NE(db, nullptr);
  for (uint32_t round = 0; round < 3; ++round) {
    ASSERT_TRUE(PutIds(db.get(), round * 50u, 100, round).ok());
    WriteOp del{WriteOp::Kind::kDelete, static_cast<uint64_t>(round), nullptr, {}};
    ASSERT_TRUE(db->Write(&del, 1).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  ASSERT_EQ(db->TEST_SegmentCount(), 3u);
  ASSERT_TRUE(db->Compact(true).ok());
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  const Json stats = testing::Stats(db.get());
  EXPECT_EQ(stats["segments"].u64(), 1u);
  EXPECT_EQ(stats["segment_tombstones"].u64(), 0u);
  EXPECT_TRUE(stats.Has("segment_tombstones"));
  EXPECT_EQ(stats["segment_rows"].u64(), 197u);
  EXPECT_EQ(stats["live_rows"].u64(), 197u);
  EXPECT_TRUE(stats.Has("live_rows"));
  EXPECT_EQ(stats["dead_rows"].u64(), 0u);
  EXPECT_EQ(stats["memtable_rows"].u64(), 0u);
  ASSERT_EQ(stats["segment_files"].items.size(), 1u);
  EXPECT_EQ(stats["segment_files"].items[0]["tombstones"].u64(), 0u);
  EXPECT_EQ(stats["segment_files"].items[0]["rows"].u64(), 197u);
  // "shards" lists {shard, memtable_rows} per shard.
  ASSERT_EQ(stats["shards"].items.size(), 2u);
  for (size_t s = 0; s < 2; ++s) {
    EXPECT_EQ(stats["shards"].items[s]["shard"].u64(), s);
    EXPECT_TRUE(stats["shards"].items[s].Has("memtable_rows"));
  }
  EXPECT_EQ(db->Count().value(), 197u);
  const auto seg_files = testing::SegmentFiles(dir.path());
  ASSERT_EQ(seg_files.size(), 1u) << "inputs must be deleted once the manifest names the merged segment";
  EXPECT_EQ(stats["segment_files"].items[0]["file"].str, seg_files[0]);
}

TEST(CollectionRowsCompaction, TieredPolicyBoundsTheNumberOfSegments) {
  TempDir dir;
  auto db = OpenRows(CompactionOptions(dir.path(), 1, 100000));
  ASSERT_NE(db, nullptr);
  for (int round = 0; round < 30; ++round) {
    ASSERT_TRUE(PutIds(db.get(), round * 20, 20).ok());
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Compact(false).ok());  // the policy's merges (the compaction thread's after a flush)
    ASSERT_LE(db->TEST_SegmentCount(), 5u) << "round " << round;
  }
  ASSERT_TRUE(db->Compact(false).ok());  // whatever is left to do
  EXPECT_LE(db->TEST_SegmentCount(), 4u);
  EXPECT_EQ(db->Count().value(), 600u);
}

// A writer faster than the compaction thread (a small budget: a background
// flush every few batches; graphs at every merge) is held back once the
// segments pass 3 x max_segments: the background flush thread runs the
// merges before its next flush, so no reader ever sees more than
// 3 x max_segments + 1 segments (the one a flush just added).
TEST(CollectionRowsCompaction, AWriterFasterThanTheMergesIsHeldBackNotOutgrown) {
  TempDir dir;
  RowsOptions o = CompactionOptions(dir.path(), 1, 64);
  o.kv.memtable_budget_bytes = 16 * 1024;
  o.kv.max_segments = 2;
  o.coll.hnsw_m = 32;
  o.coll.hnsw_ef_construction = 400;  // slow graph builds: merges fall behind without the stall
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  size_t most = 0;
  for (uint64_t batch = 0; batch < 300; ++batch) {
    ASSERT_TRUE(PutIds(db.get(), batch * 20, 20).ok());
    most = std::max(most, db->TEST_SegmentCount());
  }
  EXPECT_LE(most, 3u * 2 + 1);
  EXPECT_EQ(db->Count().value(), 6000u);
}

// Puts ids [first, first + n) with VectorFor(id, 0, 8) and flushes: one segment.
void PutAndFlush(DB* db, uint64_t first, uint64_t n) {
  ASSERT_TRUE(PutIds(db, first, n).ok());
  ASSERT_TRUE(db->Flush().ok());
}

// A process that opens, writes, flushes and closes, again and again, may
// never give the compaction thread its turn (a close starts no merge that was
// asked for): Flush runs the merges itself past 3 x max_segments segments.
// The compaction thread is paused here, as such a process would find it.
TEST(CollectionRowsCompaction, FlushesKeepTheSegmentsBoundedWhenTheCompactionThreadLagsBehind) {
  TempDir dir;
  RowsOptions o = CompactionOptions(dir.path(), 1, 64);
  o.kv.max_segments = 2;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  db->TEST_PauseBackgroundMerges(true);
  size_t most = 0;
  for (uint64_t round = 0; round < 20; ++round) {
    PutAndFlush(db.get(), round * 10, 10);
    most = std::max(most, db->TEST_SegmentCount());
  }
  EXPECT_LE(most, 3u * 2 + 1);
  EXPECT_GT(most, 2u) << "the paused thread merged nothing: the flushes did";
  db->TEST_PauseBackgroundMerges(false);
  EXPECT_EQ(db->Count().value(), 200u);
}

// Waits (polling, up to a minute: a liveness bound, not a speed claim) until `done`.
template <class Fn>
bool Eventually(const Fn& done) {
  for (int i = 0; i < 6000 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return done();
}

// A process that stopped before its merges ran leaves more segments than
// the policy allows; the next open asks the compaction thread for them.
TEST(CollectionRowsCompaction, AnOpenMergesTheSegmentsAPreviousProcessLeft) {
  TempDir dir;
  RowsOptions o = CompactionOptions(dir.path(), 1, 64);
  o.kv.max_segments = 2;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    db->TEST_PauseBackgroundMerges(true);
    for (uint64_t round = 0; round < 5; ++round) PutAndFlush(db.get(), round * 10, 10);
    ASSERT_EQ(db->TEST_SegmentCount(), 5u);
  }
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(Eventually([&] { return db->TEST_SegmentCount() <= 2; })) << db->TEST_SegmentCount() << " segments";
  EXPECT_EQ(db->Count().value(), 50u);
}

// Close() stops a merge's graph build instead of waiting for it (the stop
// flag of index::HnswParams); whether the merge ended or was stopped, every
// row is there after the reopen.
TEST(CollectionRowsCompaction, ACloseDuringAMergeLosesNothing) {
  TempDir dir;
  RowsOptions o = CompactionOptions(dir.path(), 1, 64);
  o.kv.max_segments = 2;
  o.coll.hnsw_m = 32;
  o.coll.hnsw_ef_construction = 400;  // a slow graph: the close comes during its build
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    db->TEST_PauseBackgroundMerges(true);
    for (uint64_t round = 0; round < 3; ++round) PutAndFlush(db.get(), round * 4000, 4000);
    const uint64_t builds = db->TEST_GraphBuilds();
    db->TEST_PauseBackgroundMerges(false);
    ASSERT_TRUE(Eventually([&] { return db->TEST_GraphBuilds() > builds; })) << "the merge never started";
    ASSERT_TRUE(db->Close().ok());
  }
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 12000u);
  for (uint64_t id = 0; id < 12000; id += 97) {
    std::vector<float> vec;
    std::string meta;
    ASSERT_TRUE(db->Get(id, &vec, &meta).ok()) << id;
    EXPECT_EQ(vec, VectorFor(id, 0, 8)) << id;
  }
}

TEST(CollectionRowsCompaction, AFailedCompactionLeavesTheInputsAndTheData) {
  for (testing::Op op : {testing::Op::kSync, testing::Op::kRename, testing::Op::kSyncDir}) {
    SCOPED_TRACE(op == testing::Op::kSync ? "sync" : op == testing::Op::kRename ? "rename" : "sync dir");
    TempDir dir;
    testing::FaultInjectionEnv env;
    RowsOptions o = CompactionOptions(dir.path(), 1, 100000);
    o.kv.env = &env;
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    std::map<uint64_t, std::vector<float>> live;
    for (int round = 0; round < 3; ++round) {
      for (uint64_t id = round * 10u; id < round * 10u + 30; ++id) live[id] = VectorFor(id, round, o.coll.dim);
      ASSERT_TRUE(PutMany(db.get(), live).ok());
      ASSERT_TRUE(db->Flush().ok());
    }
    ASSERT_TRUE(db->Compact(false).ok());  // nothing to do under the policy yet
    const uint64_t segments = db->TEST_SegmentCount();
    EXPECT_EQ(segments, 3u);
    const auto files_before = testing::SegmentFiles(dir.path());
    env.FailNth(op, 1, EIO);
    EXPECT_FALSE(db->Compact(true).ok());
    env.ClearFaults();
    EXPECT_EQ(db->TEST_SegmentCount(), segments);
    EXPECT_EQ(db->Count().value(), live.size());
    for (const std::string& f : files_before)
      EXPECT_TRUE(Env::Default()->FileExists(dir.file(f))) << f << ": an input of the failed merge was removed";
    db.reset();
    db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->Count().value(), live.size());
    for (auto& [id, v] : live) {
      std::vector<float> got;
      ASSERT_TRUE(db->Get(id, &got, nullptr).ok());
      ASSERT_EQ(got, v);
    }
    ASSERT_TRUE(db->Compact(true).ok());
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  }
}

// Issue 15: a compaction read damaged rows and links and wrote them into the
// merged segment under valid checksums, after which verify passed. Each
// damage below is one bit flip in the older segment, whose group has the
// graph the merge reuses: in a vector, and in a layer-0 link (to another
// valid row, so HnswGraph::Verify cannot see it).
class CollectionRowsDamagedInput : public ::testing::TestWithParam<uint32_t> {
 protected:
  static std::vector<std::string> Files(const std::string& dir) {
    std::vector<std::string> names = Env::Default()->ListDir(dir).value();
    std::sort(names.begin(), names.end());
    return names;
  }
};

TEST_P(CollectionRowsDamagedInput, FailsTheCompactionBeforeAnythingIsWrittenAndTheRestStillAnswers) {
  const auto kind = static_cast<segment::SectionKind>(GetParam());
  TempDir dir;
  const RowsOptions o = CompactionOptions(dir.path(), 1, 50);
  const uint32_t dim = o.coll.dim;
  std::map<uint64_t, std::vector<float>> live;
  std::string older;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    auto put = [&](uint64_t id) {
      live[id] = VectorFor(id, 0, dim);
      WriteOp op{WriteOp::Kind::kPut, id, live[id].data(), "m"};
      ASSERT_TRUE(db->Write(&op, 1).ok());
    };
    for (uint64_t id = 0; id < 100; ++id) put(id);
    ASSERT_TRUE(db->Flush().ok());
    const auto segs = testing::SegmentFiles(dir.path());
    ASSERT_EQ(segs.size(), 1u);
    older = dir.file(segs[0]);
    for (uint64_t id = 100; id < 120; ++id) put(id);
    live.erase(3);
    WriteOp del{WriteOp::Kind::kDelete, 3, nullptr, {}};
    ASSERT_TRUE(db->Write(&del, 1).ok());
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  }

  // The damage: row 10's first float, or a layer-0 link of row 0 that still
  // names a row of the group (another one, not yet in its list).
  const bool damaged_vectors = kind == segment::SectionKind::kRowVectors;
  {
    auto opened = segment::SegmentFile::Open(Env::Default(), older);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const segment::SegmentFile& seg = *opened.value();
    const uint32_t g = testing::U64Group(seg);
    ASSERT_LT(g, seg.group_count());
    ASSERT_EQ(seg.group(g).rows, 100u);
    ASSERT_TRUE(seg.group(g).has_graph) << "100 rows over a threshold of 50";
    const uint64_t at = testing::SectionOffset(seg, kind, g);
    ASSERT_NE(at, 0u);
    if (damaged_vectors) {
      testing::FlipBit(older, at + 10 * dim * sizeof(float) + 2, 0);
    } else {
      const uint32_t* block = reinterpret_cast<const uint32_t*>(seg.base() + at);
      const std::set<uint32_t> links(block + 1, block + 1 + block[0]);
      ASSERT_GE(links.size(), 1u);
      int bit = 0;
      while (bit < 7 && (links.count(block[1] ^ (1u << bit)) || (block[1] ^ (1u << bit)) == 0 ||
                         (block[1] ^ (1u << bit)) >= 100)) {
        ++bit;
      }
      ASSERT_LT(bit, 7);
      testing::FlipBit(older, at + 4, bit);
    }
  }

  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  const std::vector<std::string> before = Files(dir.path());
  Status s = db->Compact(true);
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(older + " at offset "), std::string::npos) << s.message();
  EXPECT_EQ(Files(dir.path()), before) << "a failed compaction wrote or removed files";
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);

  // Everything the damage does not reach still reads, now and after a
  // reopen. With a damaged vector: the older segment's rows are one block
  // (dim 8: 2048 rows per block), whose CRC covers their ids, vectors and
  // metadata, so every read of them is Corruption, never a value; the newer
  // segment's rows and its tombstone answer.
  for (int round = 0; round < 2; ++round) {
    auto count = db->Count();
    if (!damaged_vectors) ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_TRUE(testing::TruthOrCorruption(count, live.size()));
    for (uint64_t id = 0; id < 120; ++id) {
      std::vector<float> v;
      std::string meta;
      Status g = db->Get(id, &v, &meta);
      if (damaged_vectors && id < 100 && live.count(id)) {
        EXPECT_TRUE(g.IsCorruption()) << id << ": " << g.ToString();
        EXPECT_TRUE(db->Get(id, nullptr, &meta).IsCorruption()) << id;
        EXPECT_TRUE(testing::TruthOrCorruption(db->Exists(id), true)) << id;
      } else if (live.count(id)) {
        ASSERT_TRUE(g.ok()) << id << ": " << g.ToString();
        EXPECT_EQ(v, live[id]);
        EXPECT_EQ(meta, "m");
      } else {
        EXPECT_TRUE(g.IsNotFound()) << id << ": " << g.ToString();
      }
    }
    db.reset();
    db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_TRUE(db->Compact(true).IsCorruption());
    EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(Compaction, CollectionRowsDamagedInput,
                         ::testing::Values(segment::KindNumber(segment::SectionKind::kRowVectors),
                                           segment::KindNumber(segment::SectionKind::kGraphLayer0)),
                         [](const ::testing::TestParamInfo<uint32_t>& p) {
                           return std::string(p.param == segment::KindNumber(segment::SectionKind::kGraphLayer0)
                                                  ? "GraphLink"
                                                  : "Vector");
                         });

// A graph merge: 3000 rows flushed, then 300 new rows, 100 overwrites and 50
// deletes flushed; a forced compaction starts the merged graph from the
// 3000-row segment's, carrying over the 2850 rows neither overwritten nor
// deleted, and graph search over the merged segment finds the true top-10.
struct GraphMerge {
  static constexpr uint32_t kDim = 16;
  std::map<uint64_t, std::vector<float>> live;

  static RowsOptions MergeOptions(const std::string& path) {
    RowsOptions o = CompactionOptions(path, 1, 0);
    o.coll.dim = kDim;
    o.coll.hnsw_ef_search = 64;
    return o;
  }
  void Put(DB* db, uint64_t id, uint32_t version) {
    live[id] = VectorFor(id, version, kDim);
    WriteOp op{WriteOp::Kind::kPut, id, live[id].data(), {}};
    ASSERT_TRUE(db->Write(&op, 1).ok());
  }
  void Fill(DB* db) {
    for (uint64_t id = 0; id < 3000; ++id) Put(db, id, 0);
    ASSERT_TRUE(db->Flush().ok());
    for (uint64_t id = 3000; id < 3300; ++id) Put(db, id, 0);
    for (uint64_t id = 0; id < 1000; id += 10) Put(db, id, 1);
    for (uint64_t id = 5; id < 1000; id += 20) {
      live.erase(id);
      WriteOp del{WriteOp::Kind::kDelete, id, nullptr, {}};
      ASSERT_TRUE(db->Write(&del, 1).ok());
    }
    ASSERT_TRUE(db->Flush().ok());
  }
  double Recall(DB* db) {
    return RecallAt10(db, live, simd::Metric::kL2, kDim, 100, [](int q) { return VectorFor(1000000 + q, 0, kDim); });
  }
};

// The graph objects of the segment files that have one.
std::vector<const Json*> Graphs(const Json& stats) {
  std::vector<const Json*> out;
  for (const Json* g : testing::SegmentGraphs(stats))
    if (!g->is_null()) out.push_back(g);
  return out;
}

TEST(CollectionRowsCompaction, MergedGraphStartsFromTheLargestInputsGraph) {
  TempDir dir;
  GraphMerge m;
  auto db = OpenRows(GraphMerge::MergeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  m.Fill(db.get());
  ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  ASSERT_TRUE(db->Compact(true).ok());
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  // Recorded in the segment: still there after a reopen.
  for (bool reopened : {false, true}) {
    SCOPED_TRACE(reopened ? "reopened" : "merged");
    if (reopened) {
      db.reset();
      db = OpenRows(GraphMerge::MergeOptions(dir.path()));
      ASSERT_NE(db, nullptr);
    }
    const Json stats = testing::Stats(db.get());
    EXPECT_EQ(stats["graph_reused_rows"].u64(), 2850u);
    const auto graphs = Graphs(stats);
    ASSERT_EQ(graphs.size(), 1u);
    EXPECT_EQ((*graphs[0])["reused_rows"].u64(), 2850u);
    EXPECT_EQ(stats["segment_files"].items[0]["rows"].u64(), m.live.size());
    EXPECT_EQ(db->Count().value(), m.live.size());
    EXPECT_GE(m.Recall(db.get()), 0.95);
  }
}

TEST(CollectionRowsCompaction, OtherGraphParamsBuildTheMergedGraphFromNothing) {
  TempDir dir;
  GraphMerge m;
  {
    auto db = OpenRows(GraphMerge::MergeOptions(dir.path()));
    ASSERT_NE(db, nullptr);
    m.Fill(db.get());
  }
  RowsOptions o = GraphMerge::MergeOptions(dir.path());
  o.coll.hnsw_m = 12;  // the inputs were built with 8
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  ASSERT_TRUE(db->Compact(true).ok());
  const Json stats = testing::Stats(db.get());
  EXPECT_EQ(stats["graph_reused_rows"].u64(), 0u);
  EXPECT_TRUE(stats.Has("graph_reused_rows"));
  const auto graphs = Graphs(stats);
  ASSERT_EQ(graphs.size(), 1u);
  EXPECT_EQ((*graphs[0])["m"].u64(), 12u);
  EXPECT_EQ((*graphs[0])["reused_rows"].u64(), 0u);
  EXPECT_GE(m.Recall(db.get()), 0.95);
}

TEST(CollectionRowsCompaction, Float32RepresentationIsRecordedPerSegment) {
  TempDir dir;
  GraphMerge m;
  RowsOptions o = GraphMerge::MergeOptions(dir.path());
  o.coll.hnsw_vectors = GraphVectors::kFloat32;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    m.Fill(db.get());
    const Json stats = testing::Stats(db.get());
    const auto graphs = Graphs(stats);
    ASSERT_EQ(graphs.size(), 2u);
    for (const Json* g : graphs) EXPECT_EQ((*g)["vectors"].str, "float32");
    EXPECT_GE(m.Recall(db.get()), 0.95);
    ASSERT_TRUE(db->Compact(true).ok());
    EXPECT_EQ(testing::Stats(db.get())["graph_reused_rows"].u64(), 2850u);
  }
  // A later open with the default (SQ8) walks the float32 segment as it is,
  // and its merges build SQ8 graphs from nothing.
  auto db = OpenRows(GraphMerge::MergeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  {
    const Json stats = testing::Stats(db.get());  // the graphs point into it
    const auto graphs = Graphs(stats);
    ASSERT_EQ(graphs.size(), 1u);
    EXPECT_EQ((*graphs[0])["vectors"].str, "float32");
  }
  EXPECT_GE(m.Recall(db.get()), 0.95);
  m.Put(db.get(), 5000, 0);
  ASSERT_TRUE(db->Flush().ok());
  ASSERT_TRUE(db->Compact(true).ok());
  const Json stats = testing::Stats(db.get());
  const auto graphs = Graphs(stats);
  ASSERT_EQ(graphs.size(), 1u);
  EXPECT_EQ((*graphs[0])["vectors"].str, "sq8");
  EXPECT_EQ((*graphs[0])["reused_rows"].u64(), 0u);
  EXPECT_EQ(stats["graph_reused_rows"].u64(), 0u);
  EXPECT_GE(m.Recall(db.get()), 0.95);
}

}  // namespace
}  // namespace pomai::engine
