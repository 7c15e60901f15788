// KV segments (format 2): opening reads only the container's header, footer,
// section table and the group table; every read checks what it returns.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/kv_db.h"
#include "engine/kv_store.h"
#include "segment/segment.h"
#include "segment/segment_format.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "kv_test_util.h"
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

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// The one segment of `dir`.
std::string OnlySegment(const std::string& dir) {
  std::string seg;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".pseg") {
      EXPECT_TRUE(seg.empty()) << "more than one segment";
      seg = e.path().string();
    }
  }
  return seg;
}

// Offset and length of section `kind` in a segment file image.
std::pair<uint64_t, uint64_t> SectionOf(const std::string& file, uint32_t kind) {
  const auto* f = reinterpret_cast<const uint8_t*>(file.data());
  const uint8_t* footer = f + file.size() - segment::kFooterSize;
  const uint64_t table = DecodeFixed64(footer);
  const uint32_t count = DecodeFixed32(footer + 8);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = f + table + i * segment::kSectionEntrySize;
    if (DecodeFixed32(e) == kind) return {DecodeFixed64(e + 8), DecodeFixed64(e + 16)};
  }
  ADD_FAILURE() << "no section " << kind;
  return {0, 0};
}

// A flushed database of kKeys keys: even ones bytes values, odd ones vectors.
class KvSegmentLazyTest : public ::testing::Test {
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
    file_ = ReadFile(seg_);
  }

  // Flips one bit at `offset` of the segment file.
  void Flip(uint64_t offset) {
    std::string damaged = file_;
    damaged[offset] = static_cast<char>(damaged[offset] ^ 0x04);
    WriteFile(seg_, damaged);
  }

  // Expects `s` to be Corruption naming the segment and an offset.
  void ExpectCorruptionNamingSegment(const Status& s) {
    EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
    EXPECT_NE(s.message().find(seg_ + " at offset "), std::string::npos) << s.message();
  }

  std::unique_ptr<KvDB> Reopen() {
    KvOptions o;
    o.path = dir_.path();
    o.search_threads = 1;
    auto r = KvDB::Open(o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  testing::TempDir dir_;
  std::string seg_;
  std::string file_;
};

TEST_F(KvSegmentLazyTest, FlippedValueByteOpensAndOnlyTheGetOfThatKeyIsCorruption) {
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
  ExpectCorruptionNamingSegment(s);
  EXPECT_EQ(value, "untouched") << "the damaged bytes were returned";
  std::string_view view;
  ExpectCorruptionNamingSegment(t->GetView(KeyOf(victim), &view, &found));
}

TEST_F(KvSegmentLazyTest, FlippedVectorByteOpensAndTheReadsThatTouchItAreCorruption) {
  const int victim = 777;  // odd: a vector
  const std::vector<float> v = VectorOf(victim);
  const size_t at = file_.find(std::string(reinterpret_cast<const char*>(v.data()), kDim * sizeof(float)));
  ASSERT_NE(at, std::string::npos);
  Flip(at + 5);
  auto db = Reopen();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  std::vector<float> out;
  ASSERT_TRUE(t->GetVector(KeyOf(victim + 2), simd::Metric::kL2, &out).ok());
  EXPECT_EQ(out, VectorOf(victim + 2));
  EXPECT_EQ(testing::GetValue(*t, KeyOf(victim + 1)), ValueOf(victim + 1));
  out.clear();
  ExpectCorruptionNamingSegment(t->GetVector(KeyOf(victim), simd::Metric::kL2, &out));
  EXPECT_TRUE(out.empty());
  // A flat search scans the damaged group: its checksum fails (every time).
  std::vector<KvHit> hits;
  const std::vector<float> q = VectorOf(victim);
  for (int round = 0; round < 2; ++round) {
    ExpectCorruptionNamingSegment(t->SearchSimilar(q.data(), kDim, simd::Metric::kL2, 5, nullptr, true, &hits));
    EXPECT_TRUE(hits.empty());
  }
}

TEST_F(KvSegmentLazyTest, FlippedKeyByteOpensAndNeverGivesAWrongAnswer) {
  const int victim = 1000;
  const size_t at = file_.find(KeyOf(victim), SectionOf(file_, engine::kv::kKvKeys).first);
  ASSERT_NE(at, std::string::npos);
  Flip(at + 5);  // "k01000" -> "k01004"
  auto db = Reopen();
  ASSERT_TRUE(db);
  EXPECT_EQ(testing::Committed(*db, KeyOf(2)), ValueOf(2));
  EXPECT_EQ(testing::Committed(*db, KeyOf(1998)), ValueOf(1998));
  auto t = BeginRo(*db);
  std::string value;
  bool found = false;
  ExpectCorruptionNamingSegment(t->Get(KeyOf(victim), &value, &found));
  // Every key either reads back right or is Corruption: never missing or wrong.
  int corrupt = 0;
  for (int i = 0; i < kKeys; i += 2) {
    Status s = t->Get(KeyOf(i), &value, &found);
    if (!s.ok()) {
      ExpectCorruptionNamingSegment(s);
      ++corrupt;
      continue;
    }
    EXPECT_TRUE(found) << KeyOf(i);
    EXPECT_EQ(value, ValueOf(i)) << KeyOf(i);
  }
  EXPECT_GE(corrupt, 1);
  EXPECT_LE(corrupt, 25);  // only keys whose search lands on the damaged entry
}

// Open does not run the section checksums: a wrong checksum of the values
// section alone (the table's own CRC fixed) opens and reads; VerifyAll finds it.
TEST_F(KvSegmentLazyTest, OpenDoesNotVerifySectionChecksums) {
  std::string damaged = file_;
  auto* f = reinterpret_cast<uint8_t*>(damaged.data());
  const uint8_t* footer = f + damaged.size() - segment::kFooterSize;
  const uint64_t table = DecodeFixed64(footer);
  const uint32_t count = DecodeFixed32(footer + 8);
  bool patched = false;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* e = f + table + i * segment::kSectionEntrySize;
    if (DecodeFixed32(e) != engine::kv::kKvValues) continue;
    EncodeFixed32(e + 24, DecodeFixed32(e + 24) ^ 0x5a5a5a5au);
    patched = true;
  }
  ASSERT_TRUE(patched);
  EncodeFixed32(f + damaged.size() - segment::kFooterSize + 12,
                crc32c::Value(f + table, count * segment::kSectionEntrySize));
  WriteFile(seg_, damaged);
  {
    auto opened = engine::kv::Segment::Open(Env::Default(), seg_, 1);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ((*opened)->size(), static_cast<size_t>(kKeys));
    Status all = (*opened)->VerifyAll();
    EXPECT_EQ(all.code(), Code::kCorruption) << all.ToString();
  }
  auto db = Reopen();
  ASSERT_TRUE(db);
  EXPECT_EQ(testing::Committed(*db, KeyOf(500)), ValueOf(500));
}

