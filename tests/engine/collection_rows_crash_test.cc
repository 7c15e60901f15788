// Crash recovery of the default collection: a child process writes row
// batches with fsync ALWAYS (and flushes and compacts now and then, besides
// the background flushes and merges its small memtable budget causes) and is
// killed with SIGKILL at a random moment; after reopening, every batch the
// child saw acknowledged is present and whole, the batch in flight is either
// whole or absent, and nothing else is there.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "engine/db.h"
#include "engine_test_util.h"
#include "rows_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

constexpr uint32_t kDim = 16;
constexpr uint64_t kBatchSize = 20;
constexpr uint64_t kIdsPerBatch = 1000;  // batch b owns ids [b*1000, b*1000 + 20)

Options CrashOptions(const std::string& path) {
  Options o;
  o.path = path;
  o.fsync = true;
  o.search_threads = 1;
  o.memtable_budget_bytes = 256 * 1024;  // background flushes and merges happen too
  return o;
}

DefaultCollectionOptions CrashCollection() { return testing::RowsCollection(kDim, 3); }

// Child: writes batches first_batch, first_batch+1, ... reporting each
// acknowledged batch number on `fd`; never returns.
[[noreturn]] void WriterChild(const std::string& path, uint64_t first_batch, int fd) {
  auto r = testing::TryOpenRows(CrashOptions(path), CrashCollection());
  if (!r.ok()) _exit(3);
  std::unique_ptr<DB> db = std::move(r).value();
  for (uint64_t b = first_batch;; ++b) {
    std::vector<std::vector<float>> vecs;
    std::vector<WriteOp> ops;
    vecs.reserve(kBatchSize);
    for (uint64_t j = 0; j < kBatchSize; ++j) {
      const uint64_t id = b * kIdsPerBatch + j;
      vecs.push_back(testing::VectorFor(id, 0, kDim));
      ops.push_back({WriteOp::Kind::kPut, id, vecs.back().data(), {}});
    }
    if (!db->Write(ops.data(), ops.size()).ok()) _exit(4);
    if (::write(fd, &b, sizeof(b)) != sizeof(b)) _exit(5);
    if (b % 37 == 0 && !db->Flush().ok()) _exit(6);
    if (b % 89 == 0 && !db->Compact(true).ok()) _exit(7);
  }
}

TEST(CollectionRowsCrash, AcknowledgedBatchesSurviveSigkillAndNoBatchIsPartial) {
  testing::TempDir dir;
  const int cycles = std::getenv("POMAI_CRASH_CYCLES") ? std::atoi(std::getenv("POMAI_CRASH_CYCLES")) : 50;
  std::mt19937 rng(12345);
  std::vector<uint64_t> acked_all;
  uint64_t next_batch = 1;
  size_t segments = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      WriterChild(dir.path(), next_batch, fds[1]);
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 150));
    kill(pid, SIGKILL);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited by itself with status " << WEXITSTATUS(wstatus);
    std::vector<uint64_t> acked;
    uint64_t b;
    while (read(fds[0], &b, sizeof(b)) == sizeof(b)) acked.push_back(b);
    close(fds[0]);
    const uint64_t in_flight = acked.empty() ? next_batch : acked.back() + 1;
    acked_all.insert(acked_all.end(), acked.begin(), acked.end());

    auto db = testing::OpenRows(CrashOptions(dir.path()), CrashCollection());
    ASSERT_NE(db, nullptr) << "cycle " << cycle;
    for (uint64_t batch : acked_all) {
      for (uint64_t j = 0; j < kBatchSize; ++j) {
        std::vector<float> got;
        const uint64_t id = batch * kIdsPerBatch + j;
        Status s = db->Get(id, &got, nullptr);
        ASSERT_TRUE(s.ok()) << "cycle " << cycle << ": acknowledged id " << id << " lost: " << s.ToString();
        ASSERT_EQ(got, testing::VectorFor(id, 0, kDim));
      }
    }
    uint64_t present = 0;
    for (uint64_t j = 0; j < kBatchSize; ++j) present += db->Exists(in_flight * kIdsPerBatch + j).value();
    ASSERT_TRUE(present == 0 || present == kBatchSize) << "cycle " << cycle << ": batch in flight is partial (" << present << ")";
    if (present) acked_all.push_back(in_flight);
    ASSERT_FALSE(db->Exists((in_flight + 1) * kIdsPerBatch).value()) << "a batch never written appeared";
    ASSERT_EQ(db->Count().value(), acked_all.size() * kBatchSize) << "cycle " << cycle;
    next_batch = in_flight + 1;
    segments = db->TEST_SegmentCount();
  }
  std::printf("%d cycles, %zu batches, %zu segments at the end\n", cycles, acked_all.size(), segments);
  EXPECT_GT(acked_all.size(), static_cast<size_t>(cycles)) << "the child should get batches acknowledged";
}

}  // namespace
}  // namespace pomai::engine
