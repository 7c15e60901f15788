// Segment file format constants (docs/FORMAT.md, "Segment files").
//
//   [header: 128 bytes]
//   [section payloads, each starting at a 64-byte aligned offset, zero padding between]
//   [section table: section_count entries of 32 bytes]
//   [footer: 32 bytes]
//
// Header (128 bytes, little-endian):
//   0   8  magic "POMAISEG"
//   8   4  format_version (kFormatVersion)
//   12  4  header_size (128)
//   16  4  dim
//   20  1  metric (0 L2, 1 IP, 2 COSINE)
//   21  3  reserved, zero
//   24  4  shard
//   28  4  reserved, zero
//   32  8  row_count
//   40  8  tombstone_count
//   48  8  min_seq
//   56  8  max_seq
//   64  60 reserved, zero
//   124 4  CRC32C of bytes [0, 124)
//
// Section table entry (32 bytes):
//   0  4  kind (SectionKind, segment/section_kind.h)
//   4  4  flags (0)
//   8  8  offset from the start of the file
//   16 8  length in bytes
//   24 4  CRC32C of the section's bytes
//   28 4  reserved, zero
//
// Footer (32 bytes):
//   0  8  section_table_offset
//   8  4  section_count
//   12 4  CRC32C of the section table
//   16 8  file_size (the whole file, footer included)
//   24 8  magic "POMAIEND"
#pragma once

#include <cstddef>
#include <cstdint>

#include "segment/section_kind.h"

namespace pomai::segment {

constexpr char kMagic[8] = {'P', 'O', 'M', 'A', 'I', 'S', 'E', 'G'};
constexpr char kFooterMagic[8] = {'P', 'O', 'M', 'A', 'I', 'E', 'N', 'D'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 128;
// Offset of the header's shard field (the table above).
constexpr size_t kHeaderShardOffset = 24;
constexpr size_t kSectionEntrySize = 32;
constexpr size_t kFooterSize = 32;
constexpr size_t kSectionAlign = 64;
// Sanity bound on the number of sections a reader accepts.
constexpr uint32_t kMaxSections = 1024;

}  // namespace pomai::segment
