// The search executor and its top-k (lib/engine/search.h, docs/ENGINE.md
// 4.5) over layers held in memory: exact results against a brute-force
// model of the visibility rule, ties by key, k above the rows, the choice
// between a graph walk and an exact scan, shadowed rows never returned by a
// walk, the deadline, and a layer's errors.
#include "engine/search.h"
#include "filter/table_source.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "index/hnsw.h"
#include "util/thread_pool.h"

namespace pomai::engine {
namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// TopK

struct NamedHit {
  float score;
  std::string_view key;
};
std::string_view HitKey(const NamedHit& h) { return h.key; }
struct IdHit {
  float score;
  uint64_t id;
};
uint64_t HitKey(const IdHit& h) { return h.id; }

TEST(TopK, KeepsTheBestKByScoreThenKeyForBothKeyKinds) {
  std::mt19937 rng(3);
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) keys.push_back("k" + std::to_string(rng() % 1000));
  std::vector<IdHit> ids;
  std::vector<NamedHit> named;
  TopKOf<IdHit> top_ids(7);
  TopKOf<NamedHit> top_named(7);
  for (size_t i = 0; i < keys.size(); ++i) {
    const float score = static_cast<float>(rng() % 20);  // many ties
    ids.push_back(IdHit{score, rng() % 100000});
    named.push_back(NamedHit{score, keys[i]});
    top_ids.Offer(ids.back());
    top_named.Offer(named.back());
  }
  std::sort(ids.begin(), ids.end(), Better<IdHit>);
  std::sort(named.begin(), named.end(), Better<NamedHit>);
  const std::vector<IdHit> got_ids = top_ids.TakeSorted();
  const std::vector<NamedHit> got_named = top_named.TakeSorted();
  ASSERT_EQ(got_ids.size(), 7u);
  ASSERT_EQ(got_named.size(), 7u);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(got_ids[i].id, ids[i].id);
    EXPECT_EQ(got_ids[i].score, ids[i].score);
    EXPECT_EQ(got_named[i].key, named[i].key);
    EXPECT_EQ(got_named[i].score, named[i].score);
  }
}

TEST(TopK, ZeroKeepsNothingAndNaNRanksLast) {
  TopKOf<NamedHit> none(0);
  float score = 1.0f;
  EXPECT_FALSE(none.MayAccept(score));
  EXPECT_FALSE(none.Accepts(1.0f, "a"));
  none.Offer(NamedHit{5.0f, "a"});
  EXPECT_EQ(none.size(), 0u);
  EXPECT_TRUE(none.TakeSorted().empty());

  TopKOf<NamedHit> two(2);
  two.Offer(NamedHit{std::numeric_limits<float>::quiet_NaN(), "nan"});
  two.Offer(NamedHit{-1.0f, "b"});
  two.Offer(NamedHit{-1.0f, "a"});
  const std::vector<NamedHit> got = two.TakeSorted();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "a");  // the tie goes to the smaller key
  EXPECT_EQ(got[1].key, "b");  // NaN became -infinity and fell out
}

// ---------------------------------------------------------------------------
// The executor

constexpr uint32_t kDim = 8;

std::vector<float> RandomRows(size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(rows * kDim);
  for (float& x : v) x = u(rng);
  return v;
}

