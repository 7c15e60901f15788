// Crash at every I/O point of one database carrying both faces (the
// harness's second half; the first is crash_test.cc's SIGKILL of a real
// process; docs/CRASH_TESTING.md). A scripted workload (MakeScript: alopex
// transactions of puts, deletes, vector upserts and named-collection
// entries, the collection created, dropped and re-created; pomaidb row
// batches and row arrays of the default collection; explicit flushes, a
// forced compaction, a small memtable budget so that background flushes and
// merges of more than max_segments segments happen; closes and reopens)
// runs on a PowerLossEnv that "loses power" at I/O point N. The directory is
// then rewritten to what a power cut leaves (or left as it is: a process
// crash) and reopened. The rule (crash_script.h's CheckPrefix): the database
// shows the state after a prefix of the committed history, for both faces
// at once: with fsync ALWAYS, or after a process crash, one that holds every
// acknowledged commit (plus, perhaps, the one in flight); with fsync NEVER
// and a power cut any prefix that holds what the last successful Flush or
// Close made durable. No commit is ever partial.
//
// The second half injects EIO and ENOSPC, once and sticky, at every Append,
// Sync, SyncDir, Rename and Map (FaultInjectionEnv): a failed commit leaves
// the database refusing commits (the WAL error is sticky) while reads show
// exactly the acknowledged commits, and after a reopen (with or without a
// power cut) every acknowledged commit is back and nothing else.
//
// By default a deterministic subset of the points spread over all of them
// runs (4,100 crash points, 200 double crashes and 1,200 fault points);
// POMAI_CRASH_POINTS_ALL=1 runs every point, POMAI_CRASH_POINTS_SCALE=F
// scales the budgets (support/crash_points.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "support/crash_points.h"
#include "support/fault_env.h"
#include "support/power_loss_env.h"
#include "crash_script.h"
#include "db_test_util.h"

