// The default collection's rows (lib/engine/collection_rows.cc; docs/ENGINE.md
// 2.2): writes, reads, searches, fsync and write faults, WAL replay and
// damage. Shards are no storage units (ENGINE.md 2.5): one memtable and one
// segment file per flush for the whole database; `shards` only sets
// Hit::shard = id % shards.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include "engine/filename.h"
#include "engine/db.h"
#include "db_test_util.h"
#include "segment/file.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"
#include "wal/record_codec.h"

namespace pomai::engine {
namespace {

using testing::DelRow;
using testing::OpenRows;
using testing::PutRow;
using testing::RowsCollection;
using testing::DiskOptions;
using testing::SearchRows;
using testing::TempDir;
using testing::VectorFor;

using testing::RowsOptions;

RowsOptions MakeOptions(const std::string& path, uint32_t dim = 8, uint32_t shards = 1,
                        simd::Metric metric = simd::Metric::kL2) {
  return testing::MakeRowsOptions(path, dim, shards, metric);
}

std::vector<Hit> SearchOne(DB* db, const std::vector<float>& q, uint32_t k) {
  return SearchRows(db, q.data(), k);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(CollectionRows, PutGetDeleteAcrossMemtableAndSegment) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  auto v1 = VectorFor(1, 0, 8), v2 = VectorFor(2, 0, 8);
  ASSERT_TRUE(PutRow(db.get(), 1, v1, "one").ok());
  ASSERT_TRUE(PutRow(db.get(), 2, v2).ok());
  std::vector<float> got;
  std::string meta;
  ASSERT_TRUE(db->Get(1, &got, &meta).ok());
  EXPECT_EQ(got, v1);
  EXPECT_EQ(meta, "one");
  ASSERT_TRUE(db->Flush().ok());
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  got.clear();
  meta.clear();
  ASSERT_TRUE(db->Get(1, &got, &meta).ok());
  EXPECT_EQ(got, v1);
  EXPECT_EQ(meta, "one");
  ASSERT_TRUE(DelRow(db.get(), 1).ok());
  Status s = db->Get(1, &got, &meta);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("id 1 not found"), std::string::npos) << s.message();
  EXPECT_FALSE(db->Exists(1).value());
  EXPECT_TRUE(db->Exists(2).value());
  EXPECT_EQ(db->Count().value(), 1u);
}

// Issue 15: a bit flipped in a frozen row's vector (bit 6 of byte 3 of row
// 7's first float: 28 became 8.2e-38) came back from get as a value. In
// segment format 2 one block CRC covers a block's ids, seqs, vectors and
// metadata (ENGINE.md 3.3): every read of a row of the damaged block is
// Corruption naming the file and the block's offset; the other blocks still
// answer.
TEST(CollectionRows, AFlippedBitInAFrozenVectorIsCorruptionNotAValue) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path(), 4);
  o.coll.adaptive_threshold = 1000000;  // no graph: every search scans every block
  // dim 4: 4096 rows per block (64 KiB of vectors), so 10000 rows are 3 blocks.
  const uint64_t kRows = 10000;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    std::vector<uint64_t> ids(kRows);
    std::vector<float> vectors(kRows * 4);
    for (uint64_t id = 0; id < kRows; ++id) {
      ids[id] = id;
      for (uint32_t j = 0; j < 4; ++j) vectors[id * 4 + j] = static_cast<float>(id * 4 + j);
    }
    ASSERT_TRUE(db->PutArray(ids.data(), vectors.data(), ids.size()).ok());
    ASSERT_TRUE(db->Flush().ok());
  }
  const auto segs = testing::SegmentFiles(dir.path());
  ASSERT_EQ(segs.size(), 1u);
  const std::string path = dir.file(segs[0]);
  uint64_t vectors_at = 0;
  {
    auto seg = segment::SegmentFile::Open(Env::Default(), path);
    ASSERT_TRUE(seg.ok()) << seg.status().ToString();
    const uint32_t g = testing::U64Group(*seg.value());
    ASSERT_LT(g, seg.value()->group_count());
    ASSERT_EQ(seg.value()->group(g).rows, kRows);
    ASSERT_GT(seg.value()->group(g).blocks(), 1u);
    vectors_at = testing::SectionOffset(*seg.value(), segment::SectionKind::kRowVectors, g);
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
  auto db = OpenRows(o);  // Open stays O(1): it reads no row
  ASSERT_NE(db, nullptr);
  std::vector<float> got;
  Status s = db->Get(7, &got, nullptr);
  ASSERT_TRUE(s.IsCorruption()) << "get(7) gave " << s.ToString() << " [" << (got.empty() ? 0.f : got[0]) << ", ...]";
  // Block 0's rows start at the group's vectors section.
  EXPECT_NE(s.message().find(path + " at offset " + std::to_string(vectors_at)), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("block 0"), std::string::npos) << s.message();
  // The metadata of row 7 is in the same block: no answer without the check.
  std::string meta;
  EXPECT_TRUE(db->Get(7, nullptr, &meta).IsCorruption());
  // Never a wrong answer: an error or the truth.
  auto exists = db->Exists(7);
  if (exists.ok()) {
    EXPECT_TRUE(exists.value());
  } else {
    EXPECT_TRUE(exists.status().IsCorruption()) << exists.status().ToString();
  }
  auto count = db->Count();
  if (count.ok()) {
    EXPECT_EQ(count.value(), kRows);
  } else {
    EXPECT_TRUE(count.status().IsCorruption()) << count.status().ToString();
  }
  // What the damage does not reach still answers: the rows of the other blocks.
  for (uint64_t id : {uint64_t{4096}, uint64_t{5000}, kRows - 1}) {
    std::vector<float> v;
    ASSERT_TRUE(db->Get(id, &v, nullptr).ok()) << id;
    EXPECT_EQ(v, (std::vector<float>{static_cast<float>(id * 4), static_cast<float>(id * 4 + 1),
                                     static_cast<float>(id * 4 + 2), static_cast<float>(id * 4 + 3)}));
    EXPECT_TRUE(db->Exists(id).value());
  }
  const std::vector<float> q = {28, 29, 30, 31};
  const uint32_t k = 3;
  std::vector<std::vector<Hit>> out;
  EXPECT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).IsCorruption());
}