// A layer of rows in memory: row r has id ids[r] and vector r of `vectors`;
// `visible[r]` says whether Row calls it visible; the layer holds the ids of
// `holds` (by default its rows' ids). With `scattered`, Vectors hands out
// one pointer per row: in one run for even blocks, from a copy of the rows
// in reverse order for odd ones (so the scan's run and gather paths are
// both used).
class FakeLayer final : public SearchLayer<uint64_t> {
 public:
  FakeLayer(std::vector<uint64_t> row_ids, std::vector<float> vecs) : ids(std::move(row_ids)), vectors(std::move(vecs)) {
    rows_ = ids.size();
    for (size_t r = rows_; r-- > 0;) reversed.insert(reversed.end(), vectors.begin() + r * kDim, vectors.begin() + (r + 1) * kDim);
    visible.assign(ids.size(), true);
    holds.insert(ids.begin(), ids.end());
    may_hide_ = !holds.empty();
  }
  void SetGraph(const index::HnswGraph* g) { graph_ = g; }
  // The layer's filter: `f` over `src`, evaluated (pass()) or deferred.
  Status SetFilter(const filter::Filter& f, const filter::ColumnSource& src, bool defer) {
    return ApplyFilter(f, src, defer);
  }
  void SetInvisible(uint64_t row) {
    visible[row] = false;
    all_visible_ = false;
  }
  void SetHolds(std::set<uint64_t> h) {
    holds = std::move(h);
    may_hide_ = !holds.empty();
  }

  Status Vectors(uint64_t begin, size_t n, const float** matrix, const float** ptrs) const override {
    ++vector_calls;
    if (!vectors_error.ok()) return vectors_error;
    if (!scattered) {
      *matrix = vectors.data() + begin * kDim;
      return Status::OK();
    }
    *matrix = nullptr;
    const bool odd = (begin / kBlockRows) % 2 == 1;
    for (size_t i = 0; i < n; ++i)
      ptrs[i] = odd ? reversed.data() + (rows_ - 1 - (begin + i)) * kDim : vectors.data() + (begin + i) * kDim;
    return Status::OK();
  }
  Status Row(uint64_t r, uint64_t* key, bool* vis) const override {
    *key = ids[r];
    *vis = visible[r];
    return Status::OK();
  }
  Status CheckRow(uint64_t r) const override {
    return bad_row == r ? Status::Corruption("row " + std::to_string(r) + " is damaged") : Status::OK();
  }
  Status Holds(const uint64_t& id, bool* h) const override {
    ++holds_calls;
    *h = holds.count(id) != 0;
    return Status::OK();
  }

  std::vector<uint64_t> ids;
  std::vector<float> vectors;
  std::vector<float> reversed;  // row r at rows - 1 - r
  std::vector<bool> visible;
  std::set<uint64_t> holds;
  bool scattered = false;
  Status vectors_error;
  uint64_t bad_row = UINT64_MAX;
  mutable std::atomic<size_t> vector_calls{0};
  mutable std::atomic<size_t> holds_calls{0};
};

// The model: per id, the newest layer holding it decides; the row is live
// when that layer has a visible row of it. Returns the k best live rows by
// score, then id.
std::vector<SearchHit<uint64_t>> Model(const std::vector<const FakeLayer*>& layers, const float* query, size_t k) {
  std::vector<SearchHit<uint64_t>> all;
  for (size_t i = 0; i < layers.size(); ++i) {
    const FakeLayer& l = *layers[i];
    for (size_t r = 0; r < l.ids.size(); ++r) {
      bool hidden = false;
      for (size_t j = 0; j < i; ++j) hidden = hidden || layers[j]->holds.count(l.ids[r]) != 0;
      if (hidden || !l.visible[r]) continue;
      all.push_back({simd::ScalarScore(simd::Metric::kL2, query, l.vectors.data() + r * kDim, kDim),
                     static_cast<uint32_t>(i), l.ids[r], r});
    }
  }
  std::sort(all.begin(), all.end(), Better<SearchHit<uint64_t>>);
  if (all.size() > k) all.resize(k);
  return all;
}

SearchSpec SpecFor(const std::vector<float>& queries, const std::vector<uint32_t>& topks) {
  SearchSpec spec;
  spec.queries = queries.data();
  spec.n = topks.size();
  spec.topks = topks.data();
  spec.dim = kDim;
  spec.metric = simd::Metric::kL2;
  spec.ef = 64;
  return spec;
}

std::vector<const SearchLayer<uint64_t>*> Bases(const std::vector<const FakeLayer*>& layers) {
  return std::vector<const SearchLayer<uint64_t>*>(layers.begin(), layers.end());
}

