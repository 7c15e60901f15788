// SQ8 scoring: the integer kernel (graphs with the norms section) and the
// float kernel (graphs written before it) both give the score of the decoded
// vectors; graphs without norms still open and search the same.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "index/hnsw.h"
#include "index/sq8.h"
#include "index_test_util.h"

namespace pomai::index {
namespace {

using segment::SectionKind;
using simd::Metric;
using namespace testing;

// The score of `q` against code row `code`, decoded, in double.
double DecodedScore(Metric metric, const float* q, const float* min, const float* scale, const uint8_t* code,
                    size_t dim) {
  double dot = 0, l2 = 0, qq = 0, xx = 0;
  for (size_t j = 0; j < dim; ++j) {
    const double x = static_cast<double>(min[j]) + static_cast<double>(scale[j]) * code[j];
    dot += q[j] * x;
    l2 += (q[j] - x) * (q[j] - x);
    qq += static_cast<double>(q[j]) * q[j];
    xx += x * x;
  }
  switch (metric) {
    case Metric::kL2: return -l2;
    case Metric::kIP: return dot;
    case Metric::kCosine: return qq > 0 && xx > 0 ? dot / std::sqrt(qq * xx) : 0.0;
  }
  return 0;
}

class Sq8Kernels : public ::testing::TestWithParam<std::tuple<Metric, size_t>> {};

TEST_P(Sq8Kernels, IntegerAndFloatKernelsGiveTheDecodedScore) {
  const auto [metric, dim] = GetParam();
  const size_t rows = 67;  // not a multiple of the four rows the kernels do at once
  std::mt19937_64 rng(dim * 31 + static_cast<int>(metric));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> data(rows * dim);
  for (size_t j = 0; j < dim; ++j) {
    const float spread = 0.1f + 3.0f * static_cast<float>(j % 7);  // dimensions of different ranges
    const float shift = static_cast<float>(j % 5) - 2.0f;
    for (size_t r = 0; r < rows; ++r) data[r * dim + j] = shift + spread * normal(rng);
  }
  std::string params, codes, norms;
  sq8::Encode(data.data(), rows, dim, &params, &codes);
  sq8::EncodeNorms(metric, params, codes, rows, dim, &norms);
  ASSERT_EQ(norms.size(), rows * sizeof(float));
  const float* min = reinterpret_cast<const float*>(params.data());
  const float* scale = min + dim;
  const size_t stride = sq8::Stride(dim);
  std::vector<const uint8_t*> ptrs(rows);
  std::vector<uint32_t> ids(rows);
  for (size_t r = 0; r < rows; ++r) {
    ids[r] = static_cast<uint32_t>(rows - 1 - r);  // rows in another order than their numbers
    ptrs[r] = reinterpret_cast<const uint8_t*>(codes.data()) + ids[r] * stride;
  }
  for (int qi = 0; qi < 5; ++qi) {
    std::vector<float> q(dim);
    for (size_t j = 0; j < dim; ++j) q[j] = data[(qi * 7 % rows) * dim + j] + 0.3f * normal(rng);
    if (qi == 4) std::fill(q.begin(), q.end(), 0.0f);  // a zero query
    sq8::Query with, without;
    with.Prepare(metric, q.data(), min, scale, dim, reinterpret_cast<const float*>(norms.data()));
    without.Prepare(metric, q.data(), min, scale, dim);
    std::vector<float> got_int(rows), got_float(rows);
    sq8::ScoreGather(with, ptrs.data(), ids.data(), rows, got_int.data());
    sq8::ScoreGather(without, ptrs.data(), ids.data(), rows, got_float.data());
    // The size of the terms a score is summed from (the L2 ones are squares
    // of at most |q - min| + 255 scale per dimension).
    double mag = 0;
    for (size_t j = 0; j < dim; ++j) {
      const double span = 255.0 * scale[j];
      mag += metric == Metric::kL2 ? std::pow(std::fabs(q[j] - min[j]) + span, 2)
                                   : std::fabs(q[j]) * (std::fabs(min[j]) + span);
    }
    for (size_t r = 0; r < rows; ++r) {
      const double want = DecodedScore(metric, q.data(), min, scale, ptrs[r], dim);
      const double tol = metric == Metric::kCosine ? 1e-3 : 1e-4 * mag + 1e-4;
      EXPECT_NEAR(got_int[r], want, tol) << "integer kernel, dim " << dim << " row " << ids[r] << " query " << qi;
      EXPECT_NEAR(got_float[r], want, tol) << "float kernel, dim " << dim << " row " << ids[r] << " query " << qi;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(MetricsAndDims, Sq8Kernels,
                         ::testing::Combine(::testing::Values(Metric::kL2, Metric::kIP, Metric::kCosine),
                                            ::testing::Values(8, 16, 48, 64, 100, 128, 384, 960, 1536, 4096, 4100)));

constexpr uint32_t kDim = 64;  // a multiple of every target's int16 lanes: the integer kernel runs
constexpr size_t kRows = 1500;

std::unique_ptr<Built> Graph() {
  return BuildAndOpen(Clustered(kRows, kDim, 20, 4), kDim, Metric::kL2, HnswParams{8, 60, 2});
}

TEST(Sq8Norms, NewGraphsCarryNormsAndVerify) {
  auto g = Graph();
  ASSERT_EQ(g->image.sections().count(KindNumber(SectionKind::kHnswSq8Norms)), 1u);
  EXPECT_EQ(g->image[SectionKind::kHnswSq8Norms].size(), kRows * 4);
  EXPECT_NE(g->image[SectionKind::kHnswHeader][hnsw_header::kFlags] & kFlagSq8Norms, 0);
  auto graph = g->Open();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  EXPECT_TRUE(graph->Verify().ok());
  EXPECT_EQ(graph->Stats()->bytes % 4, 0u);
}

TEST(Sq8Norms, GraphsWithoutNormsOpenAndFindTheSameRows) {
  auto with = Graph();
  auto without = Graph();
  without->image.sections().erase(KindNumber(SectionKind::kHnswSq8Norms));
  without->image[SectionKind::kHnswHeader][hnsw_header::kFlags] &= ~kFlagSq8Norms;
  without->image.ResealHeader();
  auto a = with->Open();
  auto b = without->Open();
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().ToString();
  EXPECT_TRUE(b->Verify().ok());
  ASSERT_TRUE(b->has_sq8());
  EXPECT_EQ(b->Stats()->bytes + kRows * 4, a->Stats()->bytes);
  const std::vector<float> queries = Clustered(100, kDim, 20, 5);
  const auto ra = SearchAll(*a, queries, kDim, 10, 40);
  const auto rb = SearchAll(*b, queries, kDim, 10, 40);
  size_t same = 0;
  for (size_t q = 0; q < 100; ++q) {
    same += std::set<uint32_t>(ra[q].begin(), ra[q].end()) == std::set<uint32_t>(rb[q].begin(), rb[q].end());
  }
  // The two kernels round differently, so a near tie may go either way, rarely.
  EXPECT_GE(same, 97u);
}

TEST(Sq8Norms, DamagedNormsSectionOrFlagsAreCorruption) {
  // Open of a fresh graph with `damage` done to its image.
  auto open_damaged = [](const std::function<void(GraphImage&)>& damage) {
    auto g = Graph();
    damage(g->image);
    Status st = g->Open().status();
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    return st;
  };
  // A norms section of the wrong size.
  Status st = open_damaged([](GraphImage& image) { image[SectionKind::kHnswSq8Norms].pop_back(); });
  EXPECT_NE(st.message().find("hnsw sq8 norms"), std::string::npos) << st.message();
  open_damaged([](GraphImage& image) {  // the norms flag without the SQ8 flag
    image[SectionKind::kHnswHeader][hnsw_header::kFlags] = kFlagSq8Norms;
    image.ResealHeader();
  });
  // The flag set, the section missing.
  open_damaged([](GraphImage& image) { image.sections().erase(KindNumber(SectionKind::kHnswSq8Norms)); });
}

TEST(Sq8Norms, AWrongNormFailsVerifyAndSearchStaysSafe) {
  for (const float bad : {0.0f, -1.0f, std::nanf(""), INFINITY, 1e30f}) {
    auto g = Graph();
    std::memcpy(g->image[SectionKind::kHnswSq8Norms].data() + 4 * 123, &bad, 4);
    auto graph = g->Open();
    ASSERT_TRUE(graph.ok()) << graph.status().ToString();
    Status v = graph->Verify();
    EXPECT_TRUE(v.IsCorruption()) << bad << ": " << v.ToString();
    EXPECT_NE(v.message().find("row 123"), std::string::npos) << v.message();
    std::vector<Neighbor> out;
    for (size_t q = 0; q < 20; ++q) {
      ASSERT_TRUE(graph->Search(g->data.data() + q * 50 * kDim, 10, 30, nullptr, &out).ok());
      EXPECT_EQ(out.size(), 10u);
      for (const Neighbor& n : out) EXPECT_TRUE(std::isfinite(n.score));  // the rerank is exact float32
    }
  }
}

TEST(Sq8Rerank, TheBestCodesReScoredHoldTheExactTopK) {
  // ef far above RerankCount(k): the walk keeps many more rows than are
  // re-scored, and the answer must still be the exact top k.
  auto g = Graph();
  ASSERT_NE(g->graph, nullptr);
  ASSERT_EQ(g->graph->traversal(), Traversal::kSq8);
  ASSERT_LT(RerankCount(10), 300u);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  std::vector<float> queries(50 * kDim);
  for (size_t q = 0; q < 50; ++q)
    for (uint32_t j = 0; j < kDim; ++j) queries[q * kDim + j] = g->data[(q * 29) * kDim + j] + noise(rng);
  const auto found = SearchAll(*g->graph, queries, kDim, 10, 300);
  for (const auto& f : found) EXPECT_EQ(f.size(), 10u);
  EXPECT_GE(Recall(GroundTruth(g->data, kDim, queries, Metric::kL2, 10), found), 0.99);
}

}  // namespace
}  // namespace pomai::index
