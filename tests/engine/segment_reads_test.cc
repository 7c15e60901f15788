// Segments (segment format 2, docs/ENGINE.md 3.3 and 3.4) as the engine's
// keyspace face reads them: opening reads only the header, footer,
// section table and group descriptors; every read checks what it returns
// (entries and keys once per open, then each entry's CRC; a vector's block).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine/collection.h"
#include "segment/file.h"
#include "segment/format.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "db_test_util.h"
#include "support/temp_dir.h"

namespace pomai::engine {
namespace {

using testing::BeginRo;
using testing::BeginRw;
using testing::OpenKv;

constexpr int kKeys = 2000;
constexpr uint32_t kDim = 8;

std::string KeyOf(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "k%05d", i);
  return b;
}
// A value whose bytes occur nowhere else in the file.
std::string ValueOf(int i) { return "value-of-" + KeyOf(i) + "-" + std::string(20, static_cast<char>('a' + i % 26)); }
std::vector<float> VectorOf(int i) {
  std::vector<float> v(kDim);
  for (uint32_t d = 0; d < kDim; ++d) v[d] = static_cast<float>(i) + 0.125f * static_cast<float>(d);
  return v;
}

// The one segment of `dir`.
std::string OnlySegment(const std::string& dir) {
  const std::vector<std::string> segs = testing::SegmentFiles(dir);
  EXPECT_EQ(segs.size(), 1u);
  return segs.size() == 1 ? dir + "/" + segs[0] : std::string();
}

// Offset and length of file-level section `kind` of segment `path`.
std::pair<uint64_t, uint64_t> SectionOf(const std::string& path, segment::SectionKind kind) {
  auto opened = segment::SegmentFile::Open(Env::Default(), path);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return {0, 0};
  for (const auto& ref : (*opened)->sections()) {
    if (ref.kind == kind && ref.group == segment::kFileLevel) return {ref.offset, ref.length};
  }
  ADD_FAILURE() << "no section " << segment::SectionKindName(kind);
  return {0, 0};
}

// Expects `s` to be Corruption naming the segment `seg` and an offset.
void ExpectCorruptionNaming(const std::string& seg, const Status& s) {
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find(seg + " at offset "), std::string::npos) << s.message();
}

// A flushed database of kKeys keys: even ones bytes values, odd ones vectors.
class SegmentLazyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = OpenKv(dir_.path());
    ASSERT_TRUE(db);
    for (int b = 0; b < kKeys; b += 500) {
      auto t = BeginRw(*db);
      for (int i = b; i < b + 500; ++i) {
        if (i % 2 == 0) {
          ASSERT_TRUE(t->Put(KeyOf(i), ValueOf(i)).ok());
        } else {
          const std::vector<float> v = VectorOf(i);
          ASSERT_TRUE(t->UpsertVector(KeyOf(i), v.data(), kDim, simd::Metric::kL2, nullptr).ok());
        }
      }
      ASSERT_TRUE(t->Commit().ok());
    }
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Close().ok());
    seg_ = OnlySegment(dir_.path());
    ASSERT_FALSE(seg_.empty());
    file_ = testing::ReadFileBytes(seg_);
  }

  // Flips one bit at `offset` of the segment file.
  void Flip(uint64_t offset) {
    std::string damaged = file_;
    damaged[offset] = static_cast<char>(damaged[offset] ^ 0x04);
    testing::WriteFileBytes(seg_, damaged);
  }

  std::unique_ptr<DB> Reopen() {
    Options o;
    o.search_threads = 1;
    return OpenKv(dir_.path(), o);
  }

  testing::TempDir dir_;
  std::string seg_;
  std::string file_;
};

TEST_F(SegmentLazyTest, FlippedValueByteOpensAndOnlyTheGetOfThatKeyIsCorruption) {
  const int victim = 1234;
  const size_t at = file_.find(ValueOf(victim));
  ASSERT_NE(at, std::string::npos);
  Flip(at + 3);
  auto db = Reopen();  // Open reads no value page: it succeeds
  ASSERT_TRUE(db);
  EXPECT_EQ(testing::Committed(*db, KeyOf(2)), ValueOf(2));
  EXPECT_EQ(testing::Committed(*db, KeyOf(victim + 2)), ValueOf(victim + 2));
  auto t = BeginRo(*db);
  std::string value = "untouched";
  bool found = true;
  Status s = t->Get(KeyOf(victim), &value, &found);
  ExpectCorruptionNaming(seg_, s);
  EXPECT_EQ(value, "untouched") << "the damaged bytes were returned";
  std::string_view view;
  ExpectCorruptionNaming(seg_, t->GetView(KeyOf(victim), &view, &found));
}

