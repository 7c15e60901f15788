// Flat vector search inside transactions, named HNSW indexes and their
// graphs in segments.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"
#include "db_test_util.h"
#include "segment/file.h"

namespace pomai::engine {
namespace {

using testing::BeginRo;
using testing::BeginRw;
using testing::BothModes;
using testing::FlushAndMerge;
using testing::OpenKv;
using testing::RandomVector;

// The reference scores of kv.h, in double precision.
double RefScore(simd::Metric m, const std::vector<float>& q, const std::vector<float>& v) {
  double dot = 0, qq = 0, vv = 0, l2 = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    dot += double(q[i]) * v[i];
    qq += double(q[i]) * q[i];
    vv += double(v[i]) * v[i];
    l2 += (double(q[i]) - v[i]) * (double(q[i]) - v[i]);
  }
  switch (m) {
    case simd::Metric::kIP: return dot;
    case simd::Metric::kL2: return -std::sqrt(l2);
    case simd::Metric::kCosine: return qq == 0 || vv == 0 ? 0.0 : dot / std::sqrt(qq * vv);
  }
  return 0;
}

// Live vector records or index entries: key -> vector.
using Live = std::map<std::string, std::vector<float>>;

std::vector<std::pair<std::string, double>> BruteForce(const Live& live, simd::Metric m, const std::vector<float>& q,
                                                       size_t k) {
  std::vector<std::pair<std::string, double>> all;
  for (const auto& [key, v] : live) all.emplace_back(key, RefScore(m, q, v));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  });
  if (all.size() > k) all.resize(k);
  return all;
}

void ExpectSameHits(const std::vector<KeyHit>& got, const std::vector<std::pair<std::string, double>>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i].score, want[i].second, 1e-3 * std::max(1.0, std::abs(want[i].second))) << what << " hit " << i;
    // Equal keys, unless two reference scores are too close to order reliably in float32.
    if (got[i].key != want[i].first) {
      const double gap = i + 1 < want.size() ? std::abs(want[i].second - want[i + 1].second) : 0;
      const double gap_prev = i > 0 ? std::abs(want[i].second - want[i - 1].second) : 0;
      EXPECT_TRUE(gap < 1e-4 || gap_prev < 1e-4) << what << " hit " << i << ": " << got[i].key << " vs " << want[i].first;
    }
  }
}

// One commit of `ops` random writes to keys <prefix><rng() % keys>: a
// delete (1 in 8), a bytes value (1 in 8) or a random vector, the first of
// them zero (cosine 0).
void CommitRandomWrites(DB& db, std::mt19937_64& rng, Live* live, const std::string& prefix, size_t keys, int ops,
                        uint32_t dim, simd::Metric metric) {
  auto t = BeginRw(db);
  for (int j = 0; j < ops; ++j) {
    const std::string k = prefix + std::to_string(rng() % keys);
    const uint64_t what = rng() % 8;
    if (what == 0) {
      ASSERT_TRUE(t->Delete(k).ok());
      live->erase(k);
    } else if (what == 1) {
      ASSERT_TRUE(t->Put(k, "bytes, not a vector").ok());
      live->erase(k);
    } else {
      auto v = RandomVector(rng, dim);
      if (j == 0) v.assign(dim, 0.0f);
      ASSERT_TRUE(t->UpsertVector(k, v.data(), dim, metric, nullptr).ok());
      (*live)[k] = v;
    }
  }
  ASSERT_TRUE(t->Commit().ok());
}

struct MetricCase {
  bool disk;
  simd::Metric metric;
};

class KvFlatSearch : public ::testing::TestWithParam<MetricCase> {};

std::string CaseName(const ::testing::TestParamInfo<MetricCase>& info) {
  static const char* const kNames[] = {"L2", "IP", "Cosine"};
  return std::string(info.param.disk ? "Disk" : "InMemory") + kNames[static_cast<int>(info.param.metric)];
}

