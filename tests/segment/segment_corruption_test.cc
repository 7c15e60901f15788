// Damaged and crafted segment files: never a crash, never a silent success.
#include <gtest/gtest.h>

#include <limits>

#include "segment/segment.h"
#include "segment_test_util.h"
#include "support/temp_dir.h"

namespace pomai::segment {
namespace {

using pomai::testing::TempDir;
using testing::Image;
using testing::MakeSegment;
using testing::TestSegment;

constexpr uint32_t kIds = static_cast<uint32_t>(SectionKind::kIds);
constexpr uint32_t kMetaOffsets = static_cast<uint32_t>(SectionKind::kMetaOffsets);
constexpr uint32_t kTombstones = static_cast<uint32_t>(SectionKind::kTombstones);

// A small valid segment (20 rows x 4 dims, metadata, tombstones and an extra
// section whose length is not a multiple of 64, so there is padding after it)
// held as bytes, plus a file to write variants of it to.
class SegmentDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    TestSegment s = MakeSegment(20, 4, 6);
    s.extra = {{16, "graph-bytes"}};
    ASSERT_TRUE(WriteSegment(Env::Default(), dir_.path(), "seg-000001.pseg", s.Contents()).ok());
    good_ = testing::ReadAll(dir_.file("seg-000001.pseg"));
    ASSERT_GT(good_.size(), kHeaderSize + kFooterSize);
    path_ = dir_.file("seg-000002.pseg");
  }

  // Opens `bytes` as the file path_ (served from memory).
  Result<std::shared_ptr<Segment>> OpenBytes(const std::string& bytes) {
    env_.Put(path_, bytes);
    return Segment::Open(&env_, path_);
  }

  // Open must fail with Corruption naming the file.
  void ExpectOpenCorruption(const std::string& bytes, const std::string& what) {
    auto r = OpenBytes(bytes);
    ASSERT_FALSE(r.ok()) << "opened a damaged segment: " << what;
    EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    EXPECT_NE(r.status().message().find(path_ + " at offset "), std::string::npos) << r.status().message();
    if (!what.empty()) {
      EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
    }
  }

  TempDir dir_;
  testing::MemoryMapEnv env_;
  std::string good_;
  std::string path_;
};

TEST_F(SegmentDamage, TheUndamagedFileOpensAndVerifies) {
  auto r = OpenBytes(good_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r.value()->Verify().ok());
  // The in-memory files the damage tests use behave as the real file does.
  auto disk = Segment::Open(Env::Default(), dir_.file("seg-000001.pseg"));
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  EXPECT_TRUE(disk.value()->Verify().ok());
}

