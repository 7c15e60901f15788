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
//
// COST MODEL. Each way's time on one core, s = passing / rows, e = ef
// clamped to [k, passing] (as the walks clamp it), dim the vector width:
//
//   exact     passing * dim * 0.45 ns  (+ rows / 64 for the bitmap's words)
//   gated     R * (30 + 0.3 dim + 1.5 * 14) ns, R = min(rows, 28 e / s) rows scored
//   filtered  F * (30 + 0.3 dim) + L * 14 ns,  F = min(passing, 30 e) rows scored,
//             L = e * 90 link reads while it goes one hop (s * m0 >= TwoHopBelow(m0)),
//             e * 188 / sqrt(s) while it goes two hops (at most rows * m0)
//
// (an SQ8 walk adds 9k float32 scores: the rows its codes cannot rule out of
// the k best, 7k .. 9k measured uncorrelated; a float32 walk's score is
// taken as 30 + 0.45 dim, not measured). The walk's rows-scored and
// link-read counts are HnswGraph's SearchWork counters fitted on
// bench/filtered_sweep.cc's 100k x 128 run (m 32, uncorrelated filters,
// ef 32 .. 128: 28 e / s for the gated walk within 10%, 30 e and 188 / sqrt(s)
// for the filtered walk within 5%); the nanoseconds are a least-squares fit
// of that run's times on the counts (68.9 ns per SQ8 row scored at dim 128,
// 14.3 ns per link read; the model is within 0.8x .. 1.2x of the measured
// time for 30 of 40 walk runs, slower than measured up to 2x when a walk
// visits most of the graph) and the median exact scan over 10k .. 50k
// passing rows (0.30 .. 0.72 ns per float, 0.09 for 1k rows that stay in
// cache). The machine was a shared 2-core VM under load (load average 11 ..
// 14): the absolute numbers are slow, the ratios are what the plan uses.
//
// Rule: the gated walk when s >= 1/4 (s >= 1/20 when m0 <= 32), else the
// filtered walk, each only when cheaper than exact. With m0 32 (m 16) the
// filtered walk's two-hop expansions find too few passing rows: at 200k x
// 128 (bench/filtered_sweep, POMAI_FILTERED_M=16, uncorrelated, SQ8) it
// reached recall@10 0.714 / 0.822 / 0.955 at ef 32 / 64 / 128 with 10%
// passing (138 / 232 / 363 us) where the gated walk reached 0.972 / 0.987
// at ef 32 / 64 (247 / 506 us), and 0.588 / 0.752 / 0.852 with 5% passing
// where the gated walk reached 0.924 / 0.963 (516 / 1042 us); at 25% 0.938
// at ef 64 against the gated walk's 1.000 at ef 32. Above 1/4 the filtered walk goes one hop and
// costs about what the gated walk costs (100k x 128, 50%, ef 64: 1926 vs
// 3255 rows scored) but loses recall when the filter excludes the query's
// neighbourhood (anti-correlated, 50%, ef 64 at 100k x 128: 0.10 against
// the gated walk's 0.997).
//
// The SQ8 walks' float32 re-scores (9k, was a fixed 4k before the walks
// kept their exact top k on the way) move none of the break-even points
// below by more than 0.001. Break-even with exact (the model, k 10, ef 64,
// SQ8, m0 64): a walk is
// chosen from s = 0.37 at 20k rows x 128, 0.11 at 100k, 0.022 at 1M and
// 0.0044 at 10M (x 32: 0.61, 0.27, 0.054, 0.011; x 768: 0.14, 0.039,
// 0.0072, 0.0014). Measured at 100k x 128 (one thread, SQ8 walks, us per
// query, recall@10 in brackets), uncorrelated filters:
//
//   share  exact        filtered ef 32 / 64 / 128                  gated ef 64 / 128
//   50%    4650 (1)     89 (.998) / 783 (.999) / 923 (.999)         204 (1) / 604 (1)
//   10%    214 (1)      194 (.975) / 1222 (.992) / 784 (.996)       1579 (.999) / 1991 (.999)
//   1%     10.6 (1)     236 (.802) / 468 (.920) / 2450 (.974)       15640 (1) / 15627 (1)
//   0.1%   2.8 (1)      29678 (.891) / 81208 (1) / 82102 (1)        38590 (1) / 49078 (1)
//
// (single runs on the loaded machine vary 2x; the counts do not). At 1%
// the filtered walk's two-hop neighbourhoods connect the passing rows less
// well (recall .92 at ef 64); at 0.1% its queue runs dry and it walks most
// of the graph with bridges, as the gated walk does: exact is far cheaper
// there at these sizes, and the model says so.
// Anti-correlated filters (the query's nearest 10% fail) are the walks'
// weak case at 100k x 128: at 10%, ef 64, the filtered walk reaches .50
// (float32 walks too: its two-hop neighbourhoods do not cross the excluded
// region), the gated walk .998 but by walking 84k of the 100k rows (13 ..
// 25x exact's time; the plan cannot see the correlation). The gated SQ8
// walk reached only .93 (.47 at 50%) while it re-scored a fixed 40 of its
// ef best by code distance: far from the query the codes' error exceeds
// the gaps between passing rows (HnswGraph::Search).
// At m 16 (m0 32) the filtered walk needs a larger ef for the same recall
// (10%, 100k x 128: .904 / .938 / .981 at ef 32 / 64 / 128, where the gated
// walk has .984 at ef 32 for 5.7k rows scored and 7.9k link reads); a
// larger two-hop cap (two or three lists' worth instead of one) moves it
// along the same recall-for-work curve as a larger ef, no better; taking
// the two-hop vias spread over the list instead of closest first loses
// (.871 at ef 32), and so does an uncapped two-hop expansion of the
// descent's row (.885). Float32 walks reach the same (.897 / .937 / .981):
// the two-hop neighbourhoods limit it, not the codes.
//
// `near_share`: the share of rows passing near the query (the executor
// reads the rows within two hops of the query's nearest node), or negative
// when not measured. The walks meet the rows where they walk, not the
// layer's average: with a filter correlated with the query (a per-user or
// per-topic set of clusters) most rows near the query pass, and the gated
// walk scores about 28 e / near_share rows, not 28 e / s (bench/filtered's
// "near" filters at 200k x 128, 10% passing: the walk at ef 48 where the
// model without it chose exact at 1.15 ms). The walk share is near_share
// when it is above s, for the gated walk's rows scored and the filtered
// walk's two-hop test and links; below s the passing rows lie away from the
// query and a walk must cross the graph to them, which the counts above do
// not model (bench/filtered's "far" 10% filter at 200k: walks chosen from a
// near share of 2.5% crawled at 470 queries per second for recall 0.96,
// where the scan gives 1.0 at 950), so s is kept. The rule above between
// the walks stays on s.
//
// `exact_setup_ns`: what the exact scan costs before it starts, added to
// its cost (a deferred filter, evaluated over every row only when a scan
// needs its bitmap: engine/search.h).
FilteredPlan ChooseFilteredPlan(uint64_t rows, uint64_t passing, size_t k, size_t ef, const FilteredGraphShape& graph,
                                double near_share = -1, double exact_setup_ns = 0);

// The model's estimate of one search's time by `plan`, in nanoseconds on
// one core.
double FilteredPlanCost(FilteredPlan plan, uint64_t rows, uint64_t passing, size_t k, size_t ef,
                        const FilteredGraphShape& graph, double near_share = -1);

}  // namespace pomai::index
