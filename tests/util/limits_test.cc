// util/limits.h: the one set of limits, and the messages every face shows.
#include "util/limits.h"

#include <gtest/gtest.h>

#include <string>

namespace pomai {
namespace {

TEST(Limits, DimIsOneTo65535) {
  EXPECT_TRUE(CheckDim(1, "vector").ok());
  EXPECT_TRUE(CheckDim(65535, "vector").ok());
  for (uint64_t bad : {uint64_t{0}, uint64_t{65536}, uint64_t{1} << 32}) {
    Status s = CheckDim(bad, "query");
    ASSERT_TRUE(s.IsInvalidArgument()) << bad;
    EXPECT_EQ(s.message(), "query dimension " + std::to_string(bad) + " is not in 1..65535");
  }
}

TEST(Limits, KeysAreOneTo65535Bytes) {
  EXPECT_TRUE(CheckKey("k", "key").ok());
  EXPECT_TRUE(CheckKey(std::string(65535, 'k'), "key").ok());
  EXPECT_EQ(CheckKey("", "filter key").message(), "filter key is empty (keys are 1 to 65535 bytes)");
  EXPECT_EQ(CheckKey(std::string(65536, 'k'), "key").message(), "key is 65536 bytes (keys are 1 to 65535 bytes)");
}

TEST(Limits, ValuesAreAtMostOneGiB) {
  EXPECT_TRUE(CheckValueSize(kMaxValueLen, "value").ok());
  EXPECT_EQ(CheckValueSize(kMaxValueLen + 1, "metadata").message(), "metadata is 1073741825 bytes (at most 1 GiB)");
}

TEST(Limits, CollectionNamesAreOneTo255BytesWithoutNul) {
  EXPECT_TRUE(CheckCollectionName("docs").ok());
  EXPECT_TRUE(CheckCollectionName(std::string(255, 'n')).ok());
  EXPECT_EQ(CheckCollectionName("").message(), "index name '' is 0 bytes (index names are 1 to 255 bytes)");
  EXPECT_TRUE(CheckCollectionName(std::string(256, 'n')).IsInvalidArgument());
  EXPECT_EQ(CheckCollectionName(std::string("a\0b", 3)).message(), "index name contains a NUL byte");
}

TEST(Limits, ShardsAreOneTo1024) {
  EXPECT_TRUE(CheckShards(1, "shards").ok());
  EXPECT_TRUE(CheckShards(1024, "shards").ok());
  EXPECT_EQ(CheckShards(0, "shards").message(), "shards is 0");
  EXPECT_EQ(CheckShards(1025, "shards").message(), "shards 1025 is above 1024");
}

TEST(Limits, PrintableEscapesAndCuts) {
  EXPECT_EQ(Printable("ab\x01'"), "ab\\x01\\x27");
  EXPECT_EQ(Printable(std::string(201, 'x')), std::string(200, 'x') + "...");
}

}  // namespace
}  // namespace pomai
