// Compaction keeps every live row with its newest vector and metadata, drops
// what is shadowed, never blocks or misleads readers, and leaves a consistent
// database when it fails half-way.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "engine/db.h"
#include "engine_test_util.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::TempDir;
using testing::VectorFor;

Options CompactionOptions(const std::string& path, uint32_t shards, uint32_t adaptive_threshold) {
  Options o;
  o.path = path;
  o.dim = 8;
  o.shards = shards;
  o.metric = simd::Metric::kL2;
  o.search_threads = 2;
  o.adaptive_threshold = adaptive_threshold;
  o.hnsw_m = 8;
  o.hnsw_ef_construction = 40;
  o.hnsw_ef_search = 200;
  return o;
}

struct Row {
  std::vector<float> vec;
  std::string meta;
};

void ExpectMatchesModel(DB* db, const std::map<uint64_t, Row>& model, uint64_t id_space, const std::string& where) {
  ASSERT_EQ(db->Count().value(), model.size()) << where;
  for (uint64_t id = 0; id < id_space; ++id) {
    std::vector<float> v;
    std::string meta;
    Status s = db->Get(id, &v, &meta);
    auto it = model.find(id);
    if (it == model.end()) {
      ASSERT_TRUE(s.IsNotFound()) << where << ": deleted id " << id << " is back";
    } else {
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(v, it->second.vec) << where << ": stale vector for id " << id;
      ASSERT_EQ(meta, it->second.meta) << where << ": stale metadata for id " << id;
    }
  }
}

class CompactionModel : public ::testing::TestWithParam<uint32_t> {};

TEST_P(CompactionModel, EveryLiveRowAndItsNewestVersionSurviveMergesAndReopens) {
  TempDir dir;
  const Options o = CompactionOptions(dir.path(), 2, GetParam());
  auto db = DB::Open(o).value();
  std::map<uint64_t, Row> model;
  std::mt19937_64 rng(GetParam() + 1);
  uint32_t version = 0;
  const uint64_t id_space = 400;
  for (int step = 0; step < 300; ++step) {
    const int action = static_cast<int>(rng() % 100);
    if (action < 50) {
      std::vector<WriteOp> ops;
      std::vector<Row> keep;
      keep.reserve(20);
      for (int i = 0; i < 20; ++i) {
        const uint64_t id = rng() % id_space;
        keep.push_back({VectorFor(id, ++version, o.dim), "m" + std::to_string(version)});
        ops.push_back({WriteOp::Kind::kPut, id, keep.back().vec.data(), keep.back().meta});
        model[id] = keep.back();
      }
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    } else if (action < 70) {
      std::vector<WriteOp> ops;
      for (int i = 0; i < 10; ++i) {
        const uint64_t id = rng() % id_space;
        ops.push_back({WriteOp::Kind::kDelete, id, nullptr, {}});
        model.erase(id);
      }
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    } else if (action < 88) {
      ASSERT_TRUE(db->Freeze().ok());
    } else if (action < 95) {
      ASSERT_TRUE(db->Compact(rng() % 2 == 0).ok());
    } else {
      db.reset();
      db = DB::Open(o).value();
    }
    if (step % 25 == 24) {
      ExpectMatchesModel(db.get(), model, id_space, "step " + std::to_string(step));
      std::map<uint64_t, std::vector<float>> live;
      for (auto& [id, r] : model) live[id] = r.vec;
      auto q = VectorFor(12345, step, o.dim);
      uint32_t k = 10;
      std::vector<std::vector<Hit>> out;
      ASSERT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).ok());
      auto truth = testing::BruteForce(live, o.metric, q.data(), o.dim, 10);
      ASSERT_EQ(out[0].size(), truth.size());
      for (auto& h : out[0]) ASSERT_TRUE(live.count(h.id)) << "deleted id " << h.id << " returned";
      if (GetParam() > 1000)  // exact search everywhere: identical answers
        for (size_t i = 0; i < truth.size(); ++i) ASSERT_EQ(out[0][i].id, truth[i].id);
    }
  }
  ASSERT_TRUE(db->Compact(true).ok());
  EXPECT_LE(db->TEST_SegmentCount(), 2u);
  ExpectMatchesModel(db.get(), model, id_space, "after the final forced compaction");
  db.reset();
  db = DB::Open(o).value();
  ExpectMatchesModel(db.get(), model, id_space, "after reopen");
}

