// Txn::Scan (lib/engine/txn_scan.cc): key-range scans at a transaction's
// snapshot plus its own writes, against a std::map model across the
// memtables, segments and merges; batches; the range checks of a read-write
// commit (phantoms); bad arguments.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "db_test_util.h"
#include "util/limits.h"

namespace pomai::engine {
namespace {

using testing::BeginRo;
using testing::BeginRw;
using testing::BothModes;
using testing::ModeName;

// A model value: plain bytes, or a vector record (which scans skip).
struct ModelValue {
  bool vector = false;
  std::string bytes;
};
using Model = std::map<std::string, ModelValue>;
using Entries = std::vector<std::pair<std::string, std::string>>;

// What a scan of [lo, hi) (hi nullopt: no bound) must return from `m`.
Entries Expected(const Model& m, const std::string& lo, const std::optional<std::string>& hi) {
  Entries out;
  for (auto it = m.lower_bound(lo); it != m.end() && (!hi || it->first < *hi); ++it)
    if (!it->second.vector) out.emplace_back(it->first, it->second.bytes);
  return out;
}

// Reads [lo, hi) to its end in batches of max_entries / max_bytes, checking
// each batch's limits, order and resume point.
Entries ScanAll(Txn& t, const std::string& lo, const std::optional<std::string>& hi, size_t max_entries,
                size_t max_bytes) {
  Entries out;
  std::string from = lo;
  std::string_view hi_view;
  if (hi) hi_view = *hi;
  for (int calls = 0;; ++calls) {
    EXPECT_LT(calls, 100000) << "the scan does not end";
    if (calls >= 100000) return out;
    std::vector<Txn::ScanEntry> batch;
    bool more = true;
    Status s = t.Scan(from, hi ? &hi_view : nullptr, max_entries, max_bytes, &batch, &more);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return out;
    EXPECT_LE(batch.size(), max_entries);
    size_t bytes = 0;
    for (const Txn::ScanEntry& e : batch) {
      bytes += e.key.size() + e.value.size();
      EXPECT_TRUE(out.empty() || out.back().first < e.key) << "keys out of order";
      EXPECT_GE(e.key, from);
      if (hi) {
        EXPECT_LT(e.key, *hi);
      }
      out.emplace_back(std::string(e.key), std::string(e.value));
    }
    if (max_bytes > 0 && batch.size() > 1) {
      EXPECT_LE(bytes, max_bytes);
    }
    if (!more) return out;
    EXPECT_FALSE(batch.empty()) << "more without an entry";
    if (batch.empty()) return out;
    from = out.back().first + std::string(1, '\0');
  }
}

// Keys over a small alphabet with 0x00 and 0xFF, so prefixes and neighbours collide.
std::string RandomKey(std::mt19937_64& rng) {
  static const char kAlphabet[] = {'\x00', '\x01', 'a', 'b', '\xfe', '\xff'};
  std::string k(1 + rng() % 4, '\0');
  for (char& c : k) c = kAlphabet[rng() % sizeof(kAlphabet)];
  return k;
}

// A random range: [lo, hi) with lo <= hi, or no upper bound.
std::pair<std::string, std::optional<std::string>> RandomRange(std::mt19937_64& rng) {
  std::string lo = rng() % 5 == 0 ? std::string() : RandomKey(rng);
  if (rng() % 4 == 0) return {lo, std::nullopt};
  std::string hi = RandomKey(rng);
  if (hi < lo) std::swap(lo, hi);
  return {lo, hi};
}

class ScanModelTest : public BothModes {};

TEST_P(ScanModelTest, MatchesAMapAcrossMemtablesSegmentsMergesAndOwnWrites) {
  Options o;
  o.memtable_budget_bytes = 24 << 10;  // background flushes
  o.max_segments = 2;                  // and merges
  auto db = Open(o);
  ASSERT_TRUE(db);
  // A named index's entries live in another namespace: never scanned.
  IndexConfig ic;
  ic.dim = 2;
  ic.metric = simd::Metric::kL2;
  ASSERT_TRUE(db->CreateIndex("idx", ic).ok());
  std::mt19937_64 rng(GetParam() ? 17 : 29);
  Model committed;
  // Read-only transactions kept open across later commits, flushes and
  // merges, with the model of their snapshot.
  std::vector<std::pair<std::unique_ptr<Txn>, Model>> old;
  const float vec[2] = {1, 2};
  size_t max_segments = 0;
  for (int round = 0; round < 120; ++round) {
    auto t = BeginRw(*db);
    Model mine = committed;
    const int writes = static_cast<int>(rng() % 40);
    for (int w = 0; w < writes; ++w) {
      const std::string k = RandomKey(rng);
      const int op = static_cast<int>(rng() % 10);
      if (op < 6) {
        const std::string v = std::to_string(round) + ":" + std::string(rng() % 300, 'v');
        ASSERT_TRUE(t->Put(k, v).ok());
        mine[k] = ModelValue{false, v};
      } else if (op < 8) {
        ASSERT_TRUE(t->Delete(k).ok());
        mine.erase(k);
      } else if (op < 9) {
        ASSERT_TRUE(t->UpsertVector(k, vec, 2, simd::Metric::kL2, nullptr).ok());
        mine[k] = ModelValue{true, ""};
      } else {
        ASSERT_TRUE(t->IndexUpsert("idx", k, vec, 2, nullptr).ok());
      }
    }
    // Scans of the transaction itself see its own writes.
    for (int s = 0; s < 3; ++s) {
      auto [lo, hi] = RandomRange(rng);
      const size_t max_entries = 1 + rng() % 7;
      const size_t max_bytes = rng() % 2 ? 0 : 1 + rng() % 600;
      ASSERT_EQ(ScanAll(*t, lo, hi, max_entries, max_bytes), Expected(mine, lo, hi))
          << "round " << round << " own-writes scan of [" << Printable(lo) << ", "
          << (hi ? Printable(*hi) : "end") << ")";
    }
    if (rng() % 4 == 0) {
      ASSERT_TRUE(t->Rollback().ok());
    } else {
      ASSERT_TRUE(t->Commit().ok()) << "round " << round;
      committed = std::move(mine);
    }
    if (rng() % 5 == 0) old.emplace_back(BeginRo(*db), committed);
    if (old.size() > 4) old.erase(old.begin() + static_cast<long>(rng() % old.size()));
    max_segments = std::max(max_segments, db->TEST_SegmentCount());
    const int step = static_cast<int>(rng() % 10);
    if (step == 0 && disk()) {
      ASSERT_TRUE(db->Flush().ok());
    } else if (step == 1) {
      ASSERT_TRUE(db->Compact(rng() % 2 == 0).ok());
    }
    // Every snapshot kept, read now.
    for (auto& [txn, model] : old) {
      auto [lo, hi] = RandomRange(rng);
      ASSERT_EQ(ScanAll(*txn, lo, hi, 1 + rng() % 5, 0), Expected(model, lo, hi)) << "round " << round;
    }
  }
  EXPECT_GE(max_segments, 2u) << "the scans never merged segments";
  auto t = BeginRo(*db);
  EXPECT_EQ(ScanAll(*t, "", std::nullopt, 1000, 0), Expected(committed, "", std::nullopt));
}

INSTANTIATE_TEST_SUITE_P(Modes, ScanModelTest, ::testing::Bool(), ModeName);

class ScanTest : public BothModes {};

TEST_P(ScanTest, BatchesRespectTheirLimitsAndTheFirstEntryAlwaysComesBack) {
  auto db = Open();
  ASSERT_TRUE(db);
  auto w = BeginRw(*db);
  ASSERT_TRUE(w->Put("a", std::string(100, 'x')).ok());
  ASSERT_TRUE(w->Put("b", "1").ok());
  ASSERT_TRUE(w->Put("c", "2").ok());
  ASSERT_TRUE(w->Commit().ok());
  auto t = BeginRo(*db);
  std::vector<Txn::ScanEntry> batch;
  bool more = false;
  // Larger than max_bytes, alone: it comes back, with more.
  ASSERT_TRUE(t->Scan("", nullptr, 10, 5, &batch, &more).ok());
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].key, "a");
  EXPECT_TRUE(more);
  ASSERT_TRUE(t->Scan(std::string("a\0", 2), nullptr, 10, 5, &batch, &more).ok());
  ASSERT_EQ(batch.size(), 2u);  // "b1" + "c2" = 4 bytes
  EXPECT_FALSE(more);
  ASSERT_TRUE(t->Scan("b", nullptr, 1, 0, &batch, &more).ok());
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_TRUE(more);
  // more is exact: the last entry of the range ends it.
  const std::string_view hi = "c";
  ASSERT_TRUE(t->Scan("b", &hi, 1, 0, &batch, &more).ok());
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_FALSE(more);
  const std::string_view same = "b";
  ASSERT_TRUE(t->Scan("b", &same, 1, 0, &batch, &more).ok());
  EXPECT_TRUE(batch.empty());
  EXPECT_FALSE(more);
}