INSTANTIATE_TEST_SUITE_P(All, KvFlatSearch,
                         ::testing::Values(MetricCase{false, simd::Metric::kL2}, MetricCase{false, simd::Metric::kIP},
                                           MetricCase{false, simd::Metric::kCosine}, MetricCase{true, simd::Metric::kL2},
                                           MetricCase{true, simd::Metric::kIP}, MetricCase{true, simd::Metric::kCosine}),
                         CaseName);

// Committed records spread over segments and the memtable (overwritten and
// deleted across layers), plus the transaction's own uncommitted upserts and
// deletes: the search equals a brute force over what the transaction sees.
TEST_P(KvFlatSearch, MatchesBruteForceOverEveryLayerAndOwnWrites) {
  const auto [disk, metric] = GetParam();
  testing::TempDir tmp;
  auto db = testing::OpenKv(disk ? tmp.path() : "");
  constexpr uint32_t kDim = 37;  // not a multiple of any SIMD width
  std::mt19937_64 rng(static_cast<uint64_t>(metric) * 100 + disk);
  Live live;
  auto key = [&](size_t i) { return "key" + std::to_string(i); };
  for (int round = 0; round < 4; ++round) {
    CommitRandomWrites(*db, rng, &live, "key", 700, 300, kDim, metric);
    if (disk && round < 3) {
      ASSERT_TRUE(db->Flush().ok());
    }
  }
  auto t = BeginRw(*db);
  for (int j = 0; j < 40; ++j) {
    const size_t i = rng() % 800;
    if (j % 4 == 0) {
      ASSERT_TRUE(t->Delete(key(i)).ok());
      live.erase(key(i));
    } else {
      auto v = RandomVector(rng, kDim);
      const std::string_view meta = "own";
      ASSERT_TRUE(t->UpsertVector(key(i), v.data(), kDim, metric, &meta).ok());
      live[key(i)] = v;
    }
  }
  for (int q = 0; q < 5; ++q) {
    auto query = RandomVector(rng, kDim);
    for (uint32_t k : {1u, 10u, 100u, 5000u}) {
      std::vector<KeyHit> hits;
      ASSERT_TRUE(t->SearchSimilar(query.data(), kDim, metric, k, nullptr, q == 0, &hits).ok());
      ExpectSameHits(hits, BruteForce(live, metric, query, k), "k=" + std::to_string(k));
      if (q == 0 && !hits.empty()) {
        EXPECT_EQ(hits[0].vector, live[hits[0].key]);
      }
    }
    // Filter keys: only those, absent or non-vector ones skipped, duplicates once.
    std::vector<std::string> filter_storage;
    for (int j = 0; j < 30; ++j) filter_storage.push_back(key(rng() % 900));
    filter_storage.push_back(filter_storage[0]);
    std::vector<std::string_view> filter(filter_storage.begin(), filter_storage.end());
    std::map<std::string, std::vector<float>> subset;
    for (const auto& f : filter_storage) {
      if (live.count(f)) subset[f] = live[f];
    }
    std::vector<KeyHit> hits;
    ASSERT_TRUE(t->SearchSimilar(query.data(), kDim, metric, 10, &filter, false, &hits).ok());
    ExpectSameHits(hits, BruteForce(subset, metric, query, 10), "filter");
  }
  std::vector<KeyHit> none;
  auto query = RandomVector(rng, kDim);
  ASSERT_TRUE(t->SearchSimilar(query.data(), kDim, metric, 0, nullptr, false, &none).ok());
  EXPECT_TRUE(none.empty());
}

