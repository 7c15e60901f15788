// Segment file format 2 (docs/ENGINE.md 3.3): the layout constants shared by
// segment::SegmentWriter (segment/writer.h) and segment::SegmentFile
// (segment/file.h). All integers little-endian, every checksum CRC32C.
//
//   [header: 128 bytes]
//   [sections, each at a 64-byte aligned offset, zero padding before each]
//   [zero padding to 64]
//   [section table: section_count x 32 bytes]
//   [footer: 32 bytes]
//
// Format 1 (version 1 in the same header field) is not read: SegmentFile::Open
// refuses it naming its version (docs/FORMAT.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include "segment/section_kind.h"

namespace pomai::segment {

constexpr char kMagic[8] = {'P', 'O', 'M', 'A', 'I', 'S', 'E', 'G'};
constexpr char kFooterMagic[8] = {'P', 'O', 'M', 'A', 'I', 'E', 'N', 'D'};
constexpr uint32_t kFormatVersion2 = 2;
constexpr size_t kHeaderSize = 128;
constexpr size_t kSectionEntrySize = 32;
constexpr size_t kFooterSize = 32;
constexpr size_t kSectionAlign = 64;

// Header (kHeaderSize = 128 bytes) field offsets.
namespace header2 {
constexpr size_t kMagic = 0;           // 8  "POMAISEG"
constexpr size_t kVersion = 8;         // 4  kFormatVersion2
constexpr size_t kHeaderSize = 12;     // 4  128
constexpr size_t kMinSeq = 16;         // 8  smallest seq of any entry, row or tombstone (0 when empty)
constexpr size_t kMaxSeq = 24;         // 8  largest
constexpr size_t kEntryCount = 32;     // 8  entries in the entries section
constexpr size_t kGroupCount = 40;     // 4  descriptors in the groups section
constexpr size_t kReserved1 = 44;      // 4  zero
constexpr size_t kFileNumber = 48;     // 8  the number in the file's name
constexpr size_t kReserved2 = 56;      // 68 zero
constexpr size_t kCrc = 124;           // 4  CRC32C of bytes [0, 124)
}  // namespace header2

// Section table entry (kSectionEntrySize = 32 bytes) field offsets.
namespace table2 {
constexpr size_t kKind = 0;      // 2  SectionKind
constexpr size_t kColumn = 2;    // 2  attribute kinds 169..173: the column's index in the directory, else zero
constexpr size_t kGroup = 4;     // 4  group index, kFileLevel for a file-level section
constexpr size_t kOffset = 8;    // 8  multiple of 64, >= 128
constexpr size_t kLength = 16;   // 8
constexpr size_t kCrc = 24;      // 4  CRC32C of the section's bytes
constexpr size_t kReserved = 28; // 4  zero
}  // namespace table2
constexpr uint32_t kFileLevel = 0xFFFFFFFFu;

// The attribute directory (kind 168, docs/FORMAT.md "Attribute columns"): a
// head of u32 column count and u32 zero, then per column u16 name length,
// u8 type (AttrType), u8 flags, the name bytes.
namespace attrdir {
constexpr size_t kHeadSize = 8;
constexpr size_t kRecordHead = 4;
constexpr uint8_t kHasValid = 1;  // flags bit 0: the column has an attr valid section
}  // namespace attrdir

// Footer (kFooterSize = 32 bytes) field offsets.
namespace footer2 {
constexpr size_t kTableOffset = 0;  // 8
constexpr size_t kSectionCount = 8; // 4
constexpr size_t kTableCrc = 12;    // 4  CRC32C of the section table
constexpr size_t kFileSize = 16;    // 8  the whole file
constexpr size_t kMagic = 24;       // 8  "POMAIEND"
}  // namespace footer2

// Entry (48 bytes, entries section): one version of one internal key.
constexpr size_t kEntrySize2 = ElementSize(SectionKind::kEntries);
static_assert(kEntrySize2 == 48);
namespace entry2 {
constexpr size_t kKeyOffset = 0;     // 8  in the keys section
constexpr size_t kKeyLength = 8;     // 4  >= 1
constexpr size_t kKind = 12;         // 1  EntryKind
constexpr size_t kMetric = 13;       // 1  vector: simd::Metric, else 0
constexpr size_t kHasMetadata = 14;  // 1  vector: 0/1, else 0
constexpr size_t kZero = 15;         // 1
constexpr size_t kSeq = 16;          // 8
constexpr size_t kValueOffset = 24;  // 8  in the values section
constexpr size_t kValueLength = 32;  // 4  bytes value or metadata; 0 for a tombstone
constexpr size_t kGroup = 36;        // 4  vector: its group, else kNoGroup
constexpr size_t kRow = 40;          // 4  vector: its row in the group, else kNoGroupRow
constexpr size_t kCrc = 44;          // 4  CRC32C of bytes [0, 44), then the key, then the value
}  // namespace entry2
constexpr uint32_t kNoGroup = 0xFFFFFFFFu;
constexpr uint32_t kNoGroupRow = 0xFFFFFFFFu;

enum class EntryKind : uint8_t { kBytes = 1, kVector = 2, kTombstone = 3 };

// Group descriptor (64 bytes, groups section); descriptors strictly ascending
// by (kind, cid, dim, metric).
constexpr size_t kGroupDescriptorSize = ElementSize(SectionKind::kGroups);
static_assert(kGroupDescriptorSize == 64);
namespace group2 {
constexpr size_t kKind = 0;          // 1  GroupKind
constexpr size_t kMetric = 1;        // 1
constexpr size_t kFlags = 2;         // 1  kGroupHasGraph (kinds 1 and 2 only)
constexpr size_t kZero1 = 3;         // 1
constexpr size_t kDim = 4;           // 4  1..kMaxDim
constexpr size_t kCid = 8;           // 8  kinds 1 and 2; 0 for kind 3
constexpr size_t kRows = 16;         // 8
constexpr size_t kTombstones = 24;   // 8  kind 1, else 0
constexpr size_t kRowsPerBlock = 32; // 4  a power of two, 1..kMaxRowsPerBlock
constexpr size_t kZero2 = 36;        // 4
constexpr size_t kMinSeq = 40;       // 8  of its rows and tombstones
constexpr size_t kMaxSeq = 48;       // 8
constexpr size_t kZero3 = 56;        // 4
constexpr size_t kCrc = 60;          // 4  CRC32C of bytes [0, 60)
}  // namespace group2
constexpr uint8_t kGroupHasGraph = 1;

enum class GroupKind : uint8_t {
  kU64 = 1,      // u64 collection rows: ids, seqs, metadata, tombstones in group sections
  kBytes = 2,    // rows of a byte-keyed collection: one vector entry per row (keys 0x02 + BE64(cid) + key)
  kRecords = 3,  // vector records of one (dim, metric): one vector entry per row (keys 0x00 + key)
};

// The section_kind.h group-kind bit (kU64Group, kBytesGroup, kRecordsGroup) of `kind`.
constexpr uint8_t GroupKindBit(GroupKind kind) { return static_cast<uint8_t>(1u << (static_cast<uint8_t>(kind) - 1)); }

// Internal key namespaces (docs/ENGINE.md 2.1) a segment stores as entries.
constexpr uint8_t kNamespaceKeys = 0x00;         // plain values, vector records
constexpr uint8_t kNamespaceCollections = 0x01;  // collection configurations
constexpr uint8_t kNamespaceRows = 0x02;         // byte-keyed collection rows: 0x02 + BE64(cid) + key

// Block CRCs: block b of a group covers rows [b * B, min((b + 1) * B, rows)).
constexpr size_t kBlockBytes = size_t{64} << 10;  // docs/ENGINE.md 7, question 4
constexpr uint32_t kMaxRowsPerBlock = 65536;

// The writer's B for vectors of `dim` floats: the largest power of two with
// B * dim * 4 <= block_bytes, at least 1, at most kMaxRowsPerBlock.
constexpr uint32_t RowsPerBlock(uint32_t dim, size_t block_bytes = kBlockBytes) {
  const uint64_t row_bytes = uint64_t{dim == 0 ? 1 : dim} * 4;
  uint64_t b = 1;
  while (b < kMaxRowsPerBlock && (b * 2) * row_bytes <= block_bytes) b *= 2;
  return static_cast<uint32_t>(b);
}
static_assert(RowsPerBlock(1) == 16384 && RowsPerBlock(128) == 128 && RowsPerBlock(384) == 32 &&
              RowsPerBlock(16384) == 1 && RowsPerBlock(65535) == 1);

// Rows of one group at most (graph row ids are u32; docs/ENGINE.md 2.6).
constexpr uint64_t kMaxGroupRows = 0xFFFFFFFEull;

}  // namespace pomai::segment
