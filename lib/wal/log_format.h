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

namespace pomai::wal {

constexpr size_t kHeaderSize = 24;
// Largest payload a record may carry (1 GiB): bigger batches are rejected by the writer.
constexpr uint32_t kMaxPayload = 1u << 30;

}  // namespace pomai::wal
