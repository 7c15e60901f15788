// Readers, writers, flushes and merges at once, on the default collection
// and on the keyspace. CI also runs this executable under
// ThreadSanitizer (scripts/test.sh, build-tsan).
//
// What is checked besides "no data race":
// - every read sees a consistent snapshot: each writer's batch (or
//   transaction) is seen whole or not at all, and a reader never sees a
//   writer go back in time;
// - a segment is unmapped only after its last reader: the Env replaces a
//   released mapping with an inaccessible one (support/poison_map_env.h), so
//   a reader still walking a segment that compaction retired faults at once;
//   after close no mapping is left.
//
// POMAI_CONCURRENCY_ROUNDS scales the writers' work (default 200 batches or transactions each).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/db.h"
#include "support/poison_map_env.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using pomai::testing::PoisonMapEnv;
using pomai::testing::TempDir;

constexpr int kWriters = 2;
constexpr int kReaders = 8;

int Rounds() {
  const char* s = std::getenv("POMAI_CONCURRENCY_ROUNDS");
  return s ? std::max(10, std::atoi(s)) : 200;
}

// The check is real: reading a mapping after the engine let go of it dies.
TEST(ConcurrencyDeathTest, TouchingAReleasedMappingFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(Env::Default(), dir.path(), dir.file("f"), std::string(10000, 'x')).ok());
  PoisonMapEnv env;
  auto mapped = env.MapFile(dir.file("f"));
  ASSERT_TRUE(mapped.ok());
  std::unique_ptr<MappedFile> file = std::move(mapped).value();
  const volatile uint8_t* p = file->data();
  EXPECT_EQ(p[9999], 'x');
  EXPECT_EQ(env.live(), 1);
  file.reset();
  EXPECT_EQ(env.live(), 0);
  EXPECT_EQ(env.released(), 1);
  EXPECT_DEATH((void)p[5000], "");
}

// ---- the default collection (u64 rows; docs/ENGINE.md 2.2) ----------------
//
// Writer w owns ids [w*kRows, (w+1)*kRows). Its batch of generation g puts
// every row as (g, id + 1, 0...), except that every fifth generation it
// deletes the upper half instead. With the inner product and the query
// (1, 0, ...) a row's score is its generation, and a search with k = all rows
// returns every live row: so one search shows, per writer, which batch it saw.
// Every third generation row 0 carries 130 KiB of metadata, which makes the
// batch large enough for the WAL writer to stage it into the memtable on its
// helper thread while it writes the log.

constexpr uint32_t kDim = 8;
constexpr uint64_t kRows = 48;  // per writer; spans both shards

bool DeletesHalf(uint64_t gen) { return gen % 5 == 4; }

Status WriteGeneration(DB* db, int w, uint64_t gen) {
  std::vector<float> vecs(kRows * kDim, 0.0f);
  std::vector<WriteOp> ops(kRows);
  for (uint64_t j = 0; j < kRows; ++j) {
    const uint64_t id = w * kRows + j;
    ops[j].id = id;
    if (DeletesHalf(gen) && j >= kRows / 2) {
      ops[j].kind = WriteOp::Kind::kDelete;
      continue;
    }
    vecs[j * kDim] = static_cast<float>(gen);
    vecs[j * kDim + 1] = static_cast<float>(id + 1);
    ops[j].kind = WriteOp::Kind::kPut;
    ops[j].vector = &vecs[j * kDim];
  }
  static const std::string ballast(130u << 10, 'b');
  if (gen % 3 == 0) ops[0].metadata = ballast;
  return db->Write(ops.data(), ops.size());
}

