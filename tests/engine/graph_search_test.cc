// Searching segments through their HNSW graphs: newest version wins, deleted
// rows never come back, k live results while k live rows exist, graphs
// survive reopen, recall stays high.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "engine/db.h"
#include "engine_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::TempDir;
using testing::VectorFor;

Options GraphOptions(const std::string& path, uint32_t dim, uint32_t shards, simd::Metric metric) {
  Options o;
  o.path = path;
  o.dim = dim;
  o.shards = shards;
  o.metric = metric;
  o.search_threads = 2;
  o.adaptive_threshold = 0;  // every segment is searched through its graph
  o.hnsw_m = 16;
  o.hnsw_ef_construction = 100;
  o.hnsw_ef_search = 64;
  return o;
}

std::vector<Hit> SearchOne(DB* db, const float* q, uint32_t k, uint32_t ef = 0) {
  std::vector<std::vector<Hit>> out;
  Status s = db->Search(q, 1, &k, 0, ef, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out.empty() ? std::vector<Hit>{} : out[0];
}

Status PutMany(DB* db, const std::map<uint64_t, std::vector<float>>& rows) {
  std::vector<WriteOp> ops;
  for (const auto& [id, v] : rows) ops.push_back({WriteOp::Kind::kPut, id, v.data(), {}});
  return db->Write(ops.data(), ops.size());
}

class GraphShadowing : public ::testing::TestWithParam<simd::Metric> {};

TEST_P(GraphShadowing, DeletedAndOverwrittenRowsNeverReturnedAndKLiveResultsCome) {
  TempDir dir;
  const uint32_t dim = 12;
  auto db = DB::Open(GraphOptions(dir.path(), dim, 2, GetParam())).value();
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
    ASSERT_TRUE(db->Freeze().ok());
  }
  ASSERT_GE(db->TEST_SegmentCount(), 5u);
  size_t found = 0, expected_total = 0;
  for (int qn = 0; qn < 50; ++qn) {
    auto q = VectorFor(900000 + qn, 0, dim);
    auto hits = SearchOne(db.get(), q.data(), 10);
    auto truth = testing::BruteForce(model, GetParam(), q.data(), dim, 10);
    ASSERT_EQ(hits.size(), truth.size()) << "k live results must come back";
    std::set<uint64_t> truth_ids;
    for (auto& t : truth) truth_ids.insert(t.id);
    for (auto& h : hits) {
      auto it = model.find(h.id);
      ASSERT_NE(it, model.end()) << "deleted id " << h.id << " returned by graph search";
      const float fresh = simd::ScalarScore(GetParam(), q.data(), it->second.data(), dim);
      ASSERT_NEAR(h.score, fresh, 1e-4f * (1 + std::fabs(fresh))) << "stale version of id " << h.id << " returned";
      found += truth_ids.count(h.id);
    }
    expected_total += truth.size();
  }
  EXPECT_GE(static_cast<double>(found) / expected_total, 0.9) << "recall@10 over live rows";
}

INSTANTIATE_TEST_SUITE_P(Metrics, GraphShadowing,
                         ::testing::Values(simd::Metric::kL2, simd::Metric::kIP, simd::Metric::kCosine));

TEST(GraphSearch, MostlyDeletedSegmentStillGivesKLiveResults) {
  TempDir dir;
  const uint32_t dim = 8;
  auto db = DB::Open(GraphOptions(dir.path(), dim, 1, simd::Metric::kL2)).value();
  std::map<uint64_t, std::vector<float>> all;
  for (uint64_t id = 0; id < 4000; ++id) all[id] = VectorFor(id, 0, dim);
  ASSERT_TRUE(PutMany(db.get(), all).ok());
  ASSERT_TRUE(db->Freeze().ok());
  std::vector<WriteOp> dels;
  for (uint64_t id = 0; id < 4000; ++id)
    if (id % 50 != 0) dels.push_back({WriteOp::Kind::kDelete, id, nullptr, {}});
  ASSERT_TRUE(db->Write(dels.data(), dels.size()).ok());  // 80 live rows left, tombstones in the memtable
  for (int qn = 0; qn < 10; ++qn) {
    auto q = VectorFor(77777, qn, dim);
    auto hits = SearchOne(db.get(), q.data(), 10);
    ASSERT_EQ(hits.size(), 10u);
    for (auto& h : hits) ASSERT_EQ(h.id % 50, 0u) << "deleted id " << h.id;
  }
  ASSERT_TRUE(db->Freeze().ok());  // the tombstones now live in a newer segment
  auto q = VectorFor(5, 5, dim);
  auto hits = SearchOne(db.get(), q.data(), 100);
  ASSERT_EQ(hits.size(), 80u);
  for (auto& h : hits) ASSERT_EQ(h.id % 50, 0u);
}

TEST(GraphSearch, GraphsPersistAcrossReopenWithIdenticalAnswers) {
  TempDir dir;
  const uint32_t dim = 16;
  Options o = GraphOptions(dir.path(), dim, 2, simd::Metric::kCosine);
  std::vector<std::vector<Hit>> before;
  {
    auto db = DB::Open(o).value();
    std::map<uint64_t, std::vector<float>> rows;
    for (uint64_t id = 0; id < 3000; ++id) rows[id] = VectorFor(id, 1, dim);
    ASSERT_TRUE(PutMany(db.get(), rows).ok());
    ASSERT_TRUE(db->Freeze().ok());
    for (int qn = 0; qn < 20; ++qn) before.push_back(SearchOne(db.get(), VectorFor(1, qn + 100, dim).data(), 10));
  }
  o.hnsw_m = 8;  // a later open's build parameters do not change existing segments
  auto db = DB::Open(o).value();
  for (int qn = 0; qn < 20; ++qn) {
    auto hits = SearchOne(db.get(), VectorFor(1, qn + 100, dim).data(), 10);
    ASSERT_EQ(hits.size(), before[qn].size());
    for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].id, before[qn][i].id);
  }
}