// A reader's search sees its snapshot while later commits overwrite, delete
// and turn into bytes the vectors it sees: memtable rows superseded after
// the snapshot still count for it, rows added after it do not. Rows span
// several of the memtable's row blocks (64 rows of 4096 floats per block),
// and more than 256 visible rows make the search split them over the pool.
TEST_P(KvFlatSearch, ASearchSeesItsSnapshotWhileLaterCommitsSupersedeRows) {
  const auto [disk, metric] = GetParam();
  testing::TempDir tmp;
  auto db = testing::OpenKv(disk ? tmp.path() : "");
  constexpr uint32_t kDim = 4096;
  std::mt19937_64 rng(static_cast<uint64_t>(metric) * 10 + disk + 5);
  Live live;
  std::vector<std::pair<std::unique_ptr<Txn>, Live>> readers;
  for (int round = 0; round < 5; ++round) {
    CommitRandomWrites(*db, rng, &live, "s", 450, 150, kDim, metric);
    readers.emplace_back(db->Begin(TxnMode::kReadOnly).value(), live);
  }
  CommitRandomWrites(*db, rng, &live, "s", 450, 250, kDim, metric);
  readers.emplace_back(db->Begin(TxnMode::kReadOnly).value(), live);
  for (size_t r = 0; r < readers.size(); ++r) {
    auto query = RandomVector(rng, kDim);
    for (uint32_t k : {1u, 10u, 1000u}) {
      std::vector<KeyHit> hits;
      ASSERT_TRUE(readers[r].first->SearchSimilar(query.data(), kDim, metric, k, nullptr, false, &hits).ok());
      ExpectSameHits(hits, BruteForce(readers[r].second, metric, query, k),
                     "reader " + std::to_string(r) + " k=" + std::to_string(k));
    }
  }
}

TEST(KvFlatSearchErrors, MismatchedMetricOrDimensionNamesTheKey) {
  for (bool disk : {false, true}) {
    testing::TempDir tmp;
    auto db = testing::OpenKv(disk ? tmp.path() : "");
    const float a[4] = {1, 0, 0, 0};
    const float b[3] = {1, 0, 0};
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->UpsertVector("good", a, 4, simd::Metric::kCosine, nullptr).ok());
    ASSERT_TRUE(t->UpsertVector("short one", b, 3, simd::Metric::kCosine, nullptr).ok());
    ASSERT_TRUE(t->Commit().ok());
    if (disk) {
      ASSERT_TRUE(db->Flush().ok());
    }
    auto r = BeginRo(*db);
    std::vector<KeyHit> hits;
    Status s = r->SearchSimilar(a, 4, simd::Metric::kCosine, 5, nullptr, false, &hits);
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    EXPECT_NE(s.message().find("short one"), std::string::npos) << s.message();
    s = r->SearchSimilar(a, 4, simd::Metric::kL2, 5, nullptr, false, &hits);
    EXPECT_EQ(s.code(), Code::kInvalidArgument);
    // Only the filter's keys count.
    std::vector<std::string_view> filter = {"good"};
    s = r->SearchSimilar(a, 4, simd::Metric::kCosine, 5, &filter, false, &hits);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_FLOAT_EQ(hits[0].score, 1.0f);
    // Once the odd key is deleted, the search works.
    auto d = BeginRw(*db);
    ASSERT_TRUE(d->Delete("short one").ok());
    ASSERT_TRUE(d->SearchSimilar(a, 4, simd::Metric::kCosine, 5, nullptr, false, &hits).ok());
    EXPECT_EQ(hits.size(), 1u);
    const float nan_q[4] = {NAN, 0, 0, 0};
    EXPECT_EQ(d->SearchSimilar(nan_q, 4, simd::Metric::kCosine, 5, nullptr, false, &hits).code(), Code::kInvalidArgument);
  }
}

// ---------------------------------------------------------------------------
// Named HNSW indexes

class KvIndexTest : public BothModes {};
INSTANTIATE_TEST_SUITE_P(Modes, KvIndexTest, ::testing::Bool(), testing::ModeName);

IndexConfig Config(uint32_t dim, simd::Metric metric = simd::Metric::kCosine) {
  IndexConfig c;
  c.dim = dim;
  c.metric = metric;
  return c;
}