// 0: every segment is searched through its (merged, rebuilt) graph; 100000: exactly.
INSTANTIATE_TEST_SUITE_P(GraphAndExact, CompactionModel, ::testing::Values(0u, 100000u));

TEST(Compaction, ForcedCompactionLeavesOneSegmentPerShardWithoutTombstones) {
  TempDir dir;
  auto db = DB::Open(CompactionOptions(dir.path(), 2, 0)).value();
  for (int round = 0; round < 3; ++round) {
    std::vector<std::vector<float>> vecs;
    std::vector<WriteOp> ops;
    vecs.reserve(100);
    for (uint64_t id = round * 50; id < round * 50 + 100; ++id) {
      vecs.push_back(VectorFor(id, round, 8));
      ops.push_back({WriteOp::Kind::kPut, id, vecs.back().data(), {}});
    }
    ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    WriteOp del{WriteOp::Kind::kDelete, static_cast<uint64_t>(round), nullptr, {}};
    ASSERT_TRUE(db->Write(&del, 1).ok());
    ASSERT_TRUE(db->Freeze().ok());
  }
  ASSERT_TRUE(db->Compact(true).ok());
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  std::string stats = db->StatsJson().value();
  EXPECT_NE(stats.find("\"segment_tombstones\": 0"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"live_rows\": 197"), std::string::npos) << stats;
  EXPECT_EQ(db->Count().value(), 197u);
  size_t seg_files = 0;
  for (auto& n : Env::Default()->ListDir(dir.path()).value()) seg_files += n.rfind("seg-", 0) == 0;
  EXPECT_EQ(seg_files, 2u) << "inputs must be deleted once the manifest names the merged segment";
}

TEST(Compaction, TieredPolicyBoundsTheNumberOfSegments) {
  TempDir dir;
  auto db = DB::Open(CompactionOptions(dir.path(), 1, 100000)).value();
  for (int round = 0; round < 30; ++round) {
    std::vector<std::vector<float>> vecs;
    std::vector<WriteOp> ops;
    for (uint64_t i = 0; i < 20; ++i) {
      const uint64_t id = round * 20 + i;
      vecs.push_back(VectorFor(id, 0, 8));
    }
    for (uint64_t i = 0; i < 20; ++i) ops.push_back({WriteOp::Kind::kPut, round * 20 + i, vecs[i].data(), {}});
    ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    ASSERT_TRUE(db->Freeze().ok());
  }
  ASSERT_TRUE(db->Compact(false).ok());  // whatever the background has not done yet
  EXPECT_LE(db->TEST_SegmentCount(), 4u);
  EXPECT_EQ(db->Count().value(), 600u);
}

TEST(Compaction, SearchesStayCorrectWhileCompactionsRun) {
  TempDir dir;
  const Options o = CompactionOptions(dir.path(), 2, 100000);
  auto db = DB::Open(o).value();
  std::map<uint64_t, std::vector<float>> live;
  for (int round = 0; round < 8; ++round) {
    std::vector<WriteOp> ops;
    for (uint64_t i = 0; i < 200; ++i) {
      const uint64_t id = (round * 131 + i * 7) % 1000;
      live[id] = VectorFor(id, round, o.dim);
    }
    for (auto& [id, v] : live) ops.push_back({WriteOp::Kind::kPut, id, v.data(), {}});
    ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    ASSERT_TRUE(db->Freeze().ok());
  }
  std::atomic<bool> stop{false};
  std::thread compactor([&] {
    for (int i = 0; i < 20 && !stop; ++i) {
      ASSERT_TRUE(db->Compact(true).ok());
      // Recreate several segments to merge again.
      std::vector<WriteOp> ops;
      for (auto& [id, v] : live)
        if (id % 5 == static_cast<uint64_t>(i % 5)) ops.push_back({WriteOp::Kind::kPut, id, v.data(), {}});
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
      ASSERT_TRUE(db->Freeze().ok());
    }
  });
  for (int i = 0; i < 200; ++i) {
    auto q = VectorFor(4242, i, o.dim);
    uint32_t k = 10;
    std::vector<std::vector<Hit>> out;
    ASSERT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).ok());
    auto truth = testing::BruteForce(live, o.metric, q.data(), o.dim, 10);
    ASSERT_EQ(out[0].size(), truth.size());
    for (size_t r = 0; r < truth.size(); ++r) ASSERT_EQ(out[0][r].id, truth[r].id) << "query " << i << " rank " << r;
    ASSERT_EQ(db->Count().value(), live.size());
  }
  stop = true;
  compactor.join();
}

