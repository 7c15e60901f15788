#include "engine/db.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "engine_test_util.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::engine {
namespace {

using testing::TempDir;
using testing::VectorFor;

Options MakeOptions(const std::string& path, uint32_t dim = 8, uint32_t shards = 1,
                    simd::Metric metric = simd::Metric::kL2) {
  Options o;
  o.path = path;
  o.dim = dim;
  o.shards = shards;
  o.metric = metric;
  o.search_threads = 2;
  return o;
}

std::unique_ptr<DB> OpenOrDie(const Options& o) {
  auto r = DB::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

Status Put(DB* db, uint64_t id, const std::vector<float>& v, std::string_view meta = {}) {
  WriteOp op;
  op.kind = WriteOp::Kind::kPut;
  op.id = id;
  op.vector = v.data();
  op.metadata = meta;
  return db->Write(&op, 1);
}

Status Del(DB* db, uint64_t id) {
  WriteOp op;
  op.kind = WriteOp::Kind::kDelete;
  op.id = id;
  return db->Write(&op, 1);
}

std::vector<Hit> SearchOne(DB* db, const std::vector<float>& q, uint32_t k) {
  std::vector<std::vector<Hit>> out;
  Status s = db->Search(q.data(), 1, &k, 0, 0, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out.empty() ? std::vector<Hit>{} : out[0];
}

TEST(DB, PutGetDeleteAcrossMemtableAndSegment) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path()));
  auto v1 = VectorFor(1, 0, 8), v2 = VectorFor(2, 0, 8);
  ASSERT_TRUE(Put(db.get(), 1, v1, "one").ok());
  ASSERT_TRUE(Put(db.get(), 2, v2).ok());
  std::vector<float> got;
  std::string meta;
  ASSERT_TRUE(db->Get(1, &got, &meta).ok());
  EXPECT_EQ(got, v1);
  EXPECT_EQ(meta, "one");
  ASSERT_TRUE(db->Freeze().ok());
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  ASSERT_TRUE(db->Get(1, &got, &meta).ok());
  EXPECT_EQ(got, v1);
  EXPECT_EQ(meta, "one");
  ASSERT_TRUE(Del(db.get(), 1).ok());
  EXPECT_TRUE(db->Get(1, &got, &meta).IsNotFound());
  EXPECT_FALSE(db->Exists(1).value());
  EXPECT_TRUE(db->Exists(2).value());
  EXPECT_EQ(db->Count().value(), 1u);
}

// Issue 15: a bit flipped in a frozen row's vector (bit 6 of byte 3 of row
// 7's first float: 28 became 8.2e-38) came back from get as a value.
TEST(DB, AFlippedBitInAFrozenVectorIsCorruptionNotAValue) {
  TempDir dir;
  const Options o = MakeOptions(dir.path(), 4);
  {
    auto db = OpenOrDie(o);
    std::vector<uint64_t> ids(100);
    std::vector<float> vectors(100 * 4);
    for (uint64_t id = 0; id < 100; ++id) {
      ids[id] = id;
      for (uint32_t j = 0; j < 4; ++j) vectors[id * 4 + j] = static_cast<float>(id * 4 + j);
    }
    ASSERT_TRUE(db->PutArray(ids.data(), vectors.data(), ids.size()).ok());
    ASSERT_TRUE(db->Freeze().ok());
  }
  std::string path;
  for (const std::string& name : Env::Default()->ListDir(dir.path()).value())
    if (name.ends_with(".pseg")) path = dir.file(name);
  uint64_t vectors_at = 0;
  {
    auto seg = segment::Segment::Open(Env::Default(), path);
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    for (const auto& ref : seg.value()->sections())
      if (ref.kind == static_cast<uint32_t>(segment::SectionKind::kVectors)) vectors_at = ref.offset;
  }
  ASSERT_NE(vectors_at, 0u);
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    const long at = static_cast<long>(vectors_at + 7 * 4 * sizeof(float) + 3);
    ASSERT_EQ(std::fseek(f, at, SEEK_SET), 0);
    const int byte = std::fgetc(f);
    ASSERT_EQ(byte, 0x41);  // 28.0f is 0x41E00000
    ASSERT_EQ(std::fseek(f, at, SEEK_SET), 0);
    ASSERT_EQ(std::fputc(byte ^ (1 << 6), f), byte ^ (1 << 6));
    std::fclose(f);
  }
  auto db = OpenOrDie(o);  // Open stays O(1): it reads no row
  ASSERT_NE(db, nullptr);
  std::vector<float> got;
  Status s = db->Get(7, &got, nullptr);
  ASSERT_TRUE(s.IsCorruption()) << "get(7) gave " << s.ToString() << " [" << (got.empty() ? 0.f : got[0]) << ", ...]";
  EXPECT_NE(s.message().find(path + " at offset " + std::to_string(vectors_at)), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("vectors"), std::string::npos) << s.message();
  // What the damage does not reach still answers: the ids and metadata.
  EXPECT_TRUE(db->Exists(7).value());
  std::string meta;
  EXPECT_TRUE(db->Get(7, nullptr, &meta).ok());
  EXPECT_EQ(db->Count().value(), 100u);
  const std::vector<float> q = {28, 29, 30, 31};
  const uint32_t k = 3;
  std::vector<std::vector<Hit>> out;
  EXPECT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).IsCorruption());
}