// The same hits in the same order, where the model's scalar scores and the
// kernels' SIMD scores (another summation order, another compiler) agree to
// within kTie: hits whose model scores are that close may come in either
// order, and the last run may end at k with other rows of its score (the
// model cut them off), so only its scores are compared.
void ExpectSame(const std::vector<SearchHit<uint64_t>>& got, const std::vector<SearchHit<uint64_t>>& want,
                const std::string& what) {
  constexpr float kTie = 1e-4f;
  ASSERT_EQ(got.size(), want.size()) << what;
  auto id = [](const SearchHit<uint64_t>& h) { return std::make_tuple(h.key, h.layer, h.row); };
  for (size_t i = 0; i < got.size();) {
    size_t end = i + 1;  // [i, end): a run of model scores within kTie of their neighbours
    while (end < want.size() && want[end - 1].score - want[end].score < kTie) ++end;
    std::multiset<std::tuple<uint64_t, uint32_t, uint64_t>> got_run, want_run;
    for (size_t j = i; j < end; ++j) {
      EXPECT_NEAR(got[j].score, want[j].score, kTie) << what << " hit " << j;
      got_run.insert(id(got[j]));
      want_run.insert(id(want[j]));
    }
    if (end < got.size()) EXPECT_EQ(got_run, want_run) << what << " hits " << i << ".." << end - 1;
    i = end;
  }
}

// Three layers with overlapping ids: the newest holds some ids only as
// "tombstones" (held, no row), has a row that is not visible, and the oldest
// is larger than one block.
struct ThreeLayers {
  FakeLayer newest, middle, oldest;
  ThreeLayers()
      : newest({5, 6, 7, 8}, RandomRows(4, 1)),
        middle({1, 2, 3, 4, 5, 6, 100, 101}, RandomRows(8, 2)),
        oldest(Ids(3000), RandomRows(3000, 3)) {
    newest.SetInvisible(2);                     // id 7 there is not visible: hidden below, and not returned
    newest.SetHolds({5, 6, 7, 8, 10, 11, 12});  // 10..12: deleted
    middle.SetInvisible(0);                     // id 1 in the middle: not visible, hides the oldest's
  }
  static std::vector<uint64_t> Ids(size_t n) {
    std::vector<uint64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = i;
    return ids;
  }
  std::vector<const FakeLayer*> all() const { return {&newest, &middle, &oldest}; }
};

TEST(Searcher, ExactResultsFollowTheVisibilityRuleForEveryKAndPool) {
  ThreeLayers t;
  const std::vector<float> queries = RandomRows(20, 9);
  std::vector<uint32_t> topks(20);
  for (size_t q = 0; q < topks.size(); ++q) topks[q] = std::vector<uint32_t>{0, 1, 10, 100, 5000}[q % 5];
  ThreadPool pool(3);
  for (bool scattered : {false, true}) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      t.newest.scattered = t.middle.scattered = t.oldest.scattered = scattered;
      const Searcher<uint64_t> searcher(Bases(t.all()));
      SearchSpec spec = SpecFor(queries, topks);
      spec.pool = p;
      std::vector<std::vector<SearchHit<uint64_t>>> out;
      ASSERT_TRUE(searcher.Search(spec, &out).ok());
      ASSERT_EQ(out.size(), queries.size() / kDim);
      for (size_t q = 0; q < out.size(); ++q) {
        const std::string what = "query " + std::to_string(q) + (scattered ? " scattered" : "") + (p ? " pool" : "");
        ExpectSame(out[q], Model(t.all(), queries.data() + q * kDim, topks[q]), what);
      }
      // k above the live rows: every live row, once.
      EXPECT_EQ(out[4].size(), Model(t.all(), queries.data() + 4 * kDim, 100000).size());
      std::set<uint64_t> ids;
      for (const auto& h : out[4]) EXPECT_TRUE(ids.insert(h.key).second) << "id " << h.key << " twice";
      for (uint64_t gone : {7, 10, 11, 12, 1}) EXPECT_EQ(ids.count(gone), 0u) << "id " << gone;
    }
  }
}