TEST_P(ScanTest, ALaterBatchSeesTheWritesMadeBetweenBatches) {
  auto db = Open();
  ASSERT_TRUE(db);
  auto w = BeginRw(*db);
  for (const char* k : {"a", "c", "e", "g"}) ASSERT_TRUE(w->Put(k, k).ok());
  ASSERT_TRUE(w->Commit().ok());
  auto t = BeginRw(*db);
  std::vector<Txn::ScanEntry> batch;
  bool more = false;
  ASSERT_TRUE(t->Scan("", nullptr, 2, 0, &batch, &more).ok());
  ASSERT_EQ(batch.size(), 2u);
  EXPECT_EQ(batch[1].key, "c");
  ASSERT_TRUE(t->Put("d", "new").ok());
  ASSERT_TRUE(t->Delete("e").ok());
  ASSERT_TRUE(t->Put("a", "behind").ok());  // before the resume point: not seen again
  EXPECT_EQ(ScanAll(*t, std::string("c\0", 2), std::nullopt, 2, 0), (Entries{{"d", "new"}, {"g", "g"}}));
}

TEST_P(ScanTest, FlushesMergesAndCommitsBetweenBatchesChangeNothing) {
  Options o;
  o.max_segments = 1;
  auto db = Open(o);
  ASSERT_TRUE(db);
  Model model;
  for (int round = 0; round < 3; ++round) {
    auto w = BeginRw(*db);
    for (int i = round; i < 300; i += 3) {
      const std::string k = "k" + std::to_string(1000 + i);
      ASSERT_TRUE(w->Put(k, "r" + std::to_string(round)).ok());
      model[k] = ModelValue{false, "r" + std::to_string(round)};
    }
    ASSERT_TRUE(w->Commit().ok());
    if (disk() && round < 2) {
      ASSERT_TRUE(db->Flush().ok());  // two segments and the memtable
    }
  }
  auto t = BeginRo(*db);
  Entries got;
  std::string from;
  for (int batch = 0;; ++batch) {
    std::vector<Txn::ScanEntry> out;
    bool more = false;
    ASSERT_TRUE(t->Scan(from, nullptr, 40, 0, &out, &more).ok());
    for (const Txn::ScanEntry& e : out) got.emplace_back(std::string(e.key), std::string(e.value));
    if (!more) break;
    from = got.back().first + std::string(1, '\0');
    // Others commit over the same keys, and the layers change under the scan.
    auto w = BeginRw(*db);
    ASSERT_TRUE(w->Put("k" + std::to_string(1000 + batch), "later").ok());
    ASSERT_TRUE(w->Delete("k" + std::to_string(1100 + batch)).ok());
    ASSERT_TRUE(w->Commit().ok());
    if (disk() && batch % 2 == 0) {
      ASSERT_TRUE(db->Flush().ok());
    } else {
      ASSERT_TRUE(db->Compact(true).ok());
    }
  }
  EXPECT_EQ(got, Expected(model, "", std::nullopt));
}