TEST(DB, ReopenWithDifferentDimMetricOrShardsIsRejectedNamingBoth) {
  TempDir dir;
  { auto db = OpenOrDie(MakeOptions(dir.path(), 8, 2, simd::Metric::kIP)); }
  auto r = DB::Open(MakeOptions(dir.path(), 16, 2, simd::Metric::kIP));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("16"), std::string::npos);
  EXPECT_NE(r.status().message().find("8"), std::string::npos);
  EXPECT_TRUE(DB::Open(MakeOptions(dir.path(), 8, 3, simd::Metric::kIP)).status().IsInvalidArgument());
  auto m = DB::Open(MakeOptions(dir.path(), 8, 2, simd::Metric::kL2));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("ip"), std::string::npos);
  EXPECT_TRUE(DB::Open(MakeOptions(dir.path(), 8, 2, simd::Metric::kIP)).ok());
}

TEST(DB, SecondOpenOfAnOpenDatabaseSaysLocked) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path()));
  auto second = DB::Open(MakeOptions(dir.path()));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("locked"), std::string::npos);
}

TEST(DB, InvalidItemFailsTheWholeBatchAndStoresNothing) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path()));
  auto good = VectorFor(1, 0, 8);
  auto bad = VectorFor(2, 0, 8);
  bad[3] = std::nanf("");
  WriteOp ops[2];
  ops[0] = {WriteOp::Kind::kPut, 1, good.data(), {}};
  ops[1] = {WriteOp::Kind::kPut, 2, bad.data(), {}};
  Status s = db->Write(ops, 2);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("item 1"), std::string::npos) << s.message();
  EXPECT_EQ(db->Count().value(), 0u);
  bad[3] = INFINITY;
  EXPECT_TRUE(db->Write(ops, 2).IsInvalidArgument());
  EXPECT_EQ(db->Count().value(), 0u);
}

TEST(DB, LastWriteOfAnIdInABatchWins) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path()));
  auto a = VectorFor(7, 0, 8), b = VectorFor(7, 1, 8);
  WriteOp ops[3] = {{WriteOp::Kind::kPut, 7, a.data(), "a"}, {WriteOp::Kind::kDelete, 7, nullptr, {}},
                    {WriteOp::Kind::kPut, 7, b.data(), "b"}};
  ASSERT_TRUE(db->Write(ops, 3).ok());
  std::vector<float> got;
  std::string meta;
  ASSERT_TRUE(db->Get(7, &got, &meta).ok());
  EXPECT_EQ(got, b);
  EXPECT_EQ(meta, "b");
}

TEST(DB, ScoresAreSortedByScoreThenIdAscending) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path(), 4, 3, simd::Metric::kIP));
  std::vector<float> same = {1, 0, 0, 0};
  for (uint64_t id : {9, 3, 6, 1, 12}) ASSERT_TRUE(Put(db.get(), id, same).ok());
  ASSERT_TRUE(db->Freeze().ok());
  auto hits = SearchOne(db.get(), {1, 0, 0, 0}, 10);
  ASSERT_EQ(hits.size(), 5u);
  std::vector<uint64_t> ids;
  for (auto& h : hits) ids.push_back(h.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 3, 6, 9, 12}));
  for (auto& h : hits) EXPECT_EQ(h.shard, h.id % 3);
}