// DB::Open opens the directory; the default collection's dim, metric and
// shards are checked by OpenDefaultCollection (ENGINE.md 2.2).
TEST(CollectionRows, ReopenWithDifferentDimMetricOrShardsIsRejectedNamingBoth) {
  TempDir dir;
  {
    auto db = OpenRows(MakeOptions(dir.path(), 8, 2, simd::Metric::kIP));
    ASSERT_NE(db, nullptr);
  }
  auto opened = DB::Open(MakeOptions(dir.path()).kv);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  DB& db = *opened.value();
  auto open_other = [&](uint32_t dim, uint32_t shards, simd::Metric metric) {
    Status s = db.OpenDefaultCollection(MakeOptions(dir.path(), dim, shards, metric).coll);
    // Nothing of the collection answers until an OpenDefaultCollection succeeded.
    auto count = db.Count();
    EXPECT_TRUE(count.status().IsInvalidArgument()) << count.status().ToString();
    EXPECT_NE(count.status().message().find("no default collection"), std::string::npos) << count.status().message();
    return s;
  };
  Status d = open_other(16, 2, simd::Metric::kIP);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.IsInvalidArgument()) << d.ToString();
  EXPECT_NE(d.message().find("dim 16"), std::string::npos) << d.message();
  EXPECT_NE(d.message().find("8"), std::string::npos) << d.message();
  Status sh = open_other(8, 3, simd::Metric::kIP);
  EXPECT_TRUE(sh.IsInvalidArgument()) << sh.ToString();
  EXPECT_NE(sh.message().find("shards 3"), std::string::npos) << sh.message();
  EXPECT_NE(sh.message().find("2"), std::string::npos) << sh.message();
  Status m = open_other(8, 2, simd::Metric::kL2);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(m.IsInvalidArgument()) << m.ToString();
  EXPECT_NE(Lower(m.message()).find("ip"), std::string::npos) << m.message();
  EXPECT_NE(Lower(m.message()).find("l2"), std::string::npos) << m.message();
  // The refusals left the handle as it was: the stored settings open it.
  Status good = db.OpenDefaultCollection(MakeOptions(dir.path(), 8, 2, simd::Metric::kIP).coll);
  ASSERT_TRUE(good.ok()) << good.ToString();
  EXPECT_EQ(db.dim(), 8u);
  EXPECT_EQ(db.shards(), 2u);
  EXPECT_EQ(db.metric(), simd::Metric::kIP);
  // A second OpenDefaultCollection on the same handle is refused.
  EXPECT_TRUE(db.OpenDefaultCollection(MakeOptions(dir.path(), 8, 2, simd::Metric::kIP).coll).IsInvalidArgument());
}

