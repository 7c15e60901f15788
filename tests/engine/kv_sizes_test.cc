// Size boundaries of the keyspace engine: every length a user controls (keys,
// plain values, vector metadata, vector dimensions, index entries, deletes,
// the number of writes in one commit) at 0, at every power of two up to
// 16 MiB and at one either side, where the field's limit allows it. Each
// length is written, read back from the memtable, from a segment after a
// flush and after a reopen that replays the WAL, in both storage modes. A
// length over the field's limit is InvalidArgument naming it, and nothing of
// that transaction is applied. Run under ASan in CI (build-asan): an arena,
// WAL record or segment entry sized wrongly for one of these lengths is a
// heap overflow there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine/collection.h"
#include "kv_test_util.h"
#include "memtable/key_table.h"
#include "support/sizes.h"
#include "util/limits.h"

namespace pomai::testing {
namespace {

using engine::DB;
using engine::Txn;

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

class KvSizes : public KvBothModes {
 protected:
  // Runs `check` on the memtable, then (disk) after a flush and after a reopen.
  template <typename Write, typename Check>
  void WriteAndCheckEverywhere(Write write, Check check) {
    auto db = Open();
    ASSERT_NE(db, nullptr);
    write(*db);
    check(*db, "memtable");
    if (!disk()) return;
    // Half the history in a segment, the rest in the WAL: write again after the flush.
    Status s = db->Flush();
    ASSERT_TRUE(s.ok()) << s.ToString();
    check(*db, "segment");
    ASSERT_TRUE(db->Close().ok());
    db.reset();
    db = Open();
    ASSERT_NE(db, nullptr);
    check(*db, "reopened");
    write(*db);  // newer versions of the same keys, now in the WAL only
    ASSERT_TRUE(db->Close().ok());
    db.reset();
    db = Open();
    ASSERT_NE(db, nullptr);
    check(*db, "replayed");
    s = db->Flush();
    ASSERT_TRUE(s.ok()) << s.ToString();
    check(*db, "flushed again");
  }
};

TEST_P(KvSizes, KeysOfEveryBoundaryLength) {
  // Each key with an empty value, a one-byte one and one at the inline limit.
  static constexpr size_t kValueLengths[3] = {0, 1, 4096};
  const std::vector<size_t> lengths = Boundaries(kMaxKeyLen + 1);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      for (size_t j = 0; j < 3; ++j) {
        const size_t vlen = kValueLengths[j];
        auto t = BeginRw(db);
        const std::string key = KeyOf(n, static_cast<char>('a' + j));
        Status s = t->Put(key, Pattern(vlen, 'v'));
        if (n == 0 || n > kMaxKeyLen) {
          EXPECT_TRUE(s.IsInvalidArgument()) << n << ": " << s.ToString();
          EXPECT_NE(s.message().find("key"), std::string::npos) << s.message();
          ASSERT_TRUE(t->Rollback().ok());
          continue;
        }
        ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
        s = t->Commit();
        ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
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
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, ValuesOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      auto t = BeginRw(db);
      ASSERT_TRUE(t->Put("v" + std::to_string(n), Pattern(n, 'x')).ok());
      Status s = t->Commit();
      ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
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
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, VectorMetadataOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(size_t{16} << 20 | 1);
  const std::vector<float> vec = VectorOf(4);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      auto t = BeginRw(db);
      const std::string meta = Pattern(n, 'm');
      const std::string_view mv(meta);
      ASSERT_TRUE(t->UpsertVector("m" + std::to_string(n), vec.data(), 4, simd::Metric::kL2, &mv).ok());
      Status s = t->Commit();
      ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
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
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, VectorsOfEveryBoundaryDimension) {
  const std::vector<size_t> dims = Boundaries(kMaxDim + 1);
  auto write = [&](DB& db) {
    for (size_t d : dims) {
      const std::vector<float> vec = VectorOf(static_cast<uint32_t>(d));
      auto t = BeginRw(db);
      Status s = t->UpsertVector("d" + std::to_string(d), vec.data(), static_cast<uint32_t>(d), simd::Metric::kCosine,
                                 nullptr);
      if (d == 0 || d > kMaxDim) {
        EXPECT_TRUE(s.IsInvalidArgument()) << d << ": " << s.ToString();
        EXPECT_NE(s.message().find("dimension"), std::string::npos) << s.message();
        ASSERT_TRUE(t->Rollback().ok());
        continue;
      }
      ASSERT_TRUE(s.ok()) << d << ": " << s.ToString();
      s = t->Commit();
      ASSERT_TRUE(s.ok()) << d << ": " << s.ToString();
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
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, DeletesOfKeysOfEveryBoundaryLength) {
  const std::vector<size_t> lengths = Boundaries(kMaxKeyLen);
  auto write = [&](DB& db) {
    for (size_t n : lengths) {
      if (n == 0) continue;
      const std::string key = KeyOf(n, 'd');
      PutCommit(db, key, "live");
      auto t = BeginRw(db);
      ASSERT_TRUE(t->Delete(key).ok());
      Status s = t->Commit();
      ASSERT_TRUE(s.ok()) << n << ": " << s.ToString();
    }
  };
  auto check = [&](DB& db, const char* where) {
    auto t = BeginRo(db);
    for (size_t n : lengths) {
      if (n == 0) continue;
      EXPECT_FALSE(GetValue(*t, KeyOf(n, 'd')).has_value()) << where << " deleted key of " << n << " bytes";
    }
  };
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, IndexEntriesOfEveryBoundaryKeyAndMetadataLength) {
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
      Status s = db.SearchIndex("ix", q.data(), 8, 1, 64, &hits, nullptr);
      ASSERT_TRUE(s.ok()) << where << ": " << s.ToString();
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_TRUE(hits[0].key == KeyOf(n, 'k')) << where << " index key of " << n << " bytes";
      EXPECT_TRUE(hits[0].metadata == Pattern(meta_lengths[n % meta_lengths.size()], 'i')) << where;
    }
    for (size_t m : meta_lengths) {
      std::vector<float> q = VectorOf(8);
      q[1] = 1e6f + static_cast<float>(m);
      std::vector<engine::KeyHit> hits;
      ASSERT_TRUE(db.SearchIndex("ix", q.data(), 8, 1, 64, &hits, nullptr).ok());
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(hits[0].key, "meta" + std::to_string(m)) << where;
      EXPECT_TRUE(hits[0].metadata == Pattern(m, 'j')) << where << " index metadata of " << m << " bytes";
    }
  };
  WriteAndCheckEverywhere(write, check);
}

TEST_P(KvSizes, CommitsOfEveryBoundaryNumberOfWrites) {
  const std::vector<size_t> counts = Boundaries((size_t{1} << 14) + 1);
  auto name = [](size_t count, size_t i) { return "c" + std::to_string(count) + "/" + std::to_string(i); };
  auto write = [&](DB& db) {
    for (size_t count : counts) {
      auto t = BeginRw(db);
      for (size_t i = 0; i < count; ++i) ASSERT_TRUE(t->Put(name(count, i), Pattern(i % 64, 'c')).ok());
      Status s = t->Commit();
      ASSERT_TRUE(s.ok()) << count << ": " << s.ToString();
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
  WriteAndCheckEverywhere(write, check);
}

// The memtable alone: one write of every boundary key and value length into
// a fresh memtable (the smallest arena blocks), read back.
TEST(KvSizesMemTable, OneWriteOfEveryBoundaryLengthIntoAFreshMemtable) {
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

INSTANTIATE_TEST_SUITE_P(Modes, KvSizes, ::testing::Bool(), ModeName);

}  // namespace
}  // namespace pomai::testing