TEST(DB, TopkZeroGivesNothingAndHugeTopkGivesAllLiveRows) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path(), 8, 2));
  for (uint64_t id = 0; id < 50; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
  ASSERT_TRUE(Del(db.get(), 10).ok());
  auto q = VectorFor(999, 0, 8);
  EXPECT_TRUE(SearchOne(db.get(), q, 0).empty());
  EXPECT_EQ(SearchOne(db.get(), q, UINT32_MAX).size(), 49u);
}

// The model-based shadowing test: random puts, overwrites and deletes,
// interleaved with freezes and reopens, over several shards; after every
// step, get/exists/count and searches must match a plain map of live rows.
class ShadowingTest : public ::testing::TestWithParam<simd::Metric> {};

TEST_P(ShadowingTest, NewestVersionWinsAcrossMemtableSegmentsShardsAndReopen) {
  TempDir dir;
  const uint32_t dim = 6;
  Options o = MakeOptions(dir.path(), dim, 3, GetParam());
  auto db = OpenOrDie(o);
  std::map<uint64_t, std::vector<float>> model;
  std::mt19937_64 rng(42);
  uint32_t version = 0;
  for (int step = 0; step < 600; ++step) {
    const int action = static_cast<int>(rng() % 100);
    if (action < 55) {
      std::vector<WriteOp> ops;
      std::vector<std::vector<float>> keep;
      const int n = 1 + static_cast<int>(rng() % 5);
      keep.reserve(n);
      for (int i = 0; i < n; ++i) {
        uint64_t id = rng() % 120;
        keep.push_back(VectorFor(id, ++version, dim));
        ops.push_back({WriteOp::Kind::kPut, id, keep.back().data(), {}});
        model[id] = keep.back();
      }
      ASSERT_TRUE(db->Write(ops.data(), ops.size()).ok());
    } else if (action < 80) {
      uint64_t id = rng() % 120;
      ASSERT_TRUE(Del(db.get(), id).ok());
      model.erase(id);
    } else if (action < 93) {
      ASSERT_TRUE(db->Freeze().ok());
    } else {
      db.reset();
      db = OpenOrDie(o);
      ASSERT_NE(db, nullptr);
    }
    if (step % 20 != 19) continue;
    ASSERT_EQ(db->Count().value(), model.size()) << "step " << step;
    for (uint64_t id = 0; id < 120; ++id) {
      std::vector<float> got;
      Status s = db->Get(id, &got, nullptr);
      auto it = model.find(id);
      if (it == model.end()) {
        ASSERT_TRUE(s.IsNotFound()) << "deleted id " << id << " came back at step " << step;
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        ASSERT_EQ(got, it->second) << "stale version of id " << id << " at step " << step;
      }
    }
    for (int qn = 0; qn < 3; ++qn) {
      auto q = VectorFor(100000 + step, qn, dim);
      auto expect = testing::BruteForce(model, GetParam(), q.data(), dim, 10);
      auto got = SearchOne(db.get(), q, 10);
      ASSERT_EQ(got.size(), expect.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].id, expect[i].id) << "rank " << i << " step " << step;
        ASSERT_NEAR(got[i].score, expect[i].score, 1e-4f * (1 + std::fabs(expect[i].score)));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, ShadowingTest,
                         ::testing::Values(simd::Metric::kL2, simd::Metric::kIP, simd::Metric::kCosine));

TEST(DB, ManyQueriesInOneSearchEachMatchBruteForce) {
  TempDir dir;
  const uint32_t dim = 16;
  auto db = OpenOrDie(MakeOptions(dir.path(), dim, 2, simd::Metric::kL2));
  std::map<uint64_t, std::vector<float>> model;
  for (uint64_t id = 0; id < 3000; ++id) {
    model[id] = VectorFor(id, 0, dim);
    ASSERT_TRUE(Put(db.get(), id, model[id]).ok());
    if (id == 2000) ASSERT_TRUE(db->Freeze().ok());
  }
  const size_t nq = 40;
  std::vector<float> qs;
  std::vector<uint32_t> ks;
  for (size_t i = 0; i < nq; ++i) {
    auto q = VectorFor(777, static_cast<uint32_t>(i), dim);
    qs.insert(qs.end(), q.begin(), q.end());
    ks.push_back(static_cast<uint32_t>(i % 12));
  }
  std::vector<std::vector<Hit>> out;
  ASSERT_TRUE(db->Search(qs.data(), nq, ks.data(), 0, 0, &out).ok());
  for (size_t i = 0; i < nq; ++i) {
    auto expect = testing::BruteForce(model, simd::Metric::kL2, qs.data() + i * dim, dim, ks[i]);
    ASSERT_EQ(out[i].size(), expect.size());
    for (size_t r = 0; r < expect.size(); ++r) EXPECT_EQ(out[i][r].id, expect[r].id);
  }
}

TEST(DB, NonFiniteQueryIsInvalidArgument) {
  TempDir dir;
  auto db = OpenOrDie(MakeOptions(dir.path()));
  std::vector<float> q(8, 0.5f);
  q[2] = -INFINITY;
  uint32_t k = 3;
  std::vector<std::vector<Hit>> out;
  EXPECT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).IsInvalidArgument());
}