TEST_F(SegmentLazyTest, AScanOverAFlippedValueIsCorruptionAndOneBesideItIsNot) {
  const int victim = 1234;
  const size_t at = file_.find(ValueOf(victim));
  ASSERT_NE(at, std::string::npos);
  Flip(at + 3);
  auto db = Reopen();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  std::vector<Txn::ScanEntry> batch;
  bool more = false;
  ExpectCorruptionNaming(seg_, t->Scan("", nullptr, kKeys, 0, &batch, &more));
  // The range before the victim's key reads only undamaged entries.
  const std::string hi = KeyOf(victim);
  const std::string_view hi_view = hi;
  ASSERT_TRUE(t->Scan("", &hi_view, kKeys, 0, &batch, &more).ok());
  EXPECT_EQ(batch.size(), static_cast<size_t>(victim / 2));  // the even keys below it
  EXPECT_FALSE(more);
}

TEST_F(SegmentLazyTest, FlippedVectorByteOpensAndTheReadsThatTouchItAreCorruption) {
  const int victim = 777;  // odd: a vector
  const std::vector<float> v = VectorOf(victim);
  const size_t at = file_.find(std::string(reinterpret_cast<const char*>(v.data()), kDim * sizeof(float)));
  ASSERT_NE(at, std::string::npos);
  Flip(at + 5);
  auto db = Reopen();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  // The 1,000 vectors of dim 8 are one block (2,048 rows of 32 bytes fit in
  // 64 KiB): every read of a vector checks it and fails; plain values do not.
  EXPECT_EQ(testing::GetValue(*t, KeyOf(victim + 1)), ValueOf(victim + 1));
  std::vector<float> out;
  for (int k : {victim, victim + 2, 1}) {
    ExpectCorruptionNaming(seg_, t->GetVector(KeyOf(k), simd::Metric::kL2, &out));
    EXPECT_TRUE(out.empty());
  }
  // A flat search scans the damaged block: its checksum fails (every time).
  std::vector<KeyHit> hits;
  const std::vector<float> q = VectorOf(victim);
  for (int round = 0; round < 2; ++round) {
    ExpectCorruptionNaming(seg_, t->SearchSimilar(q.data(), kDim, simd::Metric::kL2, 5, nullptr, true, &hits));
    EXPECT_TRUE(hits.empty());
  }
}

// A damaged key fails the key index's checksum (checked once, at the first
// lookup): every lookup in the segment is Corruption, none a wrong answer or
// a miss; the rest of the database still answers.
TEST_F(SegmentLazyTest, FlippedKeyByteOpensAndNeverGivesAWrongAnswer) {
  const int victim = 1000;
  const size_t at = file_.find(KeyOf(victim), SectionOf(seg_, segment::SectionKind::kKeys).first);
  ASSERT_NE(at, std::string::npos);
  Flip(at + 5);  // "k01000" -> "k01004"
  auto db = Reopen();
  ASSERT_TRUE(db);
  testing::PutCommit(*db, "fresh", "in the memtable");
  EXPECT_EQ(testing::Committed(*db, "fresh"), "in the memtable");
  auto t = BeginRo(*db);
  std::string value;
  bool found = false;
  ExpectCorruptionNaming(seg_, t->Get(KeyOf(victim), &value, &found));
  for (int i = 0; i < kKeys; i += 7) {
    ExpectCorruptionNaming(seg_, t->Get(KeyOf(i), &value, &found));
    ExpectCorruptionNaming(seg_, t->Get(KeyOf(i) + "-absent", &value, &found));
  }
}

