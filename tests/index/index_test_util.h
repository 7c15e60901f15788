// Data sets, ground truth, in-memory graph images and opened graphs for the
// index tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include "index/hnsw.h"
#include "simd/distance.h"
#include "util/coding.h"
#include "util/crc32c.h"

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

inline uint32_t GetU32(const std::vector<char>& b, size_t at) {
  return DecodeFixed32(reinterpret_cast<const uint8_t*>(b.data() + at));
}
inline void PutU32(std::vector<char>& b, size_t at, uint32_t v) {
  EncodeFixed32(reinterpret_cast<uint8_t*>(b.data() + at), v);
}

// Searches every query; fails the test on a non-OK status.
inline std::vector<std::vector<uint32_t>> SearchAll(const HnswGraph& g, const std::vector<float>& queries,
                                                    uint32_t dim, size_t k, size_t ef, RowFilter live = RowFilter()) {
  std::vector<std::vector<uint32_t>> found(queries.size() / dim);
  std::vector<Neighbor> out;
  for (size_t q = 0; q < found.size(); ++q) {
    Status st = g.Search(queries.data() + q * dim, k, ef, live, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    for (const Neighbor& n : out) found[q].push_back(n.row);
  }
  return found;
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
  std::vector<char>& operator[](segment::SectionKind kind) { return bytes_[KindNumber(kind)]; }

  // Rewrites the header's checksum after a crafted change.
  void ResealHeader() {
    std::vector<char>& h = (*this)[segment::SectionKind::kHnswHeader];
    PutU32(h, hnsw_header::kCrc, crc32c::Value(h.data(), hnsw_header::kCrc));
  }

 private:
  std::map<uint32_t, std::vector<char>> bytes_;
};

inline std::vector<GraphSection> BuildOrDie(const std::vector<float>& data, uint32_t dim, simd::Metric metric,
                                            const HnswParams& params = HnswParams(), ThreadPool* pool = nullptr) {
  auto r = BuildHnsw(data.data(), data.size() / dim, dim, metric, params, pool, {});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<GraphSection>();
}

// Two builds' sections are the same, kind by kind and byte by byte.
inline void ExpectSameSections(const std::vector<GraphSection>& a, const std::vector<GraphSection>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind);
    EXPECT_TRUE(a[i].bytes == b[i].bytes) << "section " << a[i].kind << " differs";
  }
}

// Graph sections with their rows, opened as a segment would open them.
struct Built {
  std::vector<float> data;
  uint32_t dim = 0;
  simd::Metric metric = simd::Metric::kL2;
  GraphImage image;
  std::unique_ptr<HnswGraph> graph;  // null when the open failed (the test has failed then)

  // Opens the image again (after a change to its bytes).
  Result<HnswGraph> Open(const char* file = "test.pseg") const {
    return HnswGraph::Open(image.Source(), data.data(), data.size() / dim, dim, metric, file);
  }
};

inline std::unique_ptr<Built> OpenSections(const std::vector<GraphSection>& sections, std::vector<float> data,
                                           uint32_t dim, simd::Metric metric) {
  auto b = std::make_unique<Built>();
  b->data = std::move(data);
  b->dim = dim;
  b->metric = metric;
  b->image = GraphImage(sections);
  auto g = b->Open();
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  if (g.ok()) b->graph = std::make_unique<HnswGraph>(std::move(g).value());
  return b;
}

inline std::unique_ptr<Built> BuildAndOpen(std::vector<float> data, uint32_t dim, simd::Metric metric,
                                           const HnswParams& params = HnswParams(), ThreadPool* pool = nullptr) {
  const std::vector<GraphSection> sections = BuildOrDie(data, dim, metric, params, pool);
  return OpenSections(sections, std::move(data), dim, metric);
}

}  // namespace pomai::index::testing
