// WAL record framing (docs/FORMAT.md, "WAL files").
//
// A WAL file is a sequence of records, each a 24-byte header and a payload:
//
//   offset size field
//   0      4    payload length (u32 LE)
//   4      1    record type (u8, never 0)
//   5      3    reserved, zero
//   8      8    sequence number (u64 LE)
//   16     4    CRC32C of the payload (u32 LE)
//   20     4    CRC32C of header bytes [0, 20) (u32 LE)
//   24     n    payload
//
// The header has its own checksum so that a damaged length field is detected
// as damage instead of being mistaken for a record running past the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::wal {

constexpr size_t kHeaderSize = 24;
// Largest payload a record may carry (1 GiB): bigger batches are rejected by the writer.
constexpr uint32_t kMaxPayload = 1u << 30;

// Writes into h[0, kHeaderSize) the header of a record of `type` with `seq`
// and `size` payload bytes whose CRC32C is `payload_crc`.
inline void EncodeHeader(uint8_t* h, uint8_t type, uint64_t seq, size_t size, uint32_t payload_crc) {
  std::memset(h, 0, kHeaderSize);
  EncodeFixed32(h, static_cast<uint32_t>(size));
  h[4] = type;
  EncodeFixed64(h + 8, seq);
  EncodeFixed32(h + 16, payload_crc);
  EncodeFixed32(h + 20, crc32c::Value(h, 20));
}

}  // namespace pomai::wal
