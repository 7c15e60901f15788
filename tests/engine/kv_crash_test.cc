// Crash recovery of a keyspace database: a child process commits
// transactions with fsync ALWAYS (flushing now and then, besides the
// background flushes and merges its small memtable budget causes) and is
// killed with SIGKILL at a random moment. After reopening, every transaction
// the child saw acknowledged is present and whole, the one in flight is
// whole or absent, and nothing else is there.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "engine/db.h"
#include "kv_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

constexpr int kKeysPerTxn = 6;
constexpr uint32_t kDim = 8;

Options CrashOptions(const std::string& path) {
  Options o;
  o.path = path;
  o.fsync = true;
  o.search_threads = 1;
  o.memtable_budget_bytes = 16 * 1024;  // background flushes and merges happen too
  return o;
}

std::string KeyOf(uint64_t txn, int j) { return "t" + std::to_string(txn) + "/" + std::to_string(j); }
std::string ValueOf(uint64_t txn, int j) { return std::string(20 + (txn * 7 + j) % 50, static_cast<char>('a' + (txn + j) % 26)); }

// Child: commits transactions first, first+1, ... reporting each
// acknowledged one on `fd`; never returns.
[[noreturn]] void CommitterChild(const std::string& path, uint64_t first, int fd) {
  auto r = DB::Open(CrashOptions(path));
  if (!r.ok()) _exit(3);
  auto db = std::move(r).value();
  IndexStats stats;
  if (db->GetIndexStats("ci", &stats).code() == Code::kNotFound) {
    IndexConfig c;
    c.dim = kDim;
    c.metric = simd::Metric::kL2;
    if (!db->CreateIndex("ci", c).ok()) _exit(9);
  }
  for (uint64_t b = first;; ++b) {
    auto t = db->Begin(TxnMode::kReadWrite);
    if (!t.ok()) _exit(4);
    for (int j = 0; j < kKeysPerTxn; ++j) {
      if (!(*t)->Put(KeyOf(b, j), ValueOf(b, j)).ok()) _exit(5);
    }
    std::vector<float> v(kDim, static_cast<float>(b));
    if (!(*t)->UpsertVector("vec" + std::to_string(b), v.data(), kDim, simd::Metric::kL2, nullptr).ok()) _exit(5);
    if (!(*t)->Put("last", std::to_string(b)).ok()) _exit(5);
    if (!(*t)->IndexUpsert("ci", "e" + std::to_string(b), v.data(), kDim, nullptr).ok()) _exit(5);
    if (b > first && !(*t)->Delete(KeyOf(b - 1, 0)).ok()) _exit(5);  // deletes survive too
    if (!(*t)->Commit().ok()) _exit(6);
    if (::write(fd, &b, sizeof(b)) != sizeof(b)) _exit(7);
    if (b % 23 == 0 && !db->Flush().ok()) _exit(8);
  }
}

TEST(KvCrashRecovery, AcknowledgedTransactionsSurviveSigkillAndNoneIsPartial) {
  testing::TempDir dir;
  const int cycles = std::getenv("POMAI_CRASH_CYCLES") ? std::atoi(std::getenv("POMAI_CRASH_CYCLES")) : 20;
  std::mt19937 rng(4242);
  uint64_t next = 1;
  uint64_t total_acked = 0;
  std::set<uint64_t> run_starts;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    run_starts.insert(next);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      CommitterChild(dir.path(), next, fds[1]);
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 200));
    kill(pid, SIGKILL);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited by itself with status " << WEXITSTATUS(wstatus);
    uint64_t b = 0, last_acked = next - 1;
    while (read(fds[0], &b, sizeof(b)) == sizeof(b)) last_acked = b;
    close(fds[0]);
    total_acked += last_acked - (next - 1);

    auto db = testing::OpenKv(dir.path(), CrashOptions(dir.path()));
    ASSERT_NE(db, nullptr);
    auto t = testing::BeginRo(*db);
    // The one in flight may or may not have made it; it must be whole.
    const uint64_t in_flight = last_acked + 1;
    const bool flight_present = testing::GetValue(*t, KeyOf(in_flight, 1)).has_value();
    const uint64_t newest = flight_present ? in_flight : last_acked;
    for (uint64_t x = 1; x <= newest; ++x) {
      for (int j = 0; j < kKeysPerTxn; ++j) {
        auto got = testing::GetValue(*t, KeyOf(x, j));
        // Key 0 of a transaction is deleted by its successor in the same child run.
        const bool deleted = j == 0 && x < newest && !run_starts.count(x + 1);
        ASSERT_EQ(got, deleted ? std::nullopt : std::optional<std::string>(ValueOf(x, j)))
            << "txn " << x << " key " << j << " cycle " << cycle;
      }
      std::vector<float> v;
      ASSERT_TRUE(t->GetVector("vec" + std::to_string(x), simd::Metric::kL2, &v).ok()) << "txn " << x;
      ASSERT_EQ(v, std::vector<float>(kDim, static_cast<float>(x)));
    }
    EXPECT_EQ(testing::GetValue(*t, "last"), newest > 0 ? std::optional<std::string>(std::to_string(newest)) : std::nullopt);
    // Every transaction also put one entry in the index "ci".
    IndexStats stats;
    Status is = db->GetIndexStats("ci", &stats);
    if (newest > 0) {
      ASSERT_TRUE(is.ok()) << is.ToString();
      EXPECT_EQ(stats.node_count, newest) << "cycle " << cycle;
      std::vector<float> q(kDim, static_cast<float>(newest));
      std::vector<KeyHit> hits;
      // ef covering every entry makes the walk exhaustive: this checks that the
      // newest entry is in the recovered index, not the graph's recall on
      // this degenerate (collinear) data set.
      const uint32_t ef = static_cast<uint32_t>(newest + 64);
      ASSERT_TRUE(db->SearchIndex("ci", q.data(), kDim, 1, ef, &hits, nullptr).ok());
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].key, "e" + std::to_string(newest));
    }
    for (uint64_t x = newest + 1; x <= newest + 3; ++x) {
      for (int j = 0; j < kKeysPerTxn; ++j) ASSERT_EQ(testing::GetValue(*t, KeyOf(x, j)), std::nullopt) << "txn " << x;
    }
    t.reset();
    db.reset();
    next = newest + 1;
  }
  std::printf("%d cycles, %llu acknowledged transactions\n", cycles, static_cast<unsigned long long>(total_acked));
  EXPECT_GT(total_acked, static_cast<uint64_t>(cycles));  // the children did real work
}

}  // namespace
}  // namespace pomai::engine