TEST(Compaction, AFailedCompactionLeavesTheInputsAndTheData) {
  for (testing::Op op : {testing::Op::kSync, testing::Op::kRename, testing::Op::kSyncDir}) {
    TempDir dir;
    testing::FaultInjectionEnv env;
    Options o = CompactionOptions(dir.path(), 1, 100000);
    o.env = &env;
    auto db = DB::Open(o).value();
    std::map<uint64_t, std::vector<float>> live;
    for (int round = 0; round < 3; ++round) {
      std::vector<WriteOp> ops;
      for (uint64_t id = round * 10; id < round * 10 + 30; ++id) live[id] = VectorFor(id, round, o.dim);
      for (auto& [id, v] : live) ops.push_back({WriteOp::Kind::kPut, id, v.data(), {}});
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
      ASSERT_TRUE(db->Freeze().ok());
    }
    ASSERT_TRUE(db->Compact(false).ok());  // nothing to do under the policy yet; let the background settle
    const uint64_t segments = db->TEST_SegmentCount();
    env.FailNth(op, 1, EIO);
    EXPECT_FALSE(db->Compact(true).ok());
    env.ClearFaults();
    EXPECT_EQ(db->TEST_SegmentCount(), segments);
    EXPECT_EQ(db->Count().value(), live.size());
    db.reset();
    db = DB::Open(o).value();
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
// damage below is one bit flip in the older segment, which has the graph
// the merge reuses: in a vector, and in a layer-0 link (to another valid
// row, so HnswGraph::Verify cannot see it).
class DamagedInput : public ::testing::TestWithParam<uint32_t> {
 protected:
  static std::vector<std::string> Files(const std::string& dir) {
    std::vector<std::string> names = Env::Default()->ListDir(dir).value();
    std::sort(names.begin(), names.end());
    return names;
  }
  static void FlipBit(const std::string& path, uint64_t offset, int bit) {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
    const int byte = std::fgetc(f);
    ASSERT_EQ(std::fseek(f, static_cast<long>(offset), SEEK_SET), 0);
    ASSERT_NE(std::fputc(byte ^ (1 << bit), f), EOF);
    std::fclose(f);
  }
};

TEST_P(DamagedInput, FailsTheCompactionBeforeAnythingIsWrittenAndTheRestStillAnswers) {
  const uint32_t kind = GetParam();
  TempDir dir;
  const Options o = CompactionOptions(dir.path(), 1, 50);
  std::map<uint64_t, std::vector<float>> live;
  std::string older;
  {
    auto db = DB::Open(o).value();
    auto put = [&](uint64_t id) {
      live[id] = VectorFor(id, 0, o.dim);
      WriteOp op{WriteOp::Kind::kPut, id, live[id].data(), "m"};
      ASSERT_TRUE(db->Write(&op, 1).ok());
    };
    for (uint64_t id = 0; id < 100; ++id) put(id);
    ASSERT_TRUE(db->Freeze().ok());
    for (std::string name : Files(dir.path()))
      if (name.ends_with(".pseg")) older = dir.file(name);
    for (uint64_t id = 100; id < 120; ++id) put(id);
    live.erase(3);
    WriteOp del{WriteOp::Kind::kDelete, 3, nullptr, {}};
    ASSERT_TRUE(db->Write(&del, 1).ok());
    ASSERT_TRUE(db->Freeze().ok());
    ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  }

  // The damage: row 10's first float, or a layer-0 link of row 0 that still
  // names a row of the segment (another one, not yet in the list).
  const bool damaged_vectors = kind == static_cast<uint32_t>(segment::SectionKind::kVectors);
  {
    auto seg = segment::Segment::Open(Env::Default(), older).value();
    uint64_t at = 0;
    for (const auto& ref : seg->sections())
      if (ref.kind == kind) at = ref.offset;
    ASSERT_NE(at, 0u);
    if (damaged_vectors) {
      FlipBit(older, at + 10 * o.dim * sizeof(float) + 2, 0);
    } else {
      const uint32_t* block = reinterpret_cast<const uint32_t*>(seg->base() + at);
      const std::set<uint32_t> links(block + 1, block + 1 + block[0]);
      ASSERT_GE(links.size(), 1u);
      int bit = 0;
      while (bit < 7 && (links.count(block[1] ^ (1u << bit)) || (block[1] ^ (1u << bit)) == 0 ||
                         (block[1] ^ (1u << bit)) >= 100)) {
        ++bit;
      }
      ASSERT_LT(bit, 7);
      FlipBit(older, at + 4, bit);
    }
  }

  auto db = DB::Open(o).value();
  const std::vector<std::string> before = Files(dir.path());
  Status s = db->Compact(true);
  ASSERT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find(older + " at offset "), std::string::npos) << s.message();
  EXPECT_EQ(Files(dir.path()), before) << "a failed compaction wrote or removed files";
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);

  // Everything but the damaged section still reads, now and after a reopen:
  // with a damaged vector, no vector of the older segment (one checksum
  // covers them all), but its ids and metadata.
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(db->Count().value(), live.size());
    for (uint64_t id = 0; id < 120; ++id) {
      std::vector<float> v;
      std::string meta;
      Status g = db->Get(id, &v, &meta);
      if (damaged_vectors && id < 100 && live.count(id)) {
        EXPECT_TRUE(g.IsCorruption()) << id << ": " << g.ToString();
        EXPECT_TRUE(db->Get(id, nullptr, &meta).ok());
        EXPECT_EQ(meta, "m");
      } else if (live.count(id)) {
        ASSERT_TRUE(g.ok()) << id << ": " << g.ToString();
        EXPECT_EQ(v, live[id]);
        EXPECT_EQ(meta, "m");
      } else {
        EXPECT_TRUE(g.IsNotFound()) << id << ": " << g.ToString();
      }
    }
    db.reset();
    db = DB::Open(o).value();
    EXPECT_TRUE(db->Compact(true).IsCorruption());
    EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  }
}

