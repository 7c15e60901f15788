// The registry of section kinds: every kind a segment container may hold,
// with its name, where it may appear and its element size
// (docs/ENGINE.md 3.3, "The registry of section kinds"). No other file
// defines a kind number.
//
// A segment (format 2, docs/ENGINE.md 3.3) stores a kind as a u16. An HNSW
// graph as lib/index builds and reads it (a graph image) numbers its sections
// 16..23; a segment stores them as a group's kinds 160..167.
#pragma once

#include <cstdint>

namespace pomai::segment {

enum class SectionKind : uint16_t {
  // A graph image (lib/index/hnsw_format.h).
  kHnswHeader = 16,
  kHnswLevels = 17,
  kHnswLayer0 = 18,
  kHnswUpperIndex = 19,
  kHnswUpperLinks = 20,
  kHnswSq8Params = 21,
  kHnswSq8Codes = 22,
  kHnswSq8Norms = 23,
  // Format 2, file level.
  kEntries = 128,
  kKeys = 129,
  kValues = 130,
  kGroups = 131,
  // Format 2, per vector group.
  kRowIds = 144,
  kRowSeqs = 145,
  kRowEntries = 146,
  kRowVectors = 147,
  kMetadataOffsets = 148,
  kMetadataBlob = 149,
  kTombstoneIds = 150,
  kTombstoneSeqs = 151,
  kBlockCrcs = 152,
  // Format 2, a group's HNSW graph: the graph image's sections renumbered.
  kGraphHeader = 160,
  kGraphLevels = 161,
  kGraphLayer0 = 162,
  kGraphUpperIndex = 163,
  kGraphUpperLinks = 164,
  kGraphSq8Params = 165,
  kGraphSq8Codes = 166,
  kGraphSq8Norms = 167,
  // Format 2, a u64 group's attribute columns (docs/FORMAT.md, "Attribute
  // columns"): the directory, then per column (the table entry's column
  // field) the sections its type needs.
  kAttrColumns = 168,
  kAttrValid = 169,
  kAttrValues = 170,
  kAttrTagOffsets = 171,
  kAttrDictOffsets = 172,
  kAttrDictBytes = 173,
};

// The containers a kind may appear in (SectionKindInfo::containers bits).
constexpr uint8_t kInGraphImage = 1;  // a graph as lib/index builds it, never a file of its own
constexpr uint8_t kInFormat2 = 8;

// The format 2 group kinds a group-level kind belongs to
// (SectionKindInfo::group_kinds bits).
constexpr uint8_t kU64Group = 1;      // u64 collection rows
constexpr uint8_t kBytesGroup = 2;    // byte-keyed collection rows
constexpr uint8_t kRecordsGroup = 4;  // vector records
constexpr uint8_t kAllGroups = kU64Group | kBytesGroup | kRecordsGroup;
constexpr uint8_t kGraphGroups = kU64Group | kBytesGroup;  // the group kinds that may have a graph

enum class SectionScope : uint8_t { kFile, kGroup };

struct SectionKindInfo {
  SectionKind kind;
  const char* name;  // as pomai-inspect prints it; unique within a container
  SectionScope scope;
  uint8_t containers;   // kIn* bits
  uint8_t group_kinds;  // k*Group bits for kGroup scope, else 0
  // Present in every file of its containers; for a group-level kind, in
  // every group of its group kinds.
  bool required;
  // The size of one element: the section is a whole number of them. 0 when
  // its length is free (byte strings).
  uint32_t element_size;
};

constexpr SectionKindInfo kSectionKinds[] = {
    {SectionKind::kHnswHeader, "hnsw header", SectionScope::kFile, kInGraphImage, 0, false, 128},
    {SectionKind::kHnswLevels, "hnsw levels", SectionScope::kFile, kInGraphImage, 0, false, 1},
    {SectionKind::kHnswLayer0, "hnsw layer-0 links", SectionScope::kFile, kInGraphImage, 0, false, 4},
    {SectionKind::kHnswUpperIndex, "hnsw upper index", SectionScope::kFile, kInGraphImage, 0, false, 4},
    {SectionKind::kHnswUpperLinks, "hnsw upper links", SectionScope::kFile, kInGraphImage, 0, false, 4},
    {SectionKind::kHnswSq8Params, "hnsw sq8 params", SectionScope::kFile, kInGraphImage, 0, false, 4},
    {SectionKind::kHnswSq8Codes, "hnsw sq8 codes", SectionScope::kFile, kInGraphImage, 0, false, 1},
    {SectionKind::kHnswSq8Norms, "hnsw sq8 norms", SectionScope::kFile, kInGraphImage, 0, false, 4},

    {SectionKind::kEntries, "entries", SectionScope::kFile, kInFormat2, 0, true, 48},
    {SectionKind::kKeys, "keys", SectionScope::kFile, kInFormat2, 0, true, 0},
    {SectionKind::kValues, "values", SectionScope::kFile, kInFormat2, 0, true, 0},
    {SectionKind::kGroups, "groups", SectionScope::kFile, kInFormat2, 0, true, 64},

    {SectionKind::kRowIds, "row ids", SectionScope::kGroup, kInFormat2, kU64Group, true, 8},
    {SectionKind::kRowSeqs, "row seqs", SectionScope::kGroup, kInFormat2, kU64Group, true, 8},
    {SectionKind::kRowEntries, "row entries", SectionScope::kGroup, kInFormat2, kBytesGroup | kRecordsGroup, true, 4},
    {SectionKind::kRowVectors, "vectors", SectionScope::kGroup, kInFormat2, kAllGroups, true, 4},
    {SectionKind::kMetadataOffsets, "metadata offsets", SectionScope::kGroup, kInFormat2, kU64Group, true, 8},
    {SectionKind::kMetadataBlob, "metadata blob", SectionScope::kGroup, kInFormat2, kU64Group, true, 0},
    {SectionKind::kTombstoneIds, "tombstone ids", SectionScope::kGroup, kInFormat2, kU64Group, true, 8},
    {SectionKind::kTombstoneSeqs, "tombstone seqs", SectionScope::kGroup, kInFormat2, kU64Group, true, 8},
    {SectionKind::kBlockCrcs, "block CRCs", SectionScope::kGroup, kInFormat2, kAllGroups, true, 4},

    // Present as the group's flag and the graph header's flags say.
    {SectionKind::kGraphHeader, "hnsw header", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 128},
    {SectionKind::kGraphLevels, "hnsw levels", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 1},
    {SectionKind::kGraphLayer0, "hnsw layer-0 links", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 4},
    {SectionKind::kGraphUpperIndex, "hnsw upper index", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 4},
    {SectionKind::kGraphUpperLinks, "hnsw upper links", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 4},
    {SectionKind::kGraphSq8Params, "sq8 params", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 4},
    {SectionKind::kGraphSq8Codes, "sq8 codes", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 1},
    {SectionKind::kGraphSq8Norms, "sq8 norms", SectionScope::kGroup, kInFormat2, kGraphGroups, false, 4},

    // Present as the group's attribute directory says. The values' element
    // is the column type's (8, 8, 1 or a u32 code): 0 here.
    {SectionKind::kAttrColumns, "attr columns", SectionScope::kGroup, kInFormat2, kU64Group, false, 0},
    {SectionKind::kAttrValid, "attr valid", SectionScope::kGroup, kInFormat2, kU64Group, false, 1},
    {SectionKind::kAttrValues, "attr values", SectionScope::kGroup, kInFormat2, kU64Group, false, 0},
    {SectionKind::kAttrTagOffsets, "attr tag offsets", SectionScope::kGroup, kInFormat2, kU64Group, false, 8},
    {SectionKind::kAttrDictOffsets, "attr dict offsets", SectionScope::kGroup, kInFormat2, kU64Group, false, 8},
    {SectionKind::kAttrDictBytes, "attr dict bytes", SectionScope::kGroup, kInFormat2, kU64Group, false, 0},
};

// The kinds a section table entry carries a column index for (the column
// field; zero for every other kind).
constexpr bool IsAttrColumnKind(uint32_t number) {
  return number >= static_cast<uint32_t>(SectionKind::kAttrValid) &&
         number <= static_cast<uint32_t>(SectionKind::kAttrDictBytes);
}

// The number a section table stores for `kind`.
constexpr uint32_t KindNumber(SectionKind kind) { return static_cast<uint32_t>(kind); }

// The registry's entry for the kind numbered `number`, or null when no kind
// has that number.
constexpr const SectionKindInfo* FindSectionKind(uint32_t number) {
  for (const SectionKindInfo& info : kSectionKinds) {
    if (KindNumber(info.kind) == number) return &info;
  }
  return nullptr;
}

// The entry of `kind`, which must be one of the enum's named values (each is
// registered: tests/segment/section_kind_test.cc).
constexpr const SectionKindInfo& SectionKindOf(SectionKind kind) { return *FindSectionKind(KindNumber(kind)); }

constexpr const char* SectionKindName(SectionKind kind) { return SectionKindOf(kind).name; }
constexpr uint32_t ElementSize(SectionKind kind) { return SectionKindOf(kind).element_size; }

}  // namespace pomai::segment