// A flip of any byte of the entries and keys sections (a thousand spread
// over each): every lookup, hit or miss, is Corruption, never a wrong value
// or a miss of a present key.
TEST_F(SegmentLazyTest, EveryFlipOfTheKeyIndexIsCorruptionOrHarmless) {
  for (segment::SectionKind kind : {segment::SectionKind::kEntries, segment::SectionKind::kKeys}) {
    const auto [off, len] = SectionOf(seg_, kind);
    const uint64_t step = len > 4000 ? len / 997 : 1;  // about a thousand flips per section
    for (uint64_t b = off; b < off + len; b += step) {
      Flip(b);
      auto opened = segment::SegmentFile::Open(Env::Default(), seg_);
      ASSERT_TRUE(opened.ok()) << opened.status().ToString();
      const segment::SegmentFile& seg = **opened;
      for (int i : {0, 1, 2, 999, 1000, 1001, kKeys - 1}) {
        for (const std::string& k : {engine::UserKey(KeyOf(i)), engine::UserKey(KeyOf(i) + "x")}) {
          segment::EntryView e;
          bool found = false;
          Status s = seg.Get(k, &e, &found);
          if (!s.ok()) {
            EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
            continue;
          }
          ADD_FAILURE() << "flip at " << b << " of section " << segment::SectionKindName(kind)
                        << " was not detected by lookup " << i;
        }
      }
      testing::WriteFileBytes(seg_, file_);
    }
  }
}

// A miss next to a large value reads no value byte: it costs key comparisons
// only.
TEST(SegmentLookups, AMissNeverChecksTheNeighboursValue) {
  testing::TempDir dir;
  {
    auto db = OpenKv(dir.path());
    ASSERT_TRUE(db);
    testing::PutCommit(*db, "a", "small");
    testing::PutCommit(*db, "m", std::string(size_t{8} << 20, 'v'));
    testing::PutCommit(*db, "z", "small");
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Close().ok());
  }
  // Damage the big value: a miss beside it must not notice.
  const std::string seg = OnlySegment(dir.path());
  const auto [off, len] = SectionOf(seg, segment::SectionKind::kValues);
  std::string file = testing::ReadFileBytes(seg);
  file[off + len / 2] = static_cast<char>(file[off + len / 2] ^ 1);
  testing::WriteFileBytes(seg, file);
  auto opened = segment::SegmentFile::Open(Env::Default(), seg);
  ASSERT_TRUE(opened.ok());
  for (const char* k : {"l", "ma", "n", "b", "y"}) {
    segment::EntryView e;
    bool found = true;
    Status s = (*opened)->Get(engine::UserKey(k), &e, &found);
    EXPECT_TRUE(s.ok()) << k << ": " << s.ToString();
    EXPECT_FALSE(found) << k;
  }
  // The hit itself returns the value: its checksum fails.
  segment::EntryView e;
  bool found = false;
  EXPECT_EQ((*opened)->Get(engine::UserKey("m"), &e, &found).code(), Code::kCorruption);
}

// Whether every hit of a named-index search for VectorOf(q) is a live entry
// of "ix" (the even keys but 2, no metadata) with its true score: a damaged
// graph section may choose other rows, but never give a wrong score.
bool IndexHitsAreTrue(int q, const std::vector<KeyHit>& hits) {
  const std::vector<float> query = VectorOf(q);
  for (const KeyHit& h : hits) {
    int row = -1;
    for (int i = 0; i < 24; i += 2) {
      if (i != 2 && KeyOf(i) == h.key) row = i;
    }
    if (row < 0 || !h.metadata.empty()) return false;
    const std::vector<float> v = VectorOf(row);
    float d2 = 0;
    for (uint32_t j = 0; j < kDim; ++j) d2 += (query[j] - v[j]) * (query[j] - v[j]);
    if (std::fabs(h.score + std::sqrt(d2)) > 1e-3f) return false;
  }
  return true;
}