TEST_F(SegmentDamage, TruncatedFileOnDiskIsCorruption) {
  testing::WriteAll(path_, good_.substr(0, good_.size() - 1));
  auto r = Segment::Open(Env::Default(), path_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  testing::WriteAll(path_, "");
  r = Segment::Open(Env::Default(), path_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
}

TEST_F(SegmentDamage, EveryTruncationIsCorruption) {
  for (size_t len = 0; len < good_.size(); ++len) {
    auto r = OpenBytes(good_.substr(0, len));
    ASSERT_FALSE(r.ok()) << "opened a file truncated to " << len << " bytes";
    ASSERT_TRUE(r.status().IsCorruption()) << len << ": " << r.status().ToString();
  }
}

TEST_F(SegmentDamage, AppendedBytesAreCorruption) { ExpectOpenCorruption(good_ + std::string(64, '\0'), ""); }

TEST_F(SegmentDamage, EverySingleByteChangeIsDetected) {
  int caught_by_open = 0, caught_by_verify = 0;
  for (uint8_t pattern : {0xFF, 0x01, 0x80, 0x10}) {
    for (size_t off = 0; off < good_.size(); ++off) {
      std::string bad = good_;
      bad[off] = static_cast<char>(bad[off] ^ pattern);
      auto r = OpenBytes(bad);
      if (!r.ok()) {
        ASSERT_TRUE(r.status().IsCorruption()) << off << ": " << r.status().ToString();
        ++caught_by_open;
        continue;
      }
      Status v = r.value()->Verify();
      ASSERT_TRUE(v.IsCorruption()) << "byte " << off << " ^ " << int{pattern} << ": Verify gave " << v.ToString();
      ++caught_by_verify;
    }
  }
  // Both layers of checking are exercised.
  EXPECT_GT(caught_by_open, 0);
  EXPECT_GT(caught_by_verify, 0);
}

// Issue 15: reads used section bytes no checksum had vouched for. Every
// changed byte of a core section fails that section's check (Corruption
// naming the file, the section and its offset) and no other section's, and
// a checked read of it (Metadata) is Corruption too.
TEST_F(SegmentDamage, EveryChangedByteOfACoreSectionFailsItsCheckOnly) {
  const std::pair<SectionKind, const char*> kinds[] = {{SectionKind::kIds, "ids"},
                                                       {SectionKind::kVectors, "vectors"},
                                                       {SectionKind::kMetaOffsets, "metadata offsets"},
                                                       {SectionKind::kMetaBlob, "metadata blob"},
                                                       {SectionKind::kTombstones, "tombstones"}};
  Image img(good_);
  for (auto [kind, name] : kinds) {
    SCOPED_TRACE(name);
    const uint64_t at = img.section_offset(static_cast<uint32_t>(kind));
    const uint64_t length = img.section_length(static_cast<uint32_t>(kind));
    ASSERT_GT(length, 0u);
    for (uint64_t off = at; off < at + length; ++off) {
      std::string bad = good_;
      bad[off] = static_cast<char>(bad[off] ^ (1 << (off % 8)));
      auto r = OpenBytes(bad);
      ASSERT_TRUE(r.ok()) << "Open reads no section: " << r.status().ToString();
      const Segment& seg = *r.value();
      for (auto [other, other_name] : kinds) {
        Status c = seg.CheckSection(other);
        if (other != kind) {
          ASSERT_TRUE(c.ok()) << other_name << ": " << c.ToString();
          continue;
        }
        ASSERT_TRUE(c.IsCorruption()) << "byte " << off << ": " << c.ToString();
        ASSERT_EQ(c.message(), path_ + " at offset " + std::to_string(at) + ": checksum mismatch in " + name +
                                   " section (kind " + std::to_string(static_cast<uint32_t>(kind)) + ", " +
                                   std::to_string(length) + " bytes)");
      }
      EXPECT_TRUE(seg.CheckAllSections().IsCorruption());
      const bool metadata = kind == SectionKind::kMetaOffsets || kind == SectionKind::kMetaBlob;
      ASSERT_EQ(seg.Metadata(1).status().IsCorruption(), metadata) << seg.Metadata(1).status().ToString();
    }
  }
}

// An extra section (a graph's) is checked by CheckAllSections, not by the
// core checks.
TEST_F(SegmentDamage, ADamagedExtraSectionFailsCheckAllSections) {
  Image img(good_);
  img.bytes()[img.section_offset(16) + 3] ^= 0x20;
  auto r = OpenBytes(img.bytes());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (SectionKind kind : {SectionKind::kIds, SectionKind::kVectors, SectionKind::kMetaOffsets, SectionKind::kMetaBlob,
                           SectionKind::kTombstones}) {
    EXPECT_TRUE(r.value()->CheckSection(kind).ok());
  }
  Status c = r.value()->CheckAllSections();
  EXPECT_TRUE(c.IsCorruption()) << c.ToString();
  EXPECT_NE(c.message().find(" at offset " + std::to_string(img.section_offset(16)) + ": checksum mismatch"),
            std::string::npos)
      << c.message();
}

// A section is read for its check once per Segment object: the result,
// good or bad, is kept (the mapping of a segment never changes).
TEST_F(SegmentDamage, ASectionCheckIsKeptForTheSegmentsLifetime) {
  Image img(good_);
  const uint64_t vectors = img.section_offset(static_cast<uint32_t>(SectionKind::kVectors));
  auto r = OpenBytes(good_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Segment& seg = *r.value();
  uint8_t* mapping = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(seg.base()));  // heap copy (MemoryMapEnv)
  ASSERT_TRUE(seg.CheckSection(SectionKind::kVectors).ok());
  mapping[vectors] ^= 1;
  EXPECT_TRUE(seg.CheckSection(SectionKind::kVectors).ok()) << "the section was read again";
  EXPECT_TRUE(seg.CheckSection(SectionKind::kIds).ok());

  auto damaged = OpenBytes(img.bytes().replace(vectors, 1, 1, static_cast<char>(good_[vectors] ^ 1)));
  ASSERT_TRUE(damaged.ok()) << damaged.status().ToString();
  EXPECT_TRUE(damaged.value()->CheckSection(SectionKind::kVectors).IsCorruption());
  const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(damaged.value()->base()))[vectors] ^= 1;  // repaired
  EXPECT_TRUE(damaged.value()->CheckSection(SectionKind::kVectors).IsCorruption());
  EXPECT_TRUE(damaged.value()->Verify().IsCorruption());
}

TEST_F(SegmentDamage, NonZeroPaddingFailsVerify) {
  Image img(good_);
  const uint64_t pad = img.section_offset(16) + img.section_length(16);
  ASSERT_NE(pad % kSectionAlign, 0u);
  img.bytes()[pad] = 'x';
  auto r = OpenBytes(img.bytes());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Status v = r.value()->Verify();
  EXPECT_TRUE(v.IsCorruption()) << v.ToString();
  EXPECT_NE(v.message().find("at offset " + std::to_string(pad) + ": padding"), std::string::npos) << v.message();
}

TEST_F(SegmentDamage, NewerFormatVersionIsRejectedByName) {
  Image img(good_);
  EncodeFixed32(img.at(8), kFormatVersion + 1);
  img.SealHeader();
  ExpectOpenCorruption(img.bytes(), "unsupported segment format version " + std::to_string(kFormatVersion + 1));
}

TEST_F(SegmentDamage, ResealedHeaderWithBadFieldsIsRejected) {
  struct Case {
    uint64_t offset;
    uint32_t value;
    const char* what;
  } cases[] = {{12, 64, "header size"},      {16, 0, "dim 0"},  {16, 65536, "dim 65536"},
               {16, 5, "header implies"},    {20, 3, "metric"}, {28, 1, "reserved header"},
               {80, 1, "reserved header"}};
  for (const Case& c : cases) {
    Image img(good_);
    EncodeFixed32(img.at(c.offset), c.value);
    img.SealHeader();
    ExpectOpenCorruption(img.bytes(), c.what);
  }
}

// Counts whose section sizes overflow 64 bits must be caught, not wrap around to a small size.
TEST_F(SegmentDamage, ResealedHugeCountsAreRejected) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (uint64_t rows : {uint64_t{1} << 61, (uint64_t{1} << 60) + 1, max / 16 + 1, max, max - 1, uint64_t{21}}) {
    Image img(good_);
    EncodeFixed64(img.at(32), rows);
    img.SealHeader();
    ExpectOpenCorruption(img.bytes(), "");
  }
  for (uint64_t tombs : {uint64_t{1} << 61, max, uint64_t{7}}) {
    Image img(good_);
    EncodeFixed64(img.at(40), tombs);
    img.SealHeader();
    ExpectOpenCorruption(img.bytes(), "");
  }
}

