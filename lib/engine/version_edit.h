// A version edit: one change to the set of live files, the payload of a
// manifest record (type 32; docs/ENGINE.md 3.5).
//
// The payload is a sequence of fields, each `u16 tag, u16 zero, u32 length,
// value` (little-endian):
//
//   tag  field              value
//   1    format version     u32 (2)
//   2    log number         u64: WAL files numbered >= it are live
//   3    last seq           u64: every seq <= it is in a live segment
//   4    next file number   u64: greater than every number in use
//   5    add segment        u64 number, u64 file size, u64 first seq, u64 last seq
//   6    remove segment     u64 number
//
// Encode writes the fields in tag order (adds and removes in the order of
// their vectors), and Decode accepts only that order, with tags 1 to 4 at
// most once, so every payload that decodes encodes back to the same bytes.
// The rules that need a version (what is live, intervals, format version 2
// first) are VersionSet's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace pomai::engine {

// The database format version this build reads and writes.
constexpr uint32_t kFormatVersion = 2;

// A live segment file and the closed seq interval [first_seq, last_seq] it stands for.
struct SegmentMeta {
  uint64_t number = 0;
  uint64_t file_size = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  bool operator==(const SegmentMeta&) const = default;
};

enum class EditTag : uint16_t {
  kFormatVersion = 1,
  kLogNumber = 2,
  kLastSeq = 3,
  kNextFileNumber = 4,
  kAddSegment = 5,
  kRemoveSegment = 6,
};

struct VersionEdit {
  std::optional<uint32_t> format_version;
  std::optional<uint64_t> log_number;
  std::optional<uint64_t> last_seq;
  std::optional<uint64_t> next_file_number;
  std::vector<SegmentMeta> added;
  std::vector<uint64_t> removed;

  bool operator==(const VersionEdit&) const = default;

  std::string Encode() const;
  // Decodes `payload` into *edit (overwritten). Corruption "<origin> at offset
  // N: ..." for an unknown tag, a nonzero reserved u16, a wrong length, a
  // truncated field, a field out of tag order or repeated; N is
  // `base_offset` + the field's position in the payload (a manifest reader
  // passes the payload's offset in its file).
  static Status Decode(std::string_view payload, const std::string& origin, VersionEdit* edit,
                       uint64_t base_offset = 0);
};

}  // namespace pomai::engine