// Every answer a small keyspace database gives, as text: bytes values,
// vector records (metadata and floats), misses, a flat search and a named
// index search (starting "ix-true|" when IndexHitsAreTrue); an error is "ERR",
// and must be Corruption naming the segment `damaged`.
std::vector<std::string> Answers(DB& db, const std::string& damaged = "") {
  std::vector<std::string> out;
  auto t = BeginRo(db);
  auto failed = [&](const Status& s) {
    if (!s.ok()) ExpectCorruptionNaming(damaged, s);
    return !s.ok();
  };
  auto floats = [](const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  for (int i = 0; i < 24; ++i) {
    for (const std::string& k : {KeyOf(i), KeyOf(i) + "~"}) {
      std::string value;
      bool found = false;
      Status s = t->Get(k, &value, &found);
      out.push_back(failed(s) ? "ERR" : found ? "=" + value : "absent");
      std::vector<float> vec;
      s = t->GetVector(k, simd::Metric::kL2, &vec);
      out.push_back(s.IsNotFound() ? "novec" : failed(s) ? "ERR" : floats(vec));
    }
  }
  for (int q : {3, 11, 20}) {
    std::vector<KeyHit> hits;
    const std::vector<float> query = VectorOf(q);
    Status s = t->SearchSimilar(query.data(), kDim, simd::Metric::kL2, 4, nullptr, true, &hits);
    std::string r = failed(s) ? "ERR" : "";
    for (const auto& h : hits) r += h.key + ":" + std::to_string(h.score) + ":" + h.metadata + ":" + floats(h.vector) + ";";
    out.push_back(r);
    hits.clear();
    // k 2: the group's 12 rows are walked (k of a quarter of the rows or
    // more would be scanned exactly, ENGINE.md 4.5).
    s = db.SearchIndex("ix", query.data(), kDim, 2, 0, "", &hits, nullptr);
    r = failed(s) ? "ERR" : IndexHitsAreTrue(q, hits) ? "ix-true|" : "ix|";
    for (const auto& h : hits) r += h.key + ":" + std::to_string(h.score) + ":" + h.metadata + ";";
    out.push_back(r);
  }
  return out;
}

// The byte ranges of segment `path` a reader interprets: the header, every
// section but a graph's (a damaged link may only choose other rows), the
// section table and the footer. The zero padding between sections is read by
// nobody (only Verify checks it).
std::vector<std::pair<uint64_t, uint64_t>> InterpretedRanges(const std::string& path) {
  const std::string file = testing::ReadFileBytes(path);
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {{0, segment::kHeaderSize}};
  const uint64_t table = DecodeFixed64(reinterpret_cast<const uint8_t*>(file.data()) + file.size() -
                                       segment::kFooterSize + segment::footer2::kTableOffset);
  ranges.push_back({table, file.size()});
  auto opened = segment::SegmentFile::Open(Env::Default(), path);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  if (!opened.ok()) return ranges;
  for (const auto& ref : (*opened)->sections()) {
    if (KindNumber(ref.kind) < KindNumber(segment::SectionKind::kGraphHeader)) {
      ranges.push_back({ref.offset, ref.offset + ref.length});
    }
  }
  return ranges;
}

bool InRanges(const std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint64_t pos) {
  return std::any_of(ranges.begin(), ranges.end(), [&](const auto& r) { return pos >= r.first && pos < r.second; });
}

// A flip of any bit of a keyspace segment file (one per byte, the bit
// varying) changes no answer without an error, and every error is Corruption
// naming the file and an offset, never a crash (run under ASan): open fails,
// or every read either answers as before or is an error (a named-index
// search may find other rows through a damaged graph, with their true
// scores). A flip of a byte a reader interprets is always noticed.
TEST(SegmentEveryByte, NoFlipChangesAnAnswerWithoutAnError) {
  testing::TempDir dir(testing::TempDir::OnTmpfs());
  Options o;
  o.path = dir.path();
  o.search_threads = 1;
  o.max_segments = 100;
  {
    auto db = OpenKv(dir.path(), o);
    ASSERT_TRUE(db);
    engine::IndexConfig c;
    c.dim = kDim;
    c.m = 4;
    c.ef_construction = 8;
    c.metric = simd::Metric::kL2;
    ASSERT_TRUE(db->CreateIndex("ix", c).ok());
    auto t = BeginRw(*db);
    for (int i = 0; i < 24; i += 2) {
      const std::vector<float> v = VectorOf(i);
      if (i % 4 == 0) {
        ASSERT_TRUE(t->Put(KeyOf(i), ValueOf(i)).ok());
      } else {
        const std::string meta = "m" + std::to_string(i);
        const std::string_view mv(meta);
        ASSERT_TRUE(t->UpsertVector(KeyOf(i), v.data(), kDim, simd::Metric::kL2, i % 3 ? &mv : nullptr).ok());
      }
      ASSERT_TRUE(t->IndexUpsert("ix", KeyOf(i), v.data(), kDim, nullptr).ok());
    }
    ASSERT_TRUE(t->Commit().ok());
    ASSERT_TRUE(db->Flush().ok());
    // A second segment: tombstones and newer versions over the first.
    t = BeginRw(*db);
    for (int i = 0; i < 24; i += 6) ASSERT_TRUE(t->Delete(KeyOf(i)).ok());
    for (int i = 1; i < 24; i += 4) ASSERT_TRUE(t->Put(KeyOf(i), ValueOf(i)).ok());
    ASSERT_TRUE(t->IndexDelete("ix", KeyOf(2)).ok());
    ASSERT_TRUE(t->Commit().ok());
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Close().ok());
  }
  std::vector<std::string> segs;
  for (const std::string& n : testing::SegmentFiles(dir.path())) segs.push_back(dir.path() + "/" + n);
  ASSERT_EQ(segs.size(), 2u);
  std::vector<std::string> baseline;
  {
    auto db = OpenKv(dir.path(), o);
    baseline = Answers(*db);
  }
  size_t flips = 0, opened = 0, errors = 0, other_rows = 0, noticed = 0;
  for (const std::string& seg : segs) {
    const std::string pristine = testing::ReadFileBytes(seg);
    const auto ranges = InterpretedRanges(seg);
    std::vector<std::pair<uint64_t, uint64_t>> unread;  // the values of keys a newer segment deletes
    for (int i : {0, 12}) {
      const size_t at = pristine.find(ValueOf(i));
      if (at != std::string::npos) unread.push_back({at, at + ValueOf(i).size()});
    }
    for (size_t b = 0; b < pristine.size(); ++b) {
      std::string damaged = pristine;
      damaged[b] = static_cast<char>(damaged[b] ^ (1 << (b % 8)));
      testing::WriteFileBytes(seg, damaged);
      ++flips;
      bool detected = false;
      {
        auto r = DB::Open(o);
        if (!r.ok()) {
          ExpectCorruptionNaming(seg, r.status());  // open checks only the container and the group table
          detected = true;
        } else {
          ++opened;
          DB& db = **r;
          const std::vector<std::string> got = Answers(db, seg);
          ASSERT_EQ(got.size(), baseline.size());
          for (size_t i = 0; i < got.size(); ++i) {
            if (got[i] == "ERR") {
              ++errors;
              detected = true;
              continue;
            }
            if (got[i] != baseline[i] && baseline[i].rfind("ix", 0) == 0 && got[i].rfind("ix-true|", 0) == 0) {
              ++other_rows;
              continue;
            }
            ASSERT_EQ(got[i], baseline[i]) << "flip of byte " << b << " of " << seg << " changed answer " << i;
          }
        }
      }
      noticed += detected;
      const bool interpreted = InRanges(ranges, b) && !InRanges(unread, b);
      EXPECT_TRUE(detected || !interpreted) << "byte " << b << " of " << seg << " is read, its damage unnoticed";
      testing::WriteFileBytes(seg, pristine);
    }
  }
  EXPECT_GT(opened, flips / 2) << "open reads no section but the table, header and footer";
  EXPECT_GT(errors, 0u);
  EXPECT_GT(noticed, 100u);
  EXPECT_GT(other_rows, 0u) << "the segments' graphs are walked: some flips of their links choose other rows";
}

