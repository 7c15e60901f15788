// Damaged and crafted format-2 segment files: every read returns the answer
// of the undamaged file or Corruption naming the file and an offset; never
// a crash, never another answer.
#include <gtest/gtest.h>

#include <cmath>

#include "file_test_util.h"
#include "segment/file.h"
#include "support/temp_dir.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace pomai::segment {
namespace {

using pomai::testing::TempDir;
using namespace testing;

// The answers of every read a file serves, one string per read: the value
// read, or "corruption" (then checked to name the file and an offset), or
// another error (which fails the test).
struct Answers {
  std::vector<std::string> reads;
  std::vector<std::vector<index::Neighbor>> searches;  // per graph group
  bool verified = false;
};

class FileDamage : public ::testing::Test {
 protected:
  // Writes `data` and keeps its bytes and the answers of the undamaged file.
  void Build(FileData data) {
    data_ = std::move(data);
    ASSERT_TRUE(data_.Write(Env::Default(), dir_.file("seg-000001.pseg"), 1, 256).ok());
    good_ = ReadAll(dir_.file("seg-000001.pseg"));
    auto f = Open(good_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    good_answers_ = Read(**f);
    ASSERT_TRUE(good_answers_.verified);
    for (const std::string& r : good_answers_.reads) ASSERT_NE(r, "corruption");
  }

  Result<std::shared_ptr<SegmentFile>> Open(const std::string& bytes) {
    env_.Put(path_, bytes);
    return SegmentFile::Open(&env_, path_);
  }

  void ExpectNamed(const Status& s, const std::string& context) {
    ASSERT_TRUE(s.IsCorruption()) << context << ": " << s.ToString();
    ASSERT_EQ(s.message().rfind(path_ + " at offset ", 0), 0u) << context << ": " << s.message();
  }

  // Every read, in a fixed order.
  Answers Read(const SegmentFile& f) {
    Answers a;
    auto note = [&](const Status& s, const std::string& value) {
      if (s.ok()) {
        a.reads.push_back(value);
      } else {
        ExpectNamed(s, "read " + std::to_string(a.reads.size()));
        a.reads.push_back("corruption");
      }
    };
    auto entry_string = [&](const EntryView& v) {
      std::string s = std::string(v.key) + "|" + std::to_string(v.seq) + "|" + std::to_string(int(v.kind)) + "|" +
                      std::string(v.value) + "|" + std::to_string(v.has_metadata) + "|" + std::string(v.attrs);
      if (v.vector != nullptr) {
        s += "|" + std::to_string(int(v.metric)) + "|" +
             std::string(reinterpret_cast<const char*>(v.vector), f.group(v.group).dim * 4);
      }
      return s;
    };
    for (const EntryData& e : data_.entries) {
      for (const std::string& key : {e.key, e.key + 'x'}) {
        EntryView v;
        bool found = false;
        Status s = f.Get(key, &v, &found);
        note(s, found ? entry_string(v) : "miss");
      }
    }
    for (const U64Data& u : data_.u64) {
      uint32_t g = 0;
      if (!f.FindGroup(GroupKind::kU64, u.cid, u.dim, u.metric, &g)) {
        a.reads.push_back("no group");
        continue;
      }
      for (size_t r = 0; r < u.ids.size(); ++r) {
        for (uint64_t id : {u.ids[r], u.ids[r] + 1}) {
          uint64_t row = 0;
          bool found = false;
          Status s = f.FindRow(g, id, &row, &found);
          std::string value = "miss";
          if (s.ok() && found) {
            auto meta = f.Metadata(g, row);
            s = meta.status();
            if (s.ok()) {
              value = std::to_string(row) + "|" + std::to_string(f.seqs(g)[row]) + "|" + std::string(*meta) + "|" +
                      std::string(reinterpret_cast<const char*>(f.vector(g, row)), u.dim * 4);
            }
          }
          note(s, value);
        }
      }
      for (uint64_t id : {uint64_t{11}, uint64_t{12}, uint64_t{14}}) {
        uint64_t seq = 0;
        bool found = false;
        Status s = f.FindTombstone(g, id, &seq, &found);
        note(s, found ? std::to_string(seq) : "miss");
      }
    }
    for (uint32_t g = 0; g < f.group_count(); ++g) {
      if (f.group(g).kind == GroupKind::kU64) continue;
      for (uint64_t r = 0; r < f.group(g).rows; ++r) {
        EntryView v;
        Status s = f.ReadRowEntry(g, r, &v);
        note(s, s.ok() ? entry_string(v) : "");
      }
    }
    for (uint32_t g = 0; g < f.group_count(); ++g) {
      const index::HnswGraph* graph = f.graph(g);
      if (graph == nullptr) continue;
      std::vector<index::Neighbor> out;
      const std::vector<float> q = RandomVectors(1, f.group(g).dim, 99);
      Status s = graph->Search(q.data(), 4, 16, nullptr, &out);
      for (const index::Neighbor& n : out) {
        if (s.ok()) s = f.CheckRow(g, n.row);
      }
      // Other rows than the undamaged file's may come back (links only
      // choose rows), but each with its true score.
      for (const index::Neighbor& n : out) {
        if (!s.ok()) break;
        const float want = simd::Score(f.group(g).metric, q.data(), f.vector(g, n.row), f.group(g).dim);
        EXPECT_NEAR(n.score, want, 1e-3 * (1 + std::fabs(want))) << "row " << n.row;
      }
      note(s, "search");
      if (s.ok()) a.searches.push_back(out);
    }
    const Status v = f.Verify();
    if (!v.ok()) ExpectNamed(v, "verify");
    a.verified = v.ok();
    return a;
  }

  // The damaged file's reads: each the undamaged answer or Corruption. A
  // graph search may return other rows (links choose rows unchecked) but
  // each score must be the row's true score. Returns whether any read or
  // Verify noticed.
  bool Compare(const Answers& got, const std::string& context) {
    EXPECT_EQ(got.reads.size(), good_answers_.reads.size()) << context;
    bool noticed = !got.verified;
    for (size_t i = 0; i < std::min(got.reads.size(), good_answers_.reads.size()); ++i) {
      if (got.reads[i] == "corruption") {
        noticed = true;
        continue;
      }
      EXPECT_EQ(got.reads[i], good_answers_.reads[i]) << context << ", read " << i;
    }
    return noticed;
  }

  // Damages `bytes` at every bit (or, above `bit_limit` bytes, one bit of
  // every byte) and checks each variant.
  void EveryFlip(size_t bit_limit) {
    const bool every_bit = good_.size() <= bit_limit;
    RecordProperty("file_bytes", static_cast<int>(good_.size()));
    size_t unnoticed = 0;
    for (size_t at = 0; at < good_.size(); ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        if (!every_bit && bit != static_cast<int>(at % 8)) continue;
        std::string bad = good_;
        bad[at] ^= static_cast<char>(1 << bit);
        const std::string context = "bit " + std::to_string(bit) + " of byte " + std::to_string(at);
        auto f = Open(bad);
        if (!f.ok()) {
          ExpectNamed(f.status(), context);
          if (HasFatalFailure()) return;
          continue;
        }
        if (!Compare(Read(**f), context)) ++unnoticed;
        if (HasFatalFailure() || HasFailure()) return;
      }
    }
    // Every byte of a file is under a checksum or must be zero.
    EXPECT_EQ(unnoticed, 0u);
  }