// Two writers of row batches and one of transactions (the alopex face: kTxnKeys
// keys "t/<j>" = its generation, all in one commit), eight readers (searches
// over every row, point reads of rows, read-only transactions over the keys),
// a thread flushing and one compacting, on one database: every read of
// either face is consistent, and retired segments are unmapped only after
// their readers (PoisonMapEnv).
constexpr int kTxnKeys = 16;
void ReadersAndWritersSeeConsistentSnapshots(std::unique_ptr<DB> db, PoisonMapEnv& env, const char* label) {
  for (int w = 0; w < kWriters; ++w) ASSERT_TRUE(WriteGeneration(db.get(), w, 0).ok());

  const int rounds = Rounds();
  std::atomic<uint64_t> attempted[kWriters] = {};
  std::atomic<int> writers_done{0};
  std::atomic<uint64_t> searches{0}, flushes{0}, compactions{0}, gets{0}, txn_reads{0}, txn_attempted{0};
  auto others_ran = [&] {
    return searches.load() >= 50 && gets.load() >= 50 && txn_reads.load() >= 50 && flushes.load() >= 3 &&
           compactions.load() >= 3 && env.released() > 0;
  };
  auto txn_key = [](int j) { return "t/" + std::to_string(j); };
  std::vector<std::thread> threads;

  // The transaction writer runs until the row writers are done.
  threads.emplace_back([&] {
    for (uint64_t g = 1; writers_done.load() < kWriters; ++g) {
      txn_attempted.store(g);
      auto t = db->Begin(TxnMode::kReadWrite);
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      for (int j = 0; j < kTxnKeys; ++j) ASSERT_TRUE((*t)->Put(txn_key(j), std::to_string(g)).ok());
      Status s = (*t)->Commit();
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  });

  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      // At least `rounds` batches, and on until the other threads have had
      // their turn (a fast writer could otherwise finish before they start).
      for (uint64_t g = 1; g <= static_cast<uint64_t>(rounds) || (!others_ran() && g < 1000u * rounds); ++g) {
        attempted[w].store(g);
        Status s = WriteGeneration(db.get(), w, g);
        ASSERT_TRUE(s.ok()) << s.ToString();
      }
      ++writers_done;
    });
  }
  threads.emplace_back([&] {
    while (writers_done.load() < kWriters) {
      Status s = db->Flush();
      ASSERT_TRUE(s.ok()) << s.ToString();
      ++flushes;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  threads.emplace_back([&] {
    bool force = false;
    while (writers_done.load() < kWriters) {
      Status s = db->Compact(force);
      ASSERT_TRUE(s.ok()) << s.ToString();
      ++compactions;
      force = !force;
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  });
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> q(kDim, 0.0f);
      q[0] = 1.0f;
      const uint32_t k = kWriters * kRows + 5;
      std::vector<int64_t> last_gen(kWriters, -1);
      std::mt19937_64 rng(r);
      int64_t last_txn = -1;
      while (writers_done.load() < kWriters) {
        if (r % 4 == 2) {
          // The other face: a read-only transaction sees one commit's keys whole, never going back.
          auto t = db->Begin(TxnMode::kReadOnly);
          ASSERT_TRUE(t.ok()) << t.status().ToString();
          int64_t g = -1;
          for (int j = 0; j < kTxnKeys; ++j) {
            std::string value;
            bool found = false;
            ASSERT_TRUE((*t)->Get(txn_key(j), &value, &found).ok());
            const int64_t gj = found ? std::stoll(value) : 0;
            if (j == 0) g = gj;
            ASSERT_EQ(gj, g) << "reader " << r << " saw a torn transaction";
          }
          ASSERT_GE(g, last_txn) << "the transactions went back in time";
          ASSERT_LE(static_cast<uint64_t>(g), txn_attempted.load());
          last_txn = g;
          ++txn_reads;
          continue;
        }
        if (r % 4 == 3) {
          // Point reads: a live row's vector is whole and belongs to its id.
          const uint64_t id = rng() % (kWriters * kRows);
          std::vector<float> v;
          std::string meta;
          Status s = db->Get(id, &v, &meta);
          if (s.code() == Code::kNotFound) {
            ASSERT_GE(id % kRows, kRows / 2) << "only the upper half is ever deleted";
          } else {
            ASSERT_TRUE(s.ok()) << s.ToString();
            ASSERT_EQ(v.size(), kDim);
            ASSERT_EQ(v[1], static_cast<float>(id + 1));
            ASSERT_LE(v[0], static_cast<float>(attempted[id / kRows].load()));
          }
          ++gets;
          continue;
        }
        std::vector<std::vector<Hit>> out;
        Status s = db->Search(q.data(), 1, &k, 0, 0, &out);
        ASSERT_TRUE(s.ok()) << s.ToString();
        // Per writer: which generation each of its rows shows (-1 absent).
        std::vector<std::vector<int64_t>> seen(kWriters, std::vector<int64_t>(kRows, -1));
        for (const Hit& h : out[0]) {
          ASSERT_LT(h.id, kWriters * kRows);
          int64_t& slot = seen[h.id / kRows][h.id % kRows];
          ASSERT_EQ(slot, -1) << "id " << h.id << " returned twice";
          slot = static_cast<int64_t>(h.score);
          ASSERT_EQ(static_cast<float>(slot), h.score) << "score of id " << h.id << " is not a generation";
        }
        for (int w = 0; w < kWriters; ++w) {
          const int64_t g = seen[w][0];
          ASSERT_GE(g, 0) << "writer " << w << "'s row 0 is always live";
          const uint64_t live_rows = DeletesHalf(g) ? kRows / 2 : kRows;
          for (uint64_t j = 0; j < kRows; ++j) {
            ASSERT_EQ(seen[w][j], j < live_rows ? g : -1)
                << "writer " << w << " row " << j << ": a torn batch (row 0 shows generation " << g << ")";
          }
          ASSERT_GE(g, last_gen[w]) << "writer " << w << " went back in time";
          ASSERT_LE(static_cast<uint64_t>(g), attempted[w].load());
          last_gen[w] = g;
        }
        ++searches;
      }
    });
  }
  for (auto& t : threads) t.join();
  std::printf("%s: at least %d batches per writer, %llu transactions, %llu searches, %llu gets, %llu snapshot reads, "
              "%llu flushes, %llu compactions, %lld mappings released while running\n",
              label, rounds, static_cast<unsigned long long>(txn_attempted.load()),
              static_cast<unsigned long long>(searches.load()), static_cast<unsigned long long>(gets.load()),
              static_cast<unsigned long long>(txn_reads.load()),
              static_cast<unsigned long long>(flushes.load()), static_cast<unsigned long long>(compactions.load()),
              static_cast<long long>(env.released()));
  EXPECT_GT(searches.load(), 0u);
  EXPECT_GT(txn_reads.load(), 0u);
  EXPECT_GT(env.released(), 0) << "no segment was retired while readers ran: the test proves nothing";
  uint64_t live = 0;
  for (int w = 0; w < kWriters; ++w) live += DeletesHalf(attempted[w].load()) ? kRows / 2 : kRows;
  EXPECT_EQ(db->Count().value(), live);
  ASSERT_TRUE(db->Close().ok());
}

