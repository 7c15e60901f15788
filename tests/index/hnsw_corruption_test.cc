// Damaged and crafted graph sections: never a crash, never an out-of-bounds
// read (CI runs this under ASan and UBSan), damage reported as Corruption.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "index/hnsw.h"
#include "index_test_util.h"

namespace pomai::index {
namespace {

using segment::SectionKind;
using simd::Metric;
using namespace testing;

constexpr size_t kRows = 500;
constexpr uint32_t kDim = 8;
const char kFile[] = "seg-000042.pseg";

// A 500 x 8 graph (m = 8, so layer 0 has 16 links) held as section bytes.
class HnswDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = Clustered(kRows, kDim, 10, 5);
    good_ = BuildOrDie(data_, kDim, Metric::kL2, HnswParams{8, 60, 9});
    image_ = GraphImage(good_);
    queries_ = Clustered(8, kDim, 10, 6);
  }

  Result<HnswGraph> Open() { return HnswGraph::Open(image_.Source(), data_.data(), kRows, kDim, Metric::kL2, kFile); }

  // Puts the undamaged bytes back.
  void Restore() { image_ = GraphImage(good_); }

  static void ExpectCorruption(const Status& st, const std::string& what) {
    EXPECT_TRUE(st.IsCorruption()) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find(std::string(kFile) + " at offset "), std::string::npos) << st.message();
  }

  // Open refuses the image: Corruption naming the file and an offset, saying `says`.
  void ExpectOpenCorruption(const std::string& what, const std::string& says = "") {
    auto g = Open();
    ASSERT_FALSE(g.ok()) << what << ": opened";
    ExpectCorruption(g.status(), what);
    EXPECT_NE(g.status().message().find(says), std::string::npos) << g.status().message();
  }

  // Opens the damaged image (Open reads no links): a search is Corruption
  // saying `says` and returns nothing. Returns the graph for more checks.
  Result<HnswGraph> ExpectSearchCorruption(const std::string& what, const std::string& says = "") {
    auto g = Open();
    EXPECT_TRUE(g.ok()) << what << ": " << g.status().ToString();
    if (!g.ok()) return g;
    std::vector<Neighbor> out;
    Status st = g->Search(queries_.data(), 10, 20, nullptr, &out);
    ExpectCorruption(st, what);
    EXPECT_NE(st.message().find(says), std::string::npos) << st.message();
    EXPECT_TRUE(out.empty()) << what;
    return g;
  }

  // Runs searches with and without a filter; every status must be OK or
  // Corruption. Returns whether all were OK.
  bool SearchesAreSafe(const HnswGraph& g) {
    bool all_ok = true;
    std::vector<Neighbor> out;
    for (size_t q = 0; q < queries_.size() / kDim; ++q) {
      for (size_t k : {1, 10, 600}) {
        Status st = q % 2 ? g.Search(queries_.data() + q * kDim, k, 20, nullptr, &out)
                          : g.Search(queries_.data() + q * kDim, k, 20, [](uint32_t r) { return r % 3 != 0; }, &out);
        if (!st.ok()) {
          EXPECT_TRUE(st.IsCorruption()) << st.ToString();
          EXPECT_TRUE(out.empty());
          all_ok = false;
          continue;
        }
        EXPECT_LE(out.size(), k);
        for (const Neighbor& n : out) EXPECT_LT(n.row, kRows);
      }
    }
    return all_ok;
  }

  std::vector<float> data_;
  std::vector<GraphSection> good_;
  GraphImage image_;
  std::vector<float> queries_;
};

TEST_F(HnswDamage, TheUndamagedGraphOpensVerifiesAndSearches) {
  auto g = Open();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(g->Verify().ok());
  EXPECT_TRUE(SearchesAreSafe(*g));
  EXPECT_GE(g->max_level(), 1u);  // so that the upper sections are exercised
}

TEST_F(HnswDamage, EveryTruncationOfEverySectionIsCorruption) {
  for (const GraphSection& s : good_) {
    for (size_t len = 0; len < s.bytes.size(); ++len) {
      Restore();
      image_[s.kind].resize(len);
      image_[s.kind].shrink_to_fit();
      auto g = Open();
      ASSERT_FALSE(g.ok()) << "section " << s.kind << " truncated to " << len << " opened";
      if (s.kind == KindNumber(SectionKind::kHnswHeader) && len == 0) {
        EXPECT_TRUE(g.status().IsNotFound()) << g.status().ToString();  // an empty header is no graph
      } else {
        ExpectCorruption(g.status(), "section " + std::to_string(s.kind) + " truncated to " + std::to_string(len));
      }
    }
    Restore();
    image_[s.kind].push_back('\0');  // one byte too long
    ExpectOpenCorruption("section " + std::to_string(s.kind) + " extended");
  }
}

