// The crash harness's first half: SIGKILL of a real process (the second,
// crash_points_test.cc, cuts power at every I/O point of a script;
// docs/CRASH_TESTING.md). A child process writes to one database through
// both faces, with fsync ALWAYS: record r of an endless history (RecordAt,
// a function of r alone) is a pomaidb row batch (puts, an overwrite, a
// delete, a put then delete of one id), a pomaidb row array, an alopex
// transaction (byte values, vector records, deletes, entries of the named
// collection), or the creation, re-creation or drop of that collection. It
// flushes and compacts now and then, besides the background flushes and
// merges its small memtable budget causes, reports each acknowledged record
// on a pipe, and is killed with SIGKILL at a random moment. After every
// reopen the database must show the state after records 1..k of the history
// (crash_script.h's CheckPrefix, the rule of the crash-point suite), with k
// the last acknowledged record or the one in flight: every acknowledged
// record whole, the one in flight whole or absent, nothing of the records
// after it. The next child goes on from record k + 1. POMAI_CRASH_CYCLES
// sets the number of kills (default 20).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crash_script.h"
#include "engine/db.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using namespace crash;

// The named collection's life in every period of 60 records: created at 5,
// re-created over itself (its entries replaced by none) at 30, dropped at 45.
constexpr uint64_t kPeriod = 60;
constexpr uint64_t kCreateAt = 5, kRecreateAt = 30, kDropAt = 45;
constexpr uint64_t kIdsPerRecord = 8;  // a row record r writes ids [8r, 8r + 8); ids 0..7 (kProbeRowId) never

Options CrashOptions(const std::string& path) { return crash::CrashOptions(path, true, nullptr, 16 * 1024); }

std::string Id(uint64_t r, uint64_t j) { return std::to_string(r * kIdsPerRecord + j); }
uint32_t Version(uint64_t r, uint32_t j) { return static_cast<uint32_t>(r * 16 + j); }

// Record r (r >= 1) of the history.
ScriptStep RecordAt(uint64_t r) {
  const uint64_t phase = r % kPeriod;
  if (phase == kCreateAt || phase == kRecreateAt) return {ScriptStep::kCreateIndex, {}};
  if (phase == kDropAt) return {ScriptStep::kDropIndex, {}};
  ScriptStep st;
  const bool older = r > 6;  // records r - 3 and r - 6 exist (and are of r's kind unless a collection record)
  if (r % 3 == 1) {  // the alopex face: one transaction
    st.kind = ScriptStep::kTxn;
    const std::string t = "t" + std::to_string(r) + "/";
    for (uint32_t j = 0; j < 3; ++j) st.ops.push_back({ScriptOp::kPut, t + std::to_string(j), Version(r, j)});
    st.ops.push_back({ScriptOp::kVector, "v" + std::to_string(r), Version(r, 3)});
    st.ops.push_back({ScriptOp::kPut, "last", Version(r, 4)});  // overwritten by every transaction
    if (older) {
      st.ops.push_back({ScriptOp::kDelete, "t" + std::to_string(r - 3) + "/0"});
      if (r % 4 == 1) st.ops.push_back({ScriptOp::kVector, "v" + std::to_string(r - 3), Version(r, 5)});
      if (r % 5 == 2) st.ops.push_back({ScriptOp::kDelete, "v" + std::to_string(r - 6)});
      if (r % 7 == 3) {  // delete then re-put in one transaction
        st.ops.push_back({ScriptOp::kDelete, "t" + std::to_string(r - 3) + "/1"});
        st.ops.push_back({ScriptOp::kPut, "t" + std::to_string(r - 3) + "/1", Version(r, 6)});
      }
    }
    if (r % 2 == 0) {  // put then delete in one transaction
      st.ops.push_back({ScriptOp::kVector, "x" + std::to_string(r), Version(r, 7)});
      st.ops.push_back({ScriptOp::kDelete, "x" + std::to_string(r)});
    }
    if (phase > kCreateAt && phase < kDropAt) {  // the collection exists
      st.ops.push_back({ScriptOp::kIndexPut, "e" + std::to_string(r), Version(r, 8)});
      if (older) st.ops.push_back({ScriptOp::kIndexPut, "e" + std::to_string(r - 3), Version(r, 9)});
      if (older && r % 4 == 2) st.ops.push_back({ScriptOp::kIndexDelete, "e" + std::to_string(r - 6)});
    }
    return st;
  }
  // The pomaidb face: a row batch (r % 3 == 0; every other one with
  // attributes, only puts) or a row array (r % 3 == 2).
  st.kind = r % 3 == 2 ? ScriptStep::kRowArray : r % 6 == 3 ? ScriptStep::kAttrRows : ScriptStep::kRows;
  for (uint32_t j = 0; j < 4; ++j) st.ops.push_back({ScriptOp::kRowPut, Id(r, j), Version(r, j)});
  if (!older) return st;
  if (st.kind == ScriptStep::kRowArray || st.kind == ScriptStep::kAttrRows) {
    st.ops.push_back({ScriptOp::kRowPut, Id(r - 3, 0), Version(r, 4)});  // overwrite
    return st;
  }
  st.ops.push_back({ScriptOp::kRowPut, Id(r - 3, 1), Version(r, 4)});  // overwrite
  st.ops.push_back({ScriptOp::kRowDelete, Id(r - 3, 2)});
  st.ops.push_back({ScriptOp::kRowPut, Id(r, 5), Version(r, 5)});  // put then delete in one batch
  st.ops.push_back({ScriptOp::kRowDelete, Id(r, 5)});
  return st;
}

