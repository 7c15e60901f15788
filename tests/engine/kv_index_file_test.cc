// Named-index graph files (docs/FORMAT.md, "Named-index graph files"): a disk
// database writes each graph it builds and loads it after a reopen instead of
// building again; a file that is damaged, foreign, stale or written from
// commits a crash lost is never used.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/kv_db.h"
#include "engine/kv_index.h"
#include "segment/segment.h"
#include "kv_test_util.h"

namespace pomai::engine {
namespace {

namespace fs = std::filesystem;
using testing::BeginRw;
using testing::OpenKv;
using testing::RandomVector;

constexpr uint32_t kDim = 16;

IndexConfig L2Config() {
  IndexConfig c;
  c.dim = kDim;
  c.metric = simd::Metric::kL2;
  return c;
}

std::vector<std::string> GraphFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("idx-", 0) == 0) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Live entries: key -> (vector, metadata or none).
struct Entry {
  std::vector<float> vec;
  bool has_meta = false;
  std::string meta;
};
using Live = std::map<std::string, Entry>;

void Upsert(KvDB& db, const std::string& index, Live* live, const std::vector<std::pair<std::string, Entry>>& rows) {
  auto t = BeginRw(db);
  for (const auto& [k, e] : rows) {
    const std::string_view mv = e.meta;
    ASSERT_TRUE(t->IndexUpsert(index, k, e.vec.data(), kDim, e.has_meta ? &mv : nullptr).ok());
    (*live)[k] = e;
  }
  Status s = t->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
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

// The exact top k of `live` by L2 (the engine reports -distance).
std::vector<std::string> ExactTop(const Live& live, const std::vector<float>& q, size_t k) {
  std::vector<std::pair<double, std::string>> all;
  for (const auto& [key, e] : live) {
    double d = 0;
    for (uint32_t i = 0; i < kDim; ++i) d += (double(q[i]) - e.vec[i]) * (double(q[i]) - e.vec[i]);
    all.emplace_back(d, key);
  }
  std::sort(all.begin(), all.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < std::min(k, all.size()); ++i) out.push_back(all[i].second);
  return out;
}

// Searches with ef above the index size (exact for these sizes) and checks
// keys, metadata and scores against `live`.
void ExpectExact(KvDB& db, const std::string& index, const Live& live, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int qi = 0; qi < 20; ++qi) {
    const auto q = RandomVector(rng, kDim);
    std::vector<KvHit> hits;
    Status s = db.SearchIndex(index, q.data(), kDim, 10, 4000, &hits, nullptr);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const auto want = ExactTop(live, q, 10);
    ASSERT_EQ(hits.size(), want.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      ASSERT_EQ(hits[i].key, want[i]) << "query " << qi << " rank " << i;
      const Entry& e = live.at(hits[i].key);
      EXPECT_EQ(hits[i].has_metadata, e.has_meta) << hits[i].key;
      EXPECT_EQ(hits[i].metadata, e.has_meta ? e.meta : "") << hits[i].key;
      double d = 0;
      for (uint32_t j = 0; j < kDim; ++j) d += (double(q[j]) - e.vec[j]) * (double(q[j]) - e.vec[j]);
      EXPECT_NEAR(hits[i].score, -std::sqrt(d), 1e-3);
    }
  }
}

TEST(KvIndexFile, TheBuiltGraphIsWrittenAndLoadedAfterAReopenInsteadOfBuilt) {
  testing::TempDir dir;
  std::mt19937_64 rng(1);
  Live live;
  std::vector<std::vector<KvHit>> before;
  IndexStats stats_before;
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 10; ++i) queries.push_back(RandomVector(rng, kDim));
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 700));
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 700, 600));
    EXPECT_TRUE(GraphFiles(dir.path()).empty());  // nothing before the first build
    for (const auto& q : queries) {
      std::vector<KvHit> hits;
      ASSERT_TRUE(db->SearchIndex("docs", q.data(), kDim, 10, 40, &hits, nullptr).ok());
      before.push_back(hits);
    }
    ASSERT_TRUE(db->GetIndexStats("docs", &stats_before).ok());
    EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
    EXPECT_EQ(GraphFiles(dir.path()), std::vector<std::string>{kv::IndexGraphFileName("docs", 1)});
  }
  auto db = OpenKv(dir.path());
  for (size_t i = 0; i < queries.size(); ++i) {
    std::vector<KvHit> hits;
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
  EXPECT_EQ(stats.node_count, 1300u);
  EXPECT_EQ(stats.level_distribution, stats_before.level_distribution);
  EXPECT_EQ(stats.avg_edges_per_node, stats_before.avg_edges_per_node);
  EXPECT_EQ(stats.delta_count, 0u);
  ExpectExact(*db, "docs", live, 2);
}

