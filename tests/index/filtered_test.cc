// Filtered search (index/filtered.h, HnswGraph::SearchFiltered and
// SearchGated): recall against brute force over the passing rows at four
// selectivities and three kinds of filter, the guarantees (only passing live
// rows, all of them when few pass), and damaged links.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "index/filtered.h"
#include "index/hnsw.h"
#include "index_test_util.h"
#include "util/bitmap.h"
#include "util/thread_pool.h"

namespace pomai::index {
namespace {

using segment::SectionKind;
using simd::Metric;
using namespace testing;

constexpr size_t kRows = 20000;
constexpr uint32_t kDim = 32;
constexpr size_t kClusters = 50;
constexpr size_t kQueries = 40;
constexpr size_t kK = 10;
constexpr size_t kEf = 96;
constexpr double kSelectivities[] = {0.5, 0.1, 0.01, 0.001};

enum class Kind { kUncorrelated, kCorrelated, kAntiCorrelated };
const char* KindName(Kind k) {
  return k == Kind::kUncorrelated ? "uncorrelated" : k == Kind::kCorrelated ? "correlated" : "anti-correlated";
}

// The best `k` rows with pass && live, best first (ties: lower row), every
// row scored by the contiguous kernel (simd::ScoreMany: SearchExact's
// gathered kernel must give the same floats).
std::vector<uint32_t> BruteForce(const std::vector<float>& data, const float* query, size_t k, const Bitmap& pass,
                                 RowFilter live = RowFilter()) {
  std::vector<float> all(data.size() / kDim);
  simd::ScoreMany(Metric::kL2, query, data.data(), all.size(), kDim, kDim, all.data());
  std::vector<std::pair<float, uint32_t>> scored;
  for (uint32_t r = 0; r < all.size(); ++r) {
    if (pass.Get(r) && live(r)) scored.emplace_back(all[r], r);
  }
  const size_t n = std::min(k, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + n, scored.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<uint32_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(scored[i].second);
  return out;
}

std::vector<uint32_t> Rows(const std::vector<Neighbor>& found) {
  std::vector<uint32_t> out;
  for (const Neighbor& n : found) out.push_back(n.row);
  return out;
}

// A 20k x 32 graph over 50 clusters (m 16), built once.
class FilteredSearch : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Points p = ClusteredSet(kRows, kQueries, kDim, kClusters, 77);
    queries_ = new std::vector<float>(std::move(p.queries));
    ThreadPool pool(2);
    built_ = BuildAndOpen(std::move(p.data), kDim, Metric::kL2, HnswParams{16, 200, 3}, &pool).release();
    // Every query's rows by distance, nearest first.
    order_ = new std::vector<std::vector<uint32_t>>(kQueries);
    std::vector<float> scores(kRows);
    for (size_t q = 0; q < kQueries; ++q) {
      simd::ScoreMany(Metric::kL2, Query(q), built_->data.data(), kRows, kDim, kDim, scores.data());
      std::vector<uint32_t>& o = (*order_)[q];
      o.resize(kRows);
      std::iota(o.begin(), o.end(), 0u);
      std::sort(o.begin(), o.end(), [&](uint32_t a, uint32_t b) {
        return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
      });
    }
  }
  static void TearDownTestSuite() {
    delete built_;
    delete queries_;
    delete order_;
  }
  void SetUp() override { ASSERT_NE(built_->graph, nullptr); }

  static const float* Query(size_t q) { return queries_->data() + q * kDim; }
  static const HnswGraph& Graph() { return *built_->graph; }
  static const std::vector<float>& Data() { return built_->data; }

  // Query q's filter of `kind` passing about `sel` of the rows:
  // uncorrelated: each row with probability sel; correlated: the sel * rows
  // nearest the query; anti-correlated: not the nearest 10%, the others with
  // probability sel / 0.9.
  static Bitmap Filter(Kind kind, double sel, size_t q) {
    std::mt19937_64 rng(static_cast<uint64_t>(sel * 1e6) * 7 + static_cast<uint64_t>(kind) * 1000 +
                        (kind == Kind::kUncorrelated ? 0 : q));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Bitmap b(kRows);
    const std::vector<uint32_t>& o = (*order_)[q];
    switch (kind) {
      case Kind::kUncorrelated:
        for (size_t r = 0; r < kRows; ++r)
          if (u(rng) < sel) b.Set(r);
        break;
      case Kind::kCorrelated:
        for (size_t i = 0; i < std::max<size_t>(1, static_cast<size_t>(sel * kRows)); ++i) b.Set(o[i]);
        break;
      case Kind::kAntiCorrelated:
        for (size_t i = kRows / 10; i < kRows; ++i)
          if (u(rng) < sel / 0.9) b.Set(o[i]);
        break;
    }
    return b;
  }