  TempDir dir_;
  MemoryMapEnv env_;
  const std::string path_ = "/nonexistent/seg-000001.pseg";
  FileData data_;
  std::string good_;
  Answers good_answers_;
};

TEST_F(FileDamage, EveryBitOfAFileWithEveryGroupKind) {
  Build(MixedFile(12, 6, false));
  ASSERT_LE(good_.size(), 8192u);
  EveryFlip(8192);
}

TEST_F(FileDamage, EveryByteOfAFileWithGraphs) {
  Build(MixedFile(40, 20, true));
  EveryFlip(0);
}

TEST_F(FileDamage, EveryTruncationIsCorruption) {
  Build(MixedFile(5, 3, false));
  for (size_t n = 0; n < good_.size(); ++n) {
    auto f = Open(good_.substr(0, n));
    ASSERT_FALSE(f.ok()) << n;
    ExpectNamed(f.status(), "truncated to " + std::to_string(n));
  }
  // A truncated file on disk, through the POSIX mapping.
  WriteAll(dir_.file("seg-000002.pseg"), good_.substr(0, good_.size() - 7));
  auto f = SegmentFile::Open(Env::Default(), dir_.file("seg-000002.pseg"));
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsCorruption()) << f.status().ToString();
}

// Crafted files: damage re-sealed with valid checksums, which only a
// malicious or buggy writer produces. Open must refuse each, naming the offset.
class CraftedFile : public FileDamage {
 protected:
  void SetUp() override { Build(MixedFile(12, 6, true)); }

