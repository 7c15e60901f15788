// Crash at every I/O point: a scripted workload (puts, overwrites, deletes,
// background and explicit freezes, a forced compaction) runs on a
// PowerLossEnv that "loses power" at I/O point N (every later operation
// fails with EIO and nothing more reaches the disk); the directory is then
// rewritten to what a power cut leaves (unsynced bytes and undurable
// directory entries gone) and reopened with the default Env. The state must
// be the state after a prefix of the scripted batches: with fsync ALWAYS one
// that holds every acknowledged batch (plus, perhaps, the one in flight),
// with fsync NEVER any prefix. No batch is ever partial.
//
// The second half injects EIO and ENOSPC (once and sticky) at every Append,
// Sync, SyncDir, Rename and Map with FaultInjectionEnv: each call returns an
// error, a failed WAL write leaves the database refusing writes while reads
// still work, and after a power cut every acknowledged batch is back.
//
// By default a deterministic subset of the points spread over all of them
// runs; POMAI_CRASH_POINTS_ALL=1 runs every point.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <filesystem>
#include <functional>
#include <unistd.h>

#include "engine/db.h"
#include "engine/manifest.h"
#include "engine_test_util.h"
#include "support/crash_points.h"
#include "support/fault_env.h"
#include "support/power_loss_env.h"