  // Runs `plan` for query q.
  static Status Run(FilteredPlan plan, size_t q, size_t k, size_t ef, const Bitmap& pass, RowFilter live,
                    std::vector<Neighbor>* out) {
    switch (plan) {
      case FilteredPlan::kExact:
        return SearchExact(Data().data(), kRows, kDim, Metric::kL2, Query(q), k, pass, live, out);
      case FilteredPlan::kFilteredWalk:
        return Graph().SearchFiltered(Query(q), k, ef, pass, live, out);
      case FilteredPlan::kGatedWalk:
        return Graph().SearchGated(Query(q), k, ef, pass, live, out);
    }
    return Status::OK();
  }

  static Built* built_;
  static std::vector<float>* queries_;
  static std::vector<std::vector<uint32_t>>* order_;
};

Built* FilteredSearch::built_ = nullptr;
std::vector<float>* FilteredSearch::queries_ = nullptr;
std::vector<std::vector<uint32_t>>* FilteredSearch::order_ = nullptr;

const FilteredPlan kPlans[] = {FilteredPlan::kExact, FilteredPlan::kFilteredWalk, FilteredPlan::kGatedWalk};

// The plan ChooseFilteredPlan picks reaches recall@10 >= 0.95 at ef 96 in
// every case; the exact plan is brute force exactly; every path returns
// only passing rows, min(k, passing) of them.
TEST_F(FilteredSearch, TheChosenPlanHasRecallAndEveryPathReturnsOnlyPassingRows) {
  const FilteredGraphShape shape{kDim, Graph().m0(), Graph().traversal() == Traversal::kSq8};
  for (Kind kind : {Kind::kUncorrelated, Kind::kCorrelated, Kind::kAntiCorrelated}) {
    for (double sel : kSelectivities) {
      std::vector<std::vector<uint32_t>> truth(kQueries), chosen_found(kQueries);
      std::vector<std::vector<std::vector<uint32_t>>> path_found(3, std::vector<std::vector<uint32_t>>(kQueries));
      std::set<FilteredPlan> chosen_plans;
      for (size_t q = 0; q < kQueries; ++q) {
        const Bitmap pass = Filter(kind, sel, q);
        const size_t passing = pass.Count();
        truth[q] = BruteForce(Data(), Query(q), kK, pass);
        const FilteredPlan chosen = ChooseFilteredPlan(kRows, passing, kK, kEf, shape);
        chosen_plans.insert(chosen);
        for (FilteredPlan plan : kPlans) {
          std::vector<Neighbor> out;
          Status st = Run(plan, q, kK, kEf, pass, RowFilter(), &out);
          ASSERT_TRUE(st.ok()) << st.ToString();
          const std::string what = std::string(KindName(kind)) + " " + std::to_string(sel) + " " +
                                   FilteredPlanName(plan) + " query " + std::to_string(q);
          EXPECT_EQ(out.size(), std::min(kK, passing)) << what;
          for (size_t i = 0; i < out.size(); ++i) {
            EXPECT_TRUE(pass.Get(out[i].row)) << what << ": row " << out[i].row << " does not pass";
            if (i > 0) {
              EXPECT_GE(out[i - 1].score, out[i].score) << what;
            }
          }
          if (plan == FilteredPlan::kExact) {
            EXPECT_EQ(Rows(out), truth[q]) << what;
          }
          if (plan == chosen) chosen_found[q] = Rows(out);
          path_found[static_cast<size_t>(plan)][q] = Rows(out);
        }
      }
      std::string plans;
      for (FilteredPlan p : chosen_plans) plans += std::string(FilteredPlanName(p)) + " ";
      const double recall = Recall(truth, chosen_found);
      EXPECT_GE(recall, 0.95) << KindName(kind) << " at " << sel << ", plans " << plans;
      const double filtered = Recall(truth, path_found[static_cast<size_t>(FilteredPlan::kFilteredWalk)]);
      const double gated = Recall(truth, path_found[static_cast<size_t>(FilteredPlan::kGatedWalk)]);
      RecordProperty(std::string(KindName(kind)) + "_" + std::to_string(sel),
                     "chosen " + std::to_string(recall) + " (" + plans + "), filtered walk " + std::to_string(filtered) +
                         ", gated walk " + std::to_string(gated));
      // The walks where the plan picks them on larger layers (filtered.h):
      // the gated walk from a quarter passing up, the filtered walk below.
      // A filter that excludes the query's neighbourhood costs both recall
      // (measured here: gated 0.9575 at 50%, as its float32 walk, filtered
      // 0.8925 at 10%).
      const bool anti = kind == Kind::kAntiCorrelated;
      if (sel >= 0.25) {
        EXPECT_GE(gated, anti ? 0.93 : 0.95) << KindName(kind) << " at " << sel << ": gated walk";
      } else {
        EXPECT_GE(filtered, anti ? 0.88 : 0.95) << KindName(kind) << " at " << sel << ": filtered walk";
      }
    }
  }
}

// The filtered walk's own recall where it goes two hops (the plan picks it
// only for layers larger than this one: bench/filtered_sweep.cc).
TEST_F(FilteredSearch, TheFilteredWalkHasRecallAtMiddleSelectivities) {
  for (Traversal t : {Traversal::kSq8, Traversal::kFloat32}) {
    Built& b = *built_;
    b.graph->set_traversal(t);
    for (double sel : {0.1, 0.03}) {
      std::vector<std::vector<uint32_t>> truth(kQueries), found(kQueries);
      for (size_t q = 0; q < kQueries; ++q) {
        const Bitmap pass = Filter(Kind::kUncorrelated, sel, q);
        truth[q] = BruteForce(Data(), Query(q), kK, pass);
        std::vector<Neighbor> out;
        ASSERT_TRUE(Graph().SearchFiltered(Query(q), kK, kEf, pass, RowFilter(), &out).ok());
        found[q] = Rows(out);
        // Scores are float32 scores of the rows, whatever the walk scored.
        for (const Neighbor& n : out) {
          EXPECT_NEAR(n.score, simd::ScalarScore(Metric::kL2, Query(q), Data().data() + n.row * kDim, kDim),
                      1e-3f * (1 + std::abs(n.score)));
        }
      }
      EXPECT_GE(Recall(truth, found), 0.95) << "selectivity " << sel << " traversal " << static_cast<int>(t);
    }
  }
  built_->graph->set_traversal(Traversal::kSq8);
}

TEST_F(FilteredSearch, NoPathReturnsARowThatFailsTheFilterOrIsNotLive) {
  auto live = [](uint32_t row) { return row % 7 != 3; };
  for (double sel : {0.5, 0.1, 0.01}) {
    std::vector<std::vector<uint32_t>> truth(kQueries), found(kQueries);
    for (size_t q = 0; q < kQueries; ++q) {
      const Bitmap pass = Filter(Kind::kUncorrelated, sel, q);
      truth[q] = BruteForce(Data(), Query(q), kK, pass, live);
      for (FilteredPlan plan : kPlans) {
        std::vector<Neighbor> out;
        ASSERT_TRUE(Run(plan, q, kK, kEf, pass, live, &out).ok());
        EXPECT_EQ(out.size(), kK);
        for (const Neighbor& n : out) {
          EXPECT_TRUE(pass.Get(n.row) && live(n.row)) << FilteredPlanName(plan) << " returned row " << n.row;
        }
        if (plan == FilteredPlan::kExact) {
          EXPECT_EQ(Rows(out), truth[q]);
        }
        if (plan == FilteredPlan::kFilteredWalk) found[q] = Rows(out);
      }
    }
    EXPECT_GE(Recall(truth, found), 0.9) << "filtered walk with a live filter at " << sel;
  }
}

// Fewer than k rows pass (spread over the whole graph): both walks find every
// passing live row (the graph is intact, so every row is reachable).
TEST_F(FilteredSearch, WhenFewerThanKPassEveryPassingLiveRowIsReturned) {
  std::mt19937_64 rng(5);
  for (size_t trial = 0; trial < 10; ++trial) {
    Bitmap pass(kRows);
    std::set<uint32_t> want;
    for (size_t i = 0; i < 1 + trial % 7; ++i) {
      const uint32_t r = static_cast<uint32_t>(rng() % kRows);
      pass.Set(r);
      if (r % 5 != 0) want.insert(r);
    }
    auto live = [](uint32_t row) { return row % 5 != 0; };
    for (FilteredPlan plan : kPlans) {
      for (size_t ef : {10, 64}) {
        std::vector<Neighbor> out;
        ASSERT_TRUE(Run(plan, trial % kQueries, kK, ef, pass, live, &out).ok());
        const std::vector<uint32_t> rows = Rows(out);
        EXPECT_EQ(std::set<uint32_t>(rows.begin(), rows.end()), want) << FilteredPlanName(plan) << " ef " << ef;
        EXPECT_EQ(rows.size(), want.size());
      }
    }
  }
}

TEST_F(FilteredSearch, AnEmptyBitmapFindsNothingAndAWrongSizedOneIsInvalid) {
  std::vector<Neighbor> out{{1.0f, 1}};
  for (FilteredPlan plan : kPlans) {
    ASSERT_TRUE(Run(plan, 0, kK, kEf, Bitmap(kRows), RowFilter(), &out).ok());
    EXPECT_TRUE(out.empty()) << FilteredPlanName(plan);
    Status st = Run(plan, 0, kK, kEf, Bitmap(kRows - 1, true), RowFilter(), &out);
    EXPECT_TRUE(st.IsInvalidArgument()) << FilteredPlanName(plan) << ": " << st.ToString();
    EXPECT_NE(st.message().find(std::to_string(kRows - 1)), std::string::npos) << st.message();
  }
}

// A deferred PassTest (a row's bit decided when the walk first asks, kept in
// the caller's memo) walks exactly as the bitmap it stands for: the same
// rows and scores from both walks on both traversals, each row decided at
// most once across the queries sharing a memo, and every remembered bit the
// bitmap's. With only an upper bound for the passing count the results
// still pass and number k.
TEST_F(FilteredSearch, ADeferredFilterWalksAsItsBitmap) {
  for (Traversal t : {Traversal::kSq8, Traversal::kFloat32}) {
    built_->graph->set_traversal(t);
    for (Kind kind : {Kind::kUncorrelated, Kind::kCorrelated, Kind::kAntiCorrelated}) {
      for (double sel : {0.5, 0.1, 0.01}) {
        for (FilteredPlan plan : {FilteredPlan::kFilteredWalk, FilteredPlan::kGatedWalk}) {
          SCOPED_TRACE(std::string(FilteredPlanName(plan)) + " sel " + std::to_string(sel) + " kind " +
                       std::to_string(static_cast<int>(kind)));
          const Bitmap pass = Filter(kind, sel, 0);  // one filter for both queries (the uncorrelated one is)
          std::vector<uint64_t> known(pass.word_count(), 0), bits(pass.word_count(), 0);
          std::vector<uint32_t> decided(kRows, 0);
          auto decide = [&](uint32_t row) {
            ++decided[row];
            return pass.Get(row);
          };
          const PassTest deferred(kRows, pass.Count(), known.data(), bits.data(), decide);
          const PassTest bounded(kRows, kRows, known.data(), bits.data(), decide);
          for (size_t q = 0; q < 2; ++q) {
            std::vector<Neighbor> want, got, loose;
            auto run = [&](const PassTest& p, std::vector<Neighbor>* out) {
              return plan == FilteredPlan::kFilteredWalk ? Graph().SearchFiltered(Query(q), kK, 64, p, RowFilter(), out)
                                                         : Graph().SearchGated(Query(q), kK, 64, p, RowFilter(), out);
            };
            ASSERT_TRUE(run(PassTest(pass), &want).ok());
            ASSERT_TRUE(run(deferred, &got).ok());
            ASSERT_EQ(got.size(), want.size());
            for (size_t i = 0; i < want.size(); ++i) {
              EXPECT_EQ(got[i].row, want[i].row) << "query " << q << " rank " << i;
              EXPECT_EQ(got[i].score, want[i].score);
            }
            ASSERT_TRUE(run(bounded, &loose).ok());
            EXPECT_EQ(loose.size(), std::min<size_t>(kK, pass.Count()));
            for (const Neighbor& nb : loose) EXPECT_TRUE(pass.Get(nb.row)) << nb.row;
          }
          size_t asked = 0;
          for (uint32_t r = 0; r < kRows; ++r) {
            ASSERT_LE(decided[r], 1u) << "row " << r << " decided twice";
            const bool is_known = (known[r / 64] >> (r % 64)) & 1;
            ASSERT_EQ(is_known, decided[r] == 1u) << r;
            if (is_known) EXPECT_EQ(((bits[r / 64] >> (r % 64)) & 1) != 0, pass.Get(r)) << r;
            asked += decided[r];
          }
          EXPECT_GT(asked, 0u);
          EXPECT_LT(asked, kRows);  // the point of deferring: the walks ask about few rows
        }
      }
    }
  }
}

// With every row passing, the filtered and gated walks are the plain walk:
// the same rows and scores on float32, with and without a live filter. On
// SQ8 the walk is the same but the filtered searches keep their exact top k
// on the way, where Search re-scores its RerankCount best by code distance
// at the end: their i-th result is at least as good as Search's (and the
// two filtered searches agree exactly).
TEST_F(FilteredSearch, AnAllPassBitmapGivesThePlainWalksResults) {
  const Bitmap all(kRows, true);
  auto live = [](uint32_t row) { return row % 3 != 0; };
  for (Traversal t : {Traversal::kSq8, Traversal::kFloat32}) {
    built_->graph->set_traversal(t);
    for (size_t q = 0; q < kQueries; ++q) {
      for (size_t ef : {10, 64}) {
        for (bool with_live : {false, true}) {
          const RowFilter filter = with_live ? RowFilter(live) : RowFilter();
          std::vector<Neighbor> plain, filtered, gated;
          ASSERT_TRUE(Graph().Search(Query(q), kK, ef, filter, &plain).ok());
          ASSERT_TRUE(Graph().SearchFiltered(Query(q), kK, ef, all, filter, &filtered).ok());
          ASSERT_TRUE(Graph().SearchGated(Query(q), kK, ef, all, filter, &gated).ok());
          ASSERT_EQ(plain.size(), kK);
          ASSERT_EQ(filtered.size(), kK);
          ASSERT_EQ(gated.size(), kK);
          for (size_t i = 0; i < kK; ++i) {
            EXPECT_EQ(filtered[i].row, gated[i].row) << "query " << q << " ef " << ef;
            EXPECT_EQ(filtered[i].score, gated[i].score);
            if (t == Traversal::kFloat32) {
              EXPECT_EQ(filtered[i].row, plain[i].row) << "query " << q << " ef " << ef;
              EXPECT_EQ(filtered[i].score, plain[i].score);
            } else {
              EXPECT_GE(filtered[i].score, plain[i].score - 1e-5f * (1 + std::abs(plain[i].score)))
                  << "query " << q << " ef " << ef << " rank " << i;
            }
          }
        }
      }
    }
  }
  built_->graph->set_traversal(Traversal::kSq8);
}

TEST(ChooseFilteredPlan, FollowsTheCostModel) {
  const FilteredGraphShape shape{128, 64, true};
  // Few passing rows: exact; most: the gated walk; between: the filtered walk.
  EXPECT_EQ(ChooseFilteredPlan(1000000, 100, 10, 64, shape), FilteredPlan::kExact);
  EXPECT_EQ(ChooseFilteredPlan(1000000, 900000, 10, 64, shape), FilteredPlan::kGatedWalk);
  EXPECT_EQ(ChooseFilteredPlan(1000000, 50000, 10, 64, shape), FilteredPlan::kFilteredWalk);
  // No passing row: exact (nothing to score).
  EXPECT_EQ(ChooseFilteredPlan(1000000, 0, 10, 64, shape), FilteredPlan::kExact);
  // Layer-0 degree 32 (m 16): the gated walk from 5% of the rows up.
  const FilteredGraphShape m16{128, 32, true};
  EXPECT_EQ(ChooseFilteredPlan(1000000, 100000, 10, 64, m16), FilteredPlan::kGatedWalk);
  EXPECT_EQ(ChooseFilteredPlan(1000000, 50000, 10, 32, m16), FilteredPlan::kGatedWalk);
  EXPECT_EQ(ChooseFilteredPlan(1000000, 50000, 10, 64, m16), FilteredPlan::kExact);  // cheaper than the gated walk
  EXPECT_EQ(ChooseFilteredPlan(1000000, 40000, 10, 32, m16), FilteredPlan::kFilteredWalk);
  EXPECT_EQ(ChooseFilteredPlan(1000000, 100000, 10, 64, shape), FilteredPlan::kFilteredWalk);
  // As the passing share falls, the plan never goes back from exact to a walk.
  FilteredPlan last = FilteredPlan::kGatedWalk;
  for (uint64_t passing = 1000000; passing > 0; passing = passing * 9 / 10) {
    const FilteredPlan p = ChooseFilteredPlan(1000000, passing, 10, 64, shape);
    if (last == FilteredPlan::kExact) {
      EXPECT_EQ(p, FilteredPlan::kExact) << passing;
    }
    last = p;
  }
}

// The share passing near the query lowers a walk's cost when it is above
// the layer's share (a filter correlated with the query), never raises it;
// an exact scan's setup (a deferred filter's evaluation) counts against it.
TEST(ChooseFilteredPlan, FollowsTheShareNearTheQueryAndTheExactSetup) {
  const FilteredGraphShape m16{128, 32, true};
  // 10% of 200k passing, ef 48: exact (1.15 ms) beats the gated walk on the
  // layer's share (1.2 ms), not on a near share of 0.9 (0.13 ms).
  EXPECT_EQ(ChooseFilteredPlan(200000, 20000, 10, 48, m16), FilteredPlan::kExact);
  EXPECT_EQ(ChooseFilteredPlan(200000, 20000, 10, 48, m16, 0.9), FilteredPlan::kGatedWalk);
  EXPECT_LT(FilteredPlanCost(FilteredPlan::kGatedWalk, 200000, 20000, 10, 48, m16, 0.9),
            FilteredPlanCost(FilteredPlan::kGatedWalk, 200000, 20000, 10, 48, m16) / 5);
  // A near share below the layer's changes nothing.
  EXPECT_EQ(FilteredPlanCost(FilteredPlan::kGatedWalk, 200000, 20000, 10, 48, m16, 0.02),
            FilteredPlanCost(FilteredPlan::kGatedWalk, 200000, 20000, 10, 48, m16));
  EXPECT_EQ(ChooseFilteredPlan(200000, 20000, 10, 48, m16, 0.02), FilteredPlan::kExact);
  // 1% passing, ef 48: the filtered walk goes one hop where 90% pass near the
  // query, and wins once the exact scan must first evaluate the filter.
  EXPECT_EQ(ChooseFilteredPlan(200000, 2000, 10, 48, m16, 0.9), FilteredPlan::kExact);
  EXPECT_EQ(ChooseFilteredPlan(200000, 2000, 10, 48, m16, 0.9, 100000), FilteredPlan::kFilteredWalk);
  EXPECT_EQ(ChooseFilteredPlan(200000, 2000, 10, 48, m16, -1, 100000), FilteredPlan::kExact);
}

// A filter that excludes the query's neighbourhood (the nearest 10% of the
// rows fail, a share of the others pass) on a set whose clusters overlap
// (20k x 128, 200 clusters, spread 1): the gated walk crosses the excluded
// region to the passing rows around it, where distances crowd together and
// the SQ8 codes' error exceeds the gaps between passing rows. The SQ8 walk
// must still reach the float32 walk's recall: its k best come from float32
// scores of every row the codes cannot rule out. (Re-scoring only the 40
// best of the ef by code distance, as the walk did before, gave 0.86 at ef
// 32 and 0.94 at ef 96 for 50% passing, against float32's 0.99.)
TEST(FilteredFar, TheGatedSq8WalkKeepsItsRecallWhenTheFilterExcludesTheQuerysNeighbourhood) {
  constexpr size_t kFarRows = 20000, kFarQueries = 30;
  constexpr uint32_t kFarDim = 128;
  Points p = ClusteredSet(kFarRows, kFarQueries, kFarDim, 200, 21, 1.0f);
  const std::vector<float> queries = std::move(p.queries);
  ThreadPool pool(2);
  std::unique_ptr<Built> b = BuildAndOpen(std::move(p.data), kFarDim, Metric::kL2, HnswParams{32, 200, 5}, &pool);
  ASSERT_NE(b->graph, nullptr);
  ASSERT_TRUE(b->graph->has_sq8());
  std::vector<float> scores(kFarRows);
  for (double sel : {0.5, 0.2}) {
    for (size_t ef : {32, 96}) {
      std::vector<std::vector<uint32_t>> truth(kFarQueries), sq8(kFarQueries), f32(kFarQueries);
      for (size_t q = 0; q < kFarQueries; ++q) {
        const float* query = queries.data() + q * kFarDim;
        simd::ScoreMany(Metric::kL2, query, b->data.data(), kFarRows, kFarDim, kFarDim, scores.data());
        std::vector<uint32_t> order(kFarRows);
        std::iota(order.begin(), order.end(), 0u);
        std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) {
          return scores[x] > scores[y] || (scores[x] == scores[y] && x < y);
        });
        std::mt19937_64 rng(q * 31 + static_cast<uint64_t>(sel * 100));
        std::uniform_real_distribution<double> u(0.0, 1.0);
        Bitmap pass(kFarRows);
        for (size_t i = kFarRows / 10; i < kFarRows; ++i)
          if (u(rng) < sel / 0.9) pass.Set(order[i]);
        for (size_t i = 0; i < kFarRows && truth[q].size() < kK; ++i)
          if (pass.Get(order[i])) truth[q].push_back(order[i]);
        std::vector<Neighbor> out;
        for (Traversal t : {Traversal::kSq8, Traversal::kFloat32}) {
          b->graph->set_traversal(t);
          ASSERT_TRUE(b->graph->SearchGated(query, kK, ef, pass, RowFilter(), &out).ok());
          (t == Traversal::kSq8 ? sq8 : f32)[q] = Rows(out);
        }
        b->graph->set_traversal(Traversal::kSq8);
      }
      const double r_sq8 = Recall(truth, sq8), r_f32 = Recall(truth, f32);
      RecordProperty("far_" + std::to_string(sel) + "_ef" + std::to_string(ef),
                     "sq8 " + std::to_string(r_sq8) + ", float32 " + std::to_string(r_f32));
      EXPECT_GE(r_sq8, 0.97) << "selectivity " << sel << " ef " << ef << ", float32 walk " << r_f32;
      EXPECT_GE(r_sq8, r_f32 - 0.01) << "selectivity " << sel << " ef " << ef;
    }
  }
}

