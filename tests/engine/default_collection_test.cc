// The default collection (u64 rows; docs/ENGINE.md 2.2) against a model:
// random puts, deletes, row arrays, flushes, merges (forced or the policy's)
// and reopens, with every read (Get, Exists, Count, exact and graph Search)
// compared to the model, on disk and in memory, for each metric: the newest
// version of every live row wins across the memtable, segments, merges and
// reopens, no deleted row comes back; and the default collection beside
// alopex transactions.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/db.h"
#include "db_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::OpenRows;
using testing::TempDir;
using testing::VectorFor;

struct Model {
  std::map<uint64_t, std::vector<float>> live;
  std::map<uint64_t, std::string> meta;
};

constexpr uint64_t kIdSpace = 401;

// Count, Get (NotFound naming the id when absent) and Exists of 40 random
// ids (`all`: of every id) and 5 searches against the model: the search
// answers exactly (ef_search covers every row): the brute-force top 10 rank
// by rank, each hit with its true score (within 1e-4 relative and 1e-3
// absolute) and its shard.
void CheckAgainstModel(DB& db, const Model& m, uint32_t dim, simd::Metric metric, bool all, std::mt19937_64& rng) {
  ASSERT_EQ(db.Count().value(), m.live.size());
  std::uniform_int_distribution<uint64_t> pick(0, kIdSpace - 1);
  for (uint64_t i = 0; i < (all ? kIdSpace : 40); ++i) {
    const uint64_t id = all ? i : pick(rng);
    std::vector<float> v;
    std::string meta;
    Status s = db.Get(id, &v, &meta);
    auto it = m.live.find(id);
    EXPECT_EQ(db.Exists(id).value(), it != m.live.end()) << id;
    if (it == m.live.end()) {
      EXPECT_TRUE(s.IsNotFound()) << id << ": " << s.ToString();
      EXPECT_NE(s.message().find("id " + std::to_string(id) + " not found"), std::string::npos) << s.message();
    } else {
      ASSERT_TRUE(s.ok()) << id << ": " << s.ToString();
      EXPECT_EQ(v, it->second) << "stale version of id " << id;
      auto mt = m.meta.find(id);
      EXPECT_EQ(meta, mt == m.meta.end() ? std::string() : mt->second);
    }
  }
  for (uint32_t q = 0; q < 5; ++q) {
    const std::vector<float> query = VectorFor(100000 + q, 0, dim);
    const uint32_t k = 10;
    std::vector<std::vector<Hit>> out;
    ASSERT_TRUE(db.Search(query.data(), 1, &k, 0, 0, &out).ok());
    const auto want = testing::BruteForce(m.live, metric, query.data(), dim, k);
    ASSERT_EQ(out[0].size(), want.size());
    for (size_t j = 0; j < want.size(); ++j) {
      EXPECT_EQ(out[0][j].id, want[j].id) << "rank " << j;
      EXPECT_NEAR(out[0][j].score, want[j].score, std::min(1e-3f, 1e-4f * (1 + std::fabs(want[j].score))));
      EXPECT_EQ(out[0][j].shard, out[0][j].id % db.shards());
    }
  }
}

class DefaultCollectionModel : public ::testing::TestWithParam<std::tuple<bool, bool, simd::Metric>> {};

