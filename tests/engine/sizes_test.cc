// Size boundaries of every length a user controls, on both faces of the
// engine: keys, plain values, vector metadata, vector dimensions, index
// entries, deletes and the number of writes in one commit (keyspace face);
// row metadata, database dimensions and row-batch counts (the default
// collection's u64 rows; docs/ENGINE.md 2.2 and 2.6). Each is tried at 0, at
// every power of two up to 16 MiB and at one either side, where the field's
// limit allows it, largest first (a fresh memtable meets the largest). Each
// length is written and read back from the memtable, then (disk) from a
// segment after a flush, after a reopen, after a reopen that replays the WAL
// and after a compaction. A length over the field's limit is InvalidArgument
// naming it, and nothing of that call is applied. CI runs this under ASan: an
// arena, WAL record or segment entry sized wrongly for one of these lengths
// is a heap overflow there.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/collection.h"
#include "engine/db.h"
#include "db_test_util.h"
#include "memtable/key_table.h"
#include "support/sizes.h"
#include "util/limits.h"
#include "wal/log_format.h"
#include "wal/record_codec.h"

namespace pomai::testing {
namespace {

using engine::DB;
using engine::DefaultCollectionOptions;
using engine::Hit;
using engine::Options;
using engine::WriteOp;

std::string KeyOf(size_t n, char tag) {
  std::string k = Pattern(n, tag);
  if (n > 0) k[0] = tag;  // keys of one tag sort together and never collide across tags
  return k;
}

std::vector<float> VectorOf(uint32_t dim) {
  std::vector<float> v(dim);
  for (uint32_t i = 0; i < dim; ++i) v[i] = static_cast<float>((i * 7 + dim) % 101) - 50.0f + 0.25f;
  return v;
}

// A disk database at `dir`, or an in-memory one when `dir` is empty. The
// "memtable" checks read the memtable: no background flush of the ~100 MiB
// of values before them.
Options SizesOptions(const std::string& dir) {
  Options o;
  o.path = dir;
  o.in_memory = dir.empty();
  o.search_threads = 1;
  o.memtable_budget_bytes = uint64_t{1} << 30;
  return o;
}

DefaultCollectionOptions SizesCollection(uint32_t dim) {
  DefaultCollectionOptions c = RowsCollection(dim);
  c.adaptive_threshold = 0;  // every segment gets a graph, and is searched through it
  c.hnsw_m = 8;
  c.hnsw_ef_construction = 16;
  return c;
}

std::unique_ptr<DB> OpenRowsDb(const std::string& dir, uint32_t dim) {
  return OpenRows(SizesOptions(dir), SizesCollection(dim));
}

// Commits `t`, which wrote a length (or count) `n`.
void CommitOk(engine::Txn& t, size_t n) {
  Status s = t.Commit();
  ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
}

// Ends `t`, whose write of length `n` gave `s`: when `refused`, `s` is
// InvalidArgument naming `field` and `t` rolls back; otherwise `t` commits.
void CommitUnlessRefused(engine::Txn& t, const Status& s, size_t n, bool refused, const char* field) {
  if (!refused) {
    ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
    return CommitOk(t, n);
  }
  EXPECT_TRUE(s.IsInvalidArgument()) << n << ": " << s.ToString();
  EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  ASSERT_TRUE(t.Rollback().ok());
}

// Writes with `write` into the database `open` opens and runs `check` on the
// memtable; on disk then after a flush, after a reopen, after a reopen that
// replays new writes from the WAL, after a second flush and after a
// compaction. With `count_segments` (rows: no search flushes, nothing is
// deleted) it also checks that each of those steps left the segments it
// should.
template <typename Open, typename Write, typename Check>
void WriteAndCheckEverywhere(bool disk, bool count_segments, Open open, Write write, Check check) {
  auto db = open();
  ASSERT_NE(db, nullptr);
  write(*db);
  check(*db, "memtable");
  if (count_segments) ASSERT_EQ(db->TEST_SegmentCount(), 0u) << "a flush ran before the memtable checks";
  if (!disk) return;
  Status s = db->Flush();
  ASSERT_TRUE(s.ok()) << s.ToString();
  check(*db, "segment");
  ASSERT_TRUE(db->Close().ok());
  db = open();
  ASSERT_NE(db, nullptr);
  check(*db, "reopened");
  write(*db);  // again: newer versions in the WAL only
  ASSERT_TRUE(db->Close().ok());
  db = open();
  ASSERT_NE(db, nullptr);
  check(*db, "replayed");
  s = db->Flush();
  ASSERT_TRUE(s.ok()) << s.ToString();
  if (count_segments) ASSERT_EQ(db->TEST_SegmentCount(), 2u);
  check(*db, "flushed again");
  s = db->Compact(true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  if (count_segments) ASSERT_EQ(db->TEST_SegmentCount(), 1u);
  check(*db, "compacted");
}

// Both storage modes.
class Sizes : public BothModes {
 protected:
  template <typename Write, typename Check>
  void Everywhere(Write write, Check check) {
    WriteAndCheckEverywhere(disk(), false, [&] { return OpenKv(dir(), SizesOptions(dir())); }, write, check);
  }
  template <typename Write, typename Check>
  void RowsEverywhere(uint32_t dim, Write write, Check check) {
    WriteAndCheckEverywhere(disk(), true, [&] { return OpenRowsDb(dir(), dim); }, write, check);
  }
};

TEST_P(Sizes, KeysOfEveryBoundaryLength) {
  // Each key with an empty value, a one-byte one and one at the inline limit.
  static constexpr size_t kValueLengths[3] = {0, 1, 4096};
  const std::vector<size_t> lengths = Boundaries(kMaxKeyLen + 1);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      for (size_t j = 0; j < 3; ++j) {
        const size_t vlen = kValueLengths[j];
        auto t = BeginRw(db);
        const Status s = t->Put(KeyOf(n, static_cast<char>('a' + j)), Pattern(vlen, 'v'));
        CommitUnlessRefused(*t, s, n, n == 0 || n > kMaxKeyLen, "key");
      }
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t n : lengths) {
      if (n == 0 || n > kMaxKeyLen) continue;
      for (size_t j = 0; j < 3; ++j) {
        const size_t vlen = kValueLengths[j];
        auto v = GetValue(*t, KeyOf(n, static_cast<char>('a' + j)));
        ASSERT_TRUE(v.has_value()) << where << " key length " << n << " value " << vlen;
        EXPECT_EQ(*v, Pattern(vlen, 'v')) << where << " key length " << n;
      }
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, ValuesOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      auto t = BeginRw(db);
      ASSERT_TRUE(t->Put("v" + std::to_string(n), Pattern(n, 'x')).ok());
      CommitOk(*t, n);
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t n : lengths) {
      auto v = GetValue(*t, "v" + std::to_string(n));
      ASSERT_TRUE(v.has_value()) << where << " " << n;
      ASSERT_EQ(v->size(), n) << where;
      EXPECT_TRUE(*v == Pattern(n, 'x')) << where << " value of " << n << " bytes differs";
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, VectorMetadataOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  const std::vector<float> vec = VectorOf(4);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      auto t = BeginRw(db);
      const std::string meta = Pattern(n, 'm');
      const std::string_view mv(meta);
      ASSERT_TRUE(t->UpsertVector("m" + std::to_string(n), vec.data(), 4, simd::Metric::kL2, &mv).ok());
      CommitOk(*t, n);
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t n : lengths) {
      auto v = GetValue(*t, "m" + std::to_string(n));
      ASSERT_TRUE(v.has_value()) << where << " " << n;
      EXPECT_TRUE(*v == Pattern(n, 'm')) << where << " metadata of " << n << " bytes differs";
      std::vector<float> got;
      ASSERT_TRUE(t->GetVector("m" + std::to_string(n), simd::Metric::kL2, &got).ok());
      EXPECT_EQ(got, vec) << where;
    }
    std::vector<engine::KeyHit> hits;
    ASSERT_TRUE(t->SearchSimilar(vec.data(), 4, simd::Metric::kL2, 3, nullptr, false, &hits).ok());
    ASSERT_EQ(hits.size(), 3u) << where;
    for (const auto& h : hits) {
      const size_t n = std::stoull(h.key.substr(1));
      EXPECT_TRUE(h.metadata == Pattern(n, 'm')) << where << " search hit " << h.key;
      EXPECT_EQ(h.score, 0.0f);
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, VectorsOfEveryBoundaryDimension) {
  const std::vector<size_t> dims = Boundaries(kMaxDim + 1);
  auto write = [&](DB& db) {
    for (size_t d : dims) {
      const std::vector<float> vec = VectorOf(static_cast<uint32_t>(d));
      auto t = BeginRw(db);
      const Status s = t->UpsertVector("d" + std::to_string(d), vec.data(), static_cast<uint32_t>(d),
                                       simd::Metric::kCosine, nullptr);
      CommitUnlessRefused(*t, s, d, d == 0 || d > kMaxDim, "dimension");
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t d : dims) {
      if (d == 0 || d > kMaxDim) {
        EXPECT_FALSE(GetValue(*t, "d" + std::to_string(d)).has_value()) << where << " " << d;
        continue;
      }
      std::vector<float> got;
      Status s = t->GetVector("d" + std::to_string(d), simd::Metric::kCosine, &got);
      ASSERT_TRUE(s.ok()) << where << " " << d << ": " << s.ToString();
      EXPECT_EQ(got, VectorOf(static_cast<uint32_t>(d))) << where << " dim " << d;
      // Records of other dimensions are in the keyspace too: search this one's key.
      const std::string key = "d" + std::to_string(d);
      const std::vector<std::string_view> only = {key};
      std::vector<engine::KeyHit> hits;
      s = t->SearchSimilar(got.data(), static_cast<uint32_t>(d), simd::Metric::kCosine, 1, &only, false, &hits);
      ASSERT_TRUE(s.ok()) << where << " " << d << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].key, "d" + std::to_string(d));
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, DeletesOfKeysOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(kMaxKeyLen);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      if (n == 0) continue;
      const std::string key = KeyOf(n, 'd');
      PutCommit(db, key, "live");
      auto t = BeginRw(db);
      ASSERT_TRUE(t->Delete(key).ok());
      CommitOk(*t, n);
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t n : lengths) {
      if (n == 0) continue;
      EXPECT_FALSE(GetValue(*t, KeyOf(n, 'd')).has_value()) << where << " deleted key of " << n << " bytes";
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, IndexEntriesOfEveryBoundaryKeyAndMetadataLength) {
  const std::vector<size_t> key_lengths = Boundaries(kMaxKeyLen);
  const std::vector<size_t> meta_lengths = Boundaries(size_t{1} << 20 | 1);
  auto write = [&](DB& db) {
    engine::IndexConfig c;
    c.dim = 8;
    c.metric = simd::Metric::kL2;
    ASSERT_TRUE(db.CreateIndex("ix", c).ok());
    auto t = BeginRw(db);
    for (size_t n : key_lengths) {
      if (n == 0) continue;
      std::vector<float> v = VectorOf(8);
      v[0] = static_cast<float>(n);
      const std::string meta = Pattern(meta_lengths[n % meta_lengths.size()], 'i');
      const std::string_view mv(meta);
      Status s = t->IndexUpsert("ix", KeyOf(n, 'k'), v.data(), 8, &mv);
      ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
    }
    for (size_t m : meta_lengths) {
      std::vector<float> v = VectorOf(8);
      v[1] = 1e6f + static_cast<float>(m);
      const std::string meta = Pattern(m, 'j');
      const std::string_view mv(meta);
      ASSERT_TRUE(t->IndexUpsert("ix", "meta" + std::to_string(m), v.data(), 8, &mv).ok());
    }
    Status s = t->Commit();
    ASSERT_TRUE(s.ok()) << s.ToString();
  };
  auto check = [&](DB& db, const char* where) {
    for (size_t n : key_lengths) {
      if (n == 0) continue;
      std::vector<float> q = VectorOf(8);
      q[0] = static_cast<float>(n);
      std::vector<engine::KeyHit> hits;
      Status s = db.SearchIndex("ix", q.data(), 8, 1, 64, "", &hits, nullptr);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_TRUE(hits[0].key == KeyOf(n, 'k')) << where << " index key of " << n << " bytes";
      EXPECT_TRUE(hits[0].metadata == Pattern(meta_lengths[n % meta_lengths.size()], 'i')) << where;
    }
    for (size_t m : meta_lengths) {
      std::vector<float> q = VectorOf(8);
      q[1] = 1e6f + static_cast<float>(m);
      std::vector<engine::KeyHit> hits;
      ASSERT_TRUE(db.SearchIndex("ix", q.data(), 8, 1, 64, "", &hits, nullptr).ok());
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].key, "meta" + std::to_string(m)) << where;
      EXPECT_TRUE(hits[0].metadata == Pattern(m, 'j')) << where << " index metadata of " << m << " bytes";
    }
  };
  Everywhere(write, check);
}

TEST_P(Sizes, CommitsOfEveryBoundaryNumberOfWrites) {
  const std::vector<size_t> counts = Boundaries((size_t{1} << 14) + 1);
  auto name = [](size_t count, size_t i) { return "c" + std::to_string(count) + "/" + std::to_string(i); };
  auto write = [&](DB& db) {
    for (size_t count : counts) {
      auto t = BeginRw(db);
      for (size_t i = 0; i < count; ++i) ASSERT_TRUE(t->Put(name(count, i), Pattern(i % 64, 'c')).ok());
      CommitOk(*t, count);
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t count : counts) {
      for (size_t i = 0; i < count; ++i) {
        auto v = GetValue(*t, name(count, i));
        ASSERT_TRUE(v.has_value()) << where << " commit of " << count << " writes, write " << i;
        ASSERT_EQ(*v, Pattern(i % 64, 'c'));
      }
    }
  };
  Everywhere(write, check);
}

// The memtable alone: one write of every boundary key and value length into
// a fresh memtable (the smallest arena blocks), read back.
TEST(SizesMemTable, OneWriteOfEveryBoundaryLengthIntoAFreshMemtable) {
  for (size_t klen : Boundaries(kMaxKeyLen + 1)) {
    if (klen == 0) continue;
    for (size_t vlen : Boundaries(size_t{1} << 17 | 1)) {
      memtable::KeyTable m;
      auto v = std::make_shared<engine::Value>();
      v->kind = engine::ValueKind::kBytes;
      v->bytes = Pattern(vlen, 'w');
      const std::string key = KeyOf(klen, 'k');
      m.Apply(1, {engine::Write{key, v}}, 0);
      engine::VersionView got;
      ASSERT_TRUE(m.Get(key, 1, &got)) << klen << " " << vlen;
      ASSERT_TRUE(got.bytes == v->bytes) << "key " << klen << " value " << vlen;
      m.Apply(2, {engine::Write{key, std::make_shared<engine::Value>()}}, 0);  // a tombstone
      ASSERT_TRUE(m.Get(key, 2, &got));
      EXPECT_EQ(got.kind, engine::ValueKind::kTombstone);
    }
  }
}

TEST_P(Sizes, RowMetadataOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  const uint32_t dim = 4;
  auto write = [&](DB& db) {
    for (size_t i = 0; i < lengths.size(); ++i) {
      const Status s = PutRow(&db, i, VectorFor(i, 0, dim), Pattern(lengths[i], 'm'));
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
      EXPECT_EQ(v, VectorFor(i, 0, dim)) << where;
      // Each half of Get alone reads the same.
      std::string meta_only;
      ASSERT_TRUE(db.Get(i, nullptr, &meta_only).ok()) << where;
      EXPECT_TRUE(meta_only == meta) << where << " metadata of " << lengths[i] << " bytes, read alone, differs";
    }
    auto count = db.Count();
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(*count, lengths.size()) << where;
  };
  RowsEverywhere(dim, write, check);
}

TEST(RowSizes, DatabasesOfEveryBoundaryDimension) {
  size_t accepted = 0, refused = 0;
  for (size_t d : Boundaries(kMaxDim + 1)) {
    SCOPED_TRACE("dim " + std::to_string(d));
    const uint32_t dim = static_cast<uint32_t>(d);
    TempDir dir;
    if (d == 0 || d > kMaxDim) {
      ++refused;
      // OpenDefaultCollection checks the dim before it commits anything: the
      // database stays without a default collection, its WAL without a
      // record, and an open with a valid dim creates it.
      auto kv = DB::Open(SizesOptions(dir.path()));
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
      EXPECT_TRUE(WalFiles(dir.path()).empty()) << "the refused open committed something";
      s = db->OpenDefaultCollection(SizesCollection(4));
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(db->dim(), 4u);
      EXPECT_EQ(db->Count().value(), 0u);
      continue;
    }
    ++accepted;
    auto write = [&](DB& db) {
      for (uint64_t id = 0; id < 3; ++id) {
        const std::vector<float> v = VectorFor(id, 0, dim);
        ASSERT_TRUE(db.PutArray(&id, v.data(), 1).ok());
      }
    };
    auto check = [&](DB& db, const char* where) {
      EXPECT_EQ(db.dim(), dim) << where;
      for (uint64_t id = 0; id < 3; ++id) {
        std::vector<float> v;
        std::string meta;
        ASSERT_TRUE(db.Get(id, &v, &meta).ok()) << where;
        EXPECT_EQ(v, VectorFor(id, 0, dim)) << where;
        EXPECT_EQ(meta, "") << where;
      }
      const std::vector<float> q = VectorFor(1, 0, dim);
      const uint32_t k = 3;
      std::vector<std::vector<Hit>> hits;
      Status s = db.Search(q.data(), 1, &k, 0, 0, &hits);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      ASSERT_EQ(hits[0].size(), 3u) << where;
      EXPECT_EQ(hits[0][0].id, 1u) << where;
      EXPECT_EQ(hits[0][0].score, 0.0f) << where;
    };
    WriteAndCheckEverywhere(true, true, [&] { return OpenRowsDb(dir.path(), dim); }, write, check);
  }
  // 1..65535 (ENGINE.md 2.6): 65535 is the largest dim accepted, 0 and 65536 are refused.
  EXPECT_EQ(refused, 2u);
  EXPECT_GT(accepted, 40u);
}

TEST_P(Sizes, RowBatchesOfEveryBoundaryRowCount) {
  const std::vector<size_t> counts = Boundaries((size_t{1} << 14) + 1);
  const uint32_t dim = 8;
  auto base = [&](size_t count) { return uint64_t{count} << 20; };
  auto write = [&](DB& db) {
    for (size_t count : counts) {
      std::vector<uint64_t> ids(count);
      std::vector<float> rows(count * dim);
      for (size_t i = 0; i < count; ++i) {
        ids[i] = base(count) + i;
        const std::vector<float> v = VectorFor(ids[i], 0, dim);
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
        EXPECT_EQ(v, VectorFor(base(c) + i, 0, dim)) << where;
      }
      EXPECT_FALSE(db.Exists(base(c) + c).value()) << where << " batch of " << c << ": a row past its end";
    }
  };
  RowsEverywhere(dim, write, check);
}

// A row array over the WAL's payload limit (1 GiB) is InvalidArgument asking
// to split it, and nothing is applied; the arrays are never read (untouched
// address space).
TEST(RowSizes, ARowArrayOverThePayloadLimitIsInvalidArgumentAndAppliesNothing) {
  TempDir dir;
  const uint32_t dim = 8;
  auto db = OpenRowsDb(dir.path(), dim);
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
  db = OpenRowsDb(dir.path(), dim);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->Count().value(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, Sizes, ::testing::Bool(), ModeName);

}  // namespace
}  // namespace pomai::testing