// Damaged layer-0 links met during a filtered walk (including two-hop reads
// through non-passing rows) are Corruption with no partial result, never an
// out-of-bounds read (CI runs the index tests under ASan).
class FilteredDamage : public ::testing::Test {
 protected:
  static constexpr size_t kSmallRows = 500;
  static constexpr uint32_t kSmallDim = 8;
  static constexpr size_t kM0 = 16;
  void SetUp() override {
    data_ = Clustered(kSmallRows, kSmallDim, 10, 5);
    good_ = BuildOrDie(data_, kSmallDim, Metric::kL2, HnswParams{8, 60, 9});
    image_ = GraphImage(good_);
    queries_ = Clustered(8, kSmallDim, 10, 6);
    for (double sel : {1.0, 0.5, 0.05}) {
      Bitmap b(kSmallRows);
      std::mt19937_64 rng(static_cast<uint64_t>(sel * 100));
      for (size_t r = 0; r < kSmallRows; ++r)
        if (std::uniform_real_distribution<double>(0, 1)(rng) < sel) b.Set(r);
      filters_.push_back(std::move(b));
    }
  }
  Result<HnswGraph> Open() {
    return HnswGraph::Open(image_.Source(), data_.data(), kSmallRows, kSmallDim, Metric::kL2, "seg-7.pseg");
  }
  // Every filtered search: OK or Corruption naming the file (then no result). Returns whether all were OK.
  bool FilteredSearchesAreSafe(const HnswGraph& g) {
    bool all_ok = true;
    std::vector<Neighbor> out;
    for (size_t q = 0; q < queries_.size() / kSmallDim; ++q) {
      for (const Bitmap& pass : filters_) {
        for (size_t k : {1, 10, 600}) {
          Status st = g.SearchFiltered(queries_.data() + q * kSmallDim, k, 20, pass, RowFilter(), &out);
          if (!st.ok()) {
            EXPECT_TRUE(st.IsCorruption()) << st.ToString();
            EXPECT_NE(st.message().find("seg-7.pseg"), std::string::npos) << st.message();
            EXPECT_TRUE(out.empty());
            all_ok = false;
            continue;
          }
          EXPECT_LE(out.size(), k);
          for (const Neighbor& n : out) {
            EXPECT_LT(n.row, kSmallRows);
            EXPECT_TRUE(pass.Get(n.row));
          }
        }
      }
    }
    return all_ok;
  }
  std::vector<float> data_;
  std::vector<GraphSection> good_;
  GraphImage image_;
  std::vector<float> queries_;
  std::vector<Bitmap> filters_;
};