TEST(DB, FsyncAlwaysSyncsBeforeAcknowledgingAndNeverDoesNot) {
  for (bool fsync : {false, true}) {
    TempDir dir;
    testing::FaultInjectionEnv env;
    Options o = MakeOptions(dir.path());
    o.env = &env;
    o.fsync = fsync;
    auto db = OpenOrDie(o);
    const uint64_t before = env.count(testing::Op::kSync);
    for (uint64_t id = 0; id < 10; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
    const uint64_t syncs = env.count(testing::Op::kSync) - before;
    if (fsync)
      EXPECT_GE(syncs, 10u) << "every acknowledged single-writer batch needs its own fdatasync";
    else
      EXPECT_EQ(syncs, 0u);
  }
}

TEST(DB, FailedFsyncMakesWritesFailForeverButKeepsReadsAndRecoversOnReopen) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  Options o = MakeOptions(dir.path());
  o.env = &env;
  o.fsync = true;
  {
    auto db = OpenOrDie(o);
    ASSERT_TRUE(Put(db.get(), 1, VectorFor(1, 0, 8)).ok());
    env.FailNth(testing::Op::kSync, 1, EIO);  // once only: a retry would succeed
    Status s = Put(db.get(), 2, VectorFor(2, 0, 8));
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    Status again = Put(db.get(), 3, VectorFor(3, 0, 8));
    EXPECT_FALSE(again.ok()) << "a write after a failed fsync must not be acknowledged";
    EXPECT_NE(again.message().find("refuses writes"), std::string::npos) << again.message();
    EXPECT_FALSE(db->Freeze().ok());
    EXPECT_TRUE(db->Exists(1).value());
    EXPECT_FALSE(db->Exists(3).value());
  }
  env.ClearFaults();
  auto db = OpenOrDie(o);
  EXPECT_TRUE(db->Exists(1).value());
  EXPECT_FALSE(db->Exists(3).value());
  EXPECT_TRUE(Put(db.get(), 4, VectorFor(4, 0, 8)).ok());
}