TEST_F(SegmentDamage, ResealedBadSectionTableIsRejected) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  struct Case {
    const char* name;
    void (*edit)(Image*);
    const char* what;
  } cases[] = {
      {"length overflows", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 16), max - 63); }, "runs past"},
      {"offset past end", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 8), max - 63); }, "runs past"},
      {"section over the table", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 16), 4096); }, "runs past"},
      {"unaligned", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 8), i->section_offset(16) + 8); },
       "not 64-byte aligned"},
      {"inside header", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 8), 64); }, "not 64-byte aligned"},
      {"duplicate core kind", [](Image* i) { EncodeFixed32(i->at(i->entry(i->find(16))), kIds); }, "duplicate"},
      {"missing core kind", [](Image* i) { EncodeFixed32(i->at(i->entry(i->find(kTombstones))), 40); }, "missing"},
      {"unknown core kind", [](Image* i) { EncodeFixed32(i->at(i->entry(i->find(16))), 9); }, "unknown section kind"},
      {"flags", [](Image* i) { EncodeFixed32(i->at(i->entry(0) + 4), 1); }, "flags"},
      {"reserved", [](Image* i) { EncodeFixed32(i->at(i->entry(0) + 28), 1); }, "reserved"},
      {"overlap", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(16)) + 8), i->section_offset(kIds)); },
       "overlap"},
      {"ids length", [](Image* i) { EncodeFixed64(i->at(i->entry(i->find(kIds)) + 16), 8); }, "header implies"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Image img(good_);
    c.edit(&img);
    img.SealTable();
    ExpectOpenCorruption(img.bytes(), c.what);
  }
}

// Readers find sections through the table, whatever its order; empty sections
// share their offset with the next one.
TEST_F(SegmentDamage, SectionTableOrderDoesNotMatter) {
  for (const TestSegment& s : {MakeSegment(0, 4, 0), MakeSegment(0, 4, 3), MakeSegment(20, 4, 6)}) {
    ASSERT_TRUE(WriteSegment(Env::Default(), dir_.path(), "seg-000003.pseg", s.Contents()).ok());
    Image img(testing::ReadAll(dir_.file("seg-000003.pseg")));
    std::vector<std::string> entries;
    for (uint32_t i = 0; i < img.count(); ++i) entries.push_back(img.bytes().substr(img.entry(i), kSectionEntrySize));
    for (uint32_t i = 0; i < img.count(); ++i) {
      img.bytes().replace(img.entry(i), kSectionEntrySize, entries[img.count() - 1 - i]);
    }
    img.SealTable();
    auto r = OpenBytes(img.bytes());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r.value()->Verify().ok());
    EXPECT_EQ(r.value()->row_count(), s.rows());
    EXPECT_EQ(r.value()->tombstone_count(), s.tombstones.size());
    for (size_t i = 0; i < s.rows(); ++i) EXPECT_EQ(r.value()->Metadata(i).value(), s.Meta(i));
  }
}