TEST_F(FilteredDamage, TheUndamagedGraphSearches) {
  auto g = Open();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(FilteredSearchesAreSafe(*g));
}

TEST_F(FilteredDamage, HugeCountsAndIdsAreCorruption) {
  const size_t stride = (kM0 + 1) * 4;
  {
    std::vector<char>& l0 = image_[SectionKind::kHnswLayer0];
    for (size_t r = 0; r < kSmallRows; ++r) PutU32(l0, r * stride, 0xFFFFFFF0u);
    auto g = Open();
    ASSERT_TRUE(g.ok());
    EXPECT_FALSE(FilteredSearchesAreSafe(*g));
    std::vector<Neighbor> out;
    Status st = g->SearchFiltered(queries_.data(), 10, 20, filters_[1], RowFilter(), &out);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("links, more than m0"), std::string::npos) << st.message();
  }
  image_ = GraphImage(good_);
  {
    std::vector<char>& l0 = image_[SectionKind::kHnswLayer0];
    for (size_t r = 0; r < kSmallRows; ++r)
      if (GetU32(l0, r * stride) > 0) PutU32(l0, r * stride + 4, 0x7FFFFFFFu);
    auto g = Open();
    ASSERT_TRUE(g.ok());
    std::vector<Neighbor> out;
    Status st = g->SearchFiltered(queries_.data(), 10, 20, filters_[2], RowFilter(), &out);
    EXPECT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("2147483647"), std::string::npos) << st.message();
    EXPECT_TRUE(out.empty());
  }
}