TEST(KvIndexFile, CommitsAfterTheFileWasWrittenAreCaughtUpAtLoad) {
  testing::TempDir dir;
  std::mt19937_64 rng(3);
  Live live;
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 800));
    IndexStats st;
    ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());  // builds and writes the file
    // Then 20 replaced, 20 deleted, 20 new; and a flush, so some are in a segment.
    auto changed = RandomRows(rng, "d", 0, 20);
    Upsert(*db, "docs", &live, changed);
    ASSERT_TRUE(db->Flush().ok());
    auto t = BeginRw(*db);
    for (int i = 100; i < 120; ++i) {
      ASSERT_TRUE(t->IndexDelete("docs", "d" + std::to_string(i)).ok());
      live.erase("d" + std::to_string(i));
    }
    ASSERT_TRUE(t->Commit().ok());
    Upsert(*db, "docs", &live, RandomRows(rng, "n", 0, 20));
  }
  auto db = OpenKv(dir.path());
  IndexStats stats;
  ASSERT_TRUE(db->GetIndexStats("docs", &stats).ok());
  EXPECT_EQ(db->TEST_GraphBuilds(), 0u);
  EXPECT_EQ(stats.node_count, live.size());
  EXPECT_EQ(stats.deleted_count, 40u);  // replaced and deleted rows of the loaded graph
  EXPECT_EQ(stats.delta_count, 40u);    // the replacements and the new entries
  ExpectExact(*db, "docs", live, 4);
}

// Writes a database with index "docs" (1000 entries) and its graph file;
// returns the file's path.
std::string BuildWithFile(const std::string& dir, Live* live, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto db = OpenKv(dir);
  EXPECT_TRUE(db->CreateIndex("docs", L2Config()).ok());
  Upsert(*db, "docs", live, RandomRows(rng, "d", 0, 1000));
  IndexStats st;
  EXPECT_TRUE(db->GetIndexStats("docs", &st).ok());
  const auto files = GraphFiles(dir);
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? std::string() : dir + "/" + files[0];
}

TEST(KvIndexFile, ADamagedTruncatedEmptyOrForeignFileIsNeverUsedAndIsReplaced) {
  for (const std::string mode : {"flip", "truncate", "empty", "foreign", "other-config"}) {
    SCOPED_TRACE(mode);
    testing::TempDir dir;
    Live live;
    const std::string path = BuildWithFile(dir.path(), &live, 5);
    ASSERT_FALSE(path.empty());
    const auto size = fs::file_size(path);
    if (mode == "flip") {
      // The exponent byte of a float in the middle of the vector matrix: a
      // graph that opens, with one row's vector far from its entry's.
      uint64_t at = 0;
      {
        auto seg = segment::Segment::Open(Env::Default(), path);
        ASSERT_TRUE(seg.ok());
        for (const auto& ref : seg.value()->sections()) {
          if (ref.kind == static_cast<uint32_t>(segment::SectionKind::kVectors)) at = ref.offset + ref.length / 2 + 3;
        }
        ASSERT_NE(at, 0u);
      }
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(static_cast<std::streamoff>(at));
      char c = 0;
      f.read(&c, 1);
      f.seekp(static_cast<std::streamoff>(at));
      c = static_cast<char>(c ^ 0x20);
      f.write(&c, 1);
    } else if (mode == "truncate") {
      fs::resize_file(path, size / 2);
    } else if (mode == "empty") {
      fs::resize_file(path, 0);
    } else {
      // The graph file of another index, under this index's file name: of
      // one with another name ("foreign"), or of an earlier configuration of
      // this one ("other-config": same name, config seq 1, then recreated).
      testing::TempDir other;
      Live other_live;
      {
        std::mt19937_64 rng(6);
        auto db = OpenKv(other.path());
        ASSERT_TRUE(db->CreateIndex(mode == "foreign" ? "other" : "docs", L2Config()).ok());
        // 40 rows: all dead here, too few to start a background rebuild
        // that would hide a wrongly loaded file.
        Upsert(*db, mode == "foreign" ? "other" : "docs", &other_live, RandomRows(rng, "d", 0, 40));
        IndexStats st;
        ASSERT_TRUE(db->GetIndexStats(mode == "foreign" ? "other" : "docs", &st).ok());
      }
      const auto files = GraphFiles(other.path());
      ASSERT_EQ(files.size(), 1u);
      std::string target = path;
      if (mode == "other-config") {
        // Recreate "docs" here (config seq 3 after create 1 and the upsert 2),
        // then give it the other database's file under its new name.
        auto db = OpenKv(dir.path());
        ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
        live.clear();
        std::mt19937_64 rng(7);
        Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 1000));
        target = dir.path() + "/" + kv::IndexGraphFileName("docs", 3);
        ASSERT_TRUE(GraphFiles(dir.path()).size() == 1u);  // the old one, not yet rebuilt
        fs::remove(path);
      }
      fs::copy_file(other.path() + "/" + files[0], target, fs::copy_options::overwrite_existing);
    }
    {
      auto db = OpenKv(dir.path());
      ExpectExact(*db, "docs", live, 8);
      EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
    }
    auto db = OpenKv(dir.path());  // the rebuilt graph replaced the file
    ExpectExact(*db, "docs", live, 9);
    EXPECT_EQ(db->TEST_GraphBuilds(), 0u);
    EXPECT_EQ(GraphFiles(dir.path()).size(), 1u);
  }
}