TEST(Concurrency, BothFacesEightReadersThreeWritersFlushesAndMergesSeeConsistentSnapshots) {
  TempDir dir;
  PoisonMapEnv env;
  Options o;
  o.path = dir.path();
  o.search_threads = 2;
  o.memtable_budget_bytes = 32 * 1024;  // background flushes too
  o.max_segments = 2;
  o.env = &env;
  DefaultCollectionOptions c;
  c.dim = kDim;
  c.shards = 2;
  c.metric = simd::Metric::kIP;
  c.hnsw_m = 8;
  c.hnsw_ef_construction = 40;
  c.adaptive_threshold = 1u << 30;  // exact: a search returns every live row
  {
    auto opened = DB::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<DB> db = std::move(opened).value();
    ASSERT_TRUE(db->OpenDefaultCollection(c).ok());
    ReadersAndWritersSeeConsistentSnapshots(std::move(db), env, "both faces");
  }
  EXPECT_EQ(env.live(), 0) << "a segment mapping outlived the database";
}

// ---- keyspace face ---------------------------------------------------------
//
// Writer w commits transactions; transaction g writes its kKeys keys
// "w<w>/<j>" = g and one vector record "v<w>/<j>" per key whose first
// component is g. Readers open read-only transactions and check that every
// key and every vector of a writer shows the same generation, never going
// back; flat vector search must agree with the keys. Flushes run in a loop and
// the small segment limit makes merges retire segments while readers hold
// snapshots over them.

constexpr int kKeys = 12;
constexpr uint32_t kKvDim = 4;

std::string KeyOf(int w, int j) { return "w" + std::to_string(w) + "/" + std::to_string(j); }
std::string VecKeyOf(int w, int j) { return "v" + std::to_string(w) + "/" + std::to_string(j); }