TEST(Searcher, TiesGoToTheSmallerKeyAcrossLayers) {
  // Every row has the same vector: the k smallest ids win, whichever layer holds them.
  std::vector<float> same(kDim, 0.5f);
  auto copies = [&](size_t n) {
    std::vector<float> v;
    for (size_t i = 0; i < n; ++i) v.insert(v.end(), same.begin(), same.end());
    return v;
  };
  FakeLayer a({9, 4, 700, 2}, copies(4));
  std::vector<uint64_t> ids;
  for (uint64_t i = 1000; i > 3; --i) ids.push_back(i * 3);  // descending, 1000 rows
  FakeLayer b(ids, copies(ids.size()));
  const Searcher<uint64_t> searcher(Bases({&a, &b}));
  const std::vector<float> query(kDim, 0.1f);
  const std::vector<uint32_t> topks{6};
  std::vector<std::vector<SearchHit<uint64_t>>> out;
  ASSERT_TRUE(searcher.Search(SpecFor(query, topks), &out).ok());
  std::vector<uint64_t> got;
  for (const auto& h : out[0]) got.push_back(h.key);
  EXPECT_EQ(got, (std::vector<uint64_t>{2, 4, 9, 12, 15, 18}));
}

TEST(Searcher, NoLayersOrNoRowsOrKZeroFindNothing) {
  const std::vector<float> query(kDim, 0.1f);
  std::vector<std::vector<SearchHit<uint64_t>>> out;
  ASSERT_TRUE(Searcher<uint64_t>({}).Search(SpecFor(query, {10}), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].empty());
  FakeLayer empty({}, {});
  FakeLayer one({1}, RandomRows(1, 4));
  ASSERT_TRUE(Searcher<uint64_t>(Bases({&empty, &one})).Search(SpecFor(query, {0}), &out).ok());
  EXPECT_TRUE(out[0].empty());
  ASSERT_TRUE(Searcher<uint64_t>(Bases({&empty, &one})).Search(SpecFor(query, {3}), &out).ok());
  ASSERT_EQ(out[0].size(), 1u);
  EXPECT_EQ(out[0][0].key, 1u);
}

// A graph over `rows` rows of `vectors`, held with its sections.
struct Graph {
  std::map<uint32_t, std::vector<uint32_t>> sections;  // u32 words: 4-byte aligned
  std::unique_ptr<index::HnswGraph> graph;
  Graph(const std::vector<float>& vectors, size_t rows) {
    index::HnswParams params;
    params.m = 8;
    params.ef_construction = 64;
    auto built = index::BuildHnsw(vectors.data(), rows, kDim, simd::Metric::kL2, params, nullptr, {});
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    std::map<uint32_t, size_t> sizes;
    for (const index::GraphSection& s : built.value()) {
      std::vector<uint32_t>& words = sections[s.kind];
      words.assign((s.bytes.size() + 3) / 4, 0);
      std::memcpy(words.data(), s.bytes.data(), s.bytes.size());
      sizes[s.kind] = s.bytes.size();
    }
    auto g = index::HnswGraph::Open(
        [this, sizes](uint32_t kind) -> std::string_view {
          auto it = sections.find(kind);
          if (it == sections.end()) return {};
          return std::string_view(reinterpret_cast<const char*>(it->second.data()), sizes.at(kind));
        },
        vectors.data(), rows, kDim, simd::Metric::kL2, "test graph");
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    graph = std::make_unique<index::HnswGraph>(std::move(g).value());
  }
};