TEST_F(KvSegmentLazyTest, UndamagedSegmentPassesVerifyAllAndSearchFindsTheNearest) {
  auto opened = engine::kv::Segment::Open(Env::Default(), seg_, 1);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_TRUE((*opened)->VerifyAll().ok());
  auto db = Reopen();
  ASSERT_TRUE(db);
  auto t = BeginRo(*db);
  std::vector<KvHit> hits;
  const std::vector<float> q = VectorOf(321);
  ASSERT_TRUE(t->SearchSimilar(q.data(), kDim, simd::Metric::kL2, 3, nullptr, true, &hits).ok());
  ASSERT_EQ(hits.size(), 3u);
  EXPECT_EQ(hits[0].key, KeyOf(321));
  EXPECT_EQ(hits[0].vector, q);
}

// A merge that meets a damaged entry fails before writing anything and
// deletes no segment.
TEST(KvSegmentLazy, MergeMeetingADamagedEntryFailsAndDeletesNothing) {
  testing::TempDir dir;
  KvOptions o;
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
  for (auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().extension() == ".pseg") segs.push_back(e.path().string());
  ASSERT_EQ(segs.size(), 2u);
  std::string damaged_path;
  for (const auto& s : segs) {
    std::string f = ReadFile(s);
    const size_t at = f.find("first-segment-value");
    if (at == std::string::npos) continue;
    f[at + 2] = static_cast<char>(f[at + 2] ^ 1);
    WriteFile(s, f);
    damaged_path = s;
  }
  ASSERT_FALSE(damaged_path.empty());
  o.max_segments = 1;
  auto db = OpenKv(dir.path(), o);
  ASSERT_TRUE(db);
  // (A write whose key's neighbours in a segment are damaged is Corruption
  // too: a miss is proven by the checked entries around the key.)
  testing::PutCommit(*db, "zz", "third");
  Status s = db->Flush();  // flushes "zz", then merges the three segments
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find(damaged_path + " at offset "), std::string::npos) << s.message();
  for (const auto& p : segs) EXPECT_TRUE(std::filesystem::exists(p)) << p;
  EXPECT_EQ(testing::Committed(*db, "b"), "second-segment-value");
  EXPECT_EQ(testing::Committed(*db, "zz"), "third");
  std::string value;
  bool found = false;
  Status g = BeginRo(*db)->Get("a", &value, &found);
  EXPECT_EQ(g.code(), Code::kCorruption) << g.ToString();
}

// Format 1 segments (no "kv format" section) are refused with a clear message.
TEST(KvSegmentLazy, FormatVersion1IsRefused) {
  testing::TempDir dir;
  segment::SegmentContents c;
  c.info.dim = 1;
  c.info.shard = engine::kv::kKvSegmentMarker;
  c.extra = {{engine::kv::kKvEntries, ""}, {engine::kv::kKvKeys, ""},       {engine::kv::kKvValues, ""},
             {engine::kv::kKvGroups, ""},  {engine::kv::kKvVectorRows, ""}, {engine::kv::kKvVectorData, ""}};
  ASSERT_TRUE(segment::WriteSegment(Env::Default(), dir.path(), "seg-000001.pseg", c).ok());
  auto r = engine::kv::Segment::Open(Env::Default(), dir.path() + "/seg-000001.pseg", 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_NE(r.status().message().find("unsupported keyspace segment format version 1"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace pomai::engine
