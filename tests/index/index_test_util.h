// Data sets, ground truth and in-memory graph images for the index tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include "index/hnsw.h"
#include "simd/distance.h"

namespace pomai::index::testing {

// Points around `clusters` Gaussian centres (N(0,1) per coordinate), each at
// N(0, spread^2) from its centre: `rows` data rows and `queries` query rows
// from the same centres. Deterministic for a seed.
struct Points {
  std::vector<float> data;
  std::vector<float> queries;
};

inline Points ClusteredSet(size_t rows, size_t queries, uint32_t dim, size_t clusters, uint64_t seed,
                           float spread = 0.4f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(clusters * dim);
  for (float& c : centres) c = normal(rng);
  auto draw = [&](size_t n) {
    std::vector<float> out(n * dim);
    for (size_t r = 0; r < n; ++r) {
      const float* c = centres.data() + (rng() % clusters) * dim;
      for (uint32_t j = 0; j < dim; ++j) out[r * dim + j] = c[j] + spread * normal(rng);
    }
    return out;
  };
  Points p;
  p.data = draw(rows);
  p.queries = draw(queries);
  return p;
}

inline std::vector<float> Clustered(size_t rows, uint32_t dim, size_t clusters, uint64_t seed, float spread = 0.4f) {
  return ClusteredSet(rows, 0, dim, clusters, seed, spread).data;
}

// The k best live rows for each query by the scalar reference scores, best first.
template <class Live>
std::vector<std::vector<uint32_t>> GroundTruth(const std::vector<float>& data, uint32_t dim,
                                               const std::vector<float>& queries, simd::Metric metric, size_t k,
                                               Live live) {
  const size_t rows = data.size() / dim;
  const size_t nq = queries.size() / dim;
  std::vector<std::vector<uint32_t>> truth(nq);
  std::vector<std::pair<float, uint32_t>> scored;
  for (size_t q = 0; q < nq; ++q) {
    scored.clear();
    for (size_t r = 0; r < rows; ++r) {
      if (!live(static_cast<uint32_t>(r))) continue;
      scored.emplace_back(simd::ScalarScore(metric, queries.data() + q * dim, data.data() + r * dim, dim),
                          static_cast<uint32_t>(r));
    }
    const size_t n = std::min(k, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + n, scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (size_t i = 0; i < n; ++i) truth[q].push_back(scored[i].second);
  }
  return truth;
}

inline std::vector<std::vector<uint32_t>> GroundTruth(const std::vector<float>& data, uint32_t dim,
                                                      const std::vector<float>& queries, simd::Metric metric,
                                                      size_t k) {
  return GroundTruth(data, dim, queries, metric, k, [](uint32_t) { return true; });
}

// Fraction of the true neighbours found.
inline double Recall(const std::vector<std::vector<uint32_t>>& truth, const std::vector<std::vector<uint32_t>>& found) {
  size_t hits = 0, total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    const std::set<uint32_t> t(truth[q].begin(), truth[q].end());
    for (uint32_t r : found[q]) hits += t.count(r);
    total += truth[q].size();
  }
  return total == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(total);
}

// The graph sections, each in its own exactly sized heap block (so that ASan
// sees a read one byte past a section), served by kind as a segment would.
class GraphImage {
 public:
  GraphImage() = default;
  explicit GraphImage(const std::vector<GraphSection>& sections) {
    for (const GraphSection& s : sections) bytes_[s.kind] = std::vector<char>(s.bytes.begin(), s.bytes.end());
  }
  std::function<std::string_view(uint32_t)> Source() const {
    return [this](uint32_t kind) -> std::string_view {
      auto it = bytes_.find(kind);
      if (it == bytes_.end()) return {};
      return std::string_view(it->second.data(), it->second.size());
    };
  }
  std::map<uint32_t, std::vector<char>>& sections() { return bytes_; }
  std::vector<char>& operator[](uint32_t kind) { return bytes_[kind]; }

 private:
  std::map<uint32_t, std::vector<char>> bytes_;
};

inline std::vector<GraphSection> BuildOrDie(const std::vector<float>& data, uint32_t dim, simd::Metric metric,
                                            const HnswParams& params = HnswParams(), ThreadPool* pool = nullptr) {
  auto r = BuildHnsw(data.data(), data.size() / dim, dim, metric, params, pool, {});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<GraphSection>();
}

}  // namespace pomai::index::testing