TEST(GraphSearch, ClusteredRecallAtDefaultSettingsIsAtLeast095) {
  TempDir dir;
  const uint32_t dim = 64;
  const size_t rows = 20000;
  Options o;
  o.path = dir.path();
  o.dim = dim;
  o.shards = 1;
  o.metric = simd::Metric::kL2;
  o.adaptive_threshold = 0;  // defaults otherwise: m 32, ef_construction 200, ef_search 64
  auto db = DB::Open(o).value();
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<std::vector<float>> centers(100, std::vector<float>(dim));
  for (auto& c : centers)
    for (auto& x : c) x = 3.0f * g(rng);
  std::map<uint64_t, std::vector<float>> model;
  for (uint64_t id = 0; id < rows; ++id) {
    std::vector<float> v = centers[rng() % centers.size()];
    for (auto& x : v) x += g(rng);
    model[id] = v;
  }
  ASSERT_TRUE(PutMany(db.get(), model).ok());
  ASSERT_TRUE(db->Freeze().ok());
  size_t found = 0, total = 0;
  for (int qn = 0; qn < 200; ++qn) {
    std::vector<float> q = centers[rng() % centers.size()];
    for (auto& x : q) x += g(rng);
    auto hits = SearchOne(db.get(), q.data(), 10);
    auto truth = testing::BruteForce(model, simd::Metric::kL2, q.data(), dim, 10);
    std::set<uint64_t> t;
    for (auto& h : truth) t.insert(h.id);
    for (auto& h : hits) found += t.count(h.id);
    total += truth.size();
  }
  const double recall = static_cast<double>(found) / total;
  EXPECT_GE(recall, 0.95);
  RecordProperty("recall_at_10", std::to_string(recall));
}

TEST(GraphSearch, SegmentsBelowTheThresholdGetNoGraphAndAreSearchedExactly) {
  TempDir dir;
  const uint32_t dim = 8;
  Options o = GraphOptions(dir.path(), dim, 1, simd::Metric::kIP);
  o.adaptive_threshold = 1000;
  auto db = DB::Open(o).value();
  std::map<uint64_t, std::vector<float>> rows;
  for (uint64_t id = 0; id < 500; ++id) rows[id] = VectorFor(id, 0, dim);
  ASSERT_TRUE(PutMany(db.get(), rows).ok());
  ASSERT_TRUE(db->Freeze().ok());
  auto names = Env::Default()->ListDir(dir.path()).value();
  for (auto& n : names) {
    if (n.rfind("seg-", 0) != 0) continue;
    auto seg = segment::Segment::Open(Env::Default(), dir.file(n)).value();
    EXPECT_TRUE(seg->Section(segment::SectionKind::kHnswHeader).empty())
        << "a 500-row segment under a 1000-row threshold got a graph";
  }
  auto q = VectorFor(3, 3, dim);
  auto hits = SearchOne(db.get(), q.data(), 10);
  auto truth = testing::BruteForce(rows, simd::Metric::kIP, q.data(), dim, 10);
  ASSERT_EQ(hits.size(), truth.size());
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].id, truth[i].id);
}

TEST(GraphSearch, DamagedGraphSectionIsCorruptionOnOpenOrSearchNeverACrash) {
  TempDir dir;
  const uint32_t dim = 8;
  Options o = GraphOptions(dir.path(), dim, 1, simd::Metric::kL2);
  {
    auto db = DB::Open(o).value();
    std::map<uint64_t, std::vector<float>> rows;
    for (uint64_t id = 0; id < 600; ++id) rows[id] = VectorFor(id, 0, dim);
    ASSERT_TRUE(PutMany(db.get(), rows).ok());
    ASSERT_TRUE(db->Freeze().ok());
  }
  std::string seg_name;
  for (auto& n : Env::Default()->ListDir(dir.path()).value())
    if (n.rfind("seg-", 0) == 0) seg_name = n;
  std::string original;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(seg_name), &original).ok());
  auto seg = segment::Segment::Open(Env::Default(), dir.file(seg_name)).value();
  std::string_view layer0 = seg->Section(segment::SectionKind::kHnswLayer0);
  ASSERT_FALSE(layer0.empty());
  const size_t start = static_cast<size_t>(layer0.data() - seg->base());
  seg.reset();
  // Overwrite layer-0 links with huge ids, as a crafted file would (section checksums are only checked by Verify).
  std::string damaged = original;
  for (size_t i = start; i < start + 4096 && i + 4 <= damaged.size(); i += 4) {
    damaged[i] = '\xff';
    damaged[i + 1] = '\xff';
    damaged[i + 2] = '\xff';
    damaged[i + 3] = '\x7f';
  }
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(seg_name), damaged).ok());
  auto db = DB::Open(o);
  if (!db.ok()) {
    EXPECT_TRUE(db.status().IsCorruption()) << db.status().ToString();
    return;
  }
  std::vector<std::vector<Hit>> out;
  uint32_t k = 10;
  auto q = VectorFor(1, 1, dim);
  Status s = (*db)->Search(q.data(), 1, &k, 0, 0, &out);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(seg_name), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pomai::engine