TEST_F(HnswDamage, EveryHeaderByteFlipIsCorruption) {
  for (size_t at = 0; at < kHnswHeaderSize; ++at) {
    Restore();
    image_[SectionKind::kHnswHeader][at] ^= 0x5a;
    ExpectOpenCorruption("header flip at " + std::to_string(at));
  }
}

TEST_F(HnswDamage, RandomByteFlipsAreCaughtOrHarmless) {
  std::mt19937_64 rng(2024);
  size_t total = 0;
  for (const GraphSection& s : good_) total += s.bytes.size();
  size_t open_failed = 0, verify_failed = 0, harmless = 0, search_caught = 0;
  for (int i = 0; i < 3000; ++i) {
    Restore();
    size_t at = rng() % total;
    uint32_t kind = 0;
    for (const GraphSection& s : good_) {
      if (at < s.bytes.size()) {
        kind = s.kind;
        break;
      }
      at -= s.bytes.size();
    }
    image_[kind][at] ^= static_cast<char>(1 + rng() % 255);
    auto g = Open();
    if (!g.ok()) {
      ExpectCorruption(g.status(), "flip in section " + std::to_string(kind) + " at " + std::to_string(at));
      ++open_failed;
      continue;
    }
    // Search must be safe without Verify first.
    const bool searches_ok = SearchesAreSafe(*g);
    search_caught += !searches_ok;
    Status v = g->Verify();
    if (!v.ok()) {
      ExpectCorruption(v, "verify after flip in section " + std::to_string(kind) + " at " + std::to_string(at));
      ++verify_failed;
      continue;
    }
    // A structurally valid graph (say a link changed to another valid row): search never fails.
    EXPECT_TRUE(searches_ok) << "verified graph failed a search; flip in section " << kind << " at " << at;
    EXPECT_TRUE(g->Stats().ok());
    ++harmless;
  }
  RecordProperty("open_failed", std::to_string(open_failed));
  RecordProperty("verify_failed", std::to_string(verify_failed));
  RecordProperty("harmless", std::to_string(harmless));
  // Most bytes are link ids, and a random link id is almost never valid at 500 rows.
  EXPECT_GT(open_failed + verify_failed, 2000u);
  EXPECT_GT(search_caught, 0u);
}

TEST_F(HnswDamage, HugeLayer0CountIsCorruptionInSearch) {
  std::vector<char>& l0 = image_[SectionKind::kHnswLayer0];
  const size_t stride = (16 + 1) * 4;
  for (size_t r = 0; r < kRows; ++r) PutU32(l0, r * stride, 0xFFFFFFF0u);
  auto g = ExpectSearchCorruption("huge count", "layer-0");
  ASSERT_TRUE(g.ok());
  ExpectCorruption(g->Verify(), "verify huge count");
  EXPECT_TRUE(g->Stats().status().IsCorruption());
}

TEST_F(HnswDamage, HugeLayer0IdIsCorruptionInSearch) {
  std::vector<char>& l0 = image_[SectionKind::kHnswLayer0];
  const size_t stride = (16 + 1) * 4;
  for (size_t r = 0; r < kRows; ++r) {
    if (GetU32(l0, r * stride) > 0) PutU32(l0, r * stride + 4, 0x7FFFFFFFu);
  }
  static_cast<void>(ExpectSearchCorruption("huge id", "2147483647"));
}

TEST_F(HnswDamage, HugeUpperCountAndIdAreCorruptionInSearch) {
  {
    auto g = Open();
    ASSERT_TRUE(g.ok());
    ASSERT_GE(g->max_level(), 1u);
  }
  std::vector<char>& up = image_[SectionKind::kHnswUpperLinks];
  const size_t stride = (8 + 1) * 4;
  for (size_t b = 0; b < up.size() / stride; ++b) PutU32(up, b * stride, 1u << 31);
  static_cast<void>(ExpectSearchCorruption("huge upper count"));

  Restore();
  std::vector<char>& up2 = image_[SectionKind::kHnswUpperLinks];  // Restore replaced the bytes
  for (size_t b = 0; b < up2.size() / stride; ++b) {
    PutU32(up2, b * stride, 1);
    PutU32(up2, b * stride + 4, 0xFFFFFFFEu);
  }
  static_cast<void>(ExpectSearchCorruption("huge upper id"));
}

TEST_F(HnswDamage, UpperIndexOutOfRangeIsCorruptionInSearch) {
  std::vector<char>& idx = image_[SectionKind::kHnswUpperIndex];
  for (size_t r = 0; r < kRows; ++r) PutU32(idx, r * 4, 0xFFFFFFF0u);
  auto g = ExpectSearchCorruption("upper index");
  ASSERT_TRUE(g.ok());
  ExpectCorruption(g->Verify(), "verify upper index");
}