// Records 1..n.
std::vector<ScriptStep> HistoryTo(uint64_t n) {
  std::vector<ScriptStep> h;
  for (uint64_t r = 1; r <= n; ++r) h.push_back(RecordAt(r));
  return h;
}

// Child: commits records first, first + 1, ... reporting each acknowledged
// one on `fd`; never returns.
[[noreturn]] void WriterChild(const std::string& path, uint64_t first, int fd) {
  auto opened = OpenWithRows(CrashOptions(path));
  if (!opened.ok()) _exit(3);
  std::unique_ptr<DB> db = std::move(opened).value();
  for (uint64_t r = first;; ++r) {
    if (!CommitStep(db.get(), RecordAt(r)).ok()) _exit(4);
    if (::write(fd, &r, sizeof(r)) != sizeof(r)) _exit(5);
    if (r % 23 == 0 && !db->Flush().ok()) _exit(6);
    if (r % 89 == 0 && !db->Compact(true).ok()) _exit(7);
  }
}

TEST(CrashTest, BothFacesKeepAPrefixOfTheirHistoryAcrossSigkills) {
  testing::TempDir dir;
  const char* env = std::getenv("POMAI_CRASH_CYCLES");
  const int cycles = env ? std::atoi(env) : 20;
  ASSERT_GT(cycles, 0) << "POMAI_CRASH_CYCLES=" << (env ? env : "");
  std::mt19937 rng(4242);
  uint64_t next = 1;  // the first record of the next child
  uint64_t in_flight_present = 0;
  size_t max_segments = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      WriterChild(dir.path(), next, fds[1]);
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 200));
    kill(pid, SIGKILL);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited by itself with status " << WEXITSTATUS(wstatus);
    uint64_t r = 0, last_acked = next - 1;
    while (read(fds[0], &r, sizeof(r)) == sizeof(r)) {
      ASSERT_EQ(r, last_acked + 1) << "the child acknowledges records in order";
      last_acked = r;
    }
    close(fds[0]);

    auto opened = OpenWithRows(CrashOptions(dir.path()));
    ASSERT_TRUE(opened.ok()) << "cycle " << cycle << ": reopen: " << opened.status().ToString();
    std::unique_ptr<DB> db = std::move(opened).value();
    // The universe read back reaches three records past the one in flight:
    // nothing of them may be there.
    std::string why;
    auto k = CheckPrefix(db.get(), HistoryTo(last_acked + 4), last_acked, last_acked + 1, &why);
    ASSERT_TRUE(k.has_value()) << "cycle " << cycle << " (" << last_acked << " records acknowledged): " << why;
    in_flight_present += *k > last_acked;
    max_segments = std::max(max_segments, db->TEST_SegmentCount());
    ASSERT_TRUE(db->Close().ok());
    next = *k + 1;
  }
  std::printf("%d cycles, %llu records (%llu in flight and present), at most %zu segments after a reopen\n", cycles,
              static_cast<unsigned long long>(next - 1), static_cast<unsigned long long>(in_flight_present),
              max_segments);
  EXPECT_GT(next - 1, static_cast<uint64_t>(2 * cycles)) << "the children did real work";
  EXPECT_GE(max_segments, 2u) << "flushes happened";
}

}  // namespace
}  // namespace pomai::engine
