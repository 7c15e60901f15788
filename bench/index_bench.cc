// HNSW build time and single-thread search throughput with recall@10 as a
// counter, on a deterministic clustered set (default 100k x 128: 1000
// Gaussian centres, N(0, 1) around each; queries from the same centres),
// for M 16 and 32 and ef 10 .. 128, walking the float32 vectors or the SQ8
// codes (then re-scoring the ef best exactly). Ground truth is exact (ScoreMany).
//
// POMAI_INDEX_BENCH_ROWS overrides the row count for quick runs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "index/hnsw.h"
#include "simd/distance.h"
#include "util/thread_pool.h"

namespace {

using pomai::ThreadPool;
using pomai::index::BuildHnsw;
using pomai::index::BuildHnswFrom;
using pomai::index::GraphBase;
using pomai::index::GraphSection;
using pomai::index::HnswGraph;
using pomai::index::HnswParams;
using pomai::index::Neighbor;
using pomai::index::Traversal;
using pomai::simd::Metric;

constexpr uint32_t kDim = 128;
constexpr size_t kQueries = 1000;
constexpr size_t kK = 10;
constexpr size_t kClusters = 1000;
constexpr float kSpread = 1.0f;

size_t Rows() {
  const char* env = std::getenv("POMAI_INDEX_BENCH_ROWS");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 100000;
}

struct Dataset {
  size_t rows = 0;
  std::vector<float> data;
  std::vector<float> queries;
  std::vector<std::vector<uint32_t>> truth;  // best first
};

const Dataset& Data() {
  static const Dataset* d = [] {
    auto* ds = new Dataset;
    ds->rows = Rows();
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> centres(kClusters * kDim);
    for (float& c : centres) c = normal(rng);
    auto draw = [&](size_t n) {
      std::vector<float> out(n * kDim);
      for (size_t r = 0; r < n; ++r) {
        const float* c = centres.data() + (rng() % kClusters) * kDim;
        for (uint32_t j = 0; j < kDim; ++j) out[r * kDim + j] = c[j] + kSpread * normal(rng);
      }
      return out;
    };
    ds->data = draw(ds->rows);
    ds->queries = draw(kQueries);
    std::vector<float> scores(ds->rows);
    std::vector<uint32_t> order(ds->rows);
    for (size_t q = 0; q < kQueries; ++q) {
      pomai::simd::ScoreMany(Metric::kL2, ds->queries.data() + q * kDim, ds->data.data(), ds->rows, kDim, kDim,
                             scores.data());
      std::iota(order.begin(), order.end(), 0u);
      const size_t k = std::min(kK, ds->rows);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](uint32_t a, uint32_t b) { return scores[a] > scores[b]; });
      ds->truth.emplace_back(order.begin(), order.begin() + k);
    }
    return ds;
  }();
  return *d;
}

// A graph built once per M and kept for the search benchmarks.
struct Built {
  std::vector<GraphSection> sections;
  std::unique_ptr<HnswGraph> graph;
};

std::map<uint32_t, std::unique_ptr<Built>>& Graphs() {
  static std::map<uint32_t, std::unique_ptr<Built>> graphs;
  return graphs;
}

void Keep(uint32_t m, std::vector<GraphSection> sections) {
  const Dataset& d = Data();
  auto b = std::make_unique<Built>();
  b->sections = std::move(sections);
  auto source = [s = &b->sections](uint32_t kind) -> std::string_view {
    for (const GraphSection& g : *s) {
      if (g.kind == kind) return g.bytes;
    }
    return {};
  };
  auto g = HnswGraph::Open(source, d.data.data(), d.rows, kDim, Metric::kL2, "bench");
  if (!g.ok()) std::abort();
  b->graph = std::make_unique<HnswGraph>(std::move(g).value());
  Graphs()[m] = std::move(b);
}