TEST(Searcher, AGraphIsWalkedFromTheThresholdAndForSmallK) {
  constexpr size_t kRows = 5000;
  FakeLayer layer(ThreeLayers::Ids(kRows), RandomRows(kRows, 5));
  Graph g(layer.vectors, kRows);
  layer.SetGraph(g.graph.get());
  const Searcher<uint64_t> searcher(Bases({&layer}));
  const std::vector<float> queries = RandomRows(10, 6);
  std::vector<std::vector<SearchHit<uint64_t>>> out;

  // At the threshold: walked (no row's vectors handed out), nearly exact.
  const std::vector<uint32_t> tens(10, 10);
  SearchSpec spec = SpecFor(queries, tens);
  spec.adaptive_threshold = kRows;
  ASSERT_TRUE(searcher.Search(spec, &out).ok());
  EXPECT_EQ(layer.vector_calls.load(), 0u);
  size_t found = 0;
  for (size_t q = 0; q < 10; ++q) {
    std::set<uint64_t> want;
    for (const auto& h : Model({&layer}, queries.data() + q * kDim, 10)) want.insert(h.key);
    ASSERT_EQ(out[q].size(), 10u);
    for (const auto& h : out[q]) {
      found += want.count(h.key);
      EXPECT_NEAR(h.score, simd::ScalarScore(simd::Metric::kL2, queries.data() + q * kDim,
                                             layer.vectors.data() + h.row * kDim, kDim), 1e-4);
    }
  }
  EXPECT_GE(found, 90u);  // recall@10 >= 0.9

  // Below the threshold: scanned, exact.
  spec.adaptive_threshold = kRows + 1;
  ASSERT_TRUE(searcher.Search(spec, &out).ok());
  EXPECT_GT(layer.vector_calls.load(), 0u);
  for (size_t q = 0; q < 10; ++q) ExpectSame(out[q], Model({&layer}, queries.data() + q * kDim, 10), "exact");

  // A k of a quarter of the rows or more: that query is scanned, exact.
  layer.vector_calls = 0;
  spec.adaptive_threshold = 0;
  const std::vector<uint32_t> big{kRows / 4};
  SearchSpec one = SpecFor(queries, big);
  ASSERT_TRUE(searcher.Search(one, &out).ok());
  EXPECT_EQ(layer.vector_calls.load(), (kRows + kSpanRows - 1) / kSpanRows);  // one query: spans
  ExpectSame(out[0], Model({&layer}, queries.data(), kRows / 4), "large k");
}

TEST(Searcher, AWalkNeverReturnsShadowedOrInvisibleRowsAndStillFindsK) {
  constexpr size_t kRows = 4000;
  FakeLayer older(ThreeLayers::Ids(kRows), RandomRows(kRows, 7));
  Graph g(older.vectors, kRows);
  older.SetGraph(g.graph.get());
  for (uint64_t r = 1; r < kRows; r += 3) older.SetInvisible(r);
  FakeLayer newer({}, {});
  std::set<uint64_t> held;
  for (uint64_t id = 0; id < kRows; id += 3) held.insert(id);  // deleted by the newer layer
  newer.SetHolds(held);
  const Searcher<uint64_t> searcher(Bases({&newer, &older}));
  const std::vector<float> queries = RandomRows(20, 8);
  std::vector<std::vector<SearchHit<uint64_t>>> out;
  ASSERT_TRUE(searcher.Search(SpecFor(queries, std::vector<uint32_t>(20, 10)), &out).ok());
  EXPECT_EQ(older.vector_calls.load(), 0u);
  EXPECT_GT(newer.holds_calls.load(), 0u);
  for (size_t q = 0; q < 20; ++q) {
    ASSERT_EQ(out[q].size(), 10u) << "query " << q;
    for (const auto& h : out[q]) EXPECT_EQ(h.key % 3, 2u) << "query " << q << " returned id " << h.key;
  }
}