// (The lock is the database's, whichever face opened it.)
TEST(CollectionRows, SecondOpenOfAnOpenDatabaseSaysLocked) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  auto second = DB::Open(MakeOptions(dir.path()).kv);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsIOError()) << second.status().ToString();
  EXPECT_NE(second.status().message().find("locked"), std::string::npos) << second.status().message();
}

TEST(CollectionRows, InvalidItemFailsTheWholeBatchAndStoresNothing) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  auto good = VectorFor(1, 0, 8);
  auto bad = VectorFor(2, 0, 8);
  bad[3] = std::nanf("");
  WriteOp ops[2];
  ops[0] = {WriteOp::Kind::kPut, 1, good.data(), {}};
  ops[1] = {WriteOp::Kind::kPut, 2, bad.data(), {}};
  Status s = db->Write(ops, 2);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("item 1"), std::string::npos) << s.message();
  EXPECT_EQ(db->Count().value(), 0u);
  bad[3] = INFINITY;
  EXPECT_TRUE(db->Write(ops, 2).IsInvalidArgument());
  EXPECT_EQ(db->Count().value(), 0u);
  // Nothing reached the log either: a reopen finds no row.
  db.reset();
  db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 0u);
}

TEST(CollectionRows, LastWriteOfAnIdInABatchWins) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  auto a = VectorFor(7, 0, 8), b = VectorFor(7, 1, 8);
  WriteOp ops[3] = {{WriteOp::Kind::kPut, 7, a.data(), "a"},
                    {WriteOp::Kind::kDelete, 7, nullptr, {}},
                    {WriteOp::Kind::kPut, 7, b.data(), "b"}};
  ASSERT_TRUE(db->Write(ops, 3).ok());
  std::vector<float> got;
  std::string meta;
  ASSERT_TRUE(db->Get(7, &got, &meta).ok());
  EXPECT_EQ(got, b);
  EXPECT_EQ(meta, "b");
  EXPECT_EQ(db->Count().value(), 1u);
}

TEST(CollectionRows, ScoresAreSortedByScoreThenIdAscending) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path(), 4, 3, simd::Metric::kIP));
  ASSERT_NE(db, nullptr);
  std::vector<float> same = {1, 0, 0, 0};
  for (uint64_t id : {9, 3, 6, 1, 12}) ASSERT_TRUE(PutRow(db.get(), id, same).ok());
  ASSERT_TRUE(db->Flush().ok());
  auto hits = SearchOne(db.get(), {1, 0, 0, 0}, 10);
  ASSERT_EQ(hits.size(), 5u);
  std::vector<uint64_t> ids;
  for (auto& h : hits) ids.push_back(h.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{1, 3, 6, 9, 12}));
  for (auto& h : hits) EXPECT_EQ(h.shard, h.id % 3);
}

TEST(CollectionRows, TopkZeroGivesNothingAndHugeTopkGivesAllLiveRows) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path(), 8, 2));
  ASSERT_NE(db, nullptr);
  for (uint64_t id = 0; id < 50; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
  ASSERT_TRUE(DelRow(db.get(), 10).ok());
  auto q = VectorFor(999, 0, 8);
  EXPECT_TRUE(SearchOne(db.get(), q, 0).empty());
  auto all = SearchOne(db.get(), q, UINT32_MAX);
  EXPECT_EQ(all.size(), 49u);
  for (auto& h : all) {
    EXPECT_NE(h.id, 10u);
    EXPECT_EQ(h.shard, h.id % 2);
  }
}

// The model-based shadowing test: random puts, overwrites and deletes,
// interleaved with flushes (and the merges the policy runs after them) and
// reopens; after every step, get/exists/count and searches must match a plain
// map of live rows.
class CollectionRowsShadowing : public ::testing::TestWithParam<simd::Metric> {};