namespace pomai::engine {
namespace {

constexpr uint32_t kDim = 8;

using testing::PointsToRun;
using testing::ScratchDir;

bool AllPoints() { return testing::AllCrashPoints(); }

struct Op {
  bool put;
  uint64_t id;
  uint32_t version;
};
struct Step {
  enum Kind { kWrite, kFreeze, kCompact } kind = kWrite;
  std::vector<Op> ops;  // kWrite
};

// The script: ~60 batches of new ids, overwrites and deletes (one id may
// appear twice in a batch: the later op wins), with explicit freezes and one
// forced compaction; the small memory budget adds background freezes and
// compactions.
std::vector<Step> MakeScript() {
  std::mt19937 rng(20261121);
  std::vector<Step> script;
  std::vector<uint64_t> ids;
  uint64_t next_id = 1;
  uint32_t version = 0;
  for (int b = 0; b < 60; ++b) {
    Step st;
    const int fresh = 3 + static_cast<int>(rng() % 6);
    for (int j = 0; j < fresh; ++j) {
      st.ops.push_back({true, next_id, ++version});
      ids.push_back(next_id++);
    }
    if (!ids.empty()) {
      st.ops.push_back({true, ids[rng() % ids.size()], ++version});  // overwrite
      if (b % 3 == 1) st.ops.push_back({false, ids[rng() % ids.size()], 0});  // delete
      if (b % 7 == 3) {  // delete then re-put in the same batch
        uint64_t id = ids[rng() % ids.size()];
        st.ops.push_back({false, id, 0});
        st.ops.push_back({true, id, ++version});
      }
      if (b % 5 == 4) {  // put then delete in the same batch
        uint64_t id = ids[rng() % ids.size()];
        st.ops.push_back({true, id, ++version});
        st.ops.push_back({false, id, 0});
      }
    }
    script.push_back(st);
    if (b == 20 || b == 45) script.push_back({Step::kFreeze, {}});
    if (b == 38) script.push_back({Step::kCompact, {}});
  }
  return script;
}

std::string MetaFor(uint64_t id, uint32_t version) { return std::to_string(id) + "@" + std::to_string(version); }

using State = std::map<uint64_t, uint32_t>;  // live id -> version

void Apply(const Step& st, State* s) {
  for (const Op& op : st.ops) {
    if (op.put) (*s)[op.id] = op.version;
    else s->erase(op.id);
  }
}

Options MakeOptions(const std::string& path, bool fsync, Env* env) {
  Options o;
  o.path = path;
  o.dim = kDim;
  o.shards = 2;
  o.fsync = fsync;
  o.search_threads = 1;
  o.memory_budget_bytes = 4 * 1024;  // background freezes happen
  o.hnsw_m = 8;
  o.hnsw_ef_construction = 32;
  o.env = env;
  return o;
}

Status WriteStep(DB* db, const Step& st) {
  std::vector<std::vector<float>> vecs;
  std::vector<std::string> metas;
  vecs.reserve(st.ops.size());
  metas.reserve(st.ops.size());
  std::vector<WriteOp> ops;
  for (const Op& op : st.ops) {
    WriteOp w;
    w.id = op.id;
    if (op.put) {
      vecs.push_back(testing::VectorFor(op.id, op.version, kDim));
      metas.push_back(MetaFor(op.id, op.version));
      w.kind = WriteOp::Kind::kPut;
      w.vector = vecs.back().data();
      w.metadata = metas.back();
    } else {
      w.kind = WriteOp::Kind::kDelete;
    }
    ops.push_back(w);
  }
  return db->Write(ops.data(), ops.size());
}

struct RunResult {
  bool opened = false;
  size_t acked = 0;          // write steps acknowledged, in script order
  size_t attempted = 0;      // write steps tried (acked, plus the failed one if any)
  std::string first_error;   // the first failed call
};

// Runs the script until the first failed call. A failed Freeze or Compact
// ends it too when `stop_on_any_error`; otherwise only a failed Write does.
RunResult RunScript(const std::vector<Step>& script, const Options& o, bool stop_on_any_error,
                    const std::function<void(DB*, const Status&, size_t)>& on_write_error = nullptr) {
  RunResult r;
  auto db = DB::Open(o);
  if (!db.ok()) {
    r.first_error = "open: " + db.status().ToString();
    return r;
  }
  r.opened = true;
  for (const Step& st : script) {
    Status s;
    if (st.kind == Step::kWrite) {
      ++r.attempted;
      s = WriteStep(db->get(), st);
      if (s.ok()) {
        ++r.acked;
        continue;
      }
      if (r.first_error.empty()) r.first_error = "write: " + s.ToString();
      if (on_write_error) on_write_error(db->get(), s, r.acked);
      break;
    }
    s = st.kind == Step::kFreeze ? (*db)->Freeze() : (*db)->Compact(true);
    if (!s.ok()) {
      if (r.first_error.empty()) r.first_error = (st.kind == Step::kFreeze ? "freeze: " : "compact: ") + s.ToString();
      if (stop_on_any_error) break;
    }
  }
  db->reset();  // destroyed, as a crashed process would leave it (Close errors are ignored)
  return r;
}

// Reads every id the script names and checks the database equals the state
// after some prefix of the write steps in [lo, hi]; returns that prefix length.
std::optional<size_t> CheckPrefix(DB* db, const std::vector<Step>& writes, size_t lo, size_t hi, std::string* why) {
  std::set<uint64_t> universe;
  for (const Step& st : writes)
    for (const Op& op : st.ops) universe.insert(op.id);
  std::map<uint64_t, std::pair<std::vector<float>, std::string>> got;
  for (uint64_t id : universe) {
    std::vector<float> v;
    std::string m;
    Status s = db->Get(id, &v, &m);
    if (s.ok()) got[id] = {v, m};
    else if (!s.IsNotFound()) {
      *why = "Get(" + std::to_string(id) + "): " + s.ToString();
      return std::nullopt;
    }
  }
  auto count = db->Count();
  if (!count.ok()) {
    *why = "Count: " + count.status().ToString();
    return std::nullopt;
  }
  State state;
  for (size_t k = 0; k < lo && k < writes.size(); ++k) Apply(writes[k], &state);
  std::string last_diff;
  for (size_t k = lo; k <= hi && k <= writes.size(); ++k) {
    if (k > lo) Apply(writes[k - 1], &state);
    bool same = state.size() == got.size() && *count == state.size();
    for (auto it = state.begin(); same && it != state.end(); ++it) {
      auto g = got.find(it->first);
      same = g != got.end() && g->second.first == testing::VectorFor(it->first, it->second, kDim) &&
             g->second.second == MetaFor(it->first, it->second);
    }
    if (same) return k;
  }
  *why = "state matches no prefix in [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (" +
         std::to_string(got.size()) + " ids present, Count " + std::to_string(*count) + ", expected " + std::to_string(state.size()) + ")";
  return std::nullopt;
}

std::vector<Step> WriteSteps(const std::vector<Step>& script) {
  std::vector<Step> w;
  for (const Step& st : script)
    if (st.kind == Step::kWrite) w.push_back(st);
  return w;
}

// power_loss: the directory is then rewritten to what a power cut leaves;
// otherwise it is a process crash, where everything written to the OS stays.
// torn: the power cut keeps half of each file's unsynced bytes (a torn tail).
void CrashAtEveryPoint(bool fsync, bool power_loss, uint64_t budget, bool torn = false) {
  const auto script = MakeScript();
  const auto writes = WriteSteps(script);
  const auto t0 = std::chrono::steady_clock::now();

  uint64_t total = 0;
  {
    ScratchDir root;
    testing::PowerLossEnv env(root.file("db"));
    RunResult r = RunScript(script, MakeOptions(root.file("db"), fsync, &env), true);
    ASSERT_TRUE(r.first_error.empty()) << r.first_error;
    ASSERT_EQ(r.acked, writes.size());
    total = env.points();
  }
  ASSERT_GT(total, 100u);

  uint64_t checked = 0;
  std::map<size_t, int> in_flight_present;  // 0 absent / 1 present, counts
  for (uint64_t n : PointsToRun(total, budget)) {
    ScratchDir root;
    const std::string path = root.file("db");
    RunResult r;
    {
      testing::PowerLossEnv env(path);
      env.CrashAt(n);
      r = RunScript(script, MakeOptions(path, fsync, &env), true);
      // The run may end before point n (background threads make the count vary a little).
      if (!r.first_error.empty()) { ASSERT_TRUE(env.crashed()) << "point " << n << ": error without a crash: " << r.first_error; }
      if (power_loss)
        env.SimulatePowerLoss(torn ? testing::PowerLossEnv::Unsynced::kHalf : testing::PowerLossEnv::Unsynced::kDropped);
    }
    // Reopen through a PowerLossEnv that never crashes: the plain POSIX calls,
    // minus the real fsyncs (which only cost time here).
    testing::PowerLossEnv reopen_env(path);
    auto db = DB::Open(MakeOptions(path, fsync, &reopen_env));
    ASSERT_TRUE(db.ok()) << "point " << n << " (" << r.first_error << "): reopen: " << db.status().ToString();
    std::string why;
    const size_t lo = fsync || !power_loss ? r.acked : 0;
    const size_t hi = std::min(r.attempted, writes.size());
    auto k = CheckPrefix(db->get(), writes, lo, hi, &why);
    ASSERT_TRUE(k.has_value()) << "point " << n << " of " << total << " (" << r.first_error << ", " << r.acked
                               << " acknowledged): " << why;
    // The recovered database takes writes and closes cleanly.
    Step extra;
    extra.ops.push_back({true, 1u << 30, 1});
    ASSERT_TRUE(WriteStep(db->get(), extra).ok()) << "point " << n;
    ASSERT_TRUE((*db)->Close().ok()) << "point " << n;
    db->reset();
    ++checked;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[crash points] fsync=%s, %s: %llu I/O points in the script, %llu crash points checked in %.1f s\n",
              fsync ? "always" : "never", power_loss ? (torn ? "power loss, torn tails" : "power loss") : "process crash",
              static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(checked), secs);
  ::testing::Test::RecordProperty("crash_points_checked", static_cast<int>(checked));
}

// Power loss, fsync ALWAYS: every acknowledged batch survives.
TEST(CrashPoints, PowerLossFsyncAlwaysKeepsEveryAcknowledgedBatch) { CrashAtEveryPoint(true, true, 800); }
// Power loss, fsync NEVER: some prefix of the history survives.
TEST(CrashPoints, PowerLossFsyncNeverLeavesAPrefix) { CrashAtEveryPoint(false, true, 600); }
// Power loss that keeps half of every unsynced tail: torn WAL records are dropped.
TEST(CrashPoints, PowerLossWithTornTailsFsyncAlways) { CrashAtEveryPoint(true, true, 250, true); }
TEST(CrashPoints, PowerLossWithTornTailsFsyncNever) { CrashAtEveryPoint(false, true, 250, true); }
// Process crash (the OS keeps what it was given): every acknowledged batch
// survives whatever the fsync policy.
TEST(CrashPoints, ProcessCrashFsyncAlwaysKeepsEveryAcknowledgedBatch) { CrashAtEveryPoint(true, false, 250); }
TEST(CrashPoints, ProcessCrashFsyncNeverKeepsEveryAcknowledgedBatch) { CrashAtEveryPoint(false, false, 250); }

// A second power cut while recovering from the first, at every I/O point of
// the recovery (support/crash_points.h).
TEST(CrashPoints, PowerLossDuringRecoveryChangesNothing) {
  const auto script = MakeScript();
  const auto writes = WriteSteps(script);
  testing::RecoveryCrashCase<DB> c;
  c.label = "[crash points]";
  c.unit = "batches";
  c.steps = writes.size();
  c.run = [&](const std::string& path, Env* env, size_t* acked, size_t* attempted) {
    RunResult r = RunScript(script, MakeOptions(path, true, env), true);
    *acked = r.acked;
    *attempted = r.attempted;
    return r.first_error;
  };
  c.open = [](const std::string& path, Env* env) { return DB::Open(MakeOptions(path, true, env)); };
  c.check = [&](DB* db, size_t lo, size_t hi, std::string* why) { return CheckPrefix(db, writes, lo, hi, why); };
  c.write = [&](DB* db, size_t step) { return WriteStep(db, writes[step]); };
  c.freeze = [](DB* db) { return db->Freeze(); };
  testing::PowerLossDuringRecoveryChangesNothing(c, 150);
}

// Regression: a database created by Open (its directory included) with
// fsync ALWAYS lost every acknowledged write on a power cut, because nothing
// fsynced the parent of the directory it had just created.
TEST(CrashPoints, NewDatabaseDirectorySurvivesPowerLoss) {
  const auto writes = WriteSteps(MakeScript());
  ScratchDir root;
  const std::string path = root.file("db");
  {
    testing::PowerLossEnv env(path);
    auto db = DB::Open(MakeOptions(path, true, &env));
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(WriteStep(db->get(), writes[0]).ok());
    db->reset();
    env.SimulatePowerLoss();
  }
  testing::PowerLossEnv reopen_env(path);
  auto db = DB::Open(MakeOptions(path, true, &reopen_env));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  std::string why;
  EXPECT_TRUE(CheckPrefix(db->get(), writes, 1, 1, &why).has_value()) << why;
}

// Regression: when the rename of a new MANIFEST succeeded but the directory
// fsync after it failed, a freeze (or a compaction) removed the segments
// that the manifest on disk already named, and the next open failed with
// "MANIFEST names seg-..., which is missing".
TEST(CrashPoints, FailedManifestSyncLeavesAnOpenableDatabase) {
  const auto writes = WriteSteps(MakeScript());
  for (bool compaction : {false, true}) {
    SCOPED_TRACE(compaction ? "compaction" : "freeze");
    ScratchDir root;
    const std::string path = root.file("db");
    testing::FailSyncDirAfterRenameTo env(kManifestName);
    Options o = MakeOptions(path, true, &env);
    o.memory_budget_bytes = 64 << 20;  // no background freeze
    {
      auto db = DB::Open(o);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      ASSERT_TRUE(WriteStep(db->get(), writes[0]).ok());
      ASSERT_TRUE((*db)->Freeze().ok());
      ASSERT_TRUE(WriteStep(db->get(), writes[1]).ok());
      if (compaction) ASSERT_TRUE((*db)->Freeze().ok());
      env.Arm(0);
      EXPECT_FALSE((compaction ? (*db)->Compact(true) : (*db)->Freeze()).ok());
      ASSERT_TRUE(WriteStep(db->get(), writes[2]).ok());
    }  // a process crash, or a close: nothing reverts the rename
    o.env = nullptr;
    auto db = DB::Open(o);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    std::string why;
    EXPECT_TRUE(CheckPrefix(db->get(), writes, 3, 3, &why).has_value()) << why;
  }
}

// CreateDirDurably fsyncs the parent of every directory it creates, outermost first, and nothing else.
TEST(CrashPoints, CreateDirDurablySyncsTheParentOfEachNewDirectory) {
  struct SyncLog : EnvWrapper {
    SyncLog() : EnvWrapper(Env::Default()) {}
    Status SyncDir(const std::string& p) override {
      synced.push_back(p);
      return Status::OK();
    }
    std::vector<std::string> synced;
  } env;
  ScratchDir root;
  ASSERT_TRUE(CreateDirDurably(&env, root.file("a/b/c")).ok());
  EXPECT_TRUE(std::filesystem::is_directory(root.file("a/b/c")));
  EXPECT_EQ(env.synced, (std::vector<std::string>{root.path(), root.file("a"), root.file("a/b")}));
  env.synced.clear();
  ASSERT_TRUE(CreateDirDurably(&env, root.file("a/b/c")).ok());
  EXPECT_TRUE(env.synced.empty());
}

// ---- EIO / ENOSPC at every operation of each kind ----

void FaultAtEveryOp(int err, bool sticky, uint64_t budget_per_kind, uint64_t* checked, uint64_t* sticky_checked) {
  const auto script = MakeScript();
  const auto writes = WriteSteps(script);
  // Count the operations of each kind in a clean run.
  uint64_t counts[static_cast<int>(testing::Op::kCount)] = {};
  {
    ScratchDir root;
    testing::PowerLossEnv plenv(root.file("db"));
    testing::FaultInjectionEnv env(&plenv);
    RunResult r = RunScript(script, MakeOptions(root.file("db"), true, &env), false);
    ASSERT_TRUE(r.first_error.empty()) << r.first_error;
    for (int k = 0; k < static_cast<int>(testing::Op::kCount); ++k) counts[k] = env.count(static_cast<testing::Op>(k));
  }
  for (int kind = 0; kind < static_cast<int>(testing::Op::kCount); ++kind) {
    for (uint64_t n : PointsToRun(counts[kind], budget_per_kind)) {
      const std::string where = "kind " + std::to_string(kind) + " #" + std::to_string(n) + " err " +
                                std::to_string(err) + (sticky ? " sticky" : " once");
      ScratchDir root;
      const std::string path = root.file("db");
      RunResult r;
      {
        testing::PowerLossEnv plenv(path);
        testing::FaultInjectionEnv env(&plenv);
        env.FailNth(static_cast<testing::Op>(kind), n, err, sticky);
        bool checked_sticky = false;
        r = RunScript(script, MakeOptions(path, true, &env), false, [&](DB* db, const Status& s, size_t acked) {
          EXPECT_FALSE(s.ok());
          // A failed WAL write or fsync: the database refuses writes from now on, even once the disk is good again...
          const bool wal_failure = s.ToString().find("wal-") != std::string::npos &&
                                   (kind == static_cast<int>(testing::Op::kAppend) ||
                                    kind == static_cast<int>(testing::Op::kSync));
          if (wal_failure) {
            env.ClearFaults();
            Step probe;
            probe.ops.push_back({true, 1u << 30, 1});
            Status again = WriteStep(db, probe);
            EXPECT_FALSE(again.ok()) << where << ": writes accepted after a failed log write " << s.ToString();
            checked_sticky = true;
          }
          // ... and reads still work, and show exactly the acknowledged batches.
          std::string why;
          auto k = CheckPrefix(db, writes, acked, acked, &why);
          EXPECT_TRUE(k.has_value()) << where << ": reads after a failed write (" << s.ToString() << "): " << why;
        });
        if (checked_sticky) ++*sticky_checked;
        env.ClearFaults();
        plenv.SimulatePowerLoss();
      }
      testing::PowerLossEnv reopen_env(path);
      auto db = DB::Open(MakeOptions(path, true, &reopen_env));
      ASSERT_TRUE(db.ok()) << where << " (" << r.first_error << "): reopen: " << db.status().ToString();
      if (!r.opened) continue;  // the open itself failed: nothing was acknowledged
      std::string why;
      auto k = CheckPrefix(db->get(), writes, r.acked, std::min(r.attempted, writes.size()), &why);
      ASSERT_TRUE(k.has_value()) << where << " (" << r.first_error << ", " << r.acked << " acknowledged): " << why;
      ++*checked;
    }
  }
}

TEST(FaultPoints, EioAndEnospcOnceAndStickyAtEveryOperation) {
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t checked = 0, sticky_checked = 0;
  for (int err : {EIO, ENOSPC})
    for (bool sticky : {false, true}) {
      FaultAtEveryOp(err, sticky, 30, &checked, &sticky_checked);
      if (::testing::Test::HasFatalFailure()) return;
    }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[fault points] %llu fault points checked (%llu failed log writes checked sticky) in %.1f s\n",
              static_cast<unsigned long long>(checked), static_cast<unsigned long long>(sticky_checked), secs);
  EXPECT_GT(sticky_checked, 0u);
}

}  // namespace
}  // namespace pomai::engine
