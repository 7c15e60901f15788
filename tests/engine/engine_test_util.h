// Helpers for engine tests: deterministic vectors and a brute-force model.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/db.h"
#include "engine/search.h"
#include "simd/distance.h"

namespace pomai::testing {

// A deterministic vector for (id, version).
inline std::vector<float> VectorFor(uint64_t id, uint32_t version, uint32_t dim) {
  std::mt19937_64 rng(id * 1000003ull + version);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(dim);
  for (auto& x : v) x = u(rng);
  return v;
}

// Brute-force reference: what a search must return given the live rows.
inline std::vector<engine::Hit> BruteForce(const std::map<uint64_t, std::vector<float>>& live, simd::Metric metric,
                                           const float* q, uint32_t dim, size_t k) {
  std::vector<engine::Hit> all;
  for (const auto& [id, v] : live) all.push_back({id, simd::ScalarScore(metric, q, v.data(), dim), 0});
  std::sort(all.begin(), all.end(), engine::Better<engine::Hit>);
  if (all.size() > k) all.resize(k);
  return all;
}

}  // namespace pomai::testing