TEST(KvIndexFile, DropDeletesTheFilesAndARecreateReplacesThem) {
  testing::TempDir dir;
  Live live;
  ASSERT_FALSE(BuildWithFile(dir.path(), &live, 10).empty());
  auto db = OpenKv(dir.path());
  ASSERT_TRUE(db->DropIndex("docs").ok());
  EXPECT_TRUE(GraphFiles(dir.path()).empty());
  // Recreated (another dimension): built, and only its own file remains after
  // a create that replaces it in turn.
  IndexConfig c = L2Config();
  c.dim = 4;
  ASSERT_TRUE(db->CreateIndex("docs", c).ok());
  auto t = BeginRw(*db);
  const float v[4] = {1, 2, 3, 4};
  ASSERT_TRUE(t->IndexUpsert("docs", "a", v, 4, nullptr).ok());
  ASSERT_TRUE(t->Commit().ok());
  std::vector<KvHit> hits;
  ASSERT_TRUE(db->SearchIndex("docs", v, 4, 1, 0, &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "a");
  const auto files = GraphFiles(dir.path());
  ASSERT_EQ(files.size(), 1u);
  ASSERT_TRUE(db->CreateIndex("docs", c).ok());
  t = BeginRw(*db);
  ASSERT_TRUE(t->IndexUpsert("docs", "b", v, 4, nullptr).ok());
  ASSERT_TRUE(t->Commit().ok());
  ASSERT_TRUE(db->SearchIndex("docs", v, 4, 5, 0, &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "b");
  const auto after = GraphFiles(dir.path());
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0], files[0]);
}

// A graph file written from commits that a crash then lost holds versions
// whose seqs later commits reuse with other data: the open that recovers
// less than the file holds deletes it before any commit.
TEST(KvIndexFile, AFileHoldingVersionsACrashLostIsDeletedAtOpen) {
  // Database A: create (seq 1), then commits 2, 3 and 4, and its graph file.
  testing::TempDir a;
  {
    std::mt19937_64 rng(11);
    Live live_a;
    auto db = OpenKv(a.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    for (int c = 0; c < 3; ++c) Upsert(*db, "docs", &live_a, RandomRows(rng, "d", c * 300, 300));
    IndexStats st;
    ASSERT_TRUE(db->GetIndexStats("docs", &st).ok());
  }
  // Database B is A as if the process had died after commit 2 (of other
  // vectors under the same keys): create (seq 1), commit 2.
  testing::TempDir b;
  Live live_b;
  {
    std::mt19937_64 rng(12);
    auto db = OpenKv(b.path());
    ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
    Upsert(*db, "docs", &live_b, RandomRows(rng, "d", 0, 300));
  }
  const std::string name = kv::IndexGraphFileName("docs", 1);
  fs::copy_file(a.path() + "/" + name, b.path() + "/" + name);
  auto db = OpenKv(b.path());
  EXPECT_TRUE(GraphFiles(b.path()).empty());
  // Commits 3 and 4 reuse the lost seqs.
  std::mt19937_64 rng(13);
  Upsert(*db, "docs", &live_b, RandomRows(rng, "d", 300, 300));
  Upsert(*db, "docs", &live_b, RandomRows(rng, "d", 600, 300));
  ExpectExact(*db, "docs", live_b, 14);
  EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
}

TEST(KvIndexFile, InMemoryDatabasesWriteNoFiles) {
  auto db = OpenKv("");
  ASSERT_TRUE(db->CreateIndex("docs", L2Config()).ok());
  std::mt19937_64 rng(15);
  Live live;
  Upsert(*db, "docs", &live, RandomRows(rng, "d", 0, 200));
  ExpectExact(*db, "docs", live, 16);
  EXPECT_EQ(db->TEST_GraphBuilds(), 1u);
}

}  // namespace
}  // namespace pomai::engine