// Damage only the lists of non-passing rows: a walk that reads them only
// through its two-hop expansion still reports Corruption.
TEST_F(FilteredDamage, DamageReachedOnlyThroughTwoHopsIsCorruption) {
  const size_t stride = (kM0 + 1) * 4;
  const Bitmap& pass = filters_[2];  // 5%: every expansion goes two hops
  std::vector<char>& l0 = image_[SectionKind::kHnswLayer0];
  for (size_t r = 0; r < kSmallRows; ++r) {
    if (!pass.Get(r) && GetU32(l0, r * stride) > 1) PutU32(l0, r * stride + 8, kSmallRows + 5);
  }
  auto g = Open();
  ASSERT_TRUE(g.ok());
  size_t caught = 0;
  std::vector<Neighbor> out;
  for (size_t q = 0; q < queries_.size() / kSmallDim; ++q) {
    Status st = g->SearchFiltered(queries_.data() + q * kSmallDim, 10, 20, pass, RowFilter(), &out);
    if (!st.ok()) {
      EXPECT_TRUE(st.IsCorruption()) << st.ToString();
      EXPECT_NE(st.message().find("link to row " + std::to_string(kSmallRows + 5)), std::string::npos);
      ++caught;
    }
  }
  EXPECT_GT(caught, 0u);
}

TEST_F(FilteredDamage, RandomByteFlipsAreCaughtOrHarmless) {
  std::mt19937_64 rng(99);
  size_t total = 0;
  for (const GraphSection& s : good_) total += s.bytes.size();
  size_t caught = 0;
  for (int i = 0; i < 1500; ++i) {
    image_ = GraphImage(good_);
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
    if (!g.ok()) continue;
    const bool ok = FilteredSearchesAreSafe(*g);
    caught += !ok;
    if (g->Verify().ok()) {
      EXPECT_TRUE(ok) << "a verified graph failed a filtered search";
    }
  }
  EXPECT_GT(caught, 0u);
}

}  // namespace
}  // namespace pomai::index
