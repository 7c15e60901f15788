#include "index/filtered.h"

#include <algorithm>
#include <cmath>
#include <bit>
#include <string>

#include "index/walk.h"

namespace pomai::index {

using internal::Cand;
using internal::CloserThan;
using internal::Distance;

const char* FilteredPlanName(FilteredPlan plan) {
  switch (plan) {
    case FilteredPlan::kExact:
      return "exact";
    case FilteredPlan::kFilteredWalk:
      return "filtered walk";
    case FilteredPlan::kGatedWalk:
      return "gated walk";
  }
  return "?";
}

Status SearchExact(const float* vectors, size_t rows, uint32_t dim, simd::Metric metric, const float* query,
                   size_t k, const Bitmap& pass, RowFilter is_live, std::vector<Neighbor>* out) {
  out->clear();
  if (pass.size() != rows) {
    return Status::InvalidArgument("exact filtered search: the bitmap has " + std::to_string(pass.size()) +
                                   " bits, the layer " + std::to_string(rows) + " rows");
  }
  if (k == 0 || rows == 0) return Status::OK();
  if (query == nullptr) return Status::InvalidArgument("exact filtered search: null query");
  constexpr size_t kBatch = 256;
  const float* batch[kBatch];
  uint32_t ids[kBatch];
  float scores[kBatch];
  std::vector<Cand> best;  // the k best so far, the farthest (by CloserThan) on top
  best.reserve(std::min(k, rows) + 1);
  size_t n = 0;
  SearchWork& work = ThreadSearchWork();
  auto flush = [&] {
    simd::ScoreGather(metric, query, batch, n, dim, scores);
    work.exact_scored += n;
    for (size_t i = 0; i < n; ++i) {
      const Cand c{Distance(scores[i]), ids[i]};
      if (best.size() >= k && !CloserThan(c, best.front())) continue;
      if (!is_live(c.id)) continue;
      best.push_back(c);
      std::push_heap(best.begin(), best.end(), CloserThan);
      if (best.size() > k) {
        std::pop_heap(best.begin(), best.end(), CloserThan);
        best.pop_back();
      }
    }
    n = 0;
  };
  const uint64_t* words = pass.words();
  for (size_t w = 0; w < pass.word_count(); ++w) {
    for (uint64_t bits = words[w]; bits != 0; bits &= bits - 1) {
      const uint32_t row = static_cast<uint32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
      batch[n] = vectors + uint64_t{row} * dim;
      ids[n] = row;
      if (++n == kBatch) flush();
    }
  }
  if (n > 0) flush();
  std::sort(best.begin(), best.end(), CloserThan);
  out->reserve(best.size());
  for (const Cand& c : best) out->push_back(Neighbor{-c.d, c.id});
  return Status::OK();
}

namespace {

// The cost model's constants (filtered.h has the measurements behind them).
constexpr double kExactNsPerFloat = 0.45;          // SearchExact, per passing row and dimension
constexpr double kWalkNsPerScored = 30;            // a walk's queue and mark work per scored row
constexpr double kSq8WalkNsPerDim = 0.3;           // ... plus its SQ8 score, per dimension
constexpr double kFloatWalkNsPerDim = 0.45;        // ... or its float32 score (not measured: as exact)
constexpr double kNsPerLink = 14;                  // a layer-0 link read (bounds, bitmap and mark tests)
constexpr double kGatedScoredPerEf = 28;           // gated walk: rows scored = this * ef / share
constexpr double kGatedLinksPerScored = 1.5;       // ... and links read per row scored
constexpr double kFilteredScoredPerEf = 30;        // filtered walk: rows scored = this * ef (<= passing)
constexpr double kFilteredLinksPerEf = 90;         // ... links read per ef while it goes one hop
constexpr double kTwoHopLinksPerEf = 188;          // ... and this * ef / sqrt(share) while it goes two
constexpr double kSq8RescoredPerK = 9;             // an SQ8 walk's float32 re-scores, per k
// From this share of passing rows up the gated walk is chosen over the
// filtered one (filtered.h: recall under anti-correlated filters, and the
// filtered walk's recall on a graph of layer-0 degree 32 or less).
double GatedFromShare(uint32_t m0) { return m0 <= 32 ? 0.05 : 0.25; }

}  // namespace

double FilteredPlanCost(FilteredPlan plan, uint64_t rows, uint64_t passing, size_t k, size_t ef,
                        const FilteredGraphShape& graph, double near_share) {
  if (passing == 0 || rows == 0) return 0;
  const double n = static_cast<double>(rows);
  const double c = static_cast<double>(std::min(passing, rows));
  // The share where the walks walk: near the query when measured and
  // higher than the layer's (below, the passing rows are elsewhere, and a
  // walk must go and find them: the model's counts do not hold there).
  const double share = std::min(1.0, std::max(near_share, c / n));
  const double dim = graph.dim;
  // A walk's ef is at least k and at most the passing rows (HnswGraph::SearchFiltered).
  const double e = std::max(static_cast<double>(k), std::min(static_cast<double>(ef), c));
  const double score_ns = kWalkNsPerScored + dim * (graph.sq8 ? kSq8WalkNsPerDim : kFloatWalkNsPerDim);
  // An SQ8 walk re-scores the rows that may be among the k best in float32.
  const double rerank_ns = graph.sq8 ? kSq8RescoredPerK * static_cast<double>(k) * dim * kExactNsPerFloat : 0;
  switch (plan) {
    case FilteredPlan::kExact:
      return c * dim * kExactNsPerFloat + n / 64;  // and a pass over the bitmap's words
    case FilteredPlan::kGatedWalk: {
      const double scored = std::min(n, kGatedScoredPerEf * e / share);
      return scored * (score_ns + kGatedLinksPerScored * kNsPerLink) + rerank_ns;
    }
    case FilteredPlan::kFilteredWalk: {
      const double scored = std::min(c, kFilteredScoredPerEf * e);
      const bool two_hop = share * graph.m0 < TwoHopBelow(graph.m0);
      const double links =
          std::min(n * graph.m0, e * (two_hop ? kTwoHopLinksPerEf / std::sqrt(share) : kFilteredLinksPerEf));
      return scored * score_ns + links * kNsPerLink + rerank_ns;
    }
  }
  return 0;
}

FilteredPlan ChooseFilteredPlan(uint64_t rows, uint64_t passing, size_t k, size_t ef, const FilteredGraphShape& graph,
                                double near_share, double exact_setup_ns) {
  if (passing == 0 || rows == 0) return FilteredPlan::kExact;
  const double exact = FilteredPlanCost(FilteredPlan::kExact, rows, passing, k, ef, graph) + exact_setup_ns;
  const bool gated = static_cast<double>(passing) >= GatedFromShare(graph.m0) * static_cast<double>(rows);
  const FilteredPlan walk = gated ? FilteredPlan::kGatedWalk : FilteredPlan::kFilteredWalk;
  return FilteredPlanCost(walk, rows, passing, k, ef, graph, near_share) < exact ? walk : FilteredPlan::kExact;
}

}  // namespace pomai::index
