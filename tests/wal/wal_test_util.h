// Helpers shared by the WAL tests: an independent encoder of the documented
// record layout, and a reader loop that copies records out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/coding.h"
#include "util/crc32c.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"

namespace pomai::wal::testutil {

// One record framed by hand from docs/FORMAT.md ("WAL files"), not by the Writer.
inline std::string Frame(uint8_t type, uint64_t seq, std::string_view payload) {
  std::string out(kHeaderSize, '\0');
  auto* h = reinterpret_cast<uint8_t*>(out.data());
  EncodeFixed32(h, static_cast<uint32_t>(payload.size()));
  h[4] = type;
  EncodeFixed64(h + 8, seq);
  EncodeFixed32(h + 16, crc32c::Value(payload.data(), payload.size()));
  EncodeFixed32(h + 20, crc32c::Value(h, 20));
  out.append(payload);
  return out;
}

struct OwnedRecord {
  uint8_t type = 0;
  uint64_t seq = 0;
  std::string payload;
  uint64_t offset = 0;
};

struct ReadResult {
  std::vector<OwnedRecord> records;
  Status status;
  bool torn = false;
  uint64_t good_end = 0;
};

inline ReadResult ReadAll(std::string_view data, const std::string& path) {
  Reader reader(reinterpret_cast<const uint8_t*>(data.data()), data.size(), path);
  ReadResult out;
  Record rec;
  while (reader.Next(&rec)) out.records.push_back({rec.type, rec.seq, std::string(rec.payload), rec.offset});
  out.status = reader.status();
  out.torn = reader.dropped_torn_tail();
  out.good_end = reader.good_end();
  return out;
}

// A payload of `n` bytes that differs with `salt`.
inline std::string Payload(size_t n, uint64_t salt) {
  std::string s(n, '\0');
  uint64_t x = salt * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>(x);
  }
  return s;
}

}  // namespace pomai::wal::testutil