INSTANTIATE_TEST_SUITE_P(Compaction, DamagedInput,
                         ::testing::Values(KindNumber(segment::SectionKind::kVectors),
                                           KindNumber(segment::SectionKind::kHnswLayer0)),
                         [](const ::testing::TestParamInfo<uint32_t>& p) {
                           return std::string(p.param == KindNumber(segment::SectionKind::kHnswLayer0) ? "GraphLink"
                                                                                                       : "Vector");
                         });

// A graph merge: 3000 rows frozen, then 300 new rows, 100 overwrites and 50
// deletes frozen; a forced compaction starts the merged graph from the
// 3000-row segment's, carrying over the 2850 rows neither overwritten nor
// deleted, and graph search over the merged segment finds the true top-10.
struct GraphMerge {
  static constexpr uint32_t kDim = 16;
  std::map<uint64_t, std::vector<float>> live;

  static Options MergeOptions(const std::string& path) {
    Options o = CompactionOptions(path, 1, 0);
    o.dim = kDim;
    o.hnsw_ef_search = 64;
    return o;
  }
  void Put(DB* db, uint64_t id, uint32_t version) {
    live[id] = VectorFor(id, version, kDim);
    WriteOp op{WriteOp::Kind::kPut, id, live[id].data(), {}};
    ASSERT_TRUE(db->Write(&op, 1).ok());
  }
  void Fill(DB* db) {
    for (uint64_t id = 0; id < 3000; ++id) Put(db, id, 0);
    ASSERT_TRUE(db->Freeze().ok());
    for (uint64_t id = 3000; id < 3300; ++id) Put(db, id, 0);
    for (uint64_t id = 0; id < 1000; id += 10) Put(db, id, 1);
    for (uint64_t id = 5; id < 1000; id += 20) {
      live.erase(id);
      WriteOp del{WriteOp::Kind::kDelete, id, nullptr, {}};
      ASSERT_TRUE(db->Write(&del, 1).ok());
    }
    ASSERT_TRUE(db->Freeze().ok());
  }
  double Recall(DB* db) {
    size_t hits = 0, total = 0;
    for (uint64_t q = 0; q < 100; ++q) {
      const std::vector<float> query = VectorFor(1000000 + q, 0, kDim);
      const uint32_t k = 10;
      std::vector<std::vector<Hit>> out;
      EXPECT_TRUE(db->Search(query.data(), 1, &k, 0, 0, &out).ok());
      const auto truth = testing::BruteForce(live, simd::Metric::kL2, query.data(), kDim, k);
      for (const Hit& t : truth) {
        ++total;
        for (const Hit& h : out[0]) hits += h.id == t.id;
      }
    }
    return static_cast<double>(hits) / static_cast<double>(total);
  }
};

