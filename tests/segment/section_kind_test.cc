#include "segment/section_kind.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace pomai::segment {
namespace {

// A graph image's kinds, as lib/index numbers them (a segment stores them +
// 144): a change here is a format change.
TEST(SectionKindRegistry, GraphImageKindsKeepTheirNumbers) {
  const std::vector<std::pair<SectionKind, uint32_t>> expected = {
      {SectionKind::kHnswHeader, 16},
      {SectionKind::kHnswLevels, 17},
      {SectionKind::kHnswLayer0, 18},
      {SectionKind::kHnswUpperIndex, 19},
      {SectionKind::kHnswUpperLinks, 20},
      {SectionKind::kHnswSq8Params, 21},
      {SectionKind::kHnswSq8Codes, 22},
      {SectionKind::kHnswSq8Norms, 23},
  };
  std::set<uint32_t> registered;
  for (const SectionKindInfo& info : kSectionKinds) {
    if ((info.containers & kInGraphImage) != 0) registered.insert(KindNumber(info.kind));
  }
  std::set<uint32_t> numbers;
  for (auto [kind, number] : expected) {
    EXPECT_EQ(KindNumber(kind), number);
    numbers.insert(number);
  }
  EXPECT_EQ(registered, numbers) << "graph image kinds in the registry";
}

// docs/ENGINE.md 3.3, the table of format 2's kinds.
TEST(SectionKindRegistry, Format2KindsAreTheDesignTable) {
  struct Row {
    SectionKind kind;
    uint32_t number;
    std::string name;
    SectionScope scope;
    uint8_t group_kinds;
  };
  const SectionScope file = SectionScope::kFile, group = SectionScope::kGroup;
  const uint8_t graph = kU64Group | kBytesGroup;
  const std::vector<Row> expected = {
      {SectionKind::kEntries, 128, "entries", file, 0},
      {SectionKind::kKeys, 129, "keys", file, 0},
      {SectionKind::kValues, 130, "values", file, 0},
      {SectionKind::kGroups, 131, "groups", file, 0},
      {SectionKind::kRowIds, 144, "row ids", group, kU64Group},
      {SectionKind::kRowSeqs, 145, "row seqs", group, kU64Group},
      {SectionKind::kRowEntries, 146, "row entries", group, kBytesGroup | kRecordsGroup},
      {SectionKind::kRowVectors, 147, "vectors", group, kU64Group | kBytesGroup | kRecordsGroup},
      {SectionKind::kMetadataOffsets, 148, "metadata offsets", group, kU64Group},
      {SectionKind::kMetadataBlob, 149, "metadata blob", group, kU64Group},
      {SectionKind::kTombstoneIds, 150, "tombstone ids", group, kU64Group},
      {SectionKind::kTombstoneSeqs, 151, "tombstone seqs", group, kU64Group},
      {SectionKind::kBlockCrcs, 152, "block CRCs", group, kU64Group | kBytesGroup | kRecordsGroup},
      {SectionKind::kGraphHeader, 160, "hnsw header", group, graph},
      {SectionKind::kGraphLevels, 161, "hnsw levels", group, graph},
      {SectionKind::kGraphLayer0, 162, "hnsw layer-0 links", group, graph},
      {SectionKind::kGraphUpperIndex, 163, "hnsw upper index", group, graph},
      {SectionKind::kGraphUpperLinks, 164, "hnsw upper links", group, graph},
      {SectionKind::kGraphSq8Params, 165, "sq8 params", group, graph},
      {SectionKind::kGraphSq8Codes, 166, "sq8 codes", group, graph},
      {SectionKind::kGraphSq8Norms, 167, "sq8 norms", group, graph},
      {SectionKind::kAttrColumns, 168, "attr columns", group, kU64Group},
      {SectionKind::kAttrValid, 169, "attr valid", group, kU64Group},
      {SectionKind::kAttrValues, 170, "attr values", group, kU64Group},
      {SectionKind::kAttrTagOffsets, 171, "attr tag offsets", group, kU64Group},
      {SectionKind::kAttrDictOffsets, 172, "attr dict offsets", group, kU64Group},
      {SectionKind::kAttrDictBytes, 173, "attr dict bytes", group, kU64Group},
  };
  size_t registered = 0;
  for (const SectionKindInfo& info : kSectionKinds) registered += (info.containers & kInFormat2) != 0;
  EXPECT_EQ(registered, expected.size()) << "format 2 kinds in the registry";
  for (const Row& row : expected) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(KindNumber(row.kind), row.number);
    const SectionKindInfo* info = FindSectionKind(row.number);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->containers, kInFormat2);
    EXPECT_EQ(info->name, row.name);
    EXPECT_EQ(info->scope, row.scope);
    EXPECT_EQ(info->group_kinds, row.group_kinds);
    // Only the graph's and the attributes' sections may be absent (the
    // group's and the graph header's flags, the attribute directory say).
    EXPECT_EQ(info->required, row.number < KindNumber(SectionKind::kGraphHeader));
  }
}

