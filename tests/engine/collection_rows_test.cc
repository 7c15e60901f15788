// The default collection's rows (lib/engine/collection_rows.cc; docs/ENGINE.md
// 2.2): writes, reads, searches, fsync and write faults, WAL replay and
// damage. Shards are no storage units (ENGINE.md 2.5): one memtable and one
// segment file per flush for the whole database; `shards` only sets
// Hit::shard = id % shards.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

#include "engine/db.h"
#include "db_test_util.h"
#include "segment/file.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/limits.h"
#include "wal/log_format.h"
#include "wal/record_codec.h"

namespace pomai::engine {
namespace {

using testing::DelRow;
using testing::MakeRowsOptions;
using testing::OpenRows;
using testing::PutRow;
using testing::RowsOptions;
using testing::SearchRows;
using testing::TempDir;
using testing::VectorFor;

std::vector<Hit> SearchOne(DB* db, const std::vector<float>& q, uint32_t k) {
  return SearchRows(db, q.data(), k);
}

// Whether a WAL record is a row array.
bool IsRowArray(uint8_t type, std::string_view) { return type == static_cast<uint8_t>(wal::RecordType::kRowArray); }

// Rewrites the WAL file of `rec` with `damage` done to its bytes: the next
// open of `o` is Corruption naming the file, the record's offset and `what`.
void ExpectOpenFailsAfterDamage(const TempDir& dir, const RowsOptions& o, const testing::WalRecordAt& rec,
                                const std::function<void(std::string&)>& damage, const std::string& what) {
  std::string data = testing::ReadFileBytes(dir.file(rec.file));
  damage(data);
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file(rec.file), data).ok());
  auto r = DB::Open(o.kv);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  const std::string& message = r.status().message();
  EXPECT_NE(message.find(rec.file + " at offset " + std::to_string(rec.offset) + ": "), std::string::npos) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Issue 15: a bit flipped in a frozen row's vector (bit 6 of byte 3 of row
// 7's first float: 28 became 8.2e-38) came back from get as a value. In
// segment format 2 one block CRC covers a block's ids, seqs, vectors and
// metadata (ENGINE.md 3.3): every read of a row of the damaged block is
// Corruption naming the file and the block's offset; the other blocks still
// answer.
TEST(CollectionRows, AFlippedBitInAFrozenVectorIsCorruptionNotAValue) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path(), 4);
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
  const uint64_t at = vectors_at + 7 * 4 * sizeof(float) + 3;
  ASSERT_EQ(testing::ReadFileBytes(path).at(at), '\x41');  // 28.0f is 0x41E00000
  testing::FlipBit(path, at, 6);
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
  EXPECT_TRUE(testing::TruthOrCorruption(db->Exists(7), true));
  EXPECT_TRUE(testing::TruthOrCorruption(db->Count(), kRows));
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
    auto db = OpenRows(MakeRowsOptions(dir.path(), 8, 2, simd::Metric::kIP));
    ASSERT_NE(db, nullptr);
  }
  auto opened = DB::Open(MakeRowsOptions(dir.path()).kv);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  DB& db = *opened.value();
  // Each refusal names what was asked and what is stored.
  struct Case {
    uint32_t dim, shards;
    simd::Metric metric;
    const char* asked;
    const char* stored;
  };
  for (const Case& c : {Case{16, 2, simd::Metric::kIP, "dim 16", "8"}, Case{8, 3, simd::Metric::kIP, "shards 3", "2"},
                        Case{8, 2, simd::Metric::kL2, "l2", "ip"}}) {
    SCOPED_TRACE(c.asked);
    Status s = db.OpenDefaultCollection(MakeRowsOptions(dir.path(), c.dim, c.shards, c.metric).coll);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(Lower(s.message()).find(c.asked), std::string::npos) << s.message();
    EXPECT_NE(Lower(s.message()).find(c.stored), std::string::npos) << s.message();
    // Nothing of the collection answers until an OpenDefaultCollection succeeded.
    auto count = db.Count();
    EXPECT_TRUE(count.status().IsInvalidArgument()) << count.status().ToString();
    EXPECT_NE(count.status().message().find("no default collection"), std::string::npos) << count.status().message();
  }
  // The refusals left the handle as it was: the stored settings open it.
  Status good = db.OpenDefaultCollection(MakeRowsOptions(dir.path(), 8, 2, simd::Metric::kIP).coll);
  ASSERT_TRUE(good.ok()) << good.ToString();
  EXPECT_EQ(db.dim(), 8u);
  EXPECT_EQ(db.shards(), 2u);
  EXPECT_EQ(db.metric(), simd::Metric::kIP);
  // A second OpenDefaultCollection on the same handle is refused.
  EXPECT_TRUE(db.OpenDefaultCollection(MakeRowsOptions(dir.path(), 8, 2, simd::Metric::kIP).coll).IsInvalidArgument());
}