TEST_P(ScanTest, BadArgumentsAndAClosedTransaction) {
  auto db = Open();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  std::vector<Txn::ScanEntry> batch;
  bool more = false;
  const std::string_view a = "a";
  Status s = t->Scan("b", &a, 1, 0, &batch, &more);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "lo 'b' is greater than hi 'a'");
  s = t->Scan("", nullptr, 0, 0, &batch, &more);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "max_entries is 0; a scan batch holds at least 1 entry");
  ASSERT_TRUE(t->Rollback().ok());
  s = t->Scan("", nullptr, 1, 0, &batch, &more);
  EXPECT_EQ(s.code(), Code::kClosed);
  EXPECT_EQ(s.message(), "transaction is closed");
}

TEST_P(ScanTest, OtherNamespacesAndVectorRecordsAreNotScanned) {
  auto db = Open();
  ASSERT_TRUE(db);
  IndexConfig ic;
  ic.dim = 2;
  ASSERT_TRUE(db->CreateIndex("idx", ic).ok());
  const float v[2] = {1, 0};
  auto w = BeginRw(*db);
  ASSERT_TRUE(w->IndexUpsert("idx", "entry", v, 2, nullptr).ok());
  ASSERT_TRUE(w->UpsertVector("vec", v, 2, simd::Metric::kCosine, nullptr).ok());
  ASSERT_TRUE(w->Put("plain", "p").ok());
  ASSERT_TRUE(w->Put(std::string(1, '\xff'), "ff").ok());
  ASSERT_TRUE(w->Commit().ok());
  if (disk()) {
    ASSERT_TRUE(db->Flush().ok());
  }
  auto t = BeginRw(*db);
  ASSERT_TRUE(t->Put("vec", "now bytes").ok());  // an own write replaces the vector record
  EXPECT_EQ(ScanAll(*t, "", std::nullopt, 2, 0),
            (Entries{{"plain", "p"}, {"vec", "now bytes"}, {std::string(1, '\xff'), "ff"}}));
  ASSERT_TRUE(t->UpsertVector("plain", v, 2, simd::Metric::kCosine, nullptr).ok());  // and the other way round
  EXPECT_EQ(ScanAll(*t, "", std::nullopt, 2, 0), (Entries{{"vec", "now bytes"}, {std::string(1, '\xff'), "ff"}}));
}