  uint8_t* at(std::string& b, uint64_t off) { return reinterpret_cast<uint8_t*>(b.data()) + off; }
  uint64_t Table(const std::string& b) { return DecodeFixed64(reinterpret_cast<const uint8_t*>(b.data()) + b.size() - 32); }
  uint32_t Count(const std::string& b) { return DecodeFixed32(reinterpret_cast<const uint8_t*>(b.data()) + b.size() - 24); }
  // Table entry index of (kind, group).
  uint64_t Entry(std::string& b, SectionKind kind, uint32_t group) {
    for (uint32_t i = 0; i < Count(b); ++i) {
      const uint64_t e = Table(b) + uint64_t{i} * 32;
      if ((DecodeFixed32(at(b, e)) & 0xFFFF) == KindNumber(kind) && DecodeFixed32(at(b, e + 4)) == group) return e;
    }
    ADD_FAILURE() << "no section " << KindNumber(kind) << " of group " << group;
    return 0;
  }
  void SealHeader(std::string& b) { EncodeFixed32(at(b, 124), crc32c::Value(at(b, 0), 124)); }
  void SealTable(std::string& b) {
    EncodeFixed32(at(b, b.size() - 20), crc32c::Value(at(b, Table(b)), uint64_t{Count(b)} * 32));
  }
  uint64_t Descriptor(std::string& b, uint32_t g) {
    return DecodeFixed64(at(b, Entry(b, SectionKind::kGroups, kFileLevel) + 8)) + uint64_t{g} * 64;
  }
  void SealDescriptor(std::string& b, uint32_t g) {
    const uint64_t d = Descriptor(b, g);
    EncodeFixed32(at(b, d + 60), crc32c::Value(at(b, d), 60));
  }
  void ExpectOpenFails(const std::string& b, const std::string& what) {
    auto f = Open(b);
    ASSERT_FALSE(f.ok()) << "opened: " << what;
    ExpectNamed(f.status(), what);
    EXPECT_NE(f.status().message().find(what), std::string::npos) << f.status().message();
  }
  // The u32 (kind at 0, group at 4) or u64 (offset at 8, length at 16) field
  // of (kind, group)'s table entry set to `value`, the table resealed.
  void ExpectEntryFieldFails(SectionKind kind, uint32_t group, size_t field, uint64_t value, const std::string& what) {
    std::string b = good_;
    if (field < 8) {
      EncodeFixed32(at(b, Entry(b, kind, group) + field), static_cast<uint32_t>(value));
    } else {
      EncodeFixed64(at(b, Entry(b, kind, group) + field), value);
    }
    SealTable(b);
    ExpectOpenFails(b, what);
  }
  uint64_t EntryField64(SectionKind kind, uint32_t group, size_t field) {
    return DecodeFixed64(at(good_, Entry(good_, kind, group) + field));
  }
};

TEST_F(CraftedFile, HeaderFieldsAreChecked) {
  std::string b = good_;
  EncodeFixed32(at(b, header2::kVersion), 3);
  SealHeader(b);
  ExpectOpenFails(b, "at offset 8: unsupported segment format version 3 (this build reads 2)");
  b = good_;
  EncodeFixed32(at(b, header2::kVersion), 1);  // a format-1 file is named as one
  SealHeader(b);
  ExpectOpenFails(b, "at offset 8: unsupported segment format version 1 (this build reads 2)");
  b = good_;
  b[50] = 1;  // file number 1 + 65536 * 256
  SealHeader(b);
  ExpectOpenFails(b, "file number");
  b = good_;
  b[60] = 1;
  SealHeader(b);
  ExpectOpenFails(b, "reserved header byte");
  b = good_;
  b[124] ^= 1;
  ExpectOpenFails(b, "header checksum mismatch");
}

TEST_F(CraftedFile, FooterAndTableAreChecked) {
  std::string b = good_;
  b[b.size() - 1] ^= 1;
  ExpectOpenFails(b, "bad footer magic");
  b = good_;
  EncodeFixed32(at(b, b.size() - 24), Count(b) + 1);
  ExpectOpenFails(b, "does not end at the footer");
  b = good_;
  b[Table(b) + 8] ^= 0x40;
  ExpectOpenFails(b, "section table checksum mismatch");
}

TEST_F(CraftedFile, TableEntriesAreChecked) {
  ExpectEntryFieldFails(SectionKind::kKeys, kFileLevel, 0, 140, "unknown section kind 140");
  // Format 1 numbered its ids section 1.
  ExpectEntryFieldFails(SectionKind::kKeys, kFileLevel, 0, 1, "unknown section kind 1");
  ExpectEntryFieldFails(SectionKind::kKeys, kFileLevel, 4, 0, "wrong scope");
  ExpectEntryFieldFails(SectionKind::kRowIds, 0, 4, 9, "of group 9 of 4");
  ExpectEntryFieldFails(SectionKind::kKeys, kFileLevel, 8, EntryField64(SectionKind::kValues, kFileLevel, 8),
                        "overlap");
  ExpectEntryFieldFails(SectionKind::kKeys, kFileLevel, 8, 130, "not 64-byte aligned");
  ExpectEntryFieldFails(SectionKind::kValues, kFileLevel, 16, good_.size(), "runs past the section table");
  // Row ids in a group of vector records (group 2).
  ExpectEntryFieldFails(SectionKind::kRowEntries, 2, 0, KindNumber(SectionKind::kRowIds),
                        "does not belong to a records group");
  // A required section renamed into a duplicate.
  ExpectEntryFieldFails(SectionKind::kRowSeqs, 0, 0, KindNumber(SectionKind::kRowIds), "appears twice");
  ExpectEntryFieldFails(SectionKind::kRowSeqs, 0, 0, KindNumber(SectionKind::kAttrDictBytes) + 1,
                        "unknown section kind 174");
  // The column field (bytes 2..3) is only for the attribute kinds 169..173.
  ExpectEntryFieldFails(SectionKind::kRowSeqs, 0, 0, KindNumber(SectionKind::kRowSeqs) | (3u << 16),
                        "row seqs section has column field 3");
  // Attribute sections belong to u64 groups only.
  ExpectEntryFieldFails(SectionKind::kRowEntries, 2, 0, KindNumber(SectionKind::kAttrColumns),
                        "attr columns section of group 2 does not belong to a records group");
}