TEST_P(KvIndexTest, UpsertsAreVisibleAfterCommitOnlyAndRollbackDiscards) {
  auto db = Open();
  ASSERT_TRUE(db->CreateIndex("idx", Config(3)).ok());
  const float a[3] = {1, 0, 0}, b[3] = {0, 1, 0}, c[3] = {0, 0, 1};
  std::vector<KeyHit> hits;
  IndexStats stats;
  ASSERT_TRUE(db->SearchIndex("idx", a, 3, 5, 0, "", &hits, &stats).ok());
  EXPECT_TRUE(hits.empty());
  auto t = BeginRw(*db);
  const std::string_view meta = "meta-a";
  ASSERT_TRUE(t->IndexUpsert("idx", "a", a, 3, &meta).ok());
  ASSERT_TRUE(t->IndexUpsert("idx", "b", b, 3, nullptr).ok());
  ASSERT_TRUE(db->SearchIndex("idx", a, 3, 5, 0, "", &hits, nullptr).ok());
  EXPECT_TRUE(hits.empty());  // not committed yet
  ASSERT_TRUE(t->Commit().ok());
  ASSERT_TRUE(db->SearchIndex("idx", a, 3, 5, 0, "", &hits, &stats).ok());
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].key, "a");
  EXPECT_FLOAT_EQ(hits[0].score, 1.0f);
  EXPECT_TRUE(hits[0].has_metadata);
  EXPECT_EQ(hits[0].metadata, "meta-a");
  EXPECT_FALSE(hits[1].has_metadata);
  EXPECT_EQ(stats.node_count, 2u);
  auto r = BeginRw(*db);
  ASSERT_TRUE(r->IndexUpsert("idx", "c", c, 3, nullptr).ok());
  ASSERT_TRUE(r->Rollback().ok());
  ASSERT_TRUE(db->SearchIndex("idx", c, 3, 5, 0, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 2u);
  // Delete and replace.
  auto d = BeginRw(*db);
  ASSERT_TRUE(d->IndexDelete("idx", "b").ok());
  ASSERT_TRUE(d->IndexUpsert("idx", "a", c, 3, nullptr).ok());
  ASSERT_TRUE(d->Commit().ok());
  ASSERT_TRUE(db->SearchIndex("idx", c, 3, 5, 0, "", &hits, &stats).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "a");
  EXPECT_FLOAT_EQ(hits[0].score, 1.0f);
  EXPECT_FALSE(hits[0].has_metadata);
  EXPECT_EQ(stats.node_count, 1u);
  uint64_t sum = 0;
  for (uint64_t n : stats.level_distribution) sum += n;
  EXPECT_EQ(sum, stats.node_count + stats.deleted_count);
  // Index entries never show up as user keys, and user keys never in the index.
  auto u = BeginRw(*db);
  EXPECT_EQ(testing::GetValue(*u, "a"), std::nullopt);
  ASSERT_TRUE(u->UpsertVector("z", c, 3, simd::Metric::kCosine, nullptr).ok());
  ASSERT_TRUE(u->Commit().ok());
  ASSERT_TRUE(db->SearchIndex("idx", c, 3, 5, 0, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 1u);
}

// (A bad configuration at create: DB.IndexParametersOutsideTheSharedLimitsAreRefusedAtCreate.)
TEST_P(KvIndexTest, ErrorsForMissingIndexWrongDimensionAndBadVectors) {
  auto db = Open();
  const float a[3] = {1, 0, 0};
  std::vector<KeyHit> hits;
  IndexStats stats;
  EXPECT_EQ(db->SearchIndex("nope", a, 3, 5, 0, "", &hits, nullptr).code(), Code::kNotFound);
  EXPECT_EQ(db->GetIndexStats("nope", &stats).code(), Code::kNotFound);
  EXPECT_EQ(db->DropIndex("nope").code(), Code::kNotFound);
  ASSERT_TRUE(db->CreateIndex("idx", Config(3)).ok());
  const float four[4] = {1, 0, 0, 0};
  EXPECT_EQ(db->SearchIndex("idx", four, 4, 5, 0, "", &hits, nullptr).code(), Code::kInvalidArgument);
  auto t = BeginRw(*db);
  EXPECT_EQ(t->IndexUpsert("idx", "k", four, 4, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->IndexUpsert("missing", "k", a, 3, nullptr).code(), Code::kNotFound);
  const float nan_v[3] = {1, NAN, 0};
  EXPECT_EQ(t->IndexUpsert("idx", "k", nan_v, 3, nullptr).code(), Code::kInvalidArgument);
  EXPECT_TRUE(t->active());
  auto ro = BeginRo(*db);
  EXPECT_EQ(ro->IndexUpsert("idx", "k", a, 3, nullptr).code(), Code::kReadOnly);
}

TEST_P(KvIndexTest, CreateReplacesTheIndexAndItsEntriesAndDropRemovesIt) {
  auto db = Open();
  ASSERT_TRUE(db->CreateIndex("idx", Config(2)).ok());
  const float a[2] = {1, 0};
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->IndexUpsert("idx", "a", a, 2, nullptr).ok());
  ASSERT_TRUE(t->Commit().ok());
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("idx", a, 2, 5, 0, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 1u);
  ASSERT_TRUE(db->CreateIndex("idx", Config(4)).ok());
  const float q[4] = {1, 0, 0, 0};
  IndexStats stats;
  ASSERT_TRUE(db->SearchIndex("idx", q, 4, 5, 0, "", &hits, &stats).ok());
  EXPECT_TRUE(hits.empty());
  EXPECT_EQ(stats.node_count, 0u);
  ASSERT_TRUE(db->DropIndex("idx").ok());
  EXPECT_EQ(db->SearchIndex("idx", q, 4, 5, 0, "", &hits, nullptr).code(), Code::kNotFound);
}

TEST_P(KvIndexTest, AnIndexWriteConflictsWithAConcurrentRecreate) {
  auto db = Open();
  ASSERT_TRUE(db->CreateIndex("idx", Config(2)).ok());
  const float a[2] = {1, 0};
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->IndexUpsert("idx", "a", a, 2, nullptr).ok());
  ASSERT_TRUE(db->CreateIndex("idx", Config(2)).ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
  // Two transactions writing one entry: first committer wins.
  auto t1 = BeginRw(*db);
  auto t2 = BeginRw(*db);
  ASSERT_TRUE(t1->IndexUpsert("idx", "a", a, 2, nullptr).ok());
  ASSERT_TRUE(t2->IndexDelete("idx", "a").ok());
  ASSERT_TRUE(t1->Commit().ok());
  EXPECT_EQ(t2->Commit().code(), Code::kConflict);
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("idx", a, 2, 5, 0, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 1u);
}

TEST(KvIndex, DeltaIsRebuiltIntoTheGraphInTheBackground) {
  auto db = testing::OpenKv("");
  ASSERT_TRUE(db->CreateIndex("idx", Config(8)).ok());
  std::mt19937_64 rng(9);
  std::vector<KeyHit> hits;
  IndexStats stats;
  auto q = RandomVector(rng, 8);
  ASSERT_TRUE(db->SearchIndex("idx", q.data(), 8, 1, 0, "", &hits, &stats).ok());  // loaded while empty
  for (int round = 0; round < 6; ++round) {
    auto t = BeginRw(*db);
    for (int i = 0; i < 500; ++i) {
      auto v = RandomVector(rng, 8);
      ASSERT_TRUE(t->IndexUpsert("idx", "k" + std::to_string(round * 500 + i), v.data(), 8, nullptr).ok());
    }
    ASSERT_TRUE(t->Commit().ok());
  }
  // 3000 entries went to the delta; past max(1024, base / 8) a rebuild puts
  // them in the graph, until less than that is left outside it.
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(db->GetIndexStats("idx", &stats).ok());
    if (stats.delta_count < 1024) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_LT(stats.delta_count, 1024u);
  uint64_t in_levels = 0;
  for (uint64_t n : stats.level_distribution) in_levels += n;
  EXPECT_EQ(in_levels, 3000u);
  EXPECT_GE(in_levels - stats.delta_count, 3000u - 1023u);  // graph nodes
  EXPECT_GT(stats.level_distribution.size(), 1u);  // a real graph has upper levels
  EXPECT_EQ(stats.node_count, 3000u);
  EXPECT_GT(stats.avg_edges_per_node, 1.0);
  EXPECT_GT(stats.memory_bytes, 3000u * 8 * 4);
  ASSERT_TRUE(db->SearchIndex("idx", q.data(), 8, 10, 0, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 10u);
  // Huge k and ef are bounded by the index's size, not allocated.
  ASSERT_TRUE(db->SearchIndex("idx", q.data(), 8, 0xFFFFFFFFu, 0xFFFFFFFFu, "", &hits, nullptr).ok());
  EXPECT_EQ(hits.size(), 3000u);
}

// Recall@10 at the defaults (m 16, ef_construction 200, ef max(k, 50)) on a
// clustered 20k x 64 set must be at least 0.95.
TEST(KvIndex, RecallAtTenOnAClustered20kBy64SetAtDefaults) {
  auto db = testing::OpenKv("");
  constexpr uint32_t kDim = 64, kN = 20000, kClusters = 50;
  std::mt19937_64 rng(2024);
  std::vector<std::vector<float>> centers;
  for (uint32_t c = 0; c < kClusters; ++c) centers.push_back(RandomVector(rng, kDim));
  std::normal_distribution<float> noise(0.0f, 0.35f);
  std::map<std::string, std::vector<float>> all;
  ASSERT_TRUE(db->CreateIndex("vecs", Config(kDim)).ok());
  for (uint32_t start = 0; start < kN; start += 5000) {
    auto t = BeginRw(*db);
    for (uint32_t i = start; i < start + 5000; ++i) {
      std::vector<float> v = centers[rng() % kClusters];
      for (auto& x : v) x += noise(rng);
      char key[16];
      std::snprintf(key, sizeof(key), "v%06u", i);
      ASSERT_TRUE(t->IndexUpsert("vecs", key, v.data(), kDim, nullptr).ok());
      all[key] = std::move(v);
    }
    ASSERT_TRUE(t->Commit().ok());
  }
  const auto t0 = std::chrono::steady_clock::now();
  IndexStats stats;
  ASSERT_TRUE(db->GetIndexStats("vecs", &stats).ok());  // builds the graph
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(stats.node_count, kN);
  size_t found = 0, total = 0;
  for (int q = 0; q < 100; ++q) {
    std::vector<float> query = centers[rng() % kClusters];
    for (auto& x : query) x += noise(rng);
    std::vector<KeyHit> hits;
    ASSERT_TRUE(db->SearchIndex("vecs", query.data(), kDim, 10, 0, "", &hits, nullptr).ok());
    auto want = BruteForce(all, simd::Metric::kCosine, query, 10);
    std::set<std::string> truth;
    for (auto& w : want) truth.insert(w.first);
    for (auto& h : hits) found += truth.count(h.key);
    total += want.size();
  }
  const double recall = double(found) / double(total);
  std::printf("recall@10 = %.4f (graph build %.1f s)\n", recall, build_s);
  EXPECT_GE(recall, 0.95);
}

// ---------------------------------------------------------------------------
// Graphs in segments for named collections (docs/ENGINE.md 4.5 to 4.8): the
// first search of an index flushes its rows into a segment group with an
// HNSW graph; a reopen searches that graph without building; rows replaced
// or deleted in newer layers are walked through, never returned; merges
// start the merged group's graph from the largest input graph.

constexpr uint32_t kGraphDim = 16;

// The metadata of entry <prefix><i>: none, "meta-<i>" or present but empty.
std::optional<std::string> MetaOf(const std::string& key) {
  const int i = std::stoi(key.substr(1));
  if (i % 3 == 0) return std::nullopt;
  return i % 3 == 1 ? "meta-" + std::to_string(i) : "";
}

// Commits entries <prefix><from> .. <prefix><from + n - 1> of `index`:
// random vectors, metadata MetaOf.
void Upsert(DB& db, const std::string& index, Live* live, std::mt19937_64& rng, const std::string& prefix, int from,
            int n) {
  auto t = BeginRw(db);
  for (int i = from; i < from + n; ++i) {
    const std::string k = prefix + std::to_string(i);
    (*live)[k] = RandomVector(rng, kGraphDim);
    const std::optional<std::string> meta = MetaOf(k);
    const std::string_view mv = meta ? std::string_view(*meta) : std::string_view();
    ASSERT_TRUE(t->IndexUpsert(index, k, (*live)[k].data(), kGraphDim, meta ? &mv : nullptr).ok());
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

// Searches with ef above the index size (the walk then reaches every live
// row of these small graphs) and checks keys, metadata and scores against
// `live`: a replaced or deleted row is never returned, k rows come back.
void ExpectExact(DB& db, const std::string& index, const Live& live, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int qi = 0; qi < 20; ++qi) {
    const auto q = RandomVector(rng, kGraphDim);
    std::vector<KeyHit> hits;
    Status s = db.SearchIndex(index, q.data(), kGraphDim, 10, 4000, "", &hits, nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const auto want = BruteForce(live, simd::Metric::kL2, q, 10);
    ASSERT_EQ(hits.size(), want.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      ASSERT_EQ(hits[i].key, want[i].first) << "query " << qi << " rank " << i;
      const std::optional<std::string> meta = MetaOf(hits[i].key);
      EXPECT_EQ(hits[i].has_metadata, meta.has_value()) << hits[i].key;
      EXPECT_EQ(hits[i].metadata, meta.value_or("")) << hits[i].key;
      EXPECT_NEAR(hits[i].score, want[i].second, 1e-3);
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

// Graph nodes over every collection group of the segments of `dir`, and how
// many were carried over from an input graph by a merge.
std::pair<uint64_t, uint64_t> GraphRows(const std::string& dir) {
  uint64_t rows = 0, reused = 0;
  for (const auto& seg : Segments(dir)) {
    for (uint32_t g = 0; g < seg->group_count(); ++g) {
      const index::HnswGraph* graph = seg->graph(g);
      if (seg->group(g).kind != segment::GroupKind::kBytes || graph == nullptr) continue;
      rows += seg->group(g).rows;
      reused += graph->reused_rows();
    }
  }
  return {rows, reused};
}

TEST(CollectionGraph, TheFirstSearchPutsTheRowsInASegmentGraphThatAReopenSearchesWithoutABuild) {
  testing::TempDir dir;
  std::mt19937_64 rng(1);
  Live live;
  std::vector<std::vector<KeyHit>> before;
  IndexStats stats_before;
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 10; ++i) queries.push_back(RandomVector(rng, kGraphDim));
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
    Upsert(*db, "docs", &live, rng, "d", 0, 700);
    Upsert(*db, "docs", &live, rng, "d", 700, 300);
    EXPECT_EQ(db->TEST_SegmentCount(), 0u);  // below the background trigger: nothing built yet
    for (const auto& q : queries) {
      std::vector<KeyHit> hits;
      ASSERT_TRUE(db->SearchIndex("docs", q.data(), kGraphDim, 10, 40, "", &hits, nullptr).ok());
      before.push_back(hits);
    }
    ASSERT_TRUE(db->GetIndexStats("docs", &stats_before).ok());
    EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    EXPECT_EQ(stats_before.node_count, 1000u);
    EXPECT_EQ(stats_before.delta_count, 0u);
  }
  const auto [rows, reused] = GraphRows(dir.path());
  EXPECT_EQ(rows, 1000u);
  auto db = OpenKv(dir.path());
  for (size_t i = 0; i < queries.size(); ++i) {
    std::vector<KeyHit> hits;
    ASSERT_TRUE(db->SearchIndex("docs", queries[i].data(), kGraphDim, 10, 40, "", &hits, nullptr).ok());
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
    ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
    Upsert(*db, "docs", &live, rng, "d", 0, 800);
    IndexStats st;
    ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());  // the first build: one segment
    // 20 replaced in a newer segment (with its own graph), then 20 deleted
    // and 20 new in the WAL.
    Upsert(*db, "docs", &live, rng, "d", 0, 20);
    ASSERT_TRUE(db->Flush().ok());
    Delete(*db, "docs", &live, "d", 100, 120);
    Upsert(*db, "docs", &live, rng, "n", 0, 20);
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
  const auto q = RandomVector(rng, kGraphDim);
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("docs", q.data(), kGraphDim, 5, 0, "", &hits, nullptr).ok());
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
  ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
  Upsert(*db, "docs", &live, rng, "d", 0, 900);
  IndexStats st;
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  Upsert(*db, "docs", &live, rng, "d", 0, 50);  // replaces 50 graph rows
  Upsert(*db, "docs", &live, rng, "e", 0, 100);
  Delete(*db, "docs", &live, "d", 200, 210);
  FlushAndMerge(*db);  // a second segment, then the merge of both
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  EXPECT_EQ(db->TEST_GraphBuilds(), 3u);  // the first build, the flush's, the merge's
  const auto [rows, reused] = GraphRows(dir.path());
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
    ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
    Upsert(*db, "docs", &live, rng, "d", 0, 900);
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_EQ(Segments(dir.path()).size(), 1u);
    older = Segments(dir.path())[0]->path();
    Upsert(*db, "docs", &live, rng, "e", 0, 100);
    ASSERT_TRUE(db->Flush().ok());
  }
  {
    auto opened = segment::SegmentFile::Open(Env::Default(), older);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    const segment::SegmentFile& seg = *opened.value();
    uint32_t g = 0;
    ASSERT_TRUE(seg.FindGroup(segment::GroupKind::kBytes, seg.group(0).cid, kGraphDim, simd::Metric::kL2, &g));
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
  ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
  ASSERT_TRUE(db->CreateIndex("gone", Config(kGraphDim, simd::Metric::kL2)).ok());
  Upsert(*db, "docs", &live, rng, "d", 0, 300);
  Upsert(*db, "gone", &other, rng, "g", 0, 300);
  ASSERT_TRUE(db->DropIndex("gone").ok());
  IndexStats st;
  ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  EXPECT_EQ(db->TEST_GraphBuilds(), 1u);  // "docs" only
  const auto [rows, reused] = GraphRows(dir.path());
  EXPECT_EQ(rows, 300u);
  std::vector<KeyHit> hits;
  const auto q = RandomVector(rng, kGraphDim);
  EXPECT_TRUE(db->SearchIndex("gone", q.data(), kGraphDim, 3, 0, "", &hits, nullptr).IsNotFound());
  ExpectExact(*db, "docs", live, 8);
}

TEST(CollectionGraph, AnInMemoryDatabaseBuildsIntoItsMemorySegments) {
  std::mt19937_64 rng(9);
  Live live;
  auto db = OpenKv("");
  ASSERT_TRUE(db->CreateIndex("docs", Config(kGraphDim, simd::Metric::kL2)).ok());
  Upsert(*db, "docs", &live, rng, "d", 0, 500);
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