TEST_P(CollectionRowsShadowing, NewestVersionWinsAcrossMemtableSegmentsAndReopen) {
  TempDir dir;
  const uint32_t dim = 6;
  RowsOptions o = MakeOptions(dir.path(), dim, 3, GetParam());
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
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
      ASSERT_TRUE(DelRow(db.get(), id).ok());
      model.erase(id);
    } else if (action < 93) {
      ASSERT_TRUE(db->Flush().ok());
    } else {
      db.reset();
      db = OpenRows(o);
      ASSERT_NE(db, nullptr);
    }
    if (step % 20 != 19) continue;
    ASSERT_EQ(db->Count().value(), model.size()) << "step " << step;
    for (uint64_t id = 0; id < 120; ++id) {
      std::vector<float> got;
      Status s = db->Get(id, &got, nullptr);
      auto it = model.find(id);
      if (it == model.end()) {
        ASSERT_TRUE(s.IsNotFound()) << "deleted id " << id << " came back at step " << step << ": " << s.ToString();
        ASSERT_FALSE(db->Exists(id).value());
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        ASSERT_EQ(got, it->second) << "stale version of id " << id << " at step " << step;
        ASSERT_TRUE(db->Exists(id).value());
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
        ASSERT_EQ(got[i].shard, got[i].id % 3);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, CollectionRowsShadowing,
                         ::testing::Values(simd::Metric::kL2, simd::Metric::kIP, simd::Metric::kCosine));

TEST(CollectionRows, ManyQueriesInOneSearchEachMatchBruteForce) {
  TempDir dir;
  const uint32_t dim = 16;
  auto db = OpenRows(MakeOptions(dir.path(), dim, 2, simd::Metric::kL2));
  ASSERT_NE(db, nullptr);
  std::map<uint64_t, std::vector<float>> model;
  for (uint64_t id = 0; id < 3000; ++id) {
    model[id] = VectorFor(id, 0, dim);
    ASSERT_TRUE(PutRow(db.get(), id, model[id]).ok());
    if (id == 2000) {
      ASSERT_TRUE(db->Flush().ok());
    }
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
  ASSERT_EQ(out.size(), nq);
  for (size_t i = 0; i < nq; ++i) {
    auto expect = testing::BruteForce(model, simd::Metric::kL2, qs.data() + i * dim, dim, ks[i]);
    ASSERT_EQ(out[i].size(), expect.size());
    for (size_t r = 0; r < expect.size(); ++r) {
      EXPECT_EQ(out[i][r].id, expect[r].id);
      EXPECT_EQ(out[i][r].shard, out[i][r].id % 2);
    }
  }
}

TEST(CollectionRows, NonFiniteQueryIsInvalidArgument) {
  TempDir dir;
  auto db = OpenRows(MakeOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  std::vector<float> q(8, 0.5f);
  q[2] = -INFINITY;
  uint32_t k = 3;
  std::vector<std::vector<Hit>> out;
  EXPECT_TRUE(db->Search(q.data(), 1, &k, 0, 0, &out).IsInvalidArgument());
}

TEST(CollectionRows, FsyncAlwaysSyncsBeforeAcknowledgingAndNeverDoesNot) {
  for (bool fsync : {false, true}) {
    TempDir dir;
    testing::FaultInjectionEnv env;
    RowsOptions o = MakeOptions(dir.path());
    o.kv.env = &env;
    o.kv.fsync = fsync;
    auto db = OpenRows(o);  // creates the collection: its own commit
    ASSERT_NE(db, nullptr);
    const uint64_t before = env.count(testing::Op::kSync);
    for (uint64_t id = 0; id < 10; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
    const uint64_t syncs = env.count(testing::Op::kSync) - before;
    if (fsync)
      EXPECT_GE(syncs, 10u) << "every acknowledged single-writer batch needs its own fdatasync";
    else
      EXPECT_EQ(syncs, 0u);
  }
}

TEST(CollectionRows, FailedFsyncMakesWritesFailForeverButKeepsReadsAndRecoversOnReopen) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  RowsOptions o = MakeOptions(dir.path());
  o.kv.env = &env;
  o.kv.fsync = true;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(PutRow(db.get(), 1, VectorFor(1, 0, 8)).ok());
    env.FailNth(testing::Op::kSync, 1, EIO);  // once only: a retry would succeed
    Status s = PutRow(db.get(), 2, VectorFor(2, 0, 8));
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    Status again = PutRow(db.get(), 3, VectorFor(3, 0, 8));
    EXPECT_FALSE(again.ok()) << "a write after a failed fsync must not be acknowledged";
    std::vector<uint64_t> ids = {4};
    std::vector<float> v = VectorFor(4, 0, 8);
    EXPECT_FALSE(db->PutArray(ids.data(), v.data(), 1).ok());
    EXPECT_FALSE(db->Flush().ok());
    EXPECT_TRUE(db->Exists(1).value());
    EXPECT_FALSE(db->Exists(2).value());
    EXPECT_FALSE(db->Exists(3).value());
    EXPECT_FALSE(db->Exists(4).value());
    EXPECT_EQ(db->Count().value(), 1u);
  }
  env.ClearFaults();
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->Exists(1).value());
  EXPECT_FALSE(db->Exists(3).value());
  EXPECT_TRUE(PutRow(db.get(), 4, VectorFor(4, 0, 8)).ok());
}

// A batch whose log write fails may have been staged into the memtable but is
// never published: no read sees its rows, old versions stay the answer, and
// no flush can carry it into a segment. For a one-row batch and a batch of
// 1000 x 128, with the failure in the write and in the fsync.
TEST(CollectionRows, AFailedLogWriteLeavesItsStagedBatchInvisible) {
  constexpr uint32_t kDim = 128;
  for (testing::Op op : {testing::Op::kAppend, testing::Op::kSync}) {
    for (size_t n : {size_t{1}, size_t{1000}}) {
      SCOPED_TRACE(std::string(op == testing::Op::kAppend ? "append" : "sync") + " fails, batch of " +
                   std::to_string(n));
      TempDir dir;
      testing::FaultInjectionEnv env;
      RowsOptions o = MakeOptions(dir.path(), kDim);
      o.kv.env = &env;
      o.kv.fsync = true;
      o.coll.build_graphs = false;
      auto db = OpenRows(o);
      ASSERT_NE(db, nullptr);
      // Ids 0..n-1 hold version 0, half of them already flushed into a segment.
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
      ASSERT_TRUE(db->Flush().ok());
      if (n > half) {
        ASSERT_TRUE(db->PutArray(ids.data() + half, old_rows.data() + half * kDim, n - half).ok());
      }
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
      // Sticky: no more writes, and no flush that would carry the staged rows into a segment.
      EXPECT_FALSE(db->PutArray(ids.data(), new_rows.data(), 1).ok());
      EXPECT_FALSE(PutRow(db.get(), 0, VectorFor(0, 2, kDim)).ok());
      EXPECT_FALSE(db->Flush().ok());
      EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    }
  }
}

// A flush first makes the current log durable (so that a power cut never
// keeps a later log without an earlier one); a failure there is a failed WAL
// fsync like any other: sticky, reads still work, reopen recovers everything.
TEST(CollectionRows, FailedLogSyncAtAFlushIsStickyAndReopenRecoversEverything) {
  TempDir dir;
  testing::FaultInjectionEnv env;
  RowsOptions o = MakeOptions(dir.path(), 8, 2);
  o.kv.env = &env;
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    for (uint64_t id = 0; id < 40; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
    env.FailNth(testing::Op::kSync, 1, EIO);
    EXPECT_FALSE(db->Flush().ok());
    env.ClearFaults();
    EXPECT_FALSE(PutRow(db.get(), 99, VectorFor(99, 0, 8)).ok()) << "a failed log fsync is sticky";
    EXPECT_EQ(db->Count().value(), 40u);
    EXPECT_EQ(db->TEST_SegmentCount(), 0u);
  }
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 40u);
  EXPECT_TRUE(PutRow(db.get(), 99, VectorFor(99, 0, 8)).ok());
}

