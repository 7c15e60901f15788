#include "wal/log_reader.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "wal/log_format.h"
#include "wal_test_util.h"

namespace pomai::wal {
namespace {

using testutil::Frame;
using testutil::Payload;
using testutil::ReadAll;

const std::string kPath = "/db/wal-000007.log";

// Three records, and their start offsets (plus the end offset).
std::pair<std::string, std::vector<uint64_t>> ThreeRecords() {
  std::string data;
  std::vector<uint64_t> starts;
  const std::string payloads[] = {Payload(10, 1), Payload(37, 2), Payload(100, 3)};
  for (int i = 0; i < 3; ++i) {
    starts.push_back(data.size());
    data += Frame(static_cast<uint8_t>(i + 1), 50 + i, payloads[i]);
  }
  starts.push_back(data.size());
  return {data, starts};
}

std::string OffsetText(uint64_t offset) { return "offset " + std::to_string(offset); }

TEST(WalReader, EmptyFileHasNoRecordsAndIsClean) {
  Reader reader(nullptr, 0, kPath);
  Record rec;
  EXPECT_FALSE(reader.Next(&rec));
  EXPECT_TRUE(reader.status().ok());
  EXPECT_FALSE(reader.dropped_torn_tail());
  EXPECT_EQ(reader.good_end(), 0u);
}

TEST(WalReader, ReadsHandFramedRecordsWithOffsets) {
  auto [data, starts] = ThreeRecords();
  auto r = ReadAll(data, kPath);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_FALSE(r.torn);
  ASSERT_EQ(r.records.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.records[i].type, i + 1);
    EXPECT_EQ(r.records[i].seq, 50u + i);
    EXPECT_EQ(r.records[i].offset, starts[i]);
    EXPECT_EQ(r.records[i].payload.size(), starts[i + 1] - starts[i] - kHeaderSize);
  }
  EXPECT_EQ(r.good_end, data.size());
}

TEST(WalReader, TornTailAtEveryByteOfTheLastRecordIsDroppedNotReported) {
  const auto [data, starts] = ThreeRecords();
  const uint64_t last = starts[2];
  const uint64_t end = starts[3];
  ASSERT_GT(end - last, kHeaderSize);  // tears both inside the header and inside the payload
  for (uint64_t len = last + 1; len < end; ++len) {
    SCOPED_TRACE("file cut to " + std::to_string(len) + " bytes");
    auto r = ReadAll(std::string_view(data).substr(0, len), kPath);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(r.torn);
    ASSERT_EQ(r.records.size(), 2u);
    EXPECT_EQ(r.records[1].seq, 51u);
    EXPECT_EQ(r.good_end, last);
  }
  // Cut exactly at a record boundary: a clean end, nothing torn.
  auto r = ReadAll(std::string_view(data).substr(0, last), kPath);
  EXPECT_TRUE(r.status.ok());
  EXPECT_FALSE(r.torn);
  EXPECT_EQ(r.records.size(), 2u);
}

TEST(WalReader, ZeroFilledTailIsDroppedNotReported) {
  const auto [good, starts] = ThreeRecords();
  for (size_t zeros : {1u, 23u, 24u, 25u, 4096u}) {
    SCOPED_TRACE(std::to_string(zeros) + " zero bytes");
    auto r = ReadAll(good + std::string(zeros, '\0'), kPath);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(r.torn);
    EXPECT_EQ(r.records.size(), 3u);
    EXPECT_EQ(r.good_end, good.size());
  }
}

TEST(WalReader, ZerosFollowedByDataAreCorruptionNotATornTail) {
  const auto [good, starts] = ThreeRecords();
  std::string data = good + std::string(4096, '\0');
  data[data.size() - 1] = 1;
  auto r = ReadAll(data, kPath);
  EXPECT_TRUE(r.status.IsCorruption()) << r.status.ToString();
  EXPECT_NE(r.status.message().find(OffsetText(good.size())), std::string::npos) << r.status.message();
  EXPECT_EQ(r.records.size(), 3u);
}

// Flips each byte of the record at [starts[victim], starts[victim + 1]) in turn.
void ExpectEveryFlipIsCorruption(int victim) {
  const auto [good, starts] = ThreeRecords();
  for (uint64_t at = starts[victim]; at < starts[victim + 1]; ++at) {
    SCOPED_TRACE("byte " + std::to_string(at) + " flipped");
    std::string data = good;
    data[at] = static_cast<char>(data[at] ^ 0x5A);
    auto r = ReadAll(data, kPath);
    EXPECT_TRUE(r.status.IsCorruption()) << r.status.ToString();
    EXPECT_FALSE(r.torn);
    EXPECT_NE(r.status.message().find(kPath), std::string::npos) << r.status.message();
    EXPECT_NE(r.status.message().find(OffsetText(starts[victim])), std::string::npos) << r.status.message();
    ASSERT_EQ(r.records.size(), static_cast<size_t>(victim));
    for (int i = 0; i < victim; ++i) EXPECT_EQ(r.records[i].seq, 50u + i);
    EXPECT_EQ(r.good_end, starts[victim]);
  }
}

TEST(WalReader, FlippedByteInAMiddleRecordIsCorruptionAtItsOffset) { ExpectEveryFlipIsCorruption(1); }

TEST(WalReader, FlippedByteInTheLastRecordIsCorruptionAtItsOffset) { ExpectEveryFlipIsCorruption(2); }

TEST(WalReader, FlippedByteInTheFirstRecordIsCorruptionAtOffsetZero) { ExpectEveryFlipIsCorruption(0); }

// A header with a valid header checksum but a field that no writer produces.
std::string CraftedHeader(uint32_t len, uint8_t type, uint8_t reserved) {
  std::string h = Frame(type, 9, "");
  auto* p = reinterpret_cast<uint8_t*>(h.data());
  EncodeFixed32(p, len);
  p[5] = reserved;
  EncodeFixed32(p + 20, crc32c::Value(p, 20));
  return h;
}

TEST(WalReader, ValidlyChecksummedButImpossibleHeadersAreCorruption) {
  const std::string first = Frame(1, 1, "abc");
  struct Case {
    const char* name;
    std::string tail;
  };
  const Case cases[] = {
      {"reserved byte set", CraftedHeader(0, 1, 1)},
      {"type 0", CraftedHeader(0, 0, 0)},
      // The payload would run past the end, but the length itself is invalid: not a torn tail.
      {"length over the limit", CraftedHeader(kMaxPayload + 1, 1, 0)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = ReadAll(first + c.tail, kPath);
    EXPECT_TRUE(r.status.IsCorruption()) << r.status.ToString();
    EXPECT_NE(r.status.message().find(OffsetText(first.size())), std::string::npos) << r.status.message();
    EXPECT_EQ(r.records.size(), 1u);
  }
}

TEST(WalReader, ReturnsNothingMoreAfterAnError) {
  auto [data, starts] = ThreeRecords();
  data[starts[1] + kHeaderSize] ^= 1;  // payload of the second record
  Reader reader(reinterpret_cast<const uint8_t*>(data.data()), data.size(), kPath);
  Record rec;
  ASSERT_TRUE(reader.Next(&rec));
  EXPECT_FALSE(reader.Next(&rec));
  EXPECT_FALSE(reader.Next(&rec));
  EXPECT_TRUE(reader.status().IsCorruption());
}

}  // namespace
}  // namespace pomai::wal
