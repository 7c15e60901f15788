// Filtered vector search over one layer with a graph: which of three ways
// to run it (docs/FILTERS.md, "Execution"), and the exact way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/hnsw.h"
#include "simd/distance.h"
#include "util/bitmap.h"
#include "util/status.h"

namespace pomai::index {

enum class FilteredPlan : uint8_t {
  kExact,         // SearchExact: score every passing row
  kFilteredWalk,  // HnswGraph::SearchFiltered
  kGatedWalk,     // HnswGraph::SearchGated
};

const char* FilteredPlanName(FilteredPlan plan);

// The exact filtered search: the min(k, L) best of the L rows with
// pass.Get(row) && is_live(row) among `rows` row-major vectors of `dim`
// floats, best first (ties: lower row first), into *out (cleared first).
// Scores with the SIMD kernels (simd::ScoreGather), in batches of passing
// rows; is_live is asked only for rows that would enter the k best. A
// bitmap of another size than `rows` is InvalidArgument.
Status SearchExact(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric, const float* query,
                   size_t k, const Bitmap& pass, RowFilter is_live, std::vector<Neighbor>* out);

// What the plan knows of a layer's graph.
struct FilteredGraphShape {
  uint32_t dim = 0;
  uint32_t m0 = 0;     // layer-0 degree
  bool sq8 = false;    // the walk scores SQ8 codes
};

// The plan for a search of k with queue `ef` when `passing` of the layer's
// `rows` rows pass the filter (no row passing: kExact, which does nothing).
// COST MODEL (below).
FilteredPlan ChooseFilteredPlan(uint64_t rows, uint64_t passing, size_t k, size_t ef, const FilteredGraphShape& graph);

// The model's estimate of one search's time by `plan`, in nanoseconds on
// one core.
double FilteredPlanCost(FilteredPlan plan, uint64_t rows, uint64_t passing, size_t k, size_t ef,
                        const FilteredGraphShape& graph);

}  // namespace pomai::index