TEST(CollectionRows, FailedFlushKeepsEverythingReadableAndALaterFlushSucceeds) {
  for (testing::Op op : {testing::Op::kSync, testing::Op::kRename, testing::Op::kSyncDir}) {
    SCOPED_TRACE(op == testing::Op::kSync ? "sync" : op == testing::Op::kRename ? "rename" : "sync dir");
    TempDir dir;
    testing::FaultInjectionEnv env;
    RowsOptions o = MakeOptions(dir.path(), 8, 2);
    o.kv.env = &env;
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    for (uint64_t id = 0; id < 40; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
    // Sync 1 of a flush is the log's (made durable before the switch, whose
    // failure is sticky: previous test); sync 2 is the segment file's.
    env.FailNth(op, op == testing::Op::kSync ? 2 : 1, ENOSPC);
    EXPECT_FALSE(db->Flush().ok());
    env.ClearFaults();
    EXPECT_EQ(db->Count().value(), 40u);
    ASSERT_TRUE(db->Flush().ok());
    EXPECT_EQ(db->Count().value(), 40u);
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    db.reset();
    db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->Count().value(), 40u);
    for (uint64_t id = 0; id < 40; ++id) {
      std::vector<float> got;
      ASSERT_TRUE(db->Get(id, &got, nullptr).ok());
      EXPECT_EQ(got, VectorFor(id, 0, 8));
    }
  }
}