const HnswGraph& Graph(uint32_t m) {
  auto it = Graphs().find(m);
  if (it == Graphs().end()) {
    const Dataset& d = Data();
    ThreadPool pool(0);
    auto r = BuildHnsw(d.data.data(), d.rows, kDim, Metric::kL2, HnswParams{m, 200, 42}, &pool, {});
    if (!r.ok()) std::abort();
    Keep(m, std::move(r).value());
    it = Graphs().find(m);
  }
  return *it->second->graph;
}

HnswGraph& MutableGraph(uint32_t m) {
  Graph(m);
  return *Graphs()[m]->graph;
}

// Args: M, threads (1 = sequential, else a pool of threads - 1 helpers).
void BM_Build(benchmark::State& state) {
  const Dataset& d = Data();
  const uint32_t m = static_cast<uint32_t>(state.range(0));
  const size_t threads = static_cast<size_t>(state.range(1));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads - 1);
  std::vector<GraphSection> sections;
  for (auto _ : state) {
    auto r = BuildHnsw(d.data.data(), d.rows, kDim, Metric::kL2, HnswParams{m, 200, 42}, pool.get(), {});
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    sections = std::move(r).value();
  }
  state.counters["rows_per_s"] = benchmark::Counter(static_cast<double>(d.rows) * state.iterations(),
                                                    benchmark::Counter::kIsRate);
  size_t bytes = 0;
  for (const GraphSection& s : sections) bytes += s.bytes.size();
  state.counters["graph_MiB"] = static_cast<double>(bytes) / (1 << 20);
  if (threads == 1) Keep(m, std::move(sections));
}

double RecallOf(const HnswGraph& g, size_t ef) {
  const Dataset& d = Data();
  std::vector<Neighbor> out;
  size_t hits = 0, total = 0;
  for (size_t q = 0; q < kQueries; ++q) {
    if (!g.Search(d.queries.data() + q * kDim, kK, ef, nullptr, &out).ok()) std::abort();
    const std::set<uint32_t> t(d.truth[q].begin(), d.truth[q].end());
    for (const Neighbor& n : out) hits += t.count(n.row);
    total += t.size();
  }
  return static_cast<double>(hits) / static_cast<double>(total);
}