TEST(Compaction, MergedGraphStartsFromTheLargestInputsGraph) {
  TempDir dir;
  GraphMerge m;
  auto db = DB::Open(GraphMerge::MergeOptions(dir.path())).value();
  m.Fill(db.get());
  ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  ASSERT_TRUE(db->Compact(true).ok());
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  const std::string stats = db->StatsJson().value();
  EXPECT_NE(stats.find("\"graph_reused_rows\": 2850"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"reused_rows\": 2850"), std::string::npos) << stats;
  EXPECT_EQ(db->Count().value(), m.live.size());
  EXPECT_GE(m.Recall(db.get()), 0.95);
  // Recorded in the segment: still there after a reopen.
  db.reset();
  db = DB::Open(GraphMerge::MergeOptions(dir.path())).value();
  EXPECT_NE(db->StatsJson().value().find("\"graph_reused_rows\": 2850"), std::string::npos);
  EXPECT_GE(m.Recall(db.get()), 0.95);
}

TEST(Compaction, OtherGraphParamsBuildTheMergedGraphFromNothing) {
  TempDir dir;
  GraphMerge m;
  {
    auto db = DB::Open(GraphMerge::MergeOptions(dir.path())).value();
    m.Fill(db.get());
  }
  Options o = GraphMerge::MergeOptions(dir.path());
  o.hnsw_m = 12;  // the inputs were built with 8
  auto db = DB::Open(o).value();
  ASSERT_TRUE(db->Compact(true).ok());
  const std::string stats = db->StatsJson().value();
  EXPECT_NE(stats.find("\"graph_reused_rows\": 0"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"m\": 12"), std::string::npos) << stats;
  EXPECT_GE(m.Recall(db.get()), 0.95);
}

TEST(Compaction, Float32RepresentationIsRecordedPerSegment) {
  TempDir dir;
  GraphMerge m;
  Options o = GraphMerge::MergeOptions(dir.path());
  o.hnsw_vectors = index::Traversal::kFloat32;
  {
    auto db = DB::Open(o).value();
    m.Fill(db.get());
    const std::string stats = db->StatsJson().value();
    EXPECT_EQ(stats.find("\"vectors\": \"sq8\""), std::string::npos) << stats;
    EXPECT_NE(stats.find("\"vectors\": \"float32\""), std::string::npos) << stats;
    EXPECT_GE(m.Recall(db.get()), 0.95);
    ASSERT_TRUE(db->Compact(true).ok());
    EXPECT_NE(db->StatsJson().value().find("\"graph_reused_rows\": 2850"), std::string::npos);
  }
  // A later open with the default (SQ8) walks the float32 segment as it is,
  // and its merges build SQ8 graphs from nothing.
  auto db = DB::Open(GraphMerge::MergeOptions(dir.path())).value();
  EXPECT_GE(m.Recall(db.get()), 0.95);
  m.Put(db.get(), 5000, 0);
  ASSERT_TRUE(db->Freeze().ok());
  ASSERT_TRUE(db->Compact(true).ok());
  const std::string stats = db->StatsJson().value();
  EXPECT_NE(stats.find("\"vectors\": \"sq8\""), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"graph_reused_rows\": 0"), std::string::npos) << stats;
}

}  // namespace
}  // namespace pomai::engine