TEST(CollectionRows, ReopenReplaysTheLogAndFlushDeletesFlushedLogs) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path());
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    for (uint64_t id = 0; id < 20; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
  }
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->Count().value(), 20u);
    ASSERT_TRUE(db->Flush().ok());
  }
  EXPECT_EQ(testing::SegmentFiles(dir.path()).size(), 1u);
  const auto wals = testing::WalFiles(dir.path());
  EXPECT_LE(wals.size(), 2u);  // the live one (and the one the last open created)
  // Every record is in the segment: no WAL left holds one.
  for (const std::string& w : wals) EXPECT_EQ(Env::Default()->FileSize(dir.file(w)).value(), 0u) << w;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 20u);
}

// put_array writes its own record type (a row array: ids and matrix straight
// from the caller's arrays): replayed on reopen, in order with write-batch
// records, last write of an id winning.
TEST(CollectionRows, PutArrayRecordsReplayOnReopenInOrderWithOtherBatches) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path(), 8, 3);
  std::vector<uint64_t> ids = {1, 2, 3, 4, 5, 2};
  std::vector<float> vecs;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto v = VectorFor(ids[i], static_cast<int>(i), 8);
    vecs.insert(vecs.end(), v.begin(), v.end());
  }
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->PutArray(ids.data(), vecs.data(), ids.size()).ok());
    ASSERT_TRUE(DelRow(db.get(), 4).ok());
    ASSERT_TRUE(PutRow(db.get(), 5, VectorFor(5, 99, 8)).ok());
  }
  // The log holds a row array record (type 17) of the 6 rows.
  testing::WalRecordAt rec;
  ASSERT_TRUE(testing::FindWalRecord(
      dir.path(),
      [](uint8_t type, std::string_view) { return type == static_cast<uint8_t>(wal::RecordType::kRowArray); }, &rec));
  EXPECT_EQ(rec.payload_size, wal::kRowArrayHeadSize + ids.size() * (8 + 4 * 8));
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
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
  EXPECT_EQ(meta, "");
  const auto hits = SearchOne(db.get(), VectorFor(3, 2, 8), 4);
  ASSERT_EQ(hits.size(), 4u);
  EXPECT_EQ(hits[0].id, 3u);
  for (const Hit& h : hits) EXPECT_EQ(h.shard, h.id % 3);
}

TEST(CollectionRows, ArrayRecordWithAWrongSizeIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path());
  const uint64_t ids[2] = {7, 8};
  std::vector<float> vecs(16, 0.5f);
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->PutArray(ids, vecs.data(), 2).ok());
  }
  testing::WalRecordAt rec;
  ASSERT_TRUE(testing::FindWalRecord(
      dir.path(),
      [](uint8_t type, std::string_view) { return type == static_cast<uint8_t>(wal::RecordType::kRowArray); }, &rec));
  std::string data;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(rec.file), &data).ok());
  // Claim 3 rows in a payload that holds 2 (the count is at byte 12 of the
  // row array's head), with valid checksums: the framing is intact, so only
  // the record decoder can catch it.
  const size_t payload = rec.offset + wal::kHeaderSize;
  ASSERT_EQ(DecodeFixed32(reinterpret_cast<const uint8_t*>(data.data()) + payload + 12), 2u);
  data[payload + 12] = 3;
  uint8_t* head = reinterpret_cast<uint8_t*>(data.data()) + rec.offset;
  EncodeFixed32(head + 16, crc32c::Value(data.data() + payload, rec.payload_size));
  EncodeFixed32(head + 20, crc32c::Value(head, 20));
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(rec.file), data).ok());
  auto r = DB::Open(o.kv);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(rec.file + " at offset " + std::to_string(rec.offset)), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("does not hold 3 rows of dim"), std::string::npos) << r.status().message();
}

