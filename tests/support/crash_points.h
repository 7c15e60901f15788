// Pieces of the crash-point tests (tests/engine/crash_points_test.cc):
// a scratch directory on tmpfs, the choice of which points
// of a script to crash at, and the power-loss-during-recovery test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/power_loss_env.h"
#include "support/temp_dir.h"
#include "util/env.h"
#include "util/status.h"

namespace pomai::testing {

// A fresh directory, on tmpfs (/dev/shm) when there is one: durability is
// simulated by PowerLossEnv, and ext4's rename-over and close heuristics cost
// ~10 ms a call on a real disk, which thousands of runs cannot afford.
class ScratchDir : public TempDir {
 public:
  ScratchDir() : TempDir(OnTmpfs()) {}
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

// POMAI_CRASH_POINTS_ALL=1 (not "0"): run every point, not a spread subset.
inline bool AllCrashPoints() {
  const char* e = std::getenv("POMAI_CRASH_POINTS_ALL");
  return e && *e && std::string(e) != "0";
}

// POMAI_CRASH_POINTS_SCALE=F (0 < F <= 1): every budget below is scaled by
// F, at least 2 points (CI's sanitizer build, about 5x slower per point, runs
// a sample; the release build runs the full budgets).
inline double CrashPointsScale() {
  const char* e = std::getenv("POMAI_CRASH_POINTS_SCALE");
  const double f = e && *e ? std::atof(e) : 1.0;
  return f > 0 && f <= 1 ? f : 1.0;
}

// The points (1-based) of a script with `total` of them to run: all of them
// when there are at most `budget` (or AllCrashPoints()), else `budget` points
// (scaled by CrashPointsScale()) evenly spread, the first and the last
// included.
inline std::vector<uint64_t> PointsToRun(uint64_t total, uint64_t budget) {
  budget = std::max<uint64_t>(2, static_cast<uint64_t>(static_cast<double>(budget) * CrashPointsScale()));
  std::vector<uint64_t> pts;
  if (AllCrashPoints() || total <= budget) {
    for (uint64_t n = 1; n <= total; ++n) pts.push_back(n);
    return pts;
  }
  for (uint64_t i = 0; i < budget; ++i) pts.push_back(1 + i * (total - 1) / (budget - 1));
  pts.erase(std::unique(pts.begin(), pts.end()), pts.end());
  return pts;
}

// One engine's side of PowerLossDuringRecovery: its database type `Db`, a
// history of `steps` writes (batches or commits) and a script over them.
template <class Db>
struct RecoveryCrashCase {
  const char* label;  // printed: "[crash points]"
  const char* unit;   // "batches", "commits"
  size_t steps;       // writes in the history
  // Runs the whole script with fsync ALWAYS in `path` through `env`;
  // *acked / *attempted: writes acknowledged / tried; "" or the first error.
  std::function<std::string(const std::string& path, Env* env, size_t* acked, size_t* attempted)> run;
  std::function<Result<std::unique_ptr<Db>>(const std::string& path, Env* env)> open;
  // The length k (lo <= k <= hi) of the history prefix `db` shows, or nullopt with *why.
  std::function<std::optional<size_t>(Db* db, size_t lo, size_t hi, std::string* why)> check;
  std::function<Status(Db* db, size_t step)> write;  // applies history[step]
  std::function<Status(Db* db)> freeze;             // freeze / flush: retires the replayed log
};

// A second power cut while recovering from the first: for `budget` crash
// points spread over the script (fsync ALWAYS), the reopen itself is crashed
// at each of its I/O points, then power is cut again. The final state must be
// the one a clean recovery from the first cut shows: recovery loses nothing
// it found and resurrects nothing. Then, after a clean recovery, the script
// goes on (a write, a freeze that retires the replayed log, a write) and
// power is cut again: all of it stays.
template <class Db>
void PowerLossDuringRecoveryChangesNothing(const RecoveryCrashCase<Db>& c, uint64_t budget) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t total = 0;
  {
    ScratchDir root;
    PowerLossEnv env(root.file("db"));
    size_t acked = 0, attempted = 0;
    const std::string error = c.run(root.file("db"), &env, &acked, &attempted);
    ASSERT_TRUE(error.empty()) << error;
    total = env.points();
  }
  uint64_t checked = 0;
  for (uint64_t n : PointsToRun(total, AllCrashPoints() ? total : budget)) {
    ScratchDir root;
    const std::string path = root.file("db"), snap = root.file("snap");
    size_t acked = 0, attempted = 0;
    {
      PowerLossEnv env(path);
      env.CrashAt(n);
      (void)c.run(path, &env, &acked, &attempted);
      env.SimulatePowerLoss();
    }
    const bool existed = fs::exists(path);
    if (existed) fs::copy(path, snap, fs::copy_options::recursive);
    auto restore = [&] {
      fs::remove_all(path);
      if (existed) fs::copy(snap, path, fs::copy_options::recursive);
    };
    // A clean recovery: its I/O points and the state it shows.
    uint64_t recovery_points = 0;
    size_t clean_k = 0;
    {
      PowerLossEnv env(path);
      auto db = c.open(path, &env);
      ASSERT_TRUE(db.ok()) << "point " << n << ": " << db.status().ToString();
      std::string why;
      auto k = c.check(db->get(), acked, std::min(attempted, c.steps), &why);
      ASSERT_TRUE(k.has_value()) << "point " << n << ": " << why;
      clean_k = *k;
      db->reset();
      recovery_points = env.points();
    }
    for (uint64_t m = 1; m <= recovery_points; ++m) {
      restore();
      {
        PowerLossEnv env(path);
        env.CrashAt(m);
        auto db = c.open(path, &env);
        if (db.ok()) db->reset();
        env.SimulatePowerLoss();
      }
      PowerLossEnv env(path);
      auto db = c.open(path, &env);
      ASSERT_TRUE(db.ok()) << "point " << n << ", recovery point " << m << ": " << db.status().ToString();
      std::string why;
      ASSERT_TRUE(c.check(db->get(), clean_k, clean_k, &why).has_value())
          << "point " << n << ", recovery point " << m << " of " << recovery_points << ": a clean recovery shows "
          << clean_k << " " << c.unit << "; " << why;
      ++checked;
    }
    if (clean_k + 2 <= c.steps) {
      restore();
      {
        PowerLossEnv env(path);
        auto db = c.open(path, &env);
        ASSERT_TRUE(db.ok()) << db.status().ToString();
        ASSERT_TRUE(c.write(db->get(), clean_k).ok());
        ASSERT_TRUE(c.freeze(db->get()).ok());
        ASSERT_TRUE(c.write(db->get(), clean_k + 1).ok());
        db->reset();
        env.SimulatePowerLoss();
      }
      PowerLossEnv env(path);
      auto db = c.open(path, &env);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      std::string why;
      ASSERT_TRUE(c.check(db->get(), clean_k + 2, clean_k + 2, &why).has_value())
          << "point " << n << ": " << c.unit << " after a recovery: " << why;
      ++checked;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s power loss during or after recovery: %llu double crashes checked in %.1f s\n", c.label,
              static_cast<unsigned long long>(checked), secs);
}

}  // namespace pomai::testing