TEST_F(CraftedFile, MissingSectionsAndWrongLengthsAreCorruption) {
  ExpectEntryFieldFails(SectionKind::kTombstoneSeqs, 0, 16, 16, "tombstone seqs section of group 0 is 16 bytes");
  ExpectEntryFieldFails(SectionKind::kEntries, kFileLevel, 16, EntryField64(SectionKind::kEntries, kFileLevel, 16) - 48,
                        "entries section is");
  ExpectEntryFieldFails(SectionKind::kBlockCrcs, 1, 16, 0, "block CRCs section of group 1");
  // The graph flag on a collection group without graph sections.
  Build(MixedFile(12, 6, false));
  std::string b = good_;
  b[Descriptor(b, 1) + group2::kFlags] = 1;
  SealDescriptor(b, 1);
  ExpectOpenFails(b, "missing hnsw header section of group 1");
}

TEST_F(CraftedFile, GroupDescriptorsAreChecked) {
  struct Case {
    uint32_t group;
    size_t offset;
    uint64_t value;
    size_t width;
    const char* what;
  };
  const Case cases[] = {
      {0, group2::kKind, 4, 1, "unknown kind 4"},
      {0, group2::kMetric, 3, 1, "unknown metric"},
      {0, group2::kFlags, 2, 1, "unsupported flags"},
      {0, group2::kDim, 0, 4, "has dim 0"},
      {0, group2::kDim, 65536, 4, "has dim 65536"},
      {0, group2::kRowsPerBlock, 3, 4, "not a power of two"},
      {0, group2::kRowsPerBlock, 131072, 4, "not a power of two"},
      {0, group2::kZero2, 1, 4, "reserved bytes"},
      {0, group2::kRows, 13, 8, "implies"},
      {0, group2::kMinSeq, ~0ull, 8, "min seq above max seq"},
      {3, group2::kDim, 2, 4, "does not follow group 2"},
      {2, group2::kCid, 1, 8, "of vector records has a cid"},
      {2, group2::kTombstones, 1, 8, "has tombstones"},
      {2, group2::kRows, 1000, 8, "more rows than the file has entries"},
      {2, group2::kFlags, 1, 1, "unsupported flags"},  // the graph flag on a group of vector records
      {0, group2::kFlags, 0, 1, "without a graph"},    // the graph flag cleared on a group with graph sections
  };
  for (const Case& c : cases) {
    std::string b = good_;
    const uint64_t d = Descriptor(b, c.group);
    for (size_t i = 0; i < c.width; ++i) b[d + c.offset + i] = static_cast<char>(c.value >> (8 * i));
    SealDescriptor(b, c.group);
    ExpectOpenFails(b, c.what);
  }
  std::string b = good_;
  b[Descriptor(b, 1) + 60] ^= 1;
  ExpectOpenFails(b, "group 1 descriptor checksum mismatch");
}

TEST_F(CraftedFile, ReadsOfCraftedEntriesAreCorruptionNotCrashes) {
  // Entry 0's key length made huge, with every CRC resealed: the entries
  // section's CRC is fine, so only the bounds check stands in the way.
  std::string b = good_;
  const uint64_t entries = DecodeFixed64(at(b, Entry(b, SectionKind::kEntries, kFileLevel) + 8));
  EncodeFixed32(at(b, entries + entry2::kKeyLength), 0x7FFFFFFF);
  const uint64_t e = Entry(b, SectionKind::kEntries, kFileLevel);
  EncodeFixed32(at(b, e + 24), crc32c::Value(at(b, entries), DecodeFixed64(at(b, e + 16))));
  SealTable(b);
  auto f = Open(b);
  ASSERT_TRUE(f.ok());
  EntryView v;
  bool found = false;
  ExpectNamed((*f)->Get(data_.entries[0].key, &v, &found), "get");
  ExpectNamed((*f)->Verify(), "verify");
}

}  // namespace
}  // namespace pomai::segment
