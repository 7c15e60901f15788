// Checksum fix-ups for fuzz inputs that are segment files (segment_fuzz):
// recomputing the CRCs the mutations broke lets the fuzzer reach
// the checks behind them.
#pragma once

#include <cstdint>
#include <vector>

#include "segment/format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::fuzz {

// flags bit 0: recompute the header CRC; bit 1: every section CRC in the
// table (for sections inside the file); bit 2: the table CRC. Files too
// short for a header and a footer are left alone.
inline void FixSegmentChecksums(std::vector<uint8_t>& f, uint8_t flags) {
  const size_t size = f.size();
  if (size < segment::kHeaderSize + segment::kFooterSize) return;
  uint8_t* footer = f.data() + size - segment::kFooterSize;
  const uint64_t table = DecodeFixed64(footer);
  const uint64_t count = DecodeFixed32(footer + 8);
  const bool table_ok = table <= size - segment::kFooterSize &&
                        count * segment::kSectionEntrySize <= size - segment::kFooterSize - table;
  if ((flags & 2) && table_ok) {
    for (uint64_t i = 0; i < count; ++i) {
      uint8_t* e = f.data() + table + i * segment::kSectionEntrySize;
      const uint64_t off = DecodeFixed64(e + 8), len = DecodeFixed64(e + 16);
      if (off <= size && len <= size - off) EncodeFixed32(e + 24, crc32c::Value(f.data() + off, len));
    }
  }
  if ((flags & 4) && table_ok) {
    EncodeFixed32(footer + 12, crc32c::Value(f.data() + table, count * segment::kSectionEntrySize));
  }
  if (flags & 1) EncodeFixed32(f.data() + segment::header2::kCrc, crc32c::Value(f.data(), segment::header2::kCrc));
}

}  // namespace pomai::fuzz