TEST_P(DefaultCollectionModel, EveryReadMatchesTheModelThroughFlushesMergesAndReopens) {
  const auto [in_memory, graphs, metric] = GetParam();
  TempDir dir;
  const std::string path = in_memory ? std::string() : dir.path();
  DefaultCollectionOptions o;
  o.dim = 16;
  o.metric = metric;
  o.shards = 3;
  o.adaptive_threshold = graphs ? 8 : 1000000;
  o.hnsw_ef_search = 400;  // large enough that the walk is exact on these sizes
  Options kv = testing::DiskOptions(path);
  kv.in_memory = in_memory;
  kv.max_segments = 3;
  // In memory, segments come only from background flushes past the budget.
  if (in_memory) kv.memtable_budget_bytes = 8 << 10;
  auto db = OpenRows(kv, o);
  ASSERT_TRUE(db);
  Model m;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> pick(0, kIdSpace - 1);
  for (int step = 0; step < 300; ++step) {
    const int kind = static_cast<int>(rng() % 10);
    if (kind < 5) {
      std::vector<WriteOp> ops(1 + rng() % 20);
      std::vector<std::vector<float>> vecs(ops.size());
      std::vector<std::string> metas(ops.size());
      Model next = m;
      for (size_t i = 0; i < ops.size(); ++i) {
        ops[i].id = pick(rng);
        if (rng() % 4 == 0) {
          ops[i].kind = WriteOp::Kind::kDelete;
          next.live.erase(ops[i].id);
          next.meta.erase(ops[i].id);
        } else {
          vecs[i] = VectorFor(ops[i].id, step, o.dim);
          metas[i] = rng() % 2 ? "m" + std::to_string(step) : std::string();
          ops[i].vector = vecs[i].data();
          ops[i].metadata = metas[i];
          next.live[ops[i].id] = vecs[i];
          if (metas[i].empty()) next.meta.erase(ops[i].id); else next.meta[ops[i].id] = metas[i];
        }
      }
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
      m = next;
    } else if (kind < 7) {
      const size_t n = 1 + rng() % 50;
      std::vector<uint64_t> ids(n);
      std::vector<float> vecs;
      for (size_t i = 0; i < n; ++i) {
        ids[i] = pick(rng);
        auto v = VectorFor(ids[i], 1000 + step, o.dim);
        vecs.insert(vecs.end(), v.begin(), v.end());
        m.live[ids[i]] = v;
        m.meta.erase(ids[i]);
      }
      ASSERT_TRUE(db->PutArray(ids.data(), vecs.data(), n).ok());
    } else if (kind == 7) {
      Status s = in_memory ? db->Compact(false) : db->Flush();
      ASSERT_TRUE(s.ok()) << s.ToString();
    } else if (kind == 8) {
      ASSERT_TRUE(db->Compact(rng() % 2 == 0).ok());
    } else if (!in_memory) {
      db.reset();
      db = OpenRows(kv, o);
      ASSERT_TRUE(db);
    }
    CheckAgainstModel(*db, m, o.dim, o.metric, step % 25 == 24, rng);
  }
  ASSERT_TRUE(db->Compact(true).ok());
  // The last writes may be in a background flush (they passed the budget),
  // whose segment lands after the forced merge: once it has, merge again
  // (no write comes after, so no other segment can appear).
  db->TEST_WaitForBackgroundFlush();
  ASSERT_TRUE(db->Compact(true).ok());
  EXPECT_LE(db->TEST_SegmentCount(), 1u) << "a forced merge leaves one segment for the whole database";
  CheckAgainstModel(*db, m, o.dim, o.metric, true, rng);
  const std::string stats = db->StatsJson().value();
  EXPECT_EQ(stats.find("\"graph\": {") != std::string::npos, graphs && db->TEST_SegmentCount() > 0) << stats;
  if (in_memory) {
    EXPECT_GT(db->TEST_SegmentCount(), 0u);
    return;
  }
  db.reset();
  db = OpenRows(kv, o);
  ASSERT_TRUE(db);
  CheckAgainstModel(*db, m, o.dim, o.metric, true, rng);
}

INSTANTIATE_TEST_SUITE_P(DiskAndMemory, DefaultCollectionModel,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(simd::Metric::kL2, simd::Metric::kIP,
                                                              simd::Metric::kCosine)));

TEST(DefaultCollection, RowsAndTransactionsShareOneDatabaseAndOneLog) {
  TempDir dir;
  DefaultCollectionOptions o;
  o.dim = 4;
  auto db = OpenRows(testing::DiskOptions(dir.path()), o);
  ASSERT_TRUE(db);
  const std::vector<float> v{1, 2, 3, 4};
  WriteOp op;
  op.id = 5;
  op.vector = v.data();
  ASSERT_TRUE(db->Write(&op, 1).ok());
  {
    auto txn = testing::BeginRw(*db);
    ASSERT_TRUE(txn->Put("k", "v").ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  op.id = 6;
  ASSERT_TRUE(db->Write(&op, 1).ok());
  db.reset();
  db = OpenRows(testing::DiskOptions(dir.path()), o);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->Count().value(), 2u);
  auto txn = testing::BeginRo(*db);
  EXPECT_EQ(testing::GetValue(*txn, "k"), std::optional<std::string>("v"));
  txn.reset();
  ASSERT_TRUE(db->Flush().ok());
  db.reset();
  db = OpenRows(testing::DiskOptions(dir.path()), o);
  EXPECT_EQ(db->Count().value(), 2u);
  EXPECT_TRUE(db->Exists(6).value());
}

}  // namespace
}  // namespace pomai::engine