// (The lock is the database's, whichever face opened it.)
TEST(CollectionRows, SecondOpenOfAnOpenDatabaseSaysLocked) {
  TempDir dir;
  auto db = OpenRows(MakeRowsOptions(dir.path()));
  ASSERT_NE(db, nullptr);
  auto second = DB::Open(MakeRowsOptions(dir.path()).kv);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsIOError()) << second.status().ToString();
  EXPECT_NE(second.status().message().find("locked"), std::string::npos) << second.status().message();
}

// A bad item (a non-finite value in its vector, metadata over the limit of a
// value: 1 GiB, docs/ENGINE.md 2.6) is InvalidArgument naming it and what is
// wrong, alone or after valid puts and deletes in a batch, and nothing of the
// batch is applied, in memory or in the log. The metadata over the limit is
// never read: its bytes are untouched address space.
TEST(CollectionRows, ABadItemFailsItsWholeBatchAndAppliesNothing) {
  TempDir dir;
  const RowsOptions o = MakeRowsOptions(dir.path(), 4);
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  const std::vector<float> v0 = VectorFor(0, 0, 4), v1 = VectorFor(1, 0, 4);
  ASSERT_TRUE(PutRow(db.get(), 0, v0, "kept").ok());
  std::vector<float> nan = v1, inf = v1;
  nan[3] = std::nanf("");
  inf[3] = INFINITY;
  const testing::Reserved huge(kMaxValueLen + 1);
  ASSERT_NE(huge.as<char>(), nullptr);
  const std::string_view too_long(huge.as<char>(), kMaxValueLen + 1);
  struct Case {
    const char* what;
    WriteOp bad;
  };
  for (const Case& c : {Case{"non-finite value nan", {WriteOp::Kind::kPut, 2, nan.data(), {}}},
                        Case{"non-finite value inf", {WriteOp::Kind::kPut, 2, inf.data(), {}}},
                        Case{"metadata of 1073741825 bytes", {WriteOp::Kind::kPut, 2, v1.data(), too_long}}}) {
    SCOPED_TRACE(c.what);
    const WriteOp ops[3] = {
        {WriteOp::Kind::kPut, 1, v1.data(), "new"}, {WriteOp::Kind::kDelete, 0, nullptr, {}}, c.bad};
    for (size_t first : {size_t{2}, size_t{0}}) {  // alone, then after valid ops
      Status s = db->Write(ops + first, 3 - first);
      ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
      EXPECT_NE(s.message().find("item " + std::to_string(2 - first)), std::string::npos) << s.message();
      EXPECT_NE(s.message().find(c.what), std::string::npos) << s.message();
    }
  }
  auto check = [&](const char* where) {
    EXPECT_EQ(db->Count().value(), 1u) << where;
    std::vector<float> got;
    std::string meta;
    ASSERT_TRUE(db->Get(0, &got, &meta).ok()) << where;
    EXPECT_EQ(got, v0) << where;
    EXPECT_EQ(meta, "kept") << where;
    EXPECT_TRUE(db->Get(1, &got, &meta).IsNotFound()) << where;
    EXPECT_TRUE(db->Get(2, &got, &meta).IsNotFound()) << where;
  };
  check("open");
  db.reset();
  db = OpenRows(o);  // the log holds no record of the refused batches
  ASSERT_NE(db, nullptr);
  check("replayed");
}