// Disk: a thread flushes by hand every 2 ms, segments are mapped through
// PoisonMapEnv (a read of a released mapping faults). In memory (no WAL,
// segments in MemoryEnv): the 16 KiB budget makes the background thread
// flush and merge, and a thread counts the segment list's changes.
void KeyspaceReadersWritersFlushesAndMerges(bool in_memory) {
  TempDir dir;
  PoisonMapEnv env;
  Options o;
  o.path = in_memory ? std::string() : dir.path();
  o.in_memory = in_memory;
  o.search_threads = 2;
  o.memtable_budget_bytes = 16 * 1024;
  o.max_segments = 2;
  if (!in_memory) o.env = &env;
  {
    auto opened = DB::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<DB> db = std::move(opened).value();
    auto commit_generation = [&](int w, uint64_t g) -> Status {
      auto t = db->Begin(TxnMode::kReadWrite);
      if (!t.ok()) return t.status();
      const std::string value = std::to_string(g);
      for (int j = 0; j < kKeys; ++j) {
        POMAI_RETURN_IF_ERROR((*t)->Put(KeyOf(w, j), value));
        const float v[kKvDim] = {static_cast<float>(g), static_cast<float>(w), static_cast<float>(j), 1.0f};
        POMAI_RETURN_IF_ERROR((*t)->UpsertVector(VecKeyOf(w, j), v, kKvDim, simd::Metric::kIP, nullptr));
      }
      return (*t)->Commit();
    };
    for (int w = 0; w < kWriters; ++w) ASSERT_TRUE(commit_generation(w, 0).ok());

    const int rounds = Rounds();
    std::atomic<uint64_t> attempted[kWriters] = {};
    std::atomic<int> writers_done{0};
    std::atomic<uint64_t> reads{0}, flushes{0};
    auto others_ran = [&] {
      return reads.load() >= 50 && flushes.load() >= 3 && (in_memory || env.released() > 0);
    };
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w) {
      threads.emplace_back([&, w] {
        for (uint64_t g = 1; g <= static_cast<uint64_t>(rounds) || (!others_ran() && g < 1000u * rounds); ++g) {  // as above
          attempted[w].store(g);
          Status s = commit_generation(w, g);  // writers touch disjoint keys: never a conflict
          ASSERT_TRUE(s.ok()) << s.ToString();
        }
        ++writers_done;
      });
    }
    threads.emplace_back([&] {
      size_t segments = db->TEST_SegmentCount();
      while (writers_done.load() < kWriters) {
        if (in_memory) {  // count the background flushes and merges
          const size_t now = db->TEST_SegmentCount();
          if (now != segments) ++flushes;
          segments = now;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        Status s = db->Flush();
        ASSERT_TRUE(s.ok()) << s.ToString();
        ++flushes;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    for (int r = 0; r < kReaders; ++r) {
      threads.emplace_back([&, r] {
        std::vector<int64_t> last(kWriters, -1);
        while (writers_done.load() < kWriters) {
          auto t = db->Begin(TxnMode::kReadOnly);
          ASSERT_TRUE(t.ok()) << t.status().ToString();
          std::vector<int64_t> gen(kWriters, -1);
          for (int w = 0; w < kWriters; ++w) {
            for (int j = 0; j < kKeys; ++j) {
              std::string value;
              bool found = false;
              ASSERT_TRUE((*t)->Get(KeyOf(w, j), &value, &found).ok());
              ASSERT_TRUE(found) << KeyOf(w, j);
              const int64_t g = std::stoll(value);
              if (j == 0) gen[w] = g;
              ASSERT_EQ(g, gen[w]) << "reader " << r << " saw a torn transaction of writer " << w;
              if (r % 2 == 1) {
                std::vector<float> v;
                ASSERT_TRUE((*t)->GetVector(VecKeyOf(w, j), simd::Metric::kIP, &v).ok());
                ASSERT_EQ(v.size(), kKvDim);
                ASSERT_EQ(v[0], static_cast<float>(g)) << VecKeyOf(w, j);
                ASSERT_EQ(v[1], static_cast<float>(w));
                ASSERT_EQ(v[2], static_cast<float>(j));
              }
            }
            ASSERT_GE(gen[w], last[w]) << "writer " << w << " went back in time";
            ASSERT_LE(static_cast<uint64_t>(gen[w]), attempted[w].load());
            last[w] = gen[w];
          }
          if (r % 2 == 0) {
            // Flat search over every vector record of the snapshot: scores are
            // the generations just read.
            const float q[kKvDim] = {1.0f, 0.0f, 0.0f, 0.0f};
            std::vector<KeyHit> hits;
            ASSERT_TRUE((*t)->SearchSimilar(q, kKvDim, simd::Metric::kIP, kWriters * kKeys + 3, nullptr, false, &hits).ok());
            ASSERT_EQ(hits.size(), static_cast<size_t>(kWriters * kKeys));
            for (const KeyHit& h : hits) {
              const int w = h.key[1] - '0';
              ASSERT_TRUE(w >= 0 && w < kWriters) << h.key;
              ASSERT_EQ(h.score, static_cast<float>(gen[w])) << h.key << " disagrees with the keys of its transaction";
            }
          }
          ++reads;
        }
      });
    }
    for (auto& t : threads) t.join();
    std::printf("keyspace (%s): at least %d transactions per writer, %llu snapshot reads, %llu flushes, "
                "%lld mappings released while running\n",
                in_memory ? "in memory" : "disk", rounds, static_cast<unsigned long long>(reads.load()),
                static_cast<unsigned long long>(flushes.load()), static_cast<long long>(env.released()));
    EXPECT_GT(reads.load(), 0u);
    if (in_memory) {
      EXPECT_GE(flushes.load(), 3u) << "the segment list hardly changed while readers ran: the test proves little";
    } else {
      EXPECT_GT(env.released(), 0) << "no segment was retired while readers ran: the test proves nothing";
    }
    ASSERT_TRUE(db->Close().ok());
  }
  EXPECT_EQ(env.live(), 0) << "a segment mapping outlived the database";
}

TEST(Concurrency, KeyspaceEightReadersTwoWritersFlushesAndMergesSeeConsistentSnapshots) {
  KeyspaceReadersWritersFlushesAndMerges(false);
}

TEST(Concurrency, KeyspaceInMemoryEightReadersTwoWritersBackgroundFlushesAndMergesSeeConsistentSnapshots) {
  KeyspaceReadersWritersFlushesAndMerges(true);
}

}  // namespace
}  // namespace pomai::engine
