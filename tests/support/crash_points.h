// Pieces shared by the crash-point tests (tests/engine/crash_points_test.cc
// for the u64-id engine, tests/engine/kv_crash_points_test.cc for the
// keyspace engine): a scratch directory on tmpfs, the choice of which points
// of a script to crash at, and the line each test prints.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace pomai::testing {

// A fresh directory, on tmpfs (/dev/shm) when there is one: durability is
// simulated by PowerLossEnv, and ext4's rename-over and close heuristics cost
// ~10 ms a call on a real disk, which thousands of runs cannot afford.
// Removed with its content on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "pomai-crash-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? std::string(p) : std::string();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// POMAI_CRASH_POINTS_ALL=1 (not "0"): run every point, not a spread subset.
inline bool AllCrashPoints() {
  const char* e = std::getenv("POMAI_CRASH_POINTS_ALL");
  return e && *e && std::string(e) != "0";
}

// The points (1-based) of a script with `total` of them to run: all of them
// when there are at most `budget` (or AllCrashPoints()), else `budget` points
// evenly spread, the first and the last included.
inline std::vector<uint64_t> PointsToRun(uint64_t total, uint64_t budget) {
  std::vector<uint64_t> pts;
  if (AllCrashPoints() || total <= budget) {
    for (uint64_t n = 1; n <= total; ++n) pts.push_back(n);
    return pts;
  }
  if (budget < 2) budget = 2;
  for (uint64_t i = 0; i < budget; ++i) pts.push_back(1 + i * (total - 1) / (budget - 1));
  pts.erase(std::unique(pts.begin(), pts.end()), pts.end());
  return pts;
}

}  // namespace pomai::testing