TEST(Searcher, APassedDeadlineFailsScansAndWalksWithNoResults) {
  constexpr size_t kRows = 64 * kBlockRows + 1;  // more than 64 blocks: the scan looks at the clock
  FakeLayer layer(ThreeLayers::Ids(kRows), RandomRows(kRows, 10));
  const std::vector<float> query = RandomRows(1, 11);
  const std::vector<uint32_t> topks{10};
  SearchSpec spec = SpecFor(query, topks);
  spec.deadline_ms = 5;
  spec.deadline = Clock::now() - std::chrono::seconds(1);
  std::vector<std::vector<SearchHit<uint64_t>>> out;
  Status s = Searcher<uint64_t>(Bases({&layer})).Search(spec, &out);
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded) << s.ToString();
  EXPECT_NE(s.message().find("5 ms"), std::string::npos) << s.ToString();

  FakeLayer small(ThreeLayers::Ids(2000), RandomRows(2000, 12));
  Graph g(small.vectors, 2000);
  small.SetGraph(g.graph.get());
  s = Searcher<uint64_t>(Bases({&small})).Search(spec, &out);
  EXPECT_EQ(s.code(), Code::kDeadlineExceeded) << s.ToString();

  spec.deadline = Clock::now() + std::chrono::hours(1);
  EXPECT_TRUE(Searcher<uint64_t>(Bases({&layer})).Search(spec, &out).ok());
  EXPECT_EQ(out[0].size(), 10u);
}

TEST(Searcher, ALayersErrorFailsTheSearch) {
  FakeLayer newer({1, 2}, RandomRows(2, 13));
  FakeLayer older(ThreeLayers::Ids(3000), RandomRows(3000, 14));
  const std::vector<float> query = RandomRows(1, 15);
  const std::vector<uint32_t> topks{10};
  older.vectors_error = Status::Corruption("block 3 is damaged");
  std::vector<std::vector<SearchHit<uint64_t>>> out;
  Status s = Searcher<uint64_t>(Bases({&newer, &older})).Search(SpecFor(query, topks), &out);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();

  // A row a walk returns is checked before it is used.
  older.vectors_error = Status::OK();
  Graph g(older.vectors, 3000);
  older.SetGraph(g.graph.get());
  const std::vector<SearchHit<uint64_t>> want = Model({&newer, &older}, query.data(), 10);
  const SearchHit<uint64_t>* from_older = nullptr;
  for (const auto& h : want) {
    if (h.layer == 1) from_older = &h;
  }
  ASSERT_NE(from_older, nullptr);
  older.bad_row = from_older->row;
  s = Searcher<uint64_t>(Bases({&newer, &older})).Search(SpecFor(query, topks), &out);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
}