TEST(CollectionRows, LastWriteOfAnIdInABatchWins) {
  TempDir dir;
  auto db = OpenRows(MakeRowsOptions(dir.path()));
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
  auto db = OpenRows(MakeRowsOptions(dir.path(), 4, 3, simd::Metric::kIP));
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
  auto db = OpenRows(MakeRowsOptions(dir.path(), 8, 2));
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

TEST(CollectionRows, ManyQueriesInOneSearchEachMatchBruteForce) {
  TempDir dir;
  const uint32_t dim = 16;
  auto db = OpenRows(MakeRowsOptions(dir.path(), dim, 2, simd::Metric::kL2));
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
  auto db = OpenRows(MakeRowsOptions(dir.path()));
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
    RowsOptions o = MakeRowsOptions(dir.path());
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
  RowsOptions o = MakeRowsOptions(dir.path());
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
      RowsOptions o = MakeRowsOptions(dir.path(), kDim);
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

// A failed flush keeps every row readable, and a reopen recovers them all.
// The flush first makes the current log durable (so that a power cut never
// keeps a later log without an earlier one): a failure of that sync (sync 1)
// is a failed WAL fsync like any other, sticky. A failure after it (sync 2 is
// the segment file's, then its rename and the directory's sync) is not: a
// later flush succeeds.
TEST(CollectionRows, AFailedFlushKeepsEverythingReadableAndOnlyAFailedLogSyncIsSticky) {
  struct Case {
    const char* name;
    testing::Op op;
    int nth;
    int error;
    bool sticky;
  };
  for (const Case& c : {Case{"log sync", testing::Op::kSync, 1, EIO, true},
                        Case{"segment sync", testing::Op::kSync, 2, ENOSPC, false},
                        Case{"rename", testing::Op::kRename, 1, ENOSPC, false},
                        Case{"sync dir", testing::Op::kSyncDir, 1, ENOSPC, false}}) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    testing::FaultInjectionEnv env;
    RowsOptions o = MakeRowsOptions(dir.path(), 8, 2);
    o.kv.env = &env;
    {
      auto db = OpenRows(o);
      ASSERT_NE(db, nullptr);
      for (uint64_t id = 0; id < 40; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
      env.FailNth(c.op, c.nth, c.error);
      EXPECT_FALSE(db->Flush().ok());
      env.ClearFaults();
      EXPECT_EQ(db->Count().value(), 40u);
      if (c.sticky) {
        EXPECT_FALSE(PutRow(db.get(), 99, VectorFor(99, 0, 8)).ok()) << "a failed log fsync is sticky";
        EXPECT_EQ(db->TEST_SegmentCount(), 0u);
      } else {
        ASSERT_TRUE(db->Flush().ok());
        EXPECT_EQ(db->Count().value(), 40u);
        EXPECT_EQ(db->TEST_SegmentCount(), 1u);
      }
    }
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->Count().value(), 40u);
    for (uint64_t id = 0; id < 40; ++id) {
      std::vector<float> got;
      ASSERT_TRUE(db->Get(id, &got, nullptr).ok());
      EXPECT_EQ(got, VectorFor(id, 0, 8));
    }
    EXPECT_TRUE(PutRow(db.get(), 99, VectorFor(99, 0, 8)).ok());
  }
}

// put_array writes its own record type (a row array: ids and matrix straight
// from the caller's arrays): replayed on reopen, in order with write-batch
// records, last write of an id winning.
TEST(CollectionRows, PutArrayRecordsReplayOnReopenInOrderWithOtherBatches) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path(), 8, 3);
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
  ASSERT_TRUE(testing::FindWalRecord(dir.path(), IsRowArray, &rec));
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
  RowsOptions o = MakeRowsOptions(dir.path());
  const uint64_t ids[2] = {7, 8};
  std::vector<float> vecs(16, 0.5f);
  {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    ASSERT_TRUE(db->PutArray(ids, vecs.data(), 2).ok());
  }
  testing::WalRecordAt rec;
  ASSERT_TRUE(testing::FindWalRecord(dir.path(), IsRowArray, &rec));
  // Claim 3 rows in a payload that holds 2 (the count is at byte 12 of the
  // row array's head), with valid checksums: the framing is intact, so only
  // the record decoder can catch it.
  auto claim_three_rows = [&](std::string& data) {
    const size_t payload = rec.offset + wal::kHeaderSize;
    ASSERT_EQ(DecodeFixed32(reinterpret_cast<const uint8_t*>(data.data()) + payload + 12), 2u);
    data[payload + 12] = 3;
    uint8_t* head = reinterpret_cast<uint8_t*>(data.data()) + rec.offset;
    EncodeFixed32(head + 16, crc32c::Value(data.data() + payload, rec.payload_size));
    EncodeFixed32(head + 20, crc32c::Value(head, 20));
  };
  ExpectOpenFailsAfterDamage(dir, o, rec, claim_three_rows, "does not hold 3 rows of dim");
}

