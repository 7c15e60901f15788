// DB, the keyspace face: transactions, MVCC, named indexes, flushes, merges,
// persistence and recovery.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "engine/collection.h"
#include "engine/db.h"
#include "segment/file.h"
#include "util/coding.h"
#include "db_test_util.h"
#include "support/fault_env.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::BeginRo;
using testing::BeginRw;
using testing::Committed;
using testing::FlushAndMerge;
using testing::GetValue;
using testing::BothModes;
using testing::OpenKv;
using testing::PutCommit;

// Expects `txn` to read `model` at keys "k0" .. "k<n-1>".
void ExpectReadsModel(Txn& txn, const std::map<std::string, std::string>& model, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string k = "k" + std::to_string(i);
    auto it = model.find(k);
    EXPECT_EQ(GetValue(txn, k), it == model.end() ? std::nullopt : std::optional<std::string>(it->second)) << k;
  }
}

class TxnTest : public BothModes {};
INSTANTIATE_TEST_SUITE_P(Modes, TxnTest, ::testing::Bool(), testing::ModeName);

TEST_P(TxnTest, PutGetDeleteRoundTrip) {
  auto db = Open();
  PutCommit(*db, "user:1", "alice");
  PutCommit(*db, "user:2", std::string("b\0b", 3));
  EXPECT_EQ(Committed(*db, "user:1"), "alice");
  EXPECT_EQ(Committed(*db, "user:2"), std::string("b\0b", 3));
  EXPECT_EQ(Committed(*db, "user:3"), std::nullopt);
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->Delete("user:1").ok());
  ASSERT_TRUE(t->Delete("never").ok());
  ASSERT_TRUE(t->Commit().ok());
  EXPECT_EQ(Committed(*db, "user:1"), std::nullopt);
  EXPECT_EQ(Committed(*db, "user:2"), std::string("b\0b", 3));
}

TEST_P(TxnTest, FirstCommitterWinsAndTheLoserAppliesNothing) {
  auto db = Open();
  PutCommit(*db, "a", "0");
  auto t1 = BeginRw(*db);
  auto t2 = BeginRw(*db);
  ASSERT_TRUE(t1->Put("a", "t1").ok());
  ASSERT_TRUE(t2->Put("a", "t2").ok());
  ASSERT_TRUE(t2->Put("b", "t2").ok());
  ASSERT_TRUE(t1->Commit().ok());
  Status s = t2->Commit();
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(s.message(), "transaction conflict");
  EXPECT_FALSE(t2->active());
  EXPECT_EQ(Committed(*db, "a"), "t1");
  EXPECT_EQ(Committed(*db, "b"), std::nullopt);
}

TEST_P(TxnTest, ReadOnlyTransactionRefusesWrites) {
  auto db = Open();
  auto t = BeginRo(*db);
  const float v[2] = {1, 2};
  EXPECT_EQ(t->Put("k", "v").code(), Code::kReadOnly);
  EXPECT_EQ(t->Delete("k").code(), Code::kReadOnly);
  EXPECT_EQ(t->UpsertVector("k", v, 2, simd::Metric::kL2, nullptr).code(), Code::kReadOnly);
  EXPECT_TRUE(t->active());  // a failed operation leaves it usable
  EXPECT_EQ(GetValue(*t, "k"), std::nullopt);
  EXPECT_TRUE(t->Commit().ok());
  EXPECT_EQ(Committed(*db, "k"), std::nullopt);
}

TEST_P(TxnTest, OwnWritesAreVisibleBeforeCommitAndDiscardedByRollback) {
  auto db = Open();
  PutCommit(*db, "k", "old");
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->Put("k", "new").ok());
  ASSERT_TRUE(t->Put("n", "1").ok());
  EXPECT_EQ(GetValue(*t, "k"), "new");
  EXPECT_EQ(GetValue(*t, "n"), "1");
  ASSERT_TRUE(t->Delete("n").ok());
  EXPECT_EQ(GetValue(*t, "n"), std::nullopt);
  EXPECT_EQ(Committed(*db, "k"), "old");
  ASSERT_TRUE(t->Rollback().ok());
  EXPECT_EQ(t->Put("x", "y").code(), Code::kClosed);
  EXPECT_EQ(t->Commit().code(), Code::kClosed);
  EXPECT_EQ(Committed(*db, "k"), "old");
}

TEST_P(TxnTest, VectorRecordsRoundTripAndGetReturnsMetadata) {
  auto db = Open();
  auto t = BeginRw(*db);
  const float v[3] = {1, 2, 3};
  const std::string_view meta = "m!";
  ASSERT_TRUE(t->UpsertVector("v", v, 3, simd::Metric::kIP, &meta).ok());
  ASSERT_TRUE(t->UpsertVector("w", v, 3, simd::Metric::kIP, nullptr).ok());
  ASSERT_TRUE(t->Commit().ok());
  auto r = BeginRo(*db);
  std::vector<float> out;
  ASSERT_TRUE(r->GetVector("v", simd::Metric::kIP, &out).ok());
  EXPECT_EQ(out, std::vector<float>({1, 2, 3}));
  EXPECT_EQ(r->GetVector("v", simd::Metric::kL2, &out).code(), Code::kInvalidArgument);
  EXPECT_EQ(r->GetVector("nope", simd::Metric::kIP, &out).code(), Code::kNotFound);
  EXPECT_EQ(GetValue(*r, "v"), "m!");
  EXPECT_EQ(GetValue(*r, "w"), "");
  PutCommit(*db, "b", "bytes");
  auto r2 = BeginRo(*db);
  EXPECT_EQ(r2->GetVector("b", simd::Metric::kIP, &out).code(), Code::kNotFound);
}