namespace pomai::engine {
namespace {

using namespace crash;
using testing::PointsToRun;
using testing::ScratchDir;

// The script: 120 transactions. Each puts new byte keys and a new vector
// record and overwrites older ones; some delete, delete then re-put, or put
// then delete a key in the same transaction. From transaction 12 on, the
// index exists and transactions also upsert, overwrite and delete its
// entries; it is dropped and re-created at 80. After every second
// transaction, a row batch or a row array of the default collection (60 in
// all). Explicit flushes every 8 transactions, a forced compaction at 100,
// reopens after 30, 70 and 110.
std::vector<ScriptStep> MakeScript() {
  std::mt19937 rng(20261122);
  std::vector<ScriptStep> script;
  std::vector<std::string> bytes_keys, vec_keys, entries, row_ids;
  uint32_t version = 0;
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  for (int t = 0; t < 120; ++t) {
    // Created at 12; dropped and re-created (a new cid: the old entries unreachable, then merged away) at 80.
    if (t == 80) script.push_back({ScriptStep::kDropIndex, {}});
    if (t == 12 || t == 80) script.push_back({ScriptStep::kCreateIndex, {}});
    ScriptStep st;
    const int fresh = 2 + static_cast<int>(rng() % 2);
    for (int j = 0; j < fresh; ++j) {
      bytes_keys.push_back("k" + std::to_string(bytes_keys.size()));
      st.ops.push_back({ScriptOp::kPut, bytes_keys.back(), ++version});
    }
    vec_keys.push_back("v" + std::to_string(vec_keys.size()));
    st.ops.push_back({ScriptOp::kVector, vec_keys.back(), ++version});
    st.ops.push_back({ScriptOp::kPut, pick(bytes_keys), ++version});  // overwrite
    if (t % 2 == 1) st.ops.push_back({ScriptOp::kVector, pick(vec_keys), ++version});
    if (t % 3 == 1) st.ops.push_back({ScriptOp::kDelete, pick(bytes_keys)});
    if (t % 5 == 2) st.ops.push_back({ScriptOp::kDelete, pick(vec_keys)});
    if (t % 7 == 3) {  // delete then re-put in the same transaction
      std::string k = pick(bytes_keys);
      st.ops.push_back({ScriptOp::kDelete, k});
      st.ops.push_back({ScriptOp::kPut, k, ++version});
    }
    if (t % 6 == 4) {  // put then delete in the same transaction
      std::string k = pick(vec_keys);
      st.ops.push_back({ScriptOp::kVector, k, ++version});
      st.ops.push_back({ScriptOp::kDelete, k});
    }
    if (t >= 12) {
      const int fresh_entries = 1 + static_cast<int>(rng() % 2);
      for (int j = 0; j < fresh_entries; ++j) {
        entries.push_back("e" + std::to_string(entries.size()));
        st.ops.push_back({ScriptOp::kIndexPut, entries.back(), ++version});
      }
      if (t % 3 == 0) st.ops.push_back({ScriptOp::kIndexPut, pick(entries), ++version});
      if (t % 4 == 1) st.ops.push_back({ScriptOp::kIndexDelete, pick(entries)});
    }
    script.push_back(std::move(st));
    if (t % 2 == 1) {  // the pomaidb workload: new rows, overwrites, deletes, put then delete in one batch
      ScriptStep rows;
      rows.kind = t / 2 % 2 ? ScriptStep::kRowArray : ScriptStep::kRows;
      const int fresh_rows = 3 + static_cast<int>(rng() % 4);
      for (int j = 0; j < fresh_rows; ++j) {
        row_ids.push_back(std::to_string(row_ids.size() * 7 + 3));
        rows.ops.push_back({ScriptOp::kRowPut, row_ids.back(), ++version});
      }
      rows.ops.push_back({ScriptOp::kRowPut, pick(row_ids), ++version});  // overwrite
      if (rows.kind == ScriptStep::kRows) {
        rows.ops.push_back({ScriptOp::kRowDelete, pick(row_ids)});
        const std::string k = pick(row_ids);
        rows.ops.push_back({ScriptOp::kRowPut, k, ++version});
        rows.ops.push_back({ScriptOp::kRowDelete, k});
      }
      script.push_back(std::move(rows));
    }
    if (t % 6 == 3) {  // rows with attributes: new ids and an overwrite of a live one
      ScriptStep attr_rows;
      attr_rows.kind = ScriptStep::kAttrRows;
      for (int j = 0; j < 2; ++j) {
        row_ids.push_back(std::to_string(row_ids.size() * 7 + 3));
        attr_rows.ops.push_back({ScriptOp::kRowPut, row_ids.back(), ++version});
      }
      attr_rows.ops.push_back({ScriptOp::kRowPut, pick(row_ids), ++version});
      script.push_back(std::move(attr_rows));
    }
    if (t % 12 == 9) {  // an attribute update of rows live now
      State now;
      for (const ScriptStep& st : History(script)) Apply(st, &now);
      ScriptStep update;
      update.kind = ScriptStep::kUpdateAttrs;
      for (const auto& [id, rec] : now.rows) {
        if (id != kProbeRowId && update.ops.size() < 3 && rng() % 2 == 0)
          update.ops.push_back({ScriptOp::kRowAttr, std::to_string(id), ++version});
      }
      if (!update.ops.empty()) script.push_back(std::move(update));
    }
    if (t % 8 == 5) script.push_back({ScriptStep::kFlush, {}});  // with the background flushes: merges
    if (t > 12 && t % 10 == 6) script.push_back({ScriptStep::kSearch, {}});
    if (t == 100) script.push_back({ScriptStep::kCompact, {}});
    if (t % 40 == 30) script.push_back({ScriptStep::kReopen, {}});
  }
  return script;
}

Options CrashOptions(const std::string& path, bool fsync, Env* env) {
  return crash::CrashOptions(path, fsync, env, 4 * 1024);
}

struct ScriptRun {
  bool opened = false;
  size_t acked = 0;      // commits acknowledged, in history order
  size_t attempted = 0;  // commits tried (acked, plus the failed one if any)
  size_t durable = 0;    // commits acknowledged before the last successful Flush or Close
  std::string first_error;
  int segments_seen = 0;  // the most segments seen between two steps
  int merges_seen = 0;    // times the segment count was seen to drop
};

using CommitErrorHook = std::function<void(DB*, const Status&, size_t acked)>;

// Runs the script until the first failed commit or reopen; a failed Flush or
// Close ends it too when `stop_on_any_error`. The database is then
// destroyed, as a crashed process would leave it.
ScriptRun RunScript(const std::vector<ScriptStep>& script, const Options& o, bool stop_on_any_error,
                        const CommitErrorHook& on_commit_error = nullptr) {
  ScriptRun r;
  auto opened = OpenWithRows(o);
  if (!opened.ok()) {
    r.first_error = "open: " + opened.status().ToString();
    return r;
  }
  r.opened = true;
  std::unique_ptr<DB> db = std::move(opened).value();
  auto fail = [&](const std::string& what, const Status& s) {
    if (r.first_error.empty()) r.first_error = what + ": " + s.ToString();
  };
  size_t last_segments = 0;
  for (const ScriptStep& st : script) {
    const size_t segments = db->TEST_SegmentCount();
    if (segments < last_segments) ++r.merges_seen;
    last_segments = segments;
    r.segments_seen = std::max(r.segments_seen, static_cast<int>(segments));
    if (st.commit()) {
      ++r.attempted;
      Status s = CommitStep(db.get(), st);
      if (s.ok()) {
        ++r.acked;
        continue;
      }
      fail("commit", s);
      if (on_commit_error) on_commit_error(db.get(), s, r.acked);
      break;
    }
    if (st.kind == ScriptStep::kSearch) {
      IndexStats stats;
      Status s = db->GetIndexStats(kIndex, &stats);
      const std::vector<float> q(kDim, 0.0f);
      std::vector<KeyHit> hits;
      if (s.ok()) s = db->SearchIndex(kIndex, q.data(), kDim, 3, 16, "", &hits, nullptr);
      if (!s.ok()) fail("search", s);
      if (!s.ok() && stop_on_any_error) break;
      continue;
    }
    if (st.kind == ScriptStep::kFlush || st.kind == ScriptStep::kCompact) {
      const bool flush = st.kind == ScriptStep::kFlush;
      Status s = flush ? db->Flush() : db->Compact(true);
      if (s.ok() && flush) r.durable = r.acked;
      if (!s.ok()) fail(flush ? "flush" : "compact", s);
      if (!s.ok() && stop_on_any_error) break;
      continue;
    }
    Status s = db->Close();  // kReopen
    if (s.ok()) r.durable = r.acked;
    else fail("close", s);
    db.reset();
    if (!s.ok() && stop_on_any_error) break;
    auto again = OpenWithRows(o);
    if (!again.ok()) {
      fail("reopen", again.status());
      break;
    }
    db = std::move(again).value();
  }
  db.reset();
  return r;
}

enum class Cut { kPowerLoss, kTornTails, kProcessCrash };

const char* CutName(Cut c) {
  static const char* const kNames[] = {"power loss", "power loss, torn tails", "process crash"};
  return kNames[static_cast<int>(c)];
}

// Reopens `path` after a crash and checks it against the history; then the
// database must take a commit, flush and close cleanly.
void CheckRecovered(const std::string& path, bool fsync, const std::vector<ScriptStep>& history, size_t lo, size_t hi,
                    const std::string& where) {
  testing::PowerLossEnv env(path);  // the POSIX calls, minus the real fsyncs
  auto db = OpenWithRows(CrashOptions(path, fsync, &env));
  ASSERT_TRUE(db.ok()) << where << ": reopen: " << db.status().ToString();
  std::string why;
  auto k = CheckPrefix(db->get(), history, lo, hi, &why);
  ASSERT_TRUE(k.has_value()) << where << ": " << why;
  Status s = ProbeCommit(db->get());
  ASSERT_TRUE(s.ok()) << where << ": commit after recovery: " << s.ToString();
  s = (*db)->Flush();
  ASSERT_TRUE(s.ok()) << where << ": flush after recovery: " << s.ToString();
  s = (*db)->Close();
  ASSERT_TRUE(s.ok()) << where << ": close after recovery: " << s.ToString();
}

void CrashAtEveryPoint(bool fsync, Cut cut, uint64_t budget) {
  const auto script = MakeScript();
  const auto history = History(script);
  const auto t0 = std::chrono::steady_clock::now();

  uint64_t total = 0;
  {
    ScratchDir root;
    testing::PowerLossEnv env(root.file("db"));
    ScriptRun r = RunScript(script, CrashOptions(root.file("db"), fsync, &env), true);
    ASSERT_TRUE(r.first_error.empty()) << r.first_error;
    ASSERT_EQ(r.acked, history.size());
    // The workload does what it claims: flushes and merges.
    EXPECT_GE(r.segments_seen, 3);
    EXPECT_GE(r.merges_seen, 2) << r.segments_seen << " segments at most";
    total = env.points();
  }
  ASSERT_GT(total, 200u);

  uint64_t checked = 0;
  for (uint64_t n : PointsToRun(total, budget)) {
    ScratchDir root;
    const std::string path = root.file("db");
    ScriptRun r;
    std::string op;
    {
      testing::PowerLossEnv env(path);
      env.CrashAt(n);
      r = RunScript(script, CrashOptions(path, fsync, &env), true);
      // The run may end before point n (background flushes make the count vary a little).
      if (!r.first_error.empty()) {
        ASSERT_TRUE(env.crashed()) << "point " << n << ": error without a crash: " << r.first_error;
      }
      op = env.crash_op();
      if (cut != Cut::kProcessCrash)
        env.SimulatePowerLoss(cut == Cut::kTornTails ? testing::PowerLossEnv::Unsynced::kHalf
                                                     : testing::PowerLossEnv::Unsynced::kDropped);
    }
    const size_t lo = fsync || cut == Cut::kProcessCrash ? r.acked : r.durable;
    const size_t hi = std::min(r.attempted, history.size());
    CheckRecovered(path, fsync, history, lo, hi,
                   "point " + std::to_string(n) + " of " + std::to_string(total) + " (" + op + "; " + r.first_error +
                       "; " + std::to_string(r.acked) + " acknowledged)");
    if (::testing::Test::HasFatalFailure()) return;
    ++checked;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[crash points] fsync=%s, %s: %llu I/O points in the script, %llu crash points checked in %.1f s\n",
              fsync ? "always" : "never", CutName(cut), static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(checked), secs);
  ::testing::Test::RecordProperty("crash_points_checked", static_cast<int>(checked));
}

// Power loss, fsync ALWAYS: every acknowledged commit survives.
TEST(CrashPoints, PowerLossFsyncAlwaysKeepsEveryAcknowledgedCommit) { CrashAtEveryPoint(true, Cut::kPowerLoss, 1100); }
// Power loss, fsync NEVER: a prefix of the history, at least what Flush or Close made durable.
TEST(CrashPoints, PowerLossFsyncNeverLeavesAPrefix) { CrashAtEveryPoint(false, Cut::kPowerLoss, 1000); }
// Power loss that keeps half of every unsynced tail: torn WAL records are dropped.
TEST(CrashPoints, PowerLossWithTornTailsFsyncAlways) { CrashAtEveryPoint(true, Cut::kTornTails, 600); }
TEST(CrashPoints, PowerLossWithTornTailsFsyncNever) { CrashAtEveryPoint(false, Cut::kTornTails, 600); }
// Process crash (the OS keeps what it was given): every acknowledged commit
// survives whatever the fsync policy.
TEST(CrashPoints, ProcessCrashFsyncAlwaysKeepsEveryAcknowledgedCommit) { CrashAtEveryPoint(true, Cut::kProcessCrash, 400); }
TEST(CrashPoints, ProcessCrashFsyncNeverKeepsEveryAcknowledgedCommit) { CrashAtEveryPoint(false, Cut::kProcessCrash, 400); }

// A second power cut while recovering from the first, at every I/O point of
// the recovery, then commits after a clean recovery (support/crash_points.h).
TEST(CrashPoints, PowerLossDuringRecoveryChangesNothing) {
  const auto script = MakeScript();
  const auto history = History(script);
  testing::RecoveryCrashCase<DB> c;
  c.label = "[crash points]";
  c.unit = "commits";
  c.steps = history.size();
  c.run = [&](const std::string& path, Env* env, size_t* acked, size_t* attempted) {
    ScriptRun r = RunScript(script, CrashOptions(path, true, env), true);
    *acked = r.acked;
    *attempted = r.attempted;
    return r.first_error;
  };
  c.open = [](const std::string& path, Env* env) { return OpenWithRows(CrashOptions(path, true, env)); };
  c.check = [&](DB* db, size_t lo, size_t hi, std::string* why) { return CheckPrefix(db, history, lo, hi, why); };
  c.write = [&](DB* db, size_t step) { return CommitStep(db, history[step]); };
  c.freeze = [](DB* db) { return db->Flush(); };
  testing::PowerLossDuringRecoveryChangesNothing(c, 200);
}

// Regression: a merge decides which collections are dead from the
// configurations in its segments only. With fsync NEVER a drop still in the
// memtable is not durable: a power cut takes it back, and a forced merge that
// had already dropped the collection's rows from its (durable) output would
// have lost them for good.
TEST(CrashPoints, AMergeKeepsTheRowsOfACollectionWhoseDropIsNotDurable) {
  ScratchDir root;
  const std::string path = root.file("db");
  constexpr uint32_t kDimI = 4;
  {
    testing::PowerLossEnv env(path);
    Options o = crash::CrashOptions(path, false, &env, 64 << 20);  // no background flush
    auto db = DB::Open(o);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    IndexConfig config;
    config.dim = kDimI;
    ASSERT_TRUE((*db)->CreateIndex("i", config).ok());
    for (int part = 0; part < 2; ++part) {
      auto txn = (*db)->Begin(TxnMode::kReadWrite);
      ASSERT_TRUE(txn.ok());
      for (int k = 0; k < 10; ++k) {
        const float v[kDimI] = {static_cast<float>(part), static_cast<float>(k), 1, 2};
        ASSERT_TRUE((*txn)->IndexUpsert("i", "e" + std::to_string(part * 10 + k), v, kDimI, nullptr).ok());
      }
      ASSERT_TRUE((*txn)->Commit().ok());
      ASSERT_TRUE((*db)->Flush().ok());  // durable: one segment each
    }
    ASSERT_TRUE((*db)->DropIndex("i").ok());  // in the memtable and the unsynced WAL only
    ASSERT_TRUE((*db)->Compact(true).ok());   // durable: one segment
    EXPECT_EQ((*db)->TEST_SegmentCount(), 1u);
    env.CrashAt(env.points() + 1);  // the power goes before Close syncs the WAL
    db->reset();
    env.SimulatePowerLoss(testing::PowerLossEnv::Unsynced::kDropped);
  }
  Options o = CrashOptions(path, false, nullptr);
  auto db = DB::Open(o);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  IndexStats stats;
  ASSERT_TRUE((*db)->GetIndexStats("i", &stats).ok()) << "the drop was not durable: the index is back";
  EXPECT_EQ(stats.node_count, 20u) << "and so are its rows";
}

// Regression: a merge whose manifest record was written but whose fdatasync
// failed leaves that record readable in the page cache. The next open
// replayed it and removed the merge's inputs as obsolete; a power cut then
// took the record back, and the durable manifest named removed segments. An
// open now makes the manifest it replayed durable before it removes anything.
TEST(CrashPoints, AnOpenRemovesNoFileForAManifestRecordThatIsNotDurable) {
  ScratchDir root;
  const std::string path = root.file("db");
  testing::PowerLossEnv plenv(path);
  testing::FaultInjectionEnv env(&plenv);
  Options o = crash::CrashOptions(path, true, &env, 64 << 20);  // no background flush
  {
    auto db = DB::Open(o);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    testing::PutCommit(**db, "a", "1");
    ASSERT_TRUE((*db)->Flush().ok());
    testing::PutCommit(**db, "b", "2");
    ASSERT_TRUE((*db)->Flush().ok());
    ASSERT_TRUE((*db)->Compact(false).ok());  // two segments: nothing for the policy to merge
    ASSERT_EQ((*db)->TEST_SegmentCount(), 2u);
    // The forced merge syncs its segment (1), then appends its edit to the
    // manifest log and syncs that (2, which fails).
    env.FailNth(testing::Op::kSync, 2, EIO);
    EXPECT_FALSE((*db)->Compact(true).ok());
    env.ClearFaults();
  }
  {
    auto db = DB::Open(o);  // replays the merge's record, not durable yet
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    testing::PutCommit(**db, "c", "3");  // its new WAL file's directory sync makes any removal durable
  }
  plenv.SimulatePowerLoss();
  auto db = DB::Open(o);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(testing::Committed(**db, "a"), "1");
  EXPECT_EQ(testing::Committed(**db, "b"), "2");
  EXPECT_EQ(testing::Committed(**db, "c"), "3");
}

// Regression: with fsync NEVER, an open that failed after creating its WAL
// writer but before its first log file (here the directory fsync of the new
// log fails) crashed the process: the destructor's Close synced a writer
// that had no file. The first log file is now made by the first commit:
// that commit fails, the failure is sticky as a failed WAL write is, and
// Close, with no log file, succeeds.
TEST(CrashPoints, OpenThatFailsBeforeItsFirstLogFileReturnsAnError) {
  ScratchDir root;
  const std::string path = root.file("db");
  testing::PowerLossEnv plenv(path);
  testing::FaultInjectionEnv env(&plenv);
  {
    auto db = DB::Open(CrashOptions(path, false, &env));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(ProbeCommit(db->get()).ok());
    ASSERT_TRUE((*db)->Close().ok());
  }
  env.FailNth(testing::Op::kSyncDir, 1, EIO);
  {
    auto db = DB::Open(CrashOptions(path, false, &env));
    ASSERT_TRUE(db.ok()) << db.status().ToString();  // an open that only reads creates no file
    Status s = ProbeCommit(db->get());
    EXPECT_TRUE(s.IsIOError()) << s.ToString();
    env.ClearFaults();
    EXPECT_TRUE(ProbeCommit(db->get()).IsIOError());  // sticky
    EXPECT_TRUE((*db)->Close().ok());
  }
  auto db = DB::Open(CrashOptions(path, false, &env));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(testing::Committed(**db, "probe"), "p");
}

// Regression: when the rename of a new manifest's CURRENT succeeded but the
// directory fsync after it failed, the flush (or the merge) removed the
// segment that the manifest on disk already named, and the next open failed
// with "... names seg-..., which is missing". A new manifest (and so a
// rename of CURRENT) is written by the first LogAndApply of an open, so the
// armed call is the first change after a reopen: the flush of a commit, or a
// forced merge of the two segments the first session left (opened with
// max_segments 2, so that no background merge can come first).
TEST(CrashPoints, FailedManifestSyncLeavesAnOpenableDatabase) {
  for (const bool merge : {false, true}) {
    SCOPED_TRACE(merge ? "merge" : "flush");
    ScratchDir root;
    const std::string path = root.file("db");
    const auto history = History(MakeScript());  // two transactions, then a row batch
    Options o = crash::CrashOptions(path, true, nullptr, 0);
    o.max_segments = 2;
    {
      auto db = OpenWithRows(o);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      ASSERT_TRUE(CommitStep(db->get(), history[0]).ok());
      ASSERT_TRUE((*db)->Flush().ok());
      ASSERT_TRUE(CommitStep(db->get(), history[1]).ok());
      if (merge) {
        ASSERT_TRUE((*db)->Flush().ok());
      }
    }
    testing::FailSyncDirAfterRenameTo env("CURRENT");
    o.env = &env;
    o.max_segments = merge ? 2 : 1;
    {
      auto db = OpenWithRows(o);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      env.Arm(0);
      Status s = merge ? (*db)->Compact(true) : (*db)->Flush();
      EXPECT_FALSE(s.ok());
      EXPECT_EQ((*db)->TEST_SegmentCount(), merge ? 2u : 1u);  // nothing installed
      ASSERT_TRUE(CommitStep(db->get(), history[2]).ok());  // the log is fine: commits go on
    }  // a process crash, or a close: nothing reverts the rename
    o.env = nullptr;
    auto db = OpenWithRows(o);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    std::string why;
    EXPECT_TRUE(CheckPrefix(db->get(), history, 3, 3, &why).has_value()) << why;
  }
}

// ---- EIO / ENOSPC at every operation of each kind ----

struct FaultCounts {
  uint64_t checked = 0;
  uint64_t failed_commits = 0;  // runs where a commit failed (each checked sticky)
};

void FaultAtEveryOp(int err, bool sticky, Cut cut, uint64_t budget_per_kind, FaultCounts* counts) {
  const auto script = MakeScript();
  const auto history = History(script);
  uint64_t per_kind[static_cast<int>(testing::Op::kCount)] = {};
  {
    ScratchDir root;
    testing::PowerLossEnv plenv(root.file("db"));
    testing::FaultInjectionEnv env(&plenv);
    ScriptRun r = RunScript(script, CrashOptions(root.file("db"), true, &env), true);
    ASSERT_TRUE(r.first_error.empty()) << r.first_error;
    for (int k = 0; k < static_cast<int>(testing::Op::kCount); ++k) per_kind[k] = env.count(static_cast<testing::Op>(k));
  }
  static const char* const kKindNames[] = {"append", "sync", "syncdir", "rename", "map"};
  for (int kind = 0; kind < static_cast<int>(testing::Op::kCount); ++kind) {
    for (uint64_t n : PointsToRun(per_kind[kind], budget_per_kind)) {
      const std::string where = std::string(kKindNames[kind]) + " #" + std::to_string(n) + " of " +
                                std::to_string(per_kind[kind]) + ", " + std::strerror(err) +
                                (sticky ? ", sticky" : ", once") + ", then " + CutName(cut);
      ScratchDir root;
      const std::string path = root.file("db");
      ScriptRun r;
      {
        testing::PowerLossEnv plenv(path);
        testing::FaultInjectionEnv env(&plenv);
        env.FailNth(static_cast<testing::Op>(kind), n, err, sticky);
        r = RunScript(script, CrashOptions(path, true, &env), false, [&](DB* db, const Status& s, size_t acked) {
          ++counts->failed_commits;
          // Reads show exactly the acknowledged commits...
          std::string why;
          auto k = CheckPrefix(db, history, acked, acked, &why);
          EXPECT_TRUE(k.has_value()) << where << ": reads after a failed commit (" << s.ToString() << "): " << why;
          // ... and a commit fails only when the WAL failed, which is sticky:
          // no commit is taken any more, even once the disk is good again.
          env.ClearFaults();
          Status again = ProbeCommit(db);
          EXPECT_FALSE(again.ok()) << where << ": a commit was accepted after a failed one (" << s.ToString() << ")";
        });
        env.ClearFaults();
        if (cut != Cut::kProcessCrash) plenv.SimulatePowerLoss();
      }
      CheckRecovered(path, true, history, r.acked, std::min(r.attempted, history.size()),
                     where + " (" + r.first_error + "; " + std::to_string(r.acked) + " acknowledged)");
      if (::testing::Test::HasFatalFailure()) return;
      ++counts->checked;
    }
  }
}

TEST(FaultPoints, EioAndEnospcOnceAndStickyAtEveryOperation) {
  const auto t0 = std::chrono::steady_clock::now();
  FaultCounts counts;
  for (int err : {EIO, ENOSPC})
    for (bool sticky : {false, true})
      for (Cut cut : {Cut::kPowerLoss, Cut::kProcessCrash}) {
        FaultAtEveryOp(err, sticky, cut, 30, &counts);
        if (::testing::Test::HasFatalFailure()) return;
      }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fault points] %llu fault points checked (%llu failed commits checked sticky) in %.1f s\n",
              static_cast<unsigned long long>(counts.checked), static_cast<unsigned long long>(counts.failed_commits),
              secs);
  EXPECT_GT(counts.failed_commits, 0u);
}

}  // namespace
}  // namespace pomai::engine
