// Size boundaries of the keyspace engine's default collection (u64 rows;
// docs/ENGINE.md 2.2 and 2.6, step 10): tests/engine/sizes_test.cc ported
// from engine::DB to DB. Metadata lengths, vector dimensions and batch row
// counts at 0, at every power of two up to 16 MiB (dimensions: up to the
// limit, 65535) and at one either side, largest first (a fresh memtable meets
// the largest). Each is written, read back from the memtable, from a segment
// after a flush, after a reopen that replays the WAL and after a compaction.
// A value over its limit is InvalidArgument and nothing of that call is
// applied. CI runs this under ASan.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/db.h"
#include "rows_test_util.h"
#include "support/sizes.h"
#include "support/temp_dir.h"
#include "util/limits.h"
#include "wal/log_format.h"
#include "wal/record_codec.h"

namespace pomai::engine {
namespace {

using testing::Boundaries;
using testing::Pattern;
using testing::TempDir;

std::vector<float> RowOf(uint64_t id, uint32_t dim) {
  std::vector<float> v(dim);
  for (uint32_t j = 0; j < dim; ++j) v[j] = static_cast<float>((id * 7 + j) % 103) - 51.0f;
  return v;
}

Options SizesKvOptions(const std::string& dir) {
  Options o = testing::RowsKvOptions(dir);
  o.search_threads = 1;
  // The "memtable" checks read the memtable: no background flush of the
  // ~100 MiB of metadata before them.
  o.memtable_budget_bytes = uint64_t{1} << 30;
  return o;
}

DefaultCollectionOptions SizesCollection(uint32_t dim) {
  DefaultCollectionOptions c = testing::RowsCollection(dim);
  c.adaptive_threshold = 0;  // every segment gets a graph, and is searched through it
  c.hnsw_m = 8;
  c.hnsw_ef_construction = 16;
  return c;
}

std::unique_ptr<DB> OpenDb(const std::string& dir, uint32_t dim) {
  return testing::OpenRows(SizesKvOptions(dir), SizesCollection(dim));
}

// `bytes` of address space that reads as zeros and costs no memory until
// written (nothing writes it): the arguments of calls refused for their size.
class Reserved {
 public:
  explicit Reserved(size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    EXPECT_NE(p, MAP_FAILED) << bytes << " bytes";
    p_ = p == MAP_FAILED ? nullptr : p;
  }
  ~Reserved() {
    if (p_ != nullptr) munmap(p_, bytes_);
  }
  Reserved(const Reserved&) = delete;
  Reserved& operator=(const Reserved&) = delete;
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(p_);
  }

 private:
  size_t bytes_;
  void* p_ = nullptr;
};

// Writes with `write`, then runs `check` on the memtable, after a flush,
// after a reopen (and new writes left in the WAL) and after a compaction.
template <typename Write, typename Check>
void WriteAndCheckEverywhere(uint32_t dim, Write write, Check check) {
  TempDir dir;
  auto db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  write(*db);
  check(*db, "memtable");
  ASSERT_EQ(db->TEST_SegmentCount(), 0u) << "a flush ran before the memtable checks";
  Status s = db->Flush();
  ASSERT_TRUE(s.ok()) << s.ToString();
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
  s = db->Flush();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  s = db->Compact(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  check(*db, "compacted");
}

TEST(CollectionRowsSizes, MetadataOfEveryBoundaryLength) {
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
      // Each half of Get alone reads the same.
      std::string meta_only;
      ASSERT_TRUE(db.Get(i, nullptr, &meta_only).ok()) << where;
      EXPECT_TRUE(meta_only == meta) << where << " metadata of " << lengths[i] << " bytes, read alone, differs";
    }
    auto count = db.Count();
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(*count, lengths.size()) << where;
  };
  WriteAndCheckEverywhere(dim, write, check);
}

// Metadata over the limit of a value (1 GiB, docs/ENGINE.md 2.6) is
// InvalidArgument, alone or in a batch with valid puts and deletes, and
// nothing of the batch is applied. The metadata is never read: its bytes are
// untouched address space.
TEST(CollectionRowsSizes, MetadataOverTheLimitIsInvalidArgumentAndAppliesNothing) {
  TempDir dir;
  const uint32_t dim = 4;
  auto db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  const std::vector<float> v0 = RowOf(0, dim), v1 = RowOf(1, dim);
  ASSERT_TRUE(testing::PutRow(db.get(), 0, v0, "kept").ok());
  const Reserved huge(kMaxValueLen + 1);
  ASSERT_NE(huge.as<char>(), nullptr);
  const std::string_view too_long(huge.as<char>(), kMaxValueLen + 1);
  std::vector<WriteOp> ops(3);
  ops[0] = {WriteOp::Kind::kPut, 1, v1.data(), "new"};
  ops[1] = {WriteOp::Kind::kDelete, 0, nullptr, {}};
  ops[2] = {WriteOp::Kind::kPut, 2, v1.data(), too_long};
  for (size_t first : {size_t{2}, size_t{0}}) {  // alone, then after valid ops
    Status s = db->Write(ops.data() + first, ops.size() - first);
    ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
    EXPECT_NE(s.message().find("metadata"), std::string::npos) << s.message();
  }
  auto check = [&](const char* where) {
    EXPECT_EQ(db->Count().value(), 1u) << where;
    std::vector<float> got;
    std::string meta;
    ASSERT_TRUE(db->Get(0, &got, &meta).ok()) << where;
    EXPECT_EQ(got, v0) << where;
    EXPECT_EQ(meta, "kept") << where;
    EXPECT_TRUE(db->Get(1, &got, &meta).IsNotFound()) << where;
    EXPECT_TRUE(db->Get(2, &got, &meta).IsNotFound()) << where;
  };
  check("open");
  ASSERT_TRUE(db->Close().ok());
  db = OpenDb(dir.path(), dim);  // the WAL holds no record of the refused batches
  ASSERT_NE(db, nullptr);
  check("replayed");
}