// Args: M, ef, sq8 (0: walk float32, 1: walk SQ8 codes). One query per
// iteration, on one thread.
void BM_Search(benchmark::State& state) {
  const Dataset& d = Data();
  HnswGraph& g = MutableGraph(static_cast<uint32_t>(state.range(0)));
  const size_t ef = static_cast<size_t>(state.range(1));
  g.set_traversal(state.range(2) ? Traversal::kSq8 : Traversal::kFloat32);
  const double recall = RecallOf(g, ef);
  std::vector<Neighbor> out;
  size_t q = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g.Search(d.queries.data() + q * kDim, kK, ef, nullptr, &out).ok());
    if (++q == kQueries) q = 0;
  }
  state.counters["recall@10"] = recall;
  state.counters["QPS"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Args: M, ef, sq8; every other row is dead (shadowed or deleted), as in a segment
// under heavy overwrite. Recall is against the live rows' exact top 10.
void BM_SearchHalfDead(benchmark::State& state) {
  const Dataset& d = Data();
  HnswGraph& g = MutableGraph(static_cast<uint32_t>(state.range(0)));
  g.set_traversal(state.range(2) ? Traversal::kSq8 : Traversal::kFloat32);
  const size_t ef = static_cast<size_t>(state.range(1));
  auto live = [](uint32_t row) { return row % 2 == 0; };
  std::vector<Neighbor> out;
  std::vector<float> scores(d.rows);
  size_t hits = 0;
  for (size_t q = 0; q < kQueries; ++q) {
    pomai::simd::ScoreMany(Metric::kL2, d.queries.data() + q * kDim, d.data.data(), d.rows, kDim, kDim,
                           scores.data());
    std::vector<uint32_t> order;
    for (uint32_t r = 0; r < d.rows; r += 2) order.push_back(r);
    std::partial_sort(order.begin(), order.begin() + kK, order.end(),
                      [&](uint32_t a, uint32_t b) { return scores[a] > scores[b]; });
    const std::set<uint32_t> t(order.begin(), order.begin() + kK);
    if (!g.Search(d.queries.data() + q * kDim, kK, ef, live, &out).ok()) std::abort();
    for (const Neighbor& n : out) hits += t.count(n.row);
  }
  size_t q = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(g.Search(d.queries.data() + q * kDim, kK, ef, live, &out).ok());
    if (++q == kQueries) q = 0;
  }
  state.counters["recall@10"] = static_cast<double>(hits) / (kQueries * kK);
  state.counters["QPS"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// A compaction's graph: the merged set is the whole dataset, whose first
// 90% are a segment with a graph (built once, outside the timing) and the
// last 10% new rows. Args: reuse (0: BuildHnsw from nothing, 1: BuildHnswFrom
// the 90% graph), threads (as BM_Build). M 32, ef_construction 200.
void BM_MergeBuild(benchmark::State& state) {
  const Dataset& d = Data();
  const bool reuse = state.range(0) != 0;
  const size_t threads = static_cast<size_t>(state.range(1));
  std::unique_ptr<ThreadPool> pool;
  if (threads > 1) pool = std::make_unique<ThreadPool>(threads - 1);
  const size_t old_rows = d.rows * 9 / 10;
  const HnswParams params{32, 200, 42};
  static std::vector<GraphSection>* base_sections = nullptr;
  static HnswGraph* base = nullptr;
  if (base == nullptr) {
    ThreadPool build_pool(0);
    auto r = BuildHnsw(d.data.data(), old_rows, kDim, Metric::kL2, params, &build_pool, {});
    if (!r.ok()) std::abort();
    base_sections = new std::vector<GraphSection>(std::move(r).value());
    auto g = HnswGraph::Open(
        [](uint32_t kind) -> std::string_view {
          for (const GraphSection& s : *base_sections) {
            if (s.kind == kind) return s.bytes;
          }
          return {};
        },
        d.data.data(), old_rows, kDim, Metric::kL2, "bench");
    if (!g.ok()) std::abort();
    base = new HnswGraph(std::move(g).value());
  }
  std::vector<uint32_t> new_row(old_rows);
  std::iota(new_row.begin(), new_row.end(), 0u);
  std::vector<GraphSection> sections;
  for (auto _ : state) {
    auto r = reuse ? BuildHnswFrom(GraphBase{base, new_row.data()}, d.data.data(), d.rows, kDim, Metric::kL2, params,
                                   pool.get(), {})
                   : BuildHnsw(d.data.data(), d.rows, kDim, Metric::kL2, params, pool.get(), {});
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    sections = std::move(r).value();
  }
  auto g = HnswGraph::Open(
      [&](uint32_t kind) -> std::string_view {
        for (const GraphSection& s : sections) {
          if (s.kind == kind) return s.bytes;
        }
        return {};
      },
      d.data.data(), d.rows, kDim, Metric::kL2, "bench");
  if (!g.ok()) std::abort();
  state.counters["reused_rows"] = static_cast<double>(g->reused_rows());
  state.counters["recall@10_ef64"] = RecallOf(*g, 64);
}

BENCHMARK(BM_Build)
    ->ArgNames({"M", "threads"})
    ->Args({16, 1})
    ->Args({32, 1})
    ->Args({16, 2})
    ->Args({32, 2})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);
BENCHMARK(BM_MergeBuild)
    ->ArgNames({"reuse", "threads"})
    ->ArgsProduct({{0, 1}, {1, 2}})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kSecond);
BENCHMARK(BM_Search)
    ->ArgNames({"M", "ef", "sq8"})
    ->ArgsProduct({{16, 32}, {10, 16, 32, 64, 128}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SearchHalfDead)
    ->ArgNames({"M", "ef", "sq8"})
    ->ArgsProduct({{16, 32}, {64}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