// A deferred filter (SearchLayer::DeferFilter) answers as the evaluated
// one: the estimate is near the count, a filter passing under about 0.2% of
// the rows is evaluated at once, and the searches return min(k, live
// passing) passing live rows, exactly where the plan is exact, from one
// query or several per task, with rows shadowed by a newer layer. At 8
// dimensions the cost model scans these layers (the bitmap evaluated once
// for all tasks); the walks on a deferred filter are tested in
// tests/index/filtered_test.cc and, through the engine, in
// collection_filter_test.cc (FilterGraph.DeferredAndEvaluated...).
TEST(Searcher, ADeferredFilterAnswersAsTheEvaluatedOne) {
  constexpr size_t kRows = 6000;
  const std::vector<uint64_t> ids = ThreeLayers::Ids(kRows);
  FakeLayer deferred(ids, RandomRows(kRows, 11)), evaluated(ids, RandomRows(kRows, 11));
  Graph g(deferred.vectors, kRows);
  deferred.SetGraph(g.graph.get());
  evaluated.SetGraph(g.graph.get());
  FakeLayer newer({}, {});
  std::set<uint64_t> held;
  for (uint64_t id = 0; id < kRows; id += 5) held.insert(id);
  newer.SetHolds(held);
  // v = row % 1000; near: rows whose first coordinate is above 0.6.
  AttrColumn v = AttrColumn::Make("v", AttrType::kInt64);
  AttrColumn near = AttrColumn::Make("near", AttrType::kBool);
  for (size_t r = 0; r < kRows; ++r) {
    v.AppendInt(static_cast<int64_t>(r % 1000));
    near.AppendBool(deferred.vectors[r * kDim] > 0.6f);
  }
  filter::TableSource src(ids);
  src.Add(v);
  src.Add(near);
  const filter::Schema schema = {{"v", AttrType::kInt64}, {"near", AttrType::kBool}};
  const std::vector<float> queries = RandomRows(6, 12);
  for (const char* expr : {"v < 500", "v < 100", "v >= 20", "v < 3", "v < 1", "near", "NOT near", "v < 200 AND near"}) {
    SCOPED_TRACE(expr);
    auto f = filter::Filter::Compile(expr, schema);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    FakeLayer fresh_deferred(ids, deferred.vectors), fresh_evaluated(ids, evaluated.vectors);
    fresh_deferred.SetGraph(g.graph.get());
    fresh_evaluated.SetGraph(g.graph.get());
    ASSERT_TRUE(fresh_deferred.SetFilter(*f, src, true).ok());
    ASSERT_TRUE(fresh_evaluated.SetFilter(*f, src, false).ok());
    const uint64_t count = fresh_evaluated.passing();
    if (count * 1000 < kRows * 3 / 2) {
      EXPECT_EQ(fresh_deferred.deferred(), nullptr) << "few pass: evaluated at once";
      EXPECT_EQ(fresh_deferred.passing(), count);
    } else if (count * 100 >= kRows * 2) {
      ASSERT_NE(fresh_deferred.deferred(), nullptr);
      EXPECT_EQ(fresh_deferred.pass(), nullptr);
      EXPECT_NEAR(static_cast<double>(fresh_deferred.passing()), static_cast<double>(count), 0.35 * count);
    }
    std::set<uint64_t> passing_ids;
    for (uint64_t r = 0; r < kRows; ++r)
      if (fresh_evaluated.pass()->Get(r)) passing_ids.insert(r);
    for (uint32_t k : {10u, 400u}) {
      for (size_t per_call : {size_t{1}, size_t{6}}) {
        SCOPED_TRACE("k " + std::to_string(k) + ", queries per call " + std::to_string(per_call));
        const Searcher<uint64_t> searcher(Bases({&newer, &fresh_deferred}));
        const Searcher<uint64_t> reference(Bases({&newer, &fresh_evaluated}));
        size_t found = 0, wanted = 0;
        for (size_t q0 = 0; q0 < queries.size() / kDim; q0 += per_call) {
          const std::vector<float> qs(queries.begin() + q0 * kDim, queries.begin() + (q0 + per_call) * kDim);
          const std::vector<uint32_t> ks(per_call, k);
          SearchSpec spec = SpecFor(qs, ks);
          spec.ef = 32;
          std::vector<std::vector<SearchHit<uint64_t>>> got, want;
          ASSERT_TRUE(searcher.Search(spec, &got).ok());
          ASSERT_TRUE(reference.Search(spec, &want).ok());
          for (size_t q = 0; q < per_call; ++q) {
            // The exact top k of the live passing rows.
            std::vector<SearchHit<uint64_t>> truth;
            for (uint64_t id : passing_ids) {
              if (held.count(id)) continue;
              truth.push_back({simd::ScalarScore(simd::Metric::kL2, qs.data() + q * kDim,
                                                 deferred.vectors.data() + id * kDim, kDim), 1, id, id});
            }
            std::sort(truth.begin(), truth.end(), Better<SearchHit<uint64_t>>);
            if (truth.size() > k) truth.resize(k);
            ASSERT_EQ(got[q].size(), truth.size());
            ASSERT_EQ(want[q].size(), truth.size());
            std::set<uint64_t> truth_ids;
            for (const auto& h : truth) truth_ids.insert(h.key);
            for (const auto& h : got[q]) {
              ASSERT_TRUE(passing_ids.count(h.key)) << h.key << " does not pass";
              ASSERT_FALSE(held.count(h.key)) << h.key << " is shadowed";
              found += truth_ids.count(h.key);
            }
            wanted += truth.size();
            if (k * 4 >= count) ExpectSame(got[q], truth, "exact: most of what passes is wanted");
          }
        }
        EXPECT_GE(static_cast<double>(found), 0.9 * static_cast<double>(wanted));
      }
    }
  }
}

}  // namespace
}  // namespace pomai::engine