TEST(CollectionRowsSizes, DatabasesOfEveryBoundaryDimension) {
  size_t accepted = 0, refused = 0;
  for (size_t d : Boundaries(kMaxDim + 1)) {
    SCOPED_TRACE("dim " + std::to_string(d));
    const uint32_t dim = static_cast<uint32_t>(d);
    if (d == 0 || d > kMaxDim) {
      ++refused;
      // OpenDefaultCollection checks the dim before it commits anything: the
      // database stays without a default collection, its WAL without a
      // record, and an open with a valid dim creates it.
      TempDir dir;
      auto kv = DB::Open(SizesKvOptions(dir.path()));
      ASSERT_TRUE(kv.ok()) << kv.status().ToString();
      std::unique_ptr<DB> db = std::move(kv).value();
      Status s = db->OpenDefaultCollection(SizesCollection(dim));
      ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
      EXPECT_NE(s.message().find("dim"), std::string::npos) << s.message();
      EXPECT_NE(s.message().find(std::to_string(d)), std::string::npos) << s.message();
      EXPECT_EQ(db->dim(), 0u);
      auto count = db->Count();
      ASSERT_FALSE(count.ok());
      EXPECT_TRUE(count.status().IsInvalidArgument()) << count.status().ToString();
      EXPECT_TRUE(testing::WalFiles(dir.path()).empty()) << "the refused open committed something";
      s = db->OpenDefaultCollection(SizesCollection(4));
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(db->dim(), 4u);
      EXPECT_EQ(db->Count().value(), 0u);
      continue;
    }
    ++accepted;
    auto write = [&](DB& db) {
      for (uint64_t id = 0; id < 3; ++id) {
        const std::vector<float> v = RowOf(id, dim);
        ASSERT_TRUE(db.PutArray(&id, v.data(), 1).ok());
      }
    };
    auto check = [&](DB& db, const char* where) {
      EXPECT_EQ(db.dim(), dim) << where;
      for (uint64_t id = 0; id < 3; ++id) {
        std::vector<float> v;
        std::string meta;
        ASSERT_TRUE(db.Get(id, &v, &meta).ok()) << where;
        EXPECT_EQ(v, RowOf(id, dim)) << where;
        EXPECT_EQ(meta, "") << where;
      }
      const std::vector<float> q = RowOf(1, dim);
      const uint32_t k = 3;
      std::vector<std::vector<Hit>> hits;
      Status s = db.Search(q.data(), 1, &k, 0, 0, &hits);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      ASSERT_EQ(hits[0].size(), 3u) << where;
      EXPECT_EQ(hits[0][0].id, 1u) << where;
      EXPECT_EQ(hits[0][0].score, 0.0f) << where;
    };
    WriteAndCheckEverywhere(dim, write, check);
  }
  // 1..65535 (ENGINE.md 2.6): 65535 is the largest dim accepted, 0 and 65536 are refused.
  EXPECT_EQ(refused, 2u);
  EXPECT_GT(accepted, 40u);
}

TEST(CollectionRowsSizes, BatchesOfEveryBoundaryRowCount) {
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
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(*count, total) << where;
    for (size_t c : counts) {
      for (size_t i : {size_t{0}, c / 2, c - 1}) {
        if (c == 0) continue;
        std::vector<float> v;
        std::string meta;
        ASSERT_TRUE(db.Get(base(c) + i, &v, &meta).ok()) << where << " batch of " << c << " row " << i;
        EXPECT_EQ(v, RowOf(base(c) + i, dim)) << where;
      }
      EXPECT_FALSE(db.Exists(base(c) + c).value()) << where << " batch of " << c << ": a row past its end";
    }
  };
  WriteAndCheckEverywhere(dim, write, check);
}

// A row array over the WAL's payload limit (1 GiB) is InvalidArgument asking
// to split it, and nothing is applied; the arrays are never read (untouched
// address space).
TEST(CollectionRowsSizes, ARowArrayOverThePayloadLimitIsInvalidArgumentAndAppliesNothing) {
  TempDir dir;
  const uint32_t dim = 8;
  auto db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  const size_t fits = (wal::kMaxPayload - wal::kRowArrayHeadSize) / (8 + size_t{dim} * 4);
  const size_t n = fits + 1;
  const Reserved ids(n * 8), vectors(n * dim * 4);
  ASSERT_NE(ids.as<uint64_t>(), nullptr);
  ASSERT_NE(vectors.as<float>(), nullptr);
  Status s = db->PutArray(ids.as<uint64_t>(), vectors.as<float>(), n);
  ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("split it"), std::string::npos) << s.message();
  EXPECT_EQ(db->Count().value(), 0u);
  ASSERT_TRUE(db->Close().ok());
  db = OpenDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 0u);
}

}  // namespace
}  // namespace pomai::engine