// A batch whose log write fails was staged into the memtable (the writer
// copies it there while it writes the log) but is never published: no read
// sees its rows, old versions stay the answer, and no freeze can carry it
// into a segment. For a one-row batch (staged before the write) and a batch
// of 1000 x 128 (staged on the writer's helper thread during the write),
// with the failure in the write and in the fsync.
TEST(DB, AFailedLogWriteLeavesItsStagedBatchInvisible) {
  constexpr uint32_t kDim = 128;
  for (testing::Op op : {testing::Op::kAppend, testing::Op::kSync}) {
    for (size_t n : {size_t{1}, size_t{1000}}) {
      SCOPED_TRACE(std::string(op == testing::Op::kAppend ? "append" : "sync") + " fails, batch of " +
                   std::to_string(n));
      TempDir dir;
      testing::FaultInjectionEnv env;
      Options o = MakeOptions(dir.path(), kDim);
      o.env = &env;
      o.fsync = true;
      o.build_graphs = false;
      auto db = OpenOrDie(o);
      // Ids 0..n-1 hold version 0, half of them already frozen into a segment.
      std::vector<uint64_t> ids(n);
      std::vector<float> old_rows, new_rows;
      for (uint64_t i = 0; i < n; ++i) {
        ids[i] = i;
        auto v0 = VectorFor(i, 0, kDim), v1 = VectorFor(i, 1, kDim);
        old_rows.insert(old_rows.end(), v0.begin(), v0.end());
        new_rows.insert(new_rows.end(), v1.begin(), v1.end());
      }
      const size_t half = (n + 1) / 2;
      ASSERT_TRUE(db->PutArray(ids.data(), old_rows.data(), half).ok());
      ASSERT_TRUE(db->Freeze().ok());
      if (n > half) ASSERT_TRUE(db->PutArray(ids.data() + half, old_rows.data() + half * kDim, n - half).ok());
      // The failing batch: version 1 of every id, plus n new ids.
      std::vector<uint64_t> batch_ids = ids;
      std::vector<float> batch_rows = new_rows;
      for (uint64_t i = 0; i < n; ++i) {
        batch_ids.push_back(1'000'000 + i);
        auto v = VectorFor(1'000'000 + i, 1, kDim);
        batch_rows.insert(batch_rows.end(), v.begin(), v.end());
      }
      env.FailNth(op, 1, EIO);
      Status s = db->PutArray(batch_ids.data(), batch_rows.data(), batch_ids.size());
      ASSERT_TRUE(s.IsIOError()) << s.ToString();
      env.ClearFaults();

      EXPECT_EQ(db->Count().value(), n);
      for (uint64_t i = 0; i < n; ++i) {
        std::vector<float> v;
        ASSERT_TRUE(db->Get(i, &v, nullptr).ok()) << i;
        ASSERT_EQ(v, VectorFor(i, 0, kDim)) << "id " << i << " shows the failed batch's version";
        ASSERT_FALSE(db->Exists(1'000'000 + i).value()) << "id " << 1'000'000 + i << " of the failed batch exists";
      }
      // A query equal to a failed row finds the old rows only.
      const auto hits = SearchOne(db.get(), VectorFor(1'000'000, 1, kDim), 10);
      EXPECT_EQ(hits.size(), std::min<size_t>(10, n));
      for (const Hit& h : hits) EXPECT_LT(h.id, n) << "a search returned a row of the failed batch";
      const auto self = SearchOne(db.get(), VectorFor(0, 1, kDim), 1);
      ASSERT_EQ(self.size(), 1u);
      EXPECT_LT(self[0].score, 0.0f) << "id 0's failed version (distance 0 to this query) was searched";
      // Sticky: no more writes, and no freeze that would carry the staged rows into a segment.
      EXPECT_FALSE(db->PutArray(ids.data(), new_rows.data(), 1).ok());
      EXPECT_FALSE(db->Freeze().ok());
      EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    }
  }
}

// A freeze first makes the current log durable (so that a power cut never
// keeps a later log without an earlier one); a failure there is a failed WAL
// fsync like any other: sticky, reads still work, reopen recovers everything.
TEST(DB, FailedLogSyncAtAFreezeIsStickyAndReopenRecoversEverything) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  Options o = MakeOptions(dir.path(), 8, 2);
  o.env = &env;
  {
    auto db = OpenOrDie(o);
    for (uint64_t id = 0; id < 40; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
    env.FailNth(testing::Op::kSync, 1, EIO);
    EXPECT_FALSE(db->Freeze().ok());
    env.ClearFaults();
    EXPECT_FALSE(Put(db.get(), 99, VectorFor(99, 0, 8)).ok()) << "a failed log fsync is sticky";
    EXPECT_EQ(db->Count().value(), 40u);
  }
  auto db = OpenOrDie(o);
  EXPECT_EQ(db->Count().value(), 40u);
  EXPECT_TRUE(Put(db.get(), 99, VectorFor(99, 0, 8)).ok());
}