// A read-write transaction whose scan returned a range, and a write by
// another transaction committed after it began.
class ScanConflictTest : public BothModes {
 protected:
  void SetUp() override {
    db_ = Open();
    ASSERT_TRUE(db_);
    auto w = BeginRw(*db_);
    for (const char* k : {"a1", "a3", "b1"}) ASSERT_TRUE(w->Put(k, "v").ok());
    ASSERT_TRUE(w->Commit().ok());
  }
  // Scans [lo, hi) whole in `t`.
  static void ScanRange(Txn& t, const std::string& lo, const std::string& hi) { (void)ScanAll(t, lo, hi, 100, 0); }
  // Commits `key` = "x" in its own transaction.
  void Other(const std::string& key, bool del = false) {
    auto o = BeginRw(*db_);
    ASSERT_TRUE((del ? o->Delete(key) : o->Put(key, "x")).ok());
    ASSERT_TRUE(o->Commit().ok());
  }
  std::unique_ptr<DB> db_;
};

TEST_P(ScanConflictTest, APhantomInsertIntoAScannedRangeIsAConflict) {
  auto t = BeginRw(*db_);
  ScanRange(*t, "a", "b");
  Other("a2");
  ASSERT_TRUE(t->Put("z", "1").ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
}

TEST_P(ScanConflictTest, AnEmptyScannedRangeAndADeleteAreConflictsToo) {
  auto t = BeginRw(*db_);
  ScanRange(*t, "c", "d");  // nothing there
  Other("c5");
  ASSERT_TRUE(t->Put("z", "1").ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
  auto u = BeginRw(*db_);
  ScanRange(*u, "a", "b");
  Other("a3", /*del=*/true);
  ASSERT_TRUE(u->Put("z", "1").ok());
  EXPECT_EQ(u->Commit().code(), Code::kConflict);
}

TEST_P(ScanConflictTest, AWriteOutsideTheScannedRangesCommits) {
  auto t = BeginRw(*db_);
  ScanRange(*t, "a", "b");
  ScanRange(*t, "b2", "c");
  Other("b");   // == the end of the first range, excluded
  Other("b1");  // between the two ranges
  Other("c");   // == the end of the second
  ASSERT_TRUE(t->Put("z", "1").ok());
  EXPECT_TRUE(t->Commit().ok());
  EXPECT_EQ(testing::Committed(*db_, "z"), "1");
}

TEST_P(ScanConflictTest, OnlyWhatABatchReturnedIsChecked) {
  auto t = BeginRw(*db_);
  std::vector<Txn::ScanEntry> batch;
  bool more = false;
  ASSERT_TRUE(t->Scan("a", nullptr, 1, 0, &batch, &more).ok());  // returns a1 only
  ASSERT_TRUE(more);
  Other("a2");  // after the last key returned: not read
  ASSERT_TRUE(t->Put("z", "1").ok());
  EXPECT_TRUE(t->Commit().ok());
  auto u = BeginRw(*db_);
  ASSERT_TRUE(u->Scan("a", nullptr, 1, 0, &batch, &more).ok());
  Other("a1");  // the key returned
  ASSERT_TRUE(u->Put("z", "2").ok());
  EXPECT_EQ(u->Commit().code(), Code::kConflict);
}

TEST_P(ScanConflictTest, AChangeAlreadyFlushedOrMergedIsStillSeen) {
  auto t = BeginRw(*db_);
  ScanRange(*t, "a", "b");
  Other("a25");
  if (disk()) {
    ASSERT_TRUE(db_->Flush().ok());
  }
  ASSERT_TRUE(db_->Compact(true).ok());
  ASSERT_TRUE(t->Put("z", "1").ok());
  EXPECT_EQ(t->Commit().code(), Code::kConflict);
}

TEST_P(ScanConflictTest, ReadOnlyAndWriteFreeTransactionsNeverConflict) {
  auto ro = BeginRo(*db_);
  auto rw = BeginRw(*db_);
  ScanRange(*ro, "a", "b");
  ScanRange(*rw, "a", "b");
  Other("a2");
  EXPECT_TRUE(ro->Commit().ok());
  EXPECT_TRUE(rw->Commit().ok());  // nothing to apply: its reads were one snapshot
}

// Writers replace every key of a prefix in one commit while background
// flushes and merges run: each scan, in batches, sees one commit's values.
TEST_P(ScanTest, ConcurrentScansSeeWholeCommitsWhileTheLayersChange) {
  Options o;
  o.memtable_budget_bytes = 16 << 10;
  o.max_segments = 2;
  auto db = Open(o);
  ASSERT_TRUE(db);
  constexpr int kKeys = 200;
  auto write_round = [&](int round) {
    auto w = BeginRw(*db);
    for (int i = 0; i < kKeys; ++i)
      ASSERT_TRUE(w->Put("p" + std::to_string(1000 + i), std::to_string(round) + std::string(40, 'x')).ok());
    ASSERT_TRUE(w->Commit().ok());
  };
  write_round(0);
  std::atomic<bool> stop{false};
  std::atomic<int> scans{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load()) {
        auto t = BeginRo(*db);
        const Entries got = ScanAll(*t, "p", std::string("q"), 7 + r * 50, 0);
        EXPECT_EQ(got.size(), static_cast<size_t>(kKeys));
        for (const auto& [k, v] : got) {
          EXPECT_EQ(v, got.front().second) << "a scan saw two commits: " << k;
          if (v != got.front().second) return;
        }
        scans.fetch_add(1);
      }
    });
  }
  // At least 60 rounds, and on until the readers have scanned while commits
  // went on (a fast writer must not finish before a reader starts).
  for (int round = 1; round <= 60 || (scans.load() < 10 && round < 100000); ++round) write_round(round);
  stop.store(true);
  for (std::thread& t : readers) t.join();
  EXPECT_GT(scans.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, ScanTest, ::testing::Bool(), ModeName);
INSTANTIATE_TEST_SUITE_P(Modes, ScanConflictTest, ::testing::Bool(), ModeName);

}  // namespace
}  // namespace pomai::engine