// Open does not run the section checksums: a wrong checksum of the values
// section alone (the table's own CRC fixed) opens and reads; Verify finds it.
TEST_F(SegmentLazyTest, OpenDoesNotVerifySectionChecksums) {
  std::string damaged = file_;
  auto* f = reinterpret_cast<uint8_t*>(damaged.data());
  const uint8_t* footer = f + damaged.size() - segment::kFooterSize;
  const uint64_t table = DecodeFixed64(footer + segment::footer2::kTableOffset);
  const uint32_t count = DecodeFixed32(footer + segment::footer2::kSectionCount);
  bool patched = false;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* e = f + table + i * segment::kSectionEntrySize;
    if ((e[segment::table2::kKind] | (e[segment::table2::kKind + 1] << 8)) != KindNumber(segment::SectionKind::kValues)) continue;
    EncodeFixed32(e + segment::table2::kCrc, DecodeFixed32(e + segment::table2::kCrc) ^ 0x5a5a5a5au);
    patched = true;
  }
  ASSERT_TRUE(patched);
  EncodeFixed32(f + damaged.size() - segment::kFooterSize + segment::footer2::kTableCrc,
                crc32c::Value(f + table, count * segment::kSectionEntrySize));
  testing::WriteFileBytes(seg_, damaged);
  {
    auto opened = segment::SegmentFile::Open(Env::Default(), seg_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ((*opened)->entry_count(), static_cast<uint64_t>(kKeys));
    Status all = (*opened)->Verify();
    EXPECT_EQ(all.code(), Code::kCorruption) << all.ToString();
  }
  auto db = Reopen();
  ASSERT_TRUE(db);
  EXPECT_EQ(testing::Committed(*db, KeyOf(500)), ValueOf(500));
}

