// Size boundaries of the u64-id engine (the pomaidb face): metadata lengths,
// vector dimensions and batch row counts at 0, at every power of two up to
// 16 MiB (dimensions: up to the limit) and at one either side, largest
// first (a fresh memtable meets the largest). Each is written, read back from
// the memtable, from a segment after a freeze, after a reopen that replays
// the WAL and after a compaction. A value over its limit is InvalidArgument
// and nothing of that call is applied. CI runs this under ASan.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/db.h"
#include "support/sizes.h"
#include "support/temp_dir.h"
#include "util/limits.h"

namespace pomai::engine {
namespace {

using testing::Boundaries;
using testing::Pattern;

std::vector<float> RowOf(uint64_t id, uint32_t dim) {
  std::vector<float> v(dim);
  for (uint32_t j = 0; j < dim; ++j) v[j] = static_cast<float>((id * 7 + j) % 103) - 51.0f;
  return v;
}

std::unique_ptr<DB> OpenDb(const std::string& dir, uint32_t dim) {
  Options o;
  o.path = dir;
  o.dim = dim;
  o.search_threads = 1;
  o.adaptive_threshold = 0;  // every segment gets a graph
  o.hnsw_m = 8;
  o.hnsw_ef_construction = 16;
  auto r = DB::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// Writes with `write`, then runs `check` on the memtable, after a freeze,
// after a reopen (and new writes left in the WAL) and after a compaction.
template <typename Write, typename Check>
void WriteAndCheckEverywhere(uint32_t dim, Write write, Check check) {
  testing::TempDir dir;
  auto db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  write(*db);
  check(*db, "memtable");
  ASSERT_TRUE(db->Freeze().ok());
  check(*db, "segment");
  ASSERT_TRUE(db->Close().ok());
  db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  check(*db, "reopened");
  write(*db);  // again: newer versions in the WAL only
  ASSERT_TRUE(db->Close().ok());
  db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  check(*db, "replayed");
  ASSERT_TRUE(db->Freeze().ok());
  Status s = db->Compact(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  check(*db, "compacted");
}

TEST(Sizes, MetadataOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  const uint32_t dim = 4;
  auto write = [&](DB& db) {
    for (size_t i = 0; i < lengths.size(); ++i) {
      const std::vector<float> v = RowOf(i, dim);
      const std::string meta = Pattern(lengths[i], 'm');
      WriteOp op;
      op.id = i;
      op.vector = v.data();
      op.metadata = meta;
      Status s = db.Write(&op, 1);
      ASSERT_TRUE(s.ok()) << lengths[i] << ": " << s.ToString();
    }
  };
  auto check = [&](DB& db, const char* where) {
    for (size_t i = 0; i < lengths.size(); ++i) {
      std::vector<float> v;
      std::string meta;
      Status s = db.Get(i, &v, &meta);
      ASSERT_TRUE(s.ok()) << where << " " << lengths[i] << ": " << s.ToString();
      ASSERT_EQ(meta.size(), lengths[i]) << where;
      EXPECT_TRUE(meta == Pattern(lengths[i], 'm')) << where << " metadata of " << lengths[i] << " bytes differs";
      EXPECT_EQ(v, RowOf(i, dim)) << where;
    }
    auto count = db.Count();
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, lengths.size()) << where;
  };
  WriteAndCheckEverywhere(dim, write, check);
}

TEST(Sizes, DatabasesOfEveryBoundaryDimension) {
  for (size_t d : Boundaries(kMaxDim + 1)) {
    SCOPED_TRACE("dim " + std::to_string(d));
    const uint32_t dim = static_cast<uint32_t>(d);
    if (d == 0 || d > kMaxDim) {
      testing::TempDir dir;
      Options o;
      o.path = dir.path();
      o.dim = dim;
      auto r = DB::Open(o);
      ASSERT_FALSE(r.ok());
      EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
      EXPECT_NE(r.status().message().find("dim"), std::string::npos) << r.status().message();
      continue;
    }
    auto write = [&](DB& db) {
      for (uint64_t id = 0; id < 3; ++id) {
        const std::vector<float> v = RowOf(id, dim);
        ASSERT_TRUE(db.PutArray(&id, v.data(), 1).ok());
      }
    };
    auto check = [&](DB& db, const char* where) {
      for (uint64_t id = 0; id < 3; ++id) {
        std::vector<float> v;
        std::string meta;
        ASSERT_TRUE(db.Get(id, &v, &meta).ok()) << where;
        EXPECT_EQ(v, RowOf(id, dim)) << where;
      }
      const std::vector<float> q = RowOf(1, dim);
      const uint32_t k = 3;
      std::vector<std::vector<Hit>> hits;
      Status s = db.Search(q.data(), 1, &k, 0, 0, &hits);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      ASSERT_EQ(hits[0].size(), 3u) << where;
      EXPECT_EQ(hits[0][0].id, 1u) << where;
    };
    WriteAndCheckEverywhere(dim, write, check);
  }
}

TEST(Sizes, BatchesOfEveryBoundaryRowCount) {
  const std::vector<size_t> counts = Boundaries((size_t{1} << 14) + 1);
  const uint32_t dim = 8;
  auto base = [&](size_t count) { return uint64_t{count} << 20; };
  auto write = [&](DB& db) {
    for (size_t count : counts) {
      std::vector<uint64_t> ids(count);
      std::vector<float> rows(count * dim);
      for (size_t i = 0; i < count; ++i) {
        ids[i] = base(count) + i;
        const std::vector<float> v = RowOf(ids[i], dim);
        std::copy(v.begin(), v.end(), rows.begin() + static_cast<ptrdiff_t>(i * dim));
      }
      Status s = db.PutArray(ids.data(), rows.data(), count);
      ASSERT_TRUE(s.ok()) << count << ": " << s.ToString();
    }
  };
  size_t total = 0;
  for (size_t c : counts) total += c;
  auto check = [&](DB& db, const char* where) {
    auto count = db.Count();
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, total) << where;
    for (size_t c : counts) {
      for (size_t i : {size_t{0}, c / 2, c - 1}) {
        if (c == 0) continue;
        std::vector<float> v;
        std::string meta;
        ASSERT_TRUE(db.Get(base(c) + i, &v, &meta).ok()) << where << " batch of " << c << " row " << i;
        EXPECT_EQ(v, RowOf(base(c) + i, dim)) << where;
      }
    }
  };
  WriteAndCheckEverywhere(dim, write, check);
}

}  // namespace
}  // namespace pomai::engine