// Reopens replay the log; a flush deletes the logs it flushed; opens that
// only read create no log file.
TEST(CollectionRows, OpensThatOnlyReadCreateNoLogFiles) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path());
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
    for (uint64_t id = 0; id < 20; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 8)).ok());
  }
  const size_t written = wal_files();
  EXPECT_GE(written, 1u);
  for (int i = 0; i < 5; ++i) {
    auto db = OpenRows(o);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(db->Count().value(), 20u);
  }
  EXPECT_EQ(wal_files(), written) << "reads must not add log files";
  // Every record is in the segment after a flush: no WAL left holds one (at
  // most the live one, and after the next open the one the flush switched to).
  for (size_t most : {2u, 1u}) {
    {
      auto db = OpenRows(o);
      ASSERT_NE(db, nullptr);
      EXPECT_EQ(db->Count().value(), 20u);
      if (most == 2) ASSERT_TRUE(db->Flush().ok());
    }
    EXPECT_EQ(testing::SegmentFiles(dir.path()).size(), 1u);
    const auto left = testing::WalFiles(dir.path());
    EXPECT_LE(left.size(), most);
    for (const std::string& w : left) EXPECT_EQ(Env::Default()->FileSize(dir.file(w)).value(), 0u) << w;
  }
}

TEST(CollectionRows, CorruptWalRecordIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path());
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
  // A byte inside the record's payload.
  auto flip = [&](std::string& data) { data[rec.offset + wal::kHeaderSize + 6] ^= 0x55; };
  ExpectOpenFailsAfterDamage(dir, o, rec, flip, "payload checksum mismatch");
}

TEST(CollectionRows, AutomaticFlushWhenTheMemtableBudgetIsExceeded) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path(), 64, 2);
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

// Both faces' writes fill one memtable: a commit schedules the flush once
// the rows and the key table together pass the budget, though neither does
// alone.
TEST(CollectionRows, RowsAndKeysTogetherReachTheBudget) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path(), 64, 1);
  o.kv.memtable_budget_bytes = 64 * 1024;
  auto db = OpenRows(o);
  ASSERT_NE(db, nullptr);
  // A row of 64 floats counts 312 bytes: 150 rows are about 46 KiB.
  for (uint64_t id = 0; id < 150; ++id) ASSERT_TRUE(PutRow(db.get(), id, VectorFor(id, 0, 64)).ok());
  db->TEST_WaitForBackgroundFlush();
  ASSERT_EQ(db->TEST_SegmentCount(), 0u);
  // 24 KiB of plain values: under the budget alone, over it with the rows.
  for (int i = 0; i < 24; ++i) testing::PutCommit(*db, "k" + std::to_string(i), std::string(1024, 'v'));
  db->TEST_WaitForBackgroundFlush();
  EXPECT_GE(db->TEST_SegmentCount(), 1u);  // a commit during the flush may ask for one more
  EXPECT_EQ(db->Count().value(), 150u);
}

TEST(CollectionRows, DeadlineExceededIsReported) {
  TempDir dir;
  RowsOptions o = MakeRowsOptions(dir.path(), 256, 1);
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