TEST(DB, FailedFreezeKeepsEverythingReadableAndALaterFreezeSucceeds) {
  for (testing::Op op : {testing::Op::kSync, testing::Op::kRename, testing::Op::kSyncDir}) {
    TempDir dir;
    testing::FaultInjectionEnv env;
    Options o = MakeOptions(dir.path(), 8, 2);
    o.env = &env;
    auto db = OpenOrDie(o);
    for (uint64_t id = 0; id < 40; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
    // Sync 1 of a freeze is the log's (made durable before the switch, whose
    // failure is sticky: next test); sync 2 is the first segment file's.
    env.FailNth(op, op == testing::Op::kSync ? 2 : 1, ENOSPC);
    EXPECT_FALSE(db->Freeze().ok());
    env.ClearFaults();
    EXPECT_EQ(db->Count().value(), 40u);
    ASSERT_TRUE(db->Freeze().ok());
    EXPECT_EQ(db->Count().value(), 40u);
    db.reset();
    db = OpenOrDie(o);
    EXPECT_EQ(db->Count().value(), 40u);
    for (uint64_t id = 0; id < 40; ++id) {
      std::vector<float> got;
      ASSERT_TRUE(db->Get(id, &got, nullptr).ok());
      EXPECT_EQ(got, VectorFor(id, 0, 8));
    }
  }
}

TEST(DB, ReopenReplaysTheLogAndFreezeDeletesFrozenLogs) {
  TempDir dir;
  Options o = MakeOptions(dir.path());
  {
    auto db = OpenOrDie(o);
    for (uint64_t id = 0; id < 20; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
  }
  {
    auto db = OpenOrDie(o);
    EXPECT_EQ(db->Count().value(), 20u);
    ASSERT_TRUE(db->Freeze().ok());
  }
  auto names = Env::Default()->ListDir(dir.path()).value();
  size_t wals = 0, segs = 0;
  for (auto& n : names) {
    wals += n.rfind("wal-", 0) == 0;
    segs += n.rfind("seg-", 0) == 0;
  }
  EXPECT_EQ(segs, 1u);
  EXPECT_LE(wals, 2u);  // the live one (and the one the last open created)
  auto db = OpenOrDie(o);
  EXPECT_EQ(db->Count().value(), 20u);
}

// put_array writes its own record type (ids and matrix straight from the
// caller's arrays): replayed on reopen, in order with batch records, on every
// shard, last write of an id winning.
TEST(DB, PutArrayRecordsReplayOnReopenInOrderWithOtherBatches) {
  TempDir dir;
  Options o = MakeOptions(dir.path(), 8, 3);
  std::vector<uint64_t> ids = {1, 2, 3, 4, 5, 2};
  std::vector<float> vecs;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto v = VectorFor(ids[i], static_cast<int>(i), 8);
    vecs.insert(vecs.end(), v.begin(), v.end());
  }
  {
    auto db = OpenOrDie(o);
    ASSERT_TRUE(db->PutArray(ids.data(), vecs.data(), ids.size()).ok());
    ASSERT_TRUE(Del(db.get(), 4).ok());
    ASSERT_TRUE(Put(db.get(), 5, VectorFor(5, 99, 8)).ok());
  }
  auto db = OpenOrDie(o);
  EXPECT_EQ(db->Count().value(), 4u);
  std::vector<float> got;
  std::string meta;
  ASSERT_TRUE(db->Get(2, &got, &meta).ok());
  EXPECT_EQ(got, VectorFor(2, 5, 8)) << "the later row of id 2 in the array wins";
  ASSERT_TRUE(db->Get(5, &got, &meta).ok());
  EXPECT_EQ(got, VectorFor(5, 99, 8)) << "a later batch overrides the array";
  EXPECT_TRUE(db->Get(4, &got, &meta).IsNotFound());
  ASSERT_TRUE(db->Get(1, &got, &meta).ok());
  EXPECT_EQ(got, VectorFor(1, 0, 8));
}

TEST(DB, ArrayRecordWithAWrongSizeIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  Options o = MakeOptions(dir.path());
  const uint64_t ids[2] = {7, 8};
  std::vector<float> vecs(16, 0.5f);
  {
    auto db = OpenOrDie(o);
    ASSERT_TRUE(db->PutArray(ids, vecs.data(), 2).ok());
  }
  std::string wal;
  for (auto& n : Env::Default()->ListDir(dir.path()).value())
    if (n.rfind("wal-", 0) == 0 && Env::Default()->FileSize(dir.file(n)).value() > 0) wal = n;
  ASSERT_FALSE(wal.empty());
  std::string data;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(wal), &data).ok());
  // Claim 3 rows in a payload that holds 2 (the count is at byte 12 of the
  // row array's head), with valid checksums: the framing is intact, so only
  // the record decoder can catch it.
  data[24 + 12] = 3;
  const uint32_t crc = crc32c::Value(data.data() + 24, data.size() - 24);
  EncodeFixed32(reinterpret_cast<uint8_t*>(data.data()) + 16, crc);
  EncodeFixed32(reinterpret_cast<uint8_t*>(data.data()) + 20, crc32c::Value(data.data(), 20));
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(wal), data).ok());
  auto r = DB::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(wal), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("does not hold 3 rows of dim"), std::string::npos) << r.status().message();
}

