// Collections (engine/collection.h, docs/ENGINE.md 2.2): the configuration
// value's layout and checks, row keys, and the rows of a collection by cid.
#include "engine/collection.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "db_test_util.h"
#include "engine/db.h"
#include "util/coding.h"

namespace pomai::engine {
namespace {

CollectionConfig Index(uint32_t dim) {
  CollectionConfig c;
  c.dim = dim;
  c.m = 8;
  c.ef_construction = 100;
  c.metric = simd::Metric::kIP;
  return c;
}

TEST(CollectionConfig, EncodesTheDocumentedLayout) {
  CollectionConfig c = Index(384);
  c.key_type = KeyType::kU64;
  c.graph_vectors = GraphVectors::kSq8;
  c.shards = 4;
  const std::string v = c.Encode();
  ASSERT_EQ(v.size(), 32u);
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  EXPECT_EQ(DecodeFixed32(p), 1u);
  EXPECT_EQ(p[4], 1);  // u64 ids
  EXPECT_EQ(p[5], 1);  // IP
  EXPECT_EQ(p[6], 0);  // SQ8
  EXPECT_EQ(p[7], 0);
  EXPECT_EQ(DecodeFixed32(p + 8), 384u);
  EXPECT_EQ(DecodeFixed32(p + 12), 8u);
  EXPECT_EQ(DecodeFixed32(p + 16), 100u);
  EXPECT_EQ(DecodeFixed32(p + 20), 4u);
  EXPECT_EQ(DecodeFixed64(p + 24), 0u);
  CollectionConfig back;
  ASSERT_TRUE(CollectionConfig::Decode(v, "k", &back).ok());
  EXPECT_EQ(back, c);
}

TEST(CollectionConfig, ValidateNamesTheField) {
  EXPECT_TRUE(Index(1).Validate().ok());
  EXPECT_TRUE(Index(65535).Validate().ok());
  EXPECT_EQ(Index(0).Validate().code(), Code::kInvalidArgument);
  EXPECT_EQ(Index(65536).Validate().code(), Code::kInvalidArgument);
  CollectionConfig c = Index(4);
  c.m = 1;
  EXPECT_EQ(c.Validate().code(), Code::kInvalidArgument);
  c = Index(4);
  c.shards = 2;  // byte keys have one
  EXPECT_NE(c.Validate().message().find("collection shards 2"), std::string::npos) << c.Validate().message();
  c.key_type = KeyType::kU64;
  EXPECT_TRUE(c.Validate().ok());
  c.shards = 1025;
  EXPECT_FALSE(c.Validate().ok());
  c = Index(4);
  c.key_type = static_cast<KeyType>(3);
  EXPECT_NE(c.Validate().message().find("collection key type 3"), std::string::npos);
  c = Index(4);
  c.metric = static_cast<simd::Metric>(3);
  EXPECT_NE(c.Validate().message().find("collection metric 3"), std::string::npos);
  c = Index(4);
  c.graph_vectors = static_cast<GraphVectors>(2);
  EXPECT_NE(c.Validate().message().find("collection graph vectors 2"), std::string::npos);
}

// Every byte of a stored value: each change is Corruption naming the origin,
// or decodes to a configuration that passes Validate (a field's other valid
// value); never a crash or an unchecked field.
TEST(CollectionConfig, DecodeChecksEveryByte) {
  const std::string good = Index(16).Encode();
  CollectionConfig out;
  EXPECT_EQ(CollectionConfig::Decode(good.substr(0, 31), "cfg", &out).code(), Code::kCorruption);
  EXPECT_EQ(CollectionConfig::Decode(good + "x", "cfg", &out).code(), Code::kCorruption);
  for (size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string v = good;
      v[i] = static_cast<char>(v[i] ^ (1 << bit));
      CollectionConfig c;
      Status s = CollectionConfig::Decode(v, "cfg", &c);
      if (s.ok()) {
        EXPECT_TRUE(c.Validate().ok());
        EXPECT_TRUE((i >= 5 && i <= 6) || (i >= 8 && i < 24)) << "byte " << i << " bit " << bit;
        EXPECT_EQ(c.Encode(), v);
      } else {
        EXPECT_EQ(s.code(), Code::kCorruption);
        EXPECT_EQ(s.message().rfind("cfg: ", 0), 0u) << s.message();
      }
    }
  }
}

TEST(CollectionKeys, RowKeysSortByCidThenKey) {
  EXPECT_EQ(ConfigKey("docs"), std::string("\x01" "docs"));
  EXPECT_EQ(RowPrefix(0x0102030405060708ull), std::string("\x02\x01\x02\x03\x04\x05\x06\x07\x08", 9));
  EXPECT_LT(RowKey(7, "zzz"), RowKey(8, "a"));
  EXPECT_LT(RowKey(255, "a"), RowKey(256, "a"));
  EXPECT_LT(RowKey(7, "a"), RowKey(7, "b"));
  uint64_t cid = 0;
  std::string_view key;  // points into the row key it was parsed from
  const std::string row = RowKey(1234567, "k\0ey");  // a C string: "k"
  ASSERT_TRUE(ParseRowKey(row, &cid, &key));
  EXPECT_EQ(cid, 1234567u);
  EXPECT_EQ(key, "k");
  const std::string nul = RowKey(9, std::string("k\0y", 3));
  ASSERT_TRUE(ParseRowKey(nul, &cid, &key));
  EXPECT_EQ(cid, 9u);
  EXPECT_EQ(key, std::string_view("k\0y", 3));
  EXPECT_FALSE(ParseRowKey(RowPrefix(9), &cid, &key));  // no key
  EXPECT_FALSE(ParseRowKey(ConfigKey("docs-and-more"), &cid, &key));
}

// Found by the crash test (a recovery showed the collection with no entries):
// a collection's cid is the seq of its creation, and its memtable rows are
// the keys in [RowPrefix(cid), PrefixEnd(RowPrefix(cid))). When the cid's
// last byte is 0xFF (cid 255, 511, ...) PrefixEnd wrapped that byte to 0x00
// instead of carrying, so the range was empty: statistics, searches and
// PrepareCollection missed every row in a memtable until a flush.
TEST(CollectionCid, RowsOfACollectionWhoseCidEndsInByteFFAreSeenInTheMemtable) {
  testing::TempDir dir;
  Options o;
  o.fsync = false;
  auto db = testing::OpenKv(dir.path(), o);
  ASSERT_TRUE(db);
  for (uint64_t i = 0; db->TEST_LastSequence() < 254; ++i) testing::PutCommit(*db, "k" + std::to_string(i), "v");
  ASSERT_EQ(db->TEST_LastSequence(), 254u);
  IndexConfig config;
  config.dim = 8;
  config.m = 8;
  config.ef_construction = 32;
  config.metric = simd::Metric::kL2;
  ASSERT_TRUE(db->CreateIndex("ix", config).ok());  // seq 255: cid 0xFF
  ASSERT_EQ(RowPrefix(db->TEST_LastSequence()).back(), '\xFF');
  auto t = testing::BeginRw(*db);
  for (uint64_t i = 1; i <= 3; ++i) {
    const std::vector<float> v = testing::VectorFor(i, 1, 8);
    ASSERT_TRUE(t->IndexUpsert("ix", "e" + std::to_string(i), v.data(), 8, nullptr).ok());
  }
  ASSERT_TRUE(t->Commit().ok());
  IndexStats stats;
  ASSERT_TRUE(db->GetIndexStats("ix", &stats).ok());
  EXPECT_EQ(stats.node_count, 3u);
  const std::vector<float> q = testing::VectorFor(2, 1, 8);
  std::vector<KeyHit> hits;
  ASSERT_TRUE(db->SearchIndex("ix", q.data(), 8, 3, 64, "", &hits, nullptr).ok());
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].key, "e2");
}

}  // namespace
}  // namespace pomai::engine
