// What the segment and graph fuzz targets do with a graph that opened: every
// reader entry point, and the promise "after Verify succeeds no search can
// fail". A graph that fails Verify must still never crash a search.
#pragma once

#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "index/hnsw.h"

namespace pomai::fuzz {

inline void ExerciseGraph(index::HnswGraph& g, const float* vectors, uint32_t dim, uint8_t salt) {
  auto stats = g.Stats();
  if (!stats.ok()) FUZZ_CHECK(stats.status().IsCorruption(), stats.status().ToString());
  for (uint32_t row = 0; row < g.rows() && row < 4096; ++row) {
    for (uint32_t level = 0; level <= g.level(row) && level <= index::kMaxLevel; ++level) {
      const uint32_t* ids = nullptr;
      uint32_t count = 0;
      Status s = g.Links(row, level, &ids, &count);
      if (s.ok()) {
        FUZZ_CHECK(count <= (level == 0 ? g.m0() : g.m()), "count within the degree");
        Touch(ids, size_t{count} * 4);
      } else {
        FUZZ_CHECK(s.IsCorruption() || s.IsInvalidArgument(), s.ToString());
      }
    }
  }
  const Status verified = g.Verify();
  if (!verified.ok()) FUZZ_CHECK(verified.IsCorruption(), verified.ToString());

  std::vector<float> query(dim, 0.25f);
  if (g.rows() > 0 && vectors != nullptr) {
    for (uint32_t j = 0; j < dim; ++j) query[j] = vectors[(salt % g.rows()) * uint64_t{dim} + j] + 0.01f * j;
  }
  std::vector<index::Neighbor> out;
  const size_t ks[] = {1, 5, 50};
  for (index::Traversal t : {index::Traversal::kFloat32, index::Traversal::kSq8}) {
    g.set_traversal(t);
    for (size_t k : ks) {
      auto every_other = [salt](uint32_t row) { return ((row + salt) & 1) == 0; };
      Status s = (salt & 1) ? g.Search(query.data(), k, k + salt % 32, every_other, &out)
                            : g.Search(query.data(), k, k + salt % 32, nullptr, &out);
      if (verified.ok()) {
        FUZZ_CHECK(s.ok(), "search failed on a verified graph: " + s.ToString());
      } else if (!s.ok()) {
        FUZZ_CHECK(s.IsCorruption(), s.ToString());
      }
      if (s.ok()) {
        FUZZ_CHECK(out.size() <= k, "at most k results");
        for (const auto& n : out) FUZZ_CHECK(n.row < g.rows(), "result rows exist");
      }
    }
  }
}

}  // namespace pomai::fuzz