TEST(DB, OpensThatOnlyReadCreateNoLogFilesAndEmptyLogsAreRemoved) {
  TempDir dir;
  Options o = MakeOptions(dir.path());
  auto wal_files = [&] {
    size_t n = 0;
    for (auto& name : Env::Default()->ListDir(dir.path()).value()) n += name.rfind("wal-", 0) == 0;
    return n;
  };
  for (int i = 0; i < 5; ++i) auto db = OpenOrDie(o);
  EXPECT_EQ(wal_files(), 0u);
  {
    auto db = OpenOrDie(o);
    ASSERT_TRUE(Put(db.get(), 1, VectorFor(1, 0, 8)).ok());
  }
  for (int i = 0; i < 5; ++i) {
    auto db = OpenOrDie(o);
    EXPECT_TRUE(db->Exists(1).value());
  }
  EXPECT_EQ(wal_files(), 1u) << "reads must not add log files";
  {
    auto db = OpenOrDie(o);
    ASSERT_TRUE(db->Freeze().ok());
  }
  auto db = OpenOrDie(o);
  EXPECT_TRUE(db->Exists(1).value());
  EXPECT_EQ(wal_files(), 0u) << "the empty log the freeze switched to is removed on open";
}

TEST(DB, CorruptWalRecordIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  Options o = MakeOptions(dir.path());
  {
    auto db = OpenOrDie(o);
    for (uint64_t id = 0; id < 5; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 8)).ok());
  }
  std::string wal;
  for (auto& n : Env::Default()->ListDir(dir.path()).value())
    if (n.rfind("wal-", 0) == 0 && Env::Default()->FileSize(dir.file(n)).value() > 0) wal = n;
  ASSERT_FALSE(wal.empty());
  std::string data;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(wal), &data).ok());
  data[30] ^= 0x55;  // inside the first record's payload
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(wal), data).ok());
  auto r = DB::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(wal), std::string::npos);
  EXPECT_NE(r.status().message().find("offset 0"), std::string::npos) << r.status().message();
}

TEST(DB, AutomaticFreezeWhenTheMemoryBudgetIsExceeded) {
  TempDir dir;
  Options o = MakeOptions(dir.path(), 64, 2);
  o.memory_budget_bytes = 64 * 1024;
  auto db = OpenOrDie(o);
  for (uint64_t id = 0; id < 3000; ++id) ASSERT_TRUE(Put(db.get(), id, VectorFor(id, 0, 64)).ok());
  ASSERT_TRUE(db->Freeze().ok());  // waits for any background freeze
  EXPECT_GT(db->TEST_SegmentCount(), 2u);
  EXPECT_EQ(db->Count().value(), 3000u);
  db.reset();
  db = OpenOrDie(o);
  EXPECT_EQ(db->Count().value(), 3000u);
}

TEST(DB, DeadlineExceededIsReported) {
  TempDir dir;
  Options o = MakeOptions(dir.path(), 256, 1);
  o.search_threads = 1;
  auto db = OpenOrDie(o);
  std::vector<uint64_t> ids(100000);
  std::vector<float> vecs(ids.size() * 256, 0.25f);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  ASSERT_TRUE(db->PutArray(ids.data(), vecs.data(), ids.size()).ok());
  std::vector<float> q(256 * 64, 0.5f);
  std::vector<uint32_t> ks(64, 10);
  std::vector<std::vector<Hit>> out;
  // 64 queries over 100k x 256 floats is far more than 1 ms of work.
  EXPECT_EQ(db->Search(q.data(), 64, ks.data(), 1, 0, &out).code(), Code::kDeadlineExceeded);
}

}  // namespace
}  // namespace pomai::engine