TEST(CollectionRows, OpensThatOnlyReadCreateNoLogFiles) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path());
  auto wal_files = [&] { return testing::WalFiles(dir.path()).size(); };
  // The first open commits the collection's configuration (one log file at
  // most); the opens after it write nothing.
  { auto db = OpenRows(o); }
  const size_t created = wal_files();
  EXPECT_LE(created, 1u);
  for (int i = 0; i < 4; ++i) auto db = OpenRows(o);
  EXPECT_EQ(wal_files(), created) << "opens of an existing collection must not add log files";
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(PutRow(db.get(), 1, VectorFor(1, 0, 8)).ok());
  }
  const size_t written = wal_files();
  EXPECT_GE(written, 1u);
  for (int i = 0; i < 5; ++i) {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_TRUE(db->Exists(1).value());
  }
  EXPECT_EQ(wal_files(), written) << "reads must not add log files";
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->Flush().ok());
  }
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->Exists(1).value());
  // The flushed logs are gone; at most the (empty) one the flush switched to stays.
  const auto left = testing::WalFiles(dir.path());
  EXPECT_LE(left.size(), 1u);
  for (const std::string& w : left) EXPECT_EQ(Env::Default()->FileSize(dir.file(w)).value(), 0u) << w;
}

TEST(CollectionRows, CorruptWalRecordIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path());
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    for (uint64_t id = 0; id < 5; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
  }
  // The first write batch with a row op (the collection's configuration was
  // committed before it).
  testing::WalRecordAt rec;
  ASSERT_TRUE(testing::FindWalRecord(
      dir.path(),
      [](uint8_t type, std::string_view payload) {
        if (type != static_cast<uint8_t>(wal::RecordType::kWriteBatch)) return false;
        std::vector<wal::RecordOp> ops;
        if (!wal::DecodeWriteBatch(payload, "test", &ops).ok()) return false;
        for (const auto& op : ops)
          if (op.kind == wal::OpKind::kPutRow) return true;
        return false;
      },
      &rec));
  std::string data;
  ASSERT_TRUE(ReadFileToString(Env::Default(), dir.file(rec.file), &data).ok());
  data[rec.offset + wal::kHeaderSize + 6] ^= 0x55;  // inside the record's payload
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(rec.file), data).ok());
  auto r = DB::Open(o.kv);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(rec.file), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("at offset " + std::to_string(rec.offset) + ":"), std::string::npos)
      << r.status().message();
}

TEST(CollectionRows, AutomaticFlushWhenTheMemtableBudgetIsExceeded) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path(), 64, 2);
  o.kv.memtable_budget_bytes = 64 * 1024;
  o.kv.max_segments = 1000;  // count the flushes: no merge
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  for (uint64_t id = 0; id < 3000; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 64)).ok());
  ASSERT_TRUE(db->Flush().ok());  // waits for any background flush
  EXPECT_GT(db->TEST_SegmentCount(), 2u);
  EXPECT_EQ(db->Count().value(), 3000u);
  db.reset();
  db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 3000u);
}

TEST(CollectionRows, DeadlineExceededIsReported) {
  TempDir dir;
  RowsOptions o = MakeOptions(dir.path(), 256, 1);
  o.kv.search_threads = 1;
  o.kv.memtable_budget_bytes = uint64_t{1} << 30;  // 100 MB of rows stay in the memtable
  o.coll.build_graphs = false;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  std::vector<uint64_t> ids(100000);
  std::vector<float> vecs(ids.size() * 256, 0.25f);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = i;
  ASSERT_TRUE(db->PutArray(ids.data(), vecs.data(), ids.size()).ok());
  std::vector<float> q(256 * 64, 0.5f);
  std::vector<uint32_t> ks(64, 10);
  std::vector<std::vector<Hit>> out;
  // 64 queries over 100k x 256 floats is far more than 1 ms of work.
  EXPECT_EQ(db->Search(q.data(), 64, ks.data(), 1, 0, &out).code(), Code::kDeadlineExceeded);
  // The open's default deadline applies when the call passes 0.
  db.reset();
  o.coll.deadline_ms = 1;
  db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Search(q.data(), 64, ks.data(), 0, 0, &out).code(), Code::kDeadlineExceeded);
}

}  // namespace
}  // namespace pomai::engine