TEST_F(SegmentLazyTest, UndamagedSegmentPassesVerifyAndSearchFindsTheNearest) {
  auto opened = segment::SegmentFile::Open(Env::Default(), seg_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_TRUE((*opened)->Verify().ok());
  // 1,000 plain values and 1,000 vector records of one group (dim 8, L2).
  ASSERT_EQ((*opened)->group_count(), 1u);
  EXPECT_EQ((*opened)->group(0).kind, segment::GroupKind::kRecords);
  EXPECT_EQ((*opened)->group(0).rows, static_cast<uint64_t>(kKeys / 2));
  auto db = Reopen();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  std::vector<KeyHit> hits;
  const std::vector<float> q = VectorOf(321);
  ASSERT_TRUE(t->SearchSimilar(q.data(), kDim, simd::Metric::kL2, 3, nullptr, true, &hits).ok());
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].key, KeyOf(321));
  EXPECT_EQ(hits[0].vector, q);
}

// A merge that meets a damaged entry fails before writing anything and
// deletes no segment.
TEST(SegmentLazy, MergeMeetingADamagedEntryFailsAndDeletesNothing) {
  testing::TempDir dir;
  Options o;
  o.max_segments = 100;
  {
    auto db = OpenKv(dir.path(), o);
    ASSERT_TRUE(db);
    auto t = BeginRw(*db);
    ASSERT_TRUE(t->Put("a", "first-segment-value").ok());
    ASSERT_TRUE(t->Put("z", "first-segment-last").ok());
    ASSERT_TRUE(t->Commit().ok());
    ASSERT_TRUE(db->Flush().ok());
    testing::PutCommit(*db, "b", "second-segment-value");
    ASSERT_TRUE(db->Flush().ok());
    ASSERT_TRUE(db->Close().ok());
  }
  std::vector<std::string> segs;
  for (const std::string& n : testing::SegmentFiles(dir.path())) segs.push_back(dir.path() + "/" + n);
  ASSERT_EQ(segs.size(), 2u);
  std::string damaged_path;
  for (const auto& s : segs) {
    std::string f = testing::ReadFileBytes(s);
    const size_t at = f.find("first-segment-value");
    if (at == std::string::npos) continue;
    f[at + 2] = static_cast<char>(f[at + 2] ^ 1);
    testing::WriteFileBytes(s, f);
    damaged_path = s;
  }
  ASSERT_FALSE(damaged_path.empty());
  o.max_segments = 1;
  auto db = OpenKv(dir.path(), o);
  ASSERT_TRUE(db);
  // (A commit does not search segments older than its snapshot: the damage
  // does not stop writes.)
  testing::PutCommit(*db, "zz", "third");
  // Flushes "zz" (the call's result), then tries to merge the three
  // segments: the merge meets the damage and does nothing.
  Status s = db->Flush();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(db->TEST_SegmentCount(), 3u);
  for (const auto& p : segs) EXPECT_TRUE(std::filesystem::exists(p)) << p;
  EXPECT_EQ(testing::Committed(*db, "b"), "second-segment-value");
  EXPECT_EQ(testing::Committed(*db, "zz"), "third");
  std::string value;
  bool found = false;
  Status g = BeginRo(*db)->Get("a", &value, &found);
  EXPECT_EQ(g.code(), Code::kCorruption) << g.ToString();
}

}  // namespace
}  // namespace pomai::engine