TEST_F(HnswDamage, CraftedHeadersAreCorruption) {
  struct Case {
    size_t at;
    uint32_t value;
    const char* what;
  };
  const Case cases[] = {
      {hnsw_header::kM, 0, "m out of range"},
      {hnsw_header::kM, 0xFFFFFFFFu, "m out of range"},
      {hnsw_header::kM0, 0, "m0 out of range"},
      {hnsw_header::kMaxLevelField, 200, "max level"},
      {hnsw_header::kEntryPoint, kRows, "entry point"},
      {hnsw_header::kEntryPoint, kNoRow, "entry point"},
      {hnsw_header::kRows + 4, 0x10, "rows"},
      {hnsw_header::kUpperBlocks, 0xFFFFFFFFu, "section is"},
      {hnsw_header::kUpperBlocks + 4, 1, "too many upper blocks"},
      {hnsw_header::kVersion, 2, "unsupported format version"},
  };
  for (const Case& c : cases) {
    Restore();
    PutU32(image_[SectionKind::kHnswHeader], c.at, c.value);
    image_.ResealHeader();
    ExpectOpenCorruption(c.what, c.what);
  }
  // Unknown flags.
  Restore();
  image_[SectionKind::kHnswHeader][hnsw_header::kFlags] = 2;
  image_.ResealHeader();
  ExpectOpenCorruption("unknown flags");
  // An entry point that is not on the top level.
  Restore();
  auto g = Open();
  ASSERT_TRUE(g.ok());
  const std::vector<char>& levels = image_[SectionKind::kHnswLevels];
  uint32_t low = 0;
  while (static_cast<uint8_t>(levels[low]) == g->max_level()) ++low;
  PutU32(image_[SectionKind::kHnswHeader], hnsw_header::kEntryPoint, low);
  image_.ResealHeader();
  ExpectOpenCorruption("entry level");
}

TEST_F(HnswDamage, BadSq8ParamsFailVerifyButNotSearch) {
  std::vector<char>& params = image_[SectionKind::kHnswSq8Params];
  ASSERT_EQ(params.size(), 2 * kDim * sizeof(float));
  const float nan = std::nanf("");
  std::memcpy(params.data() + 4, &nan, 4);  // min of dimension 1
  const float negative = -1.0f;
  std::memcpy(params.data() + (kDim + 2) * 4, &negative, 4);  // scale of dimension 2
  auto g = Open();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectCorruption(g->Verify(), "sq8 params");
  SearchesAreSafe(*g);
}

TEST_F(HnswDamage, SizeProductsThatOverflowAreCorruption) {
  // m0 = 4096 and rows that make rows * (1 + m0) * 4 wrap around 2^64.
  PutU32(image_[SectionKind::kHnswHeader], hnsw_header::kM0, kMaxDegree);
  image_.ResealHeader();
  ExpectOpenCorruption("m0 4096");
  const uint64_t rows = (uint64_t{1} << 62) / (kMaxDegree + 1) + 1;
  std::vector<char>& h = image_[SectionKind::kHnswHeader];
  EncodeFixed64(reinterpret_cast<uint8_t*>(h.data() + hnsw_header::kRows), rows);
  image_.ResealHeader();
  auto g2 = HnswGraph::Open(image_.Source(), data_.data(), rows, kDim, Metric::kL2, kFile);
  ASSERT_FALSE(g2.ok());
  ExpectCorruption(g2.status(), "overflowing rows");
}

TEST_F(HnswDamage, OffsetsAreFileOffsetsWhenTheMappingIsKnown) {
  // The sections laid out as in a segment file: 64-byte aligned, zero padded.
  std::vector<char> file(64);
  std::map<uint32_t, std::pair<size_t, size_t>> where;
  for (const GraphSection& s : good_) {
    where[s.kind] = {file.size(), s.bytes.size()};
    file.insert(file.end(), s.bytes.begin(), s.bytes.end());
    file.resize((file.size() + 63) / 64 * 64);
  }
  const size_t l0 = where[KindNumber(SectionKind::kHnswLayer0)].first;
  const size_t bad_row = 3;
  PutU32(file, l0 + bad_row * 17 * 4, 99);  // count 99 > m0 16
  auto source = [&](uint32_t kind) -> std::string_view {
    auto it = where.find(kind);
    if (it == where.end()) return {};
    return std::string_view(file.data() + it->second.first, it->second.second);
  };
  auto g = HnswGraph::Open(source, data_.data(), kRows, kDim, Metric::kL2, kFile, file.data());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Status st = g->Verify();
  ExpectCorruption(st, "verify");
  EXPECT_NE(st.message().find(" at offset " + std::to_string(l0 + bad_row * 17 * 4) + ":"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace pomai::index