TEST_F(SegmentDamage, ResealedBadFooterIsRejected) {
  {
    Image img(good_);
    EncodeFixed32(img.at(img.footer() + 8), kMaxSections + 1);
    ExpectOpenCorruption(img.bytes(), "section count");
  }
  {
    Image img(good_);
    EncodeFixed64(img.at(img.footer()), std::numeric_limits<uint64_t>::max() - 10);
    ExpectOpenCorruption(img.bytes(), "does not end at the footer");
  }
  {
    // A table that claims to start before the header ends.
    Image img(good_);
    uint64_t count = (img.footer() - 64) / kSectionEntrySize;
    std::string bytes = img.bytes();
    Image small(bytes.substr(0, 64) + std::string(count * kSectionEntrySize, '\0') + bytes.substr(img.footer()));
    EncodeFixed64(small.at(small.footer()), 64);
    EncodeFixed32(small.at(small.footer() + 8), static_cast<uint32_t>(count));
    EncodeFixed64(small.at(small.footer() + 16), small.bytes().size());
    ExpectOpenCorruption(small.bytes(), "");
  }
}

// A crafted file whose metadata offsets are wrong but whose checksums match:
// Open cannot see it (it reads no row data); the accessors must not crash.
TEST_F(SegmentDamage, CraftedMetadataOffsetsAreCorruptionAtAccess) {
  Image img(good_);
  const uint64_t offs = img.section_offset(kMetaOffsets);
  EncodeFixed64(img.at(offs + 5 * 8), uint64_t{1} << 60);  // row 4 ends and row 5 starts far outside the blob
  const uint64_t row9_end = DecodeFixed64(img.at(offs + 10 * 8));
  EncodeFixed64(img.at(offs + 9 * 8), row9_end + 1);  // row 9 starts after it ends; row 8 ends after row 9 starts
  img.SealSection(kMetaOffsets);
  auto r = OpenBytes(img.bytes());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Segment& seg = *r.value();
  for (uint64_t row : {4, 5, 9}) {
    auto m = seg.Metadata(row);
    ASSERT_FALSE(m.ok()) << "row " << row;
    EXPECT_TRUE(m.status().IsCorruption()) << m.status().ToString();
    EXPECT_NE(m.status().message().find(path_ + " at offset " + std::to_string(offs + row * 8)), std::string::npos)
        << m.status().message();
  }
  EXPECT_TRUE(seg.Metadata(0).ok());
  EXPECT_TRUE(seg.Metadata(19).ok());
  Status v = seg.Verify();
  EXPECT_TRUE(v.IsCorruption()) << v.ToString();
}

TEST_F(SegmentDamage, CraftedLastOffsetBeyondBlobFailsVerify) {
  Image img(good_);
  const uint64_t offs = img.section_offset(kMetaOffsets);
  EncodeFixed64(img.at(offs + 20 * 8), DecodeFixed64(img.at(offs + 20 * 8)) + 1);
  img.SealSection(kMetaOffsets);
  auto r = OpenBytes(img.bytes());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r.value()->Metadata(19).status().IsCorruption());
  Status v = r.value()->Verify();
  EXPECT_TRUE(v.IsCorruption()) << v.ToString();
}

TEST_F(SegmentDamage, CraftedUnsortedOrDuplicateIdsAndTombstonesFailVerify) {
  for (uint32_t kind : {kIds, kTombstones}) {
    for (bool duplicate : {false, true}) {
      SCOPED_TRACE(std::string(kind == kIds ? "ids" : "tombstones") + (duplicate ? " duplicate" : " decreasing"));
      Image img(good_);
      const uint64_t off = img.section_offset(kind);
      const uint64_t a = DecodeFixed64(img.at(off + 8));
      EncodeFixed64(img.at(off + 16), duplicate ? a : a - 1);
      img.SealSection(kind);
      auto r = OpenBytes(img.bytes());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      uint64_t row;
      (void)r.value()->FindRow(a, &row);  // a wrong answer is possible here, a crash is not
      (void)r.value()->HasTombstone(a);
      Status v = r.value()->Verify();
      EXPECT_TRUE(v.IsCorruption()) << v.ToString();
      EXPECT_NE(v.message().find("at offset " + std::to_string(off + 16)), std::string::npos) << v.message();
      EXPECT_NE(v.message().find("not strictly ascending"), std::string::npos) << v.message();
    }
  }
}

}  // namespace
}  // namespace pomai::segment