TEST_P(TxnTest, BadArgumentsAreInvalidArgument) {
  auto db = Open();
  auto t = BeginRw(*db);
  const float nan_v[2] = {1, NAN};
  const float inf_v[2] = {INFINITY, 1};
  const float ok[2] = {1, 1};
  EXPECT_EQ(t->Put("", "v").code(), Code::kInvalidArgument);
  EXPECT_EQ(t->Put(std::string(65536, 'k'), "v").code(), Code::kInvalidArgument);
  EXPECT_TRUE(t->Put(std::string(65535, 'k'), "v").ok());
  EXPECT_EQ(t->UpsertVector("k", nan_v, 2, simd::Metric::kL2, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->UpsertVector("k", inf_v, 2, simd::Metric::kL2, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->UpsertVector("k", ok, 0, simd::Metric::kL2, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->UpsertVector("k", ok, 2, static_cast<simd::Metric>(7), nullptr).code(), Code::kInvalidArgument);
  ASSERT_TRUE(t->Commit().ok());
  EXPECT_EQ(Committed(*db, std::string(65535, 'k')), "v");
}

TEST_P(TxnTest, MemoryLimitRefusesACommitAndChangesNothing) {
  Options o;
  o.memory_limit_bytes = 64 * 1024;
  auto db = Open(o);
  PutCommit(*db, "small", "v");
  const MemoryStats before = db->MemoryUsage();
  EXPECT_EQ(before.total_bytes, 64u * 1024);
  EXPECT_GT(before.used_bytes, 0u);
  EXPECT_EQ(before.free_bytes, before.total_bytes - before.used_bytes);
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->Put("big", std::string(100 * 1024, 'x')).ok());
  ASSERT_TRUE(t->Put("small", "changed").ok());
  Status s = t->Commit();
  EXPECT_EQ(s.code(), Code::kResourceExhausted);
  EXPECT_EQ(s.message(), "memory limit exceeded");
  EXPECT_EQ(Committed(*db, "big"), std::nullopt);
  EXPECT_EQ(Committed(*db, "small"), "v");
  EXPECT_EQ(db->MemoryUsage().used_bytes, before.used_bytes);
  // Filling up commit by commit stops at the limit too.
  int committed = 0;
  for (int i = 0; i < 1000; ++i) {
    auto t2 = BeginRw(*db);
    ASSERT_TRUE(t2->Put("k" + std::to_string(i), std::string(1000, 'y')).ok());
    Status cs = t2->Commit();
    if (!cs.ok()) {
      EXPECT_EQ(cs.code(), Code::kResourceExhausted);
      break;
    }
    ++committed;
  }
  EXPECT_GT(committed, 10);
  EXPECT_LT(committed, 64);
  EXPECT_LE(db->MemoryUsage().used_bytes, 64u * 1024);
}

TEST_P(TxnTest, MemoryUsageCountsVersionsKeptForSnapshots) {
  auto db = Open();
  PutCommit(*db, "k", std::string(10000, 'a'));
  const uint64_t one = db->MemoryUsage().used_bytes;
  auto pin = BeginRo(*db);
  PutCommit(*db, "k", std::string(10000, 'b'));
  const uint64_t two = db->MemoryUsage().used_bytes;
  EXPECT_GT(two, one + 9000);  // the old version is kept for `pin`
  pin.reset();
  PutCommit(*db, "k", std::string(10000, 'c'));
  EXPECT_LT(db->MemoryUsage().used_bytes, two);  // and dropped once nobody can see it
}

// Snapshot isolation under concurrency: threads move amounts between
// accounts, each transfer one transaction writing both accounts (retried on
// conflict), while readers check that every snapshot sees the same total and
// (disk mode) flushes run in the background. A lost update, a torn commit or
// a reader seeing half a transaction breaks the total.
TEST_P(TxnTest, ConcurrentTransfersKeepTheTotalInEverySnapshot) {
  Options o;
  o.memtable_budget_bytes = 64 * 1024;
  o.fsync = false;
  auto db = Open(o);
  constexpr int kAccounts = 16, kInitial = 1000;
  {
    auto t = BeginRw(*db);
    for (int a = 0; a < kAccounts; ++a) ASSERT_TRUE(t->Put("acct" + std::to_string(a), std::to_string(kInitial)).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> transfers{0}, conflicts{0}, bad_totals{0}, reads{0};
  auto read_total = [&](Txn& t) {
    long total = 0;
    for (int a = 0; a < kAccounts; ++a) total += std::stol(*GetValue(t, "acct" + std::to_string(a)));
    return total;
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < 3; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(w);
      while (reads.load() == 0) std::this_thread::yield();  // the reader runs alongside
      for (int i = 0; i < 300; ++i) {
        for (;;) {
          auto t = db->Begin(TxnMode::kReadWrite);
          const int from = rng() % kAccounts, to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
          const int amount = rng() % 50;
          const long a = std::stol(*GetValue(**t, "acct" + std::to_string(from)));
          const long b = std::stol(*GetValue(**t, "acct" + std::to_string(to)));
          std::this_thread::yield();  // let other transfers interleave
          (void)(*t)->Put("acct" + std::to_string(from), std::to_string(a - amount));
          (void)(*t)->Put("acct" + std::to_string(to), std::to_string(b + amount));
          Status s = (*t)->Commit();
          if (s.ok()) break;
          if (s.code() != Code::kConflict) {
            ADD_FAILURE() << s.ToString();
            return;
          }
          ++conflicts;
        }
        ++transfers;
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      auto t = BeginRo(*db);
      if (read_total(*t) != long{kAccounts} * kInitial) ++bad_totals;
      ++reads;
    }
  });
  if (disk()) {
    threads.emplace_back([&] {
      while (!stop) {
        EXPECT_TRUE(db->Flush().ok());
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  for (int w = 0; w < 3; ++w) threads[w].join();
  stop = true;
  for (size_t i = 3; i < threads.size(); ++i) threads[i].join();
  EXPECT_EQ(transfers.load(), 900);
  EXPECT_EQ(bad_totals.load(), 0);
  EXPECT_GT(reads.load(), 0);
  auto t = BeginRo(*db);
  EXPECT_EQ(read_total(*t), long{kAccounts} * kInitial);
  std::printf("%d transfers, %d conflicts retried, %d snapshot reads\n", transfers.load(), conflicts.load(), reads.load());
}

TEST(DB, FlushAndReopenKeepBytesVectorsAndTombstones) {
  testing::TempDir dir;
  const float v[4] = {0.5f, -1, 2, 3};
  {
    auto db = OpenKv(dir.path());
    PutCommit(*db, "a", "1");
    PutCommit(*db, "b", "2");
    auto t = BeginRw(*db);
    const std::string_view meta = "meta";
    ASSERT_TRUE(t->UpsertVector("vec", v, 4, simd::Metric::kCosine, &meta).ok());
    ASSERT_TRUE(t->Commit().ok());
    ASSERT_TRUE(db->Flush().ok());
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);
    auto d = BeginRw(*db);
    ASSERT_TRUE(d->Delete("a").ok());
    ASSERT_TRUE(d->Commit().ok());
    ASSERT_TRUE(db->Flush().ok());  // the tombstone is in the newer segment
    PutCommit(*db, "c", "3");      // and this one only in the WAL
    ASSERT_TRUE(db->Close().ok());
  }
  auto db = OpenKv(dir.path());
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  EXPECT_EQ(Committed(*db, "a"), std::nullopt);
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "c"), "3");
  auto r = BeginRo(*db);
  std::vector<float> out;
  ASSERT_TRUE(r->GetVector("vec", simd::Metric::kCosine, &out).ok());
  EXPECT_EQ(out, std::vector<float>(v, v + 4));
  EXPECT_EQ(GetValue(*r, "vec"), "meta");
}

TEST(DB, ReopenContinuesSequenceNumbersSoConflictsStillWork) {
  testing::TempDir dir;
  uint64_t seq = 0;
  {
    auto db = OpenKv(dir.path());
    for (int i = 0; i < 5; ++i) PutCommit(*db, "k", std::to_string(i));
    seq = db->TEST_LastSequence();
  }
  auto db = OpenKv(dir.path());
  EXPECT_EQ(db->TEST_LastSequence(), seq);
  auto t = BeginRw(*db);
  PutCommit(*db, "k", "x");
  ASSERT_TRUE(t->Put("k", "y").ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
}

TEST(DB, MoreThanFourSegmentsAreMergedAndNothingIsLost) {
  testing::TempDir dir;
  auto db = OpenKv(dir.path());
  std::map<std::string, std::string> model;
  for (int round = 0; round < 7; ++round) {
    auto t = BeginRw(*db);
    for (int i = 0; i < 50; ++i) {
      const std::string k = "k" + std::to_string((round * 37 + i) % 120);
      if (i % 7 == 3) {
        ASSERT_TRUE(t->Delete(k).ok());
        model.erase(k);
      } else {
        const std::string v = std::to_string(round) + ":" + std::to_string(i);
        ASSERT_TRUE(t->Put(k, v).ok());
        model[k] = v;
      }
    }
    ASSERT_TRUE(t->Commit().ok());
    FlushAndMerge(*db);
    EXPECT_LE(db->TEST_SegmentCount(), 4u);
  }
  ExpectReadsModel(*BeginRo(*db), model, 120);
  ASSERT_TRUE(db->Close().ok());
  db.reset();
  db = OpenKv(dir.path());
  ExpectReadsModel(*BeginRo(*db), model, 120);
  EXPECT_EQ(testing::SegmentFiles(dir.path()).size(), db->TEST_SegmentCount());  // merged inputs are deleted
}

// The row keys (0x02 + BE64(cid) + key) of every segment file in `dir`.
std::vector<std::string> SegmentRowKeys(const std::string& dir) {
  std::vector<std::string> keys;
  for (const std::string& name : testing::SegmentFiles(dir)) {
    auto seg = segment::SegmentFile::Open(Env::Default(), dir + "/" + name);
    EXPECT_TRUE(seg.ok()) << seg.status().ToString();
    if (!seg.ok()) continue;
    for (uint64_t i = 0; i < (*seg)->entry_count(); ++i) {
      segment::EntryView entry;
      EXPECT_TRUE((*seg)->ReadEntry(i, &entry).ok());
      uint64_t cid = 0;
      std::string_view user;
      if (ParseRowKey(entry.key, &cid, &user)) keys.emplace_back(entry.key);
    }
  }
  return keys;
}

// Merges take a run of adjacent segments (ENGINE.md 4.7: each next older one
// at most twice the run so far), not every segment: a large old segment
// stays as it is, and a tombstone merged in a run that does not reach it
// stays too, since it still hides an older version there.
TEST(DB, AMergeTakesARunOfSimilarSegmentsAndKeepsTheTombstonesItNeeds) {
  testing::TempDir dir;
  Options o;
  o.max_segments = 2;
  auto db = OpenKv(dir.path(), o);
  {
    auto t = BeginRw(*db);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(t->Put("a" + std::to_string(i), "old").ok());
    ASSERT_TRUE(t->Put("victim", "old").ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  FlushAndMerge(*db);
  const std::vector<std::string> oldest = testing::SegmentFiles(dir.path());
  ASSERT_EQ(oldest.size(), 1u);
  {
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->Delete("victim").ok());
    ASSERT_TRUE(t->Put("b", "new").ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  FlushAndMerge(*db);
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  PutCommit(*db, "c", "newer");
  FlushAndMerge(*db);  // weights 2, 3, 102 (newest first): the two newest merge
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  const std::vector<std::string> now = testing::SegmentFiles(dir.path());
  ASSERT_EQ(now.size(), 2u);
  EXPECT_NE(std::find(now.begin(), now.end(), oldest[0]), now.end()) << "the large oldest segment was rewritten";
  // The merged segment still holds the tombstone of "victim".
  const std::string merged = dir.path() + "/" + (now[0] == oldest[0] ? now[1] : now[0]);
  auto seg = segment::SegmentFile::Open(Env::Default(), merged);
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  segment::EntryView e;
  bool found = false;
  ASSERT_TRUE((*seg)->Get(UserKey("victim"), &e, &found).ok());
  ASSERT_TRUE(found);
  EXPECT_EQ(e.kind, segment::EntryKind::kTombstone);
  auto check = [](DB& d) {
    EXPECT_EQ(Committed(d, "victim"), std::nullopt);
    EXPECT_EQ(Committed(d, "a7"), "old");
    EXPECT_EQ(Committed(d, "b"), "new");
    EXPECT_EQ(Committed(d, "c"), "newer");
  };
  check(*db);
  db.reset();
  db = OpenKv(dir.path(), o);
  check(*db);
  // A merge that reaches the oldest segment drops the tombstone.
  o.max_segments = 1;
  db.reset();
  db = OpenKv(dir.path(), o);
  PutCommit(*db, "d", "last");
  FlushAndMerge(*db);
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  seg = segment::SegmentFile::Open(Env::Default(), dir.path() + "/" + testing::SegmentFiles(dir.path())[0]);
  ASSERT_TRUE(seg.ok()) << seg.status().ToString();
  ASSERT_TRUE((*seg)->Get(UserKey("victim"), &e, &found).ok());
  EXPECT_FALSE(found);
  check(*db);
}

// An index is a collection (ENGINE.md 2.2): its entries are keyed by its cid,
// the seq of the configuration's commit. A drop or a re-create is one commit
// of the configuration key (no tombstone per entry); the old entries are
// unreachable at once, and the first merge after the last transaction that
// began before that commit has ended drops them (ENGINE.md 4.7).
TEST(DB, ReplacedOrDroppedIndexEntriesAreUnreachableAndMergesDropThem) {
  testing::TempDir dir;
  Options o;
  o.max_segments = 1;
  auto db = OpenKv(dir.path(), o);
  IndexConfig config;
  config.dim = 2;
  config.metric = simd::Metric::kL2;
  ASSERT_TRUE(db->CreateIndex("ix", config).ok());
  const uint64_t cid = db->TEST_LastSequence();
  {
    auto t = BeginRw(*db);
    for (int i = 0; i < 20; ++i) {
      const float v[2] = {static_cast<float>(i), 0};
      ASSERT_TRUE(t->IndexUpsert("ix", "e" + std::to_string(i), v, 2, nullptr).ok());
    }
    ASSERT_TRUE(t->Commit().ok());
  }
  FlushAndMerge(*db);
  std::vector<std::string> rows = SegmentRowKeys(dir.path());
  ASSERT_EQ(rows.size(), 20u);
  for (const std::string& k : rows) EXPECT_EQ(k.compare(0, 9, RowPrefix(cid)), 0);
  const uint64_t before = db->TEST_LastSequence();
  ASSERT_TRUE(db->CreateIndex("ix", config).ok());  // re-create: one commit
  EXPECT_EQ(db->TEST_LastSequence(), before + 1);
  const float q[2] = {3, 0};
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("ix", q, 2, 5, 0, "", &hits, nullptr).ok());
  EXPECT_TRUE(hits.empty());  // the new incarnation has no entries
  {
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->IndexUpsert("ix", "new", q, 2, nullptr).ok());
    ASSERT_TRUE(t->Commit().ok());
  }
  FlushAndMerge(*db);  // the second segment: merged into one
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  rows = SegmentRowKeys(dir.path());
  EXPECT_EQ(rows, std::vector<std::string>{RowKey(before + 1, "new")});
  ASSERT_TRUE(db->SearchIndex("ix", q, 2, 5, 0, "", &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "new");
  // A drop: the configuration's tombstone. A merge while a transaction that
  // began before it is alive keeps the rows; the next merge drops them.
  auto reader = BeginRo(*db);
  ASSERT_TRUE(db->DropIndex("ix").ok());
  EXPECT_EQ(db->TEST_LastSequence(), before + 3);
  PutCommit(*db, "other", "x");
  FlushAndMerge(*db);
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  EXPECT_EQ(SegmentRowKeys(dir.path()), std::vector<std::string>{RowKey(before + 1, "new")});
  ASSERT_TRUE(reader->Rollback().ok());
  PutCommit(*db, "more", "y");
  FlushAndMerge(*db);
  EXPECT_EQ(db->TEST_SegmentCount(), 1u);
  EXPECT_TRUE(SegmentRowKeys(dir.path()).empty());
  EXPECT_EQ(db->SearchIndex("ix", q, 2, 5, 0, "", &hits, nullptr).code(), Code::kNotFound);
  db.reset();
  db = OpenKv(dir.path(), o);
  EXPECT_EQ(db->SearchIndex("ix", q, 2, 5, 0, "", &hits, nullptr).code(), Code::kNotFound);
  EXPECT_EQ(Committed(*db, "other"), "x");
}

TEST(DB, AMergeKeepsTombstonesALiveTransactionMustConflictWith) {
  testing::TempDir dir;
  auto db = OpenKv(dir.path());
  PutCommit(*db, "a", "1");
  ASSERT_TRUE(db->Flush().ok());
  auto t = BeginRw(*db);  // began before the delete
  auto d = BeginRw(*db);
  ASSERT_TRUE(d->Delete("a").ok());
  ASSERT_TRUE(d->Commit().ok());
  for (int i = 0; i < 5; ++i) {  // enough flushes for a merge of every segment
    PutCommit(*db, "f" + std::to_string(i), "x");
    FlushAndMerge(*db);
  }
  ASSERT_LE(db->TEST_SegmentCount(), 4u);
  ASSERT_TRUE(t->Put("a", "late").ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
  EXPECT_EQ(Committed(*db, "a"), std::nullopt);
}

// An in-memory database runs the same flush and merge, into segments held
// in process memory (util/env_memory.h): past its memtable budget the
// memtable becomes a segment, past max_segments the segments are merged, and
// every read, snapshot and vector search answers as before.
TEST(DB, InMemoryDatabaseFlushesAndMergesIntoInMemorySegments) {
  Options o;
  o.memtable_budget_bytes = 16 * 1024;
  o.max_segments = 2;
  auto db = OpenKv("", o);
  std::map<std::string, std::string> model;
  std::map<std::string, std::vector<float>> vectors;
  std::mt19937_64 rng(21);
  std::unique_ptr<Txn> early;  // a snapshot taken before most commits
  std::map<std::string, std::string> early_model;
  size_t max_segments_seen = 0;
  for (int round = 0; round < 60; ++round) {
    auto t = BeginRw(*db);
    for (int i = 0; i < 10; ++i) {
      const std::string k = "k" + std::to_string((round * 10 + i) % 400);
      const std::string v = std::string(200, static_cast<char>('a' + round % 26)) + std::to_string(round);
      ASSERT_TRUE(t->Put(k, v).ok());
      model[k] = v;
      const std::string vk = "v" + std::to_string(round * 10 + i);
      vectors[vk] = testing::RandomVector(rng, 8);
      ASSERT_TRUE(t->UpsertVector(vk, vectors[vk].data(), 8, simd::Metric::kL2, nullptr).ok());
    }
    if (round % 7 == 3) {
      const std::string gone = "k" + std::to_string(round);
      ASSERT_TRUE(t->Delete(gone).ok());
      model.erase(gone);
    }
    ASSERT_TRUE(t->Commit().ok());
    if (round == 5) {
      early = BeginRo(*db);
      early_model = model;
    }
    max_segments_seen = std::max(max_segments_seen, db->TEST_SegmentCount());
    if (round % 10 == 9) {  // let the background flushes and merges run
      for (int w = 0; w < 200 && db->TEST_SegmentCount() == 0; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  for (int w = 0; w < 400 && db->TEST_SegmentCount() == 0; ++w) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(std::max(max_segments_seen, db->TEST_SegmentCount()), 1u);
  std::printf("segments: at most %zu seen, %zu at the end\n", max_segments_seen, db->TEST_SegmentCount());
  Status s = db->Flush();  // still not flushable by hand
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "in-memory database cannot be flushed");
  ExpectReadsModel(*BeginRo(*db), model, 400);
  // The snapshot of round 5 still reads what it saw, after flushes and merges.
  ExpectReadsModel(*early, early_model, 400);
  ASSERT_TRUE(early->Rollback().ok());
  // Flat search over the segments' contiguous vector groups and the memtable.
  auto t = BeginRo(*db);
  const auto q = testing::RandomVector(rng, 8);
  std::vector<KeyHit> hits;
  ASSERT_TRUE(t->SearchSimilar(q.data(), 8, simd::Metric::kL2, 5, nullptr, false, &hits).ok());
  std::vector<std::pair<double, std::string>> exact;
  for (const auto& [k, v] : vectors) {
    double d = 0;
    for (int j = 0; j < 8; ++j) d += (double(q[j]) - v[j]) * (double(q[j]) - v[j]);
    exact.emplace_back(d, k);
  }
  std::sort(exact.begin(), exact.end());
  ASSERT_EQ(hits.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(hits[i].key, exact[i].second);
  const MemoryStats m = db->MemoryUsage();
  EXPECT_GT(m.used_bytes, 600u * 8 * 4);
}

// A flush that fails (here: the segment's rename) loses nothing: the frozen
// memtable stays readable and its WAL files stay live, the next flush
// writes it, and a reopen after either finds every commit.
TEST(DB, FailedFlushLosesNothingAndTheNextFlushWritesIt) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  Options o;
  o.env = &env;
  {
    auto db = OpenKv(dir.path(), o);
    PutCommit(*db, "a", "1");
    env.FailNth(testing::Op::kRename, 1);
    Status s = db->Flush();
    EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
    EXPECT_EQ(db->TEST_SegmentCount(), 0u);
    EXPECT_EQ(Committed(*db, "a"), "1");
    PutCommit(*db, "b", "2");  // lands in the new memtable
    EXPECT_EQ(Committed(*db, "a"), "1");
  }
  {
    auto db = OpenKv(dir.path(), o);  // recovered from the WAL files
    EXPECT_EQ(Committed(*db, "a"), "1");
    EXPECT_EQ(Committed(*db, "b"), "2");
    auto pin = BeginRo(*db);
    env.FailNth(testing::Op::kSyncDir, 2);
    EXPECT_FALSE(db->Flush().ok());
    PutCommit(*db, "c", "3");
    ASSERT_TRUE(db->Flush().ok());  // the frozen memtable, then the current one
    EXPECT_EQ(db->TEST_SegmentCount(), 2u);
    EXPECT_EQ(GetValue(*pin, "c"), std::nullopt);
    EXPECT_EQ(GetValue(*pin, "a"), "1");
  }
  auto db = OpenKv(dir.path(), o);
  EXPECT_EQ(Committed(*db, "a"), "1");
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "c"), "3");
}

// Flush() reports the flush: once the segment and the manifest are durable,
// a merge after it that fails (out of space at the merged segment's rename)
// is not the caller's failure. Nothing changes, and the next flush merges.
TEST(DB, FlushSucceedsWhenOnlyTheMergeAfterItFails) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  Options o;
  o.env = &env;
  o.max_segments = 1;
  {
    auto db = OpenKv(dir.path(), o);
    PutCommit(*db, "a", "1");
    ASSERT_TRUE(db->Flush().ok());
    PutCommit(*db, "b", "2");
    // The flush renames its segment and appends to the manifest log (the
    // open made a new one); the merge's segment is the second rename.
    env.FailNth(testing::Op::kRename, 2, ENOSPC, /*sticky=*/true);
    Status s = db->Flush();
    EXPECT_TRUE(s.ok()) << s.ToString();
    // The merge (on the compaction thread, or here) fails and changes nothing.
    EXPECT_EQ(db->Compact(false).code(), Code::kResourceExhausted);
    EXPECT_EQ(db->TEST_SegmentCount(), 2u);  // the merge did not happen
    EXPECT_EQ(Committed(*db, "a"), "1");
    EXPECT_EQ(Committed(*db, "b"), "2");
    env.ClearFaults();
    PutCommit(*db, "c", "3");
    FlushAndMerge(*db);
    EXPECT_EQ(db->TEST_SegmentCount(), 1u);  // merged now
  }
  auto db = OpenKv(dir.path(), o);
  EXPECT_EQ(Committed(*db, "a"), "1");
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "c"), "3");
}

// Index parameters have one check with the same limits everywhere
// (index/params.h): a dimension, m or ef_construction out of range (an
// ef_construction that would make every build run out of memory) is refused
// at create, naming the parameter, and nothing is created.
TEST(DB, IndexParametersOutsideTheSharedLimitsAreRefusedAtCreate) {
  auto db = OpenKv("");
  ASSERT_TRUE(db);
  struct Case {
    uint32_t dim, m, ef;
    const char* message;
  };
  for (const Case& c :
       {Case{0, 16, 200, "invalid parameter dimension: must be between 1 and 65535 (got 0)"},
        Case{65536, 16, 200, "invalid parameter dimension: must be between 1 and 65535 (got 65536)"},
        Case{4, 1, 200, "invalid parameter m: must be between 2 and 100 (got 1)"},
        Case{4, 101, 200, "invalid parameter m: must be between 2 and 100 (got 101)"},
        Case{4, 16, 15, "invalid parameter ef_construction: must be greater than or equal to m"},
        Case{4, 16, 4097, "invalid parameter ef_construction: must be at most 4096 (got 4097)"},
        Case{4, 16, UINT32_MAX, "invalid parameter ef_construction: must be at most 4096 (got 4294967295)"}}) {
    engine::IndexConfig config;
    config.dim = c.dim;
    config.m = c.m;
    config.ef_construction = c.ef;
    Status s = db->CreateIndex("ix", config);
    EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
    engine::IndexStats stats;
    EXPECT_EQ(db->GetIndexStats("ix", &stats).code(), Code::kNotFound);
  }
  engine::IndexConfig ok;
  ok.dim = 4;
  ok.m = 100;
  ok.ef_construction = 4096;
  ASSERT_TRUE(db->CreateIndex("ix", ok).ok());
}

// A background flush that fails (every segment rename, for a while) loses
// nothing and is not final: commits go on, the next commit over the budget
// triggers it again once the disk recovers, and a reopen finds every commit.
TEST(DB, FailedBackgroundFlushesAreRetriedAndLoseNothing) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  Options o;
  o.env = &env;
  o.memtable_budget_bytes = 16 * 1024;
  const std::string value(200, 'v');
  {
    auto db = OpenKv(dir.path(), o);
    env.FailNth(testing::Op::kRename, 1, ENOSPC, /*sticky=*/true);
    for (int i = 0; i < 300; ++i) PutCommit(*db, "k" + std::to_string(i), value);
    for (int i = 0; i < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(db->TEST_SegmentCount(), 0u);  // every background flush failed
    EXPECT_EQ(Committed(*db, "k0"), value);
    env.ClearFaults();
    for (int i = 300; i < 400; ++i) PutCommit(*db, "k" + std::to_string(i), value);
    for (int i = 0; i < 500 && db->TEST_SegmentCount() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_GT(db->TEST_SegmentCount(), 0u) << "a commit over the budget retries the flush";
    for (int i = 0; i < 400; ++i) ASSERT_EQ(Committed(*db, "k" + std::to_string(i)), value) << i;
  }
  auto db = OpenKv(dir.path(), o);
  for (int i = 0; i < 400; ++i) ASSERT_EQ(Committed(*db, "k" + std::to_string(i)), value) << i;
}

// The names of the files in `dir`, sorted.
std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A directory of format version 1 (the retired u64 engine's MANIFEST or a
// keyspace's KVMANIFEST, no CURRENT) is refused, naming the file and its
// version; nothing is created in it (docs/ENGINE.md 3.1).
TEST(DB, FormatVersionOneDirectoriesAreRefusedNamingTheirVersion) {
  for (const std::string name : {"MANIFEST", "KVMANIFEST"}) {
    SCOPED_TRACE(name);
    testing::TempDir dir;
    std::string old = "POMAIKVM";
    PutFixed32(&old, 1);
    old.append(28, '\0');
    { std::ofstream(dir.path() + "/" + name, std::ios::binary) << old; }
    { std::ofstream(dir.path() + "/seg-000003.pseg", std::ios::binary) << "old segment"; }
    const std::string want = dir.path() + "/" + name +
                             " holds a pomai database of format version 1 (manifest version 1); this build reads "
                             "format version 2 and does not convert (no migration before 1.0)";
    Options ko;
    ko.path = dir.path();
    auto k = DB::Open(ko);
    EXPECT_EQ(k.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(k.status().message(), want);
    // No CURRENT, no manifest, not even LOCK: the refusal comes first.
    std::vector<std::string> want_files = {name, "seg-000003.pseg"};
    std::sort(want_files.begin(), want_files.end());
    EXPECT_EQ(DirNames(dir.path()), want_files);
  }
}

// The files of a keyspace directory (docs/ENGINE.md 3.1): CURRENT names the
// one manifest log; after a reopen the first change starts a new manifest
// and the old one goes; a stale manifest, a temporary and a segment the
// manifest does not name are removed at open; a WAL created after the last
// edit keeps its number from later files.
TEST(DB, ManifestFilesAfterReopens) {
  testing::TempDir dir;
  auto names = [&] { return DirNames(dir.path()); };
  auto current = [&] {
    std::ifstream f(dir.path() + "/CURRENT", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  {
    auto db = OpenKv(dir.path());
    EXPECT_EQ(current(), "MANIFEST-000001\n");
    PutCommit(*db, "a", "1");
    ASSERT_TRUE(db->Flush().ok());  // appended to MANIFEST-000001
    EXPECT_EQ(current(), "MANIFEST-000001\n");
    PutCommit(*db, "b", "2");
  }
  // The flush made WAL 3, then segment 4, and deleted WAL 2.
  EXPECT_EQ(names(), (std::vector<std::string>{"CURRENT", "LOCK", "MANIFEST-000001", "seg-000004.pseg",
                                               "wal-000003.log"}));
  { std::ofstream(dir.path() + "/MANIFEST-000009", std::ios::binary) << "stale"; }
  { std::ofstream(dir.path() + "/seg-000012.pseg.tmp", std::ios::binary) << "partial"; }
  { std::ofstream(dir.path() + "/idx-0123456789abcdef-5.pgraph.tmp", std::ios::binary) << "partial"; }
  { std::ofstream(dir.path() + "/seg-000011.pseg", std::ios::binary) << "not named"; }
  {
    auto db = OpenKv(dir.path());
    EXPECT_EQ(Committed(*db, "a"), "1");
    EXPECT_EQ(Committed(*db, "b"), "2");
    // Removed at open, and the open made no file (reads need none).
    EXPECT_EQ(names(), (std::vector<std::string>{"CURRENT", "LOCK", "MANIFEST-000001", "seg-000004.pseg",
                                                 "wal-000003.log"}));
    // The first commit makes the WAL file; the numbers seen are not handed out again: it is 13.
    PutCommit(*db, "c", "3");
    EXPECT_EQ(names(), (std::vector<std::string>{"CURRENT", "LOCK", "MANIFEST-000001", "seg-000004.pseg",
                                                 "wal-000003.log", "wal-000013.log"}));
    // The first change of this open (WAL 14, segment 15) starts MANIFEST-000016.
    ASSERT_TRUE(db->Flush().ok());
    EXPECT_EQ(current(), "MANIFEST-000016\n");
    EXPECT_EQ(names(), (std::vector<std::string>{"CURRENT", "LOCK", "MANIFEST-000016", "seg-000004.pseg",
                                                 "seg-000015.pseg", "wal-000014.log"}));
  }
  auto db = OpenKv(dir.path());
  EXPECT_EQ(db->TEST_SegmentCount(), 2u);
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "c"), "3");
}

// The newest WAL file of a closed database.
std::string NewestWal(const std::string& dir) {
  std::string best;
  for (const std::string& n : testing::WalFiles(dir))
    if (std::filesystem::file_size(dir + "/" + n) > 0) best = dir + "/" + n;
  return best;
}

TEST(DB, TornWalTailIsDroppedAndEarlierCommitsSurvive) {
  testing::TempDir dir;
  {
    auto db = OpenKv(dir.path());
    PutCommit(*db, "a", "1");
    PutCommit(*db, "b", "2");
    PutCommit(*db, "c", std::string(500, 'c'));
  }
  const std::string wal = NewestWal(dir.path());
  ASSERT_FALSE(wal.empty());
  const auto size = std::filesystem::file_size(wal);
  std::filesystem::resize_file(wal, size - 100);  // the last record is cut in the middle
  auto db = OpenKv(dir.path());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(Committed(*db, "a"), "1");
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "c"), std::nullopt);
  PutCommit(*db, "d", "4");  // goes on from there
  db.reset();
  db = OpenKv(dir.path());
  EXPECT_EQ(Committed(*db, "b"), "2");
  EXPECT_EQ(Committed(*db, "d"), "4");
}

// A randomized model check: interleaved transactions (begin, put, delete,
// get, commit, rollback) against a dict model with snapshot isolation (a
// transaction never sees a commit made after it began, across flushes; it
// sees its own writes) and first-committer-wins (a delete conflicts like a
// put, also with a version flushed after the transaction began; writers of
// disjoint keys both commit), with flushes and a reopen in disk mode.
TEST_P(TxnTest, RandomizedTransactionsMatchADictModel) {
  auto db = Open();
  std::mt19937 rng(disk() ? 11 : 12);
  using Model = std::map<std::string, std::string>;
  struct OpenTxn {
    std::unique_ptr<Txn> txn;
    Model snapshot;
    std::map<std::string, std::optional<std::string>> writes;
    bool read_only;
  };
  Model committed;
  std::map<std::string, uint64_t> version;  // key -> commit counter of its last write
  uint64_t commits = 0, conflicts = 0;
  std::vector<std::pair<OpenTxn, uint64_t>> open;  // txn and the commit counter at begin
  auto key = [&] { return "k" + std::to_string(rng() % 24); };
  for (int step = 0; step < 4000; ++step) {
    const int op = rng() % 100;
    if (open.empty() || op < 10) {
      OpenTxn o;
      o.read_only = rng() % 5 == 0;
      o.txn = o.read_only ? BeginRo(*db) : BeginRw(*db);
      o.snapshot = committed;
      open.emplace_back(std::move(o), commits);
      continue;
    }
    auto& [o, began] = open[rng() % open.size()];
    if (op < 40) {
      const std::string k = key();
      const std::string v = "v" + std::to_string(step);
      Status s = o.txn->Put(k, v);
      if (o.read_only) {
        EXPECT_EQ(s.code(), Code::kReadOnly);
      } else {
        ASSERT_TRUE(s.ok());
        o.writes[k] = v;
      }
    } else if (op < 50) {
      const std::string k = key();
      Status s = o.txn->Delete(k);
      if (o.read_only) {
        EXPECT_EQ(s.code(), Code::kReadOnly);
      } else {
        ASSERT_TRUE(s.ok());
        o.writes[k] = std::nullopt;
      }
    } else if (op < 80) {
      const std::string k = key();
      std::optional<std::string> want;
      auto w = o.writes.find(k);
      if (w != o.writes.end()) {
        want = w->second;
      } else if (auto it = o.snapshot.find(k); it != o.snapshot.end()) {
        want = it->second;
      }
      ASSERT_EQ(GetValue(*o.txn, k), want) << "step " << step << " key " << k;
    } else if (op < 94) {
      bool conflict = false;
      for (const auto& [k, v] : o.writes) {
        auto it = version.find(k);
        if (it != version.end() && it->second > began) conflict = true;
      }
      Status s = o.txn->Commit();
      if (conflict) {
        ASSERT_EQ(s.code(), Code::kConflict) << "step " << step;
        ++conflicts;
      } else {
        ASSERT_TRUE(s.ok()) << "step " << step << ": " << s.ToString();
        if (!o.writes.empty()) {
          ++commits;
          for (const auto& [k, v] : o.writes) {
            version[k] = commits;
            if (v) {
              committed[k] = *v;
            } else {
              committed.erase(k);
            }
          }
        }
      }
    } else if (op < 98) {
      ASSERT_TRUE(o.txn->Rollback().ok());
    } else if (disk()) {
      ASSERT_TRUE(db->Flush().ok());
    }
    // Committed and rolled-back transactions leave the pool.
    open.erase(std::remove_if(open.begin(), open.end(), [](const auto& p) { return !p.first.txn->active(); }),
               open.end());
  }
  open.clear();
  EXPECT_GT(commits, 100u);
  EXPECT_GT(conflicts, 20u);
  ExpectReadsModel(*BeginRo(*db), committed, 24);
  if (disk()) {
    ASSERT_TRUE(db->Close().ok());
    db.reset();
    db = Open();
    ExpectReadsModel(*BeginRo(*db), committed, 24);
  }
}

}  // namespace
}  // namespace pomai::engine