TEST(SectionKindRegistry, NumbersAreUniqueAndFoundAgain) {
  std::set<uint32_t> numbers;
  for (const SectionKindInfo& info : kSectionKinds) {
    EXPECT_TRUE(numbers.insert(KindNumber(info.kind)).second) << "kind " << KindNumber(info.kind) << " twice";
    EXPECT_EQ(FindSectionKind(KindNumber(info.kind)), &info);
    EXPECT_STREQ(SectionKindName(info.kind), info.name);
    EXPECT_EQ(ElementSize(info.kind), info.element_size);
  }
}

// Names tell the sections of one container apart (a segment's graph
// sections reuse the graph image's names).
TEST(SectionKindRegistry, NamesAreUniqueWithinAContainer) {
  for (const SectionKindInfo& a : kSectionKinds) {
    EXPECT_NE(std::string(a.name), "") << "kind " << KindNumber(a.kind);
    for (const SectionKindInfo& b : kSectionKinds) {
      if (&a == &b || (a.containers & b.containers) == 0) continue;
      EXPECT_NE(std::string(a.name), std::string(b.name)) << "kinds " << KindNumber(a.kind) << ", " << KindNumber(b.kind);
    }
  }
}

// The graph image's kinds and the segment's share the enum, so their numbers
// must never meet.
TEST(SectionKindRegistry, GraphImageAndSegmentKindsAreDisjoint) {
  uint32_t image_max = 0, format2_min = UINT32_MAX;
  for (const SectionKindInfo& info : kSectionKinds) {
    const bool image = (info.containers & kInGraphImage) != 0, v2 = (info.containers & kInFormat2) != 0;
    EXPECT_NE(image, v2) << "kind " << KindNumber(info.kind) << " must be in exactly one container";
    if (image) image_max = std::max(image_max, KindNumber(info.kind));
    if (v2) format2_min = std::min(format2_min, KindNumber(info.kind));
  }
  EXPECT_LT(image_max, format2_min);
}

TEST(SectionKindRegistry, ScopesAndElementSizes) {
  for (const SectionKindInfo& info : kSectionKinds) {
    SCOPED_TRACE(info.name);
    // A graph image has no groups; a group-level kind names the groups it belongs to.
    if ((info.containers & kInGraphImage) != 0) {
      EXPECT_EQ(info.scope, SectionScope::kFile);
    }
    EXPECT_EQ(info.scope == SectionScope::kGroup, info.group_kinds != 0);
  }
  const std::vector<std::pair<SectionKind, uint32_t>> sizes = {
      {SectionKind::kHnswHeader, 128}, {SectionKind::kHnswLevels, 1}, {SectionKind::kKeys, 0},
      {SectionKind::kEntries, 48},    {SectionKind::kGroups, 64},    {SectionKind::kValues, 0},
      {SectionKind::kRowEntries, 4},  {SectionKind::kBlockCrcs, 4},  {SectionKind::kGraphHeader, 128},
      {SectionKind::kAttrColumns, 0}, {SectionKind::kAttrValid, 1},  {SectionKind::kAttrValues, 0},
      {SectionKind::kAttrTagOffsets, 8}, {SectionKind::kAttrDictOffsets, 8}, {SectionKind::kAttrDictBytes, 0},
  };
  for (uint32_t n = 0; n < 0x10000; ++n) EXPECT_EQ(IsAttrColumnKind(n), n >= 169 && n <= 173) << n;
  for (auto [kind, size] : sizes) EXPECT_EQ(ElementSize(kind), size) << SectionKindName(kind);
  EXPECT_EQ(SectionKindOf(SectionKind::kHnswLayer0).containers, kInGraphImage);
  EXPECT_FALSE(SectionKindOf(SectionKind::kHnswLayer0).required);
}

TEST(SectionKindRegistry, UnknownNumbersAreNotFound) {
  // 1..5 were format 1's core sections; 65537 is 1 once truncated to 16 bits.
  for (uint32_t n : {0u, 1u, 2u, 5u, 6u, 15u, 24u, 31u, 63u, 64u, 70u, 71u, 95u, 101u, 127u, 132u, 143u, 153u, 159u, 174u, 0xFFFFu,
                     0x10001u, 0xFFFFFFFFu}) {
    EXPECT_EQ(FindSectionKind(n), nullptr) << n;
  }
}

}  // namespace
}  // namespace pomai::segment
