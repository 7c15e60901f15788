// Helpers for keyspace database tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "support/temp_dir.h"

namespace pomai::testing {

// Opens a disk database in `dir` or, with dir empty, an in-memory one.
inline std::unique_ptr<engine::DB> OpenKv(const std::string& dir, engine::Options o = {}) {
  o.in_memory = dir.empty();
  o.path = dir;
  if (o.search_threads == 0) o.search_threads = 2;
  auto r = engine::DB::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Flush, then the merges the tiered policy asks for, which Flush leaves to
// the compaction thread: for a test that counts segments after a flush.
inline void FlushAndMerge(engine::DB& db) {
  ASSERT_TRUE(db.Flush().ok());
  ASSERT_TRUE(db.Compact(false).ok());
}

inline std::unique_ptr<engine::Txn> BeginRw(engine::DB& db) {
  auto r = db.Begin(engine::TxnMode::kReadWrite);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}
inline std::unique_ptr<engine::Txn> BeginRo(engine::DB& db) {
  auto r = db.Begin(engine::TxnMode::kReadOnly);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

// The value of `key` seen by `txn`, or nullopt.
inline std::optional<std::string> GetValue(engine::Txn& txn, const std::string& key) {
  std::string v;
  bool found = false;
  Status s = txn.Get(key, &v, &found);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!found) return std::nullopt;
  return v;
}

inline std::optional<std::string> Committed(engine::DB& db, const std::string& key) {
  auto t = BeginRo(db);
  return GetValue(*t, key);
}

inline void PutCommit(engine::DB& db, const std::string& key, const std::string& value) {
  auto t = BeginRw(db);
  ASSERT_TRUE(t->Put(key, value).ok());
  Status s = t->Commit();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

inline std::vector<float> RandomVector(std::mt19937_64& rng, uint32_t dim) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (auto& x : v) x = n(rng);
  return v;
}

// Both storage modes: a parameter "disk" or "memory".
class KvBothModes : public ::testing::TestWithParam<bool> {
 protected:
  bool disk() const { return GetParam(); }
  std::string dir() const { return disk() ? tmp_.path() : std::string(); }
  std::unique_ptr<engine::DB> Open(engine::Options o = {}) { return OpenKv(dir(), o); }
  TempDir tmp_;
};

inline std::string ModeName(const ::testing::TestParamInfo<bool>& info) { return info.param ? "Disk" : "InMemory"; }

}  // namespace pomai::testing
