// Filtered search, one thread: QPS and recall@10 of the three ways to run it
// (index/filtered.h: exact scan of the passing rows, the filtered walk, the
// gated walk) at selectivities 50%, 10%, 1% and 0.1%, for five kinds of
// filter, on a deterministic clustered set (default 100k x 128: rows / 100
// Gaussian centres, N(0, 1) around each; queries from the same centres):
//
//   uncorrelated     each row passes with probability s (one bitmap);
//   correlated       the s * rows rows nearest the query pass (a region);
//   anti-correlated  the nearest 10% of rows to the query fail, the others
//                    pass with probability s / 0.9 (the filter excludes the
//                    query's neighbourhood);
//   near             whole clusters pass, taken by the distance of their
//                    centre to the query, nearest first, until they hold s
//                    of the rows (a category attribute that follows the
//                    embedding, the query's own category included);
//   far              the same, farthest first (the query's own clusters
//                    and those around them fail).
//
// Ground truth is exact (ScoreMany over all rows, then the best passing).
// Prints a markdown table. The numbers behind ChooseFilteredPlan's model.
//
// POMAI_FILTERED_ROWS, POMAI_FILTERED_DIM, POMAI_FILTERED_QUERIES override
// the set's size; POMAI_FILTERED_M the graph's m (default 32);
// POMAI_FILTERED_FLOAT32=1 makes the walks score float32 vectors (default:
// the SQ8 codes); POMAI_FILTERED_KINDS (e.g. "uncorrelated,far") and
// POMAI_FILTERED_SHARES (e.g. "0.5,0.1") run only those filters;
// POMAI_FILTERED_SEQUENTIAL=1 builds the graph on one thread (the same graph
// every run: a pooled build depends on the scheduling).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "index/filtered.h"
#include "index/hnsw.h"
#include "simd/distance.h"
#include "util/bitmap.h"
#include "util/thread_pool.h"

namespace {

using namespace pomai;
using namespace pomai::index;
using simd::Metric;

size_t Env(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtoull(v, nullptr, 10) : fallback;
}

constexpr size_t kK = 10;
constexpr int kRepeats = 3;
const char* const kKinds[] = {"uncorrelated", "correlated", "anti-correlated", "near", "far"};

// The comma-separated items of environment variable `name`, or `fallback`.
std::vector<std::string> EnvList(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  std::stringstream in(v != nullptr ? v : fallback);
  std::vector<std::string> out;
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Case {
  std::vector<Bitmap> pass;                  // per query
  std::vector<std::vector<uint32_t>> truth;  // per query, best first
};

double Recall(const std::vector<std::vector<uint32_t>>& truth, const std::vector<std::vector<uint32_t>>& found) {
  size_t hits = 0, total = 0;
  for (size_t q = 0; q < truth.size(); ++q) {
    const std::set<uint32_t> t(truth[q].begin(), truth[q].end());
    for (uint32_t r : found[q]) hits += t.count(r);
    total += truth[q].size();
  }
  return total == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(total);
}

}  // namespace

int main() {
  const size_t rows = Env("POMAI_FILTERED_ROWS", 100000);
  const uint32_t dim = static_cast<uint32_t>(Env("POMAI_FILTERED_DIM", 128));
  const size_t nq = Env("POMAI_FILTERED_QUERIES", 200);
  const uint32_t m = static_cast<uint32_t>(Env("POMAI_FILTERED_M", 32));
  const size_t clusters = std::max<size_t>(1, rows / 100);

  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(clusters * dim);
  for (float& c : centres) c = normal(rng);
  std::vector<uint32_t> label(rows);  // each row's cluster
  auto draw = [&](size_t n, uint32_t* labels) {
    std::vector<float> out(n * dim);
    for (size_t r = 0; r < n; ++r) {
      const size_t cluster = rng() % clusters;
      if (labels != nullptr) labels[r] = static_cast<uint32_t>(cluster);
      const float* c = centres.data() + cluster * dim;
      for (uint32_t j = 0; j < dim; ++j) out[r * dim + j] = c[j] + normal(rng);
    }
    return out;
  };
  const std::vector<float> data = draw(rows, label.data());
  const std::vector<float> queries = draw(nq, nullptr);
  std::vector<size_t> cluster_size(clusters, 0);
  for (uint32_t l : label) ++cluster_size[l];
  std::vector<int> kinds;
  for (const std::string& name : EnvList("POMAI_FILTERED_KINDS", "uncorrelated,correlated,anti-correlated,near,far")) {
    const auto it = std::find_if(std::begin(kKinds), std::end(kKinds), [&](const char* k) { return name == k; });
    if (it == std::end(kKinds)) {
      std::fprintf(stderr, "POMAI_FILTERED_KINDS: unknown filter kind '%s'\n", name.c_str());
      return 2;
    }
    kinds.push_back(static_cast<int>(it - std::begin(kKinds)));
  }
  std::vector<double> shares;
  for (const std::string& v : EnvList("POMAI_FILTERED_SHARES", "0.5,0.1,0.01,0.001")) {
    const double s = std::strtod(v.c_str(), nullptr);
    if (!(s > 0 && s <= 1)) {
      std::fprintf(stderr, "POMAI_FILTERED_SHARES: share '%s' is not in (0, 1]\n", v.c_str());
      return 2;
    }
    shares.push_back(s);
  }

  ThreadPool pool(2);
  const auto t0 = std::chrono::steady_clock::now();
  HnswParams params;
  params.m = m;
  const bool sequential = Env("POMAI_FILTERED_SEQUENTIAL", 0) != 0;
  auto sections = BuildHnsw(data.data(), rows, dim, Metric::kL2, params, sequential ? nullptr : &pool, {});
  if (!sections.ok()) {
    std::fprintf(stderr, "build: %s\n", sections.status().ToString().c_str());
    return 1;
  }
  const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto source = [&](uint32_t kind) -> std::string_view {
    for (const GraphSection& s : *sections)
      if (s.kind == kind) return s.bytes;
    return {};
  };
  auto opened = HnswGraph::Open(source, data.data(), rows, dim, Metric::kL2, "sweep");
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  HnswGraph graph = std::move(opened).value();
  if (Env("POMAI_FILTERED_FLOAT32", 0) != 0) graph.set_traversal(Traversal::kFloat32);
  std::printf("# filtered search sweep: %zu x %u, %zu clusters, m %u (m0 %u), %zu queries, k %zu, one thread, "
              "%s walks; build %.1f s\n\n",
              rows, dim, clusters, m, graph.m0(), nq, kK,
              graph.traversal() == Traversal::kSq8 ? "SQ8" : "float32", build_s);

  // Exact distances of every row to every query, and the rows in order of distance.
  std::vector<std::vector<float>> scores(nq, std::vector<float>(rows));
  std::vector<std::vector<uint32_t>> order(nq);
  for (size_t q = 0; q < nq; ++q) {
    simd::ScoreMany(Metric::kL2, queries.data() + q * dim, data.data(), rows, dim, dim, scores[q].data());
    order[q].resize(rows);
    std::iota(order[q].begin(), order[q].end(), 0u);
    const std::vector<float>& s = scores[q];
    std::sort(order[q].begin(), order[q].end(),
              [&](uint32_t a, uint32_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
  }

  auto make_case = [&](int kind, double sel) {
    Case c;
    std::mt19937_64 frng(1000 + static_cast<uint64_t>(sel * 1e6) + static_cast<uint64_t>(kind));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Bitmap shared(rows);
    if (kind == 0) {
      for (size_t r = 0; r < rows; ++r)
        if (u(frng) < sel) shared.Set(r);
    }
    for (size_t q = 0; q < nq; ++q) {
      Bitmap b(rows);
      if (kind == 0) {
        b = shared;
      } else if (kind == 1) {
        const size_t n = std::max<size_t>(1, static_cast<size_t>(sel * static_cast<double>(rows)));
        for (size_t i = 0; i < n; ++i) b.Set(order[q][i]);
      } else if (kind == 2) {
        const size_t near = rows / 10;
        for (size_t i = near; i < rows; ++i)
          if (u(frng) < sel / 0.9) b.Set(order[q][i]);
      } else {
        // Whole clusters by centre distance, nearest first (near) or farthest first (far).
        const float* query = queries.data() + q * dim;
        std::vector<float> cd(clusters);
        simd::ScoreMany(Metric::kL2, query, centres.data(), clusters, dim, dim, cd.data());
        std::vector<uint32_t> by(clusters);
        std::iota(by.begin(), by.end(), 0u);
        std::sort(by.begin(), by.end(), [&](uint32_t a, uint32_t b) { return cd[a] > cd[b] || (cd[a] == cd[b] && a < b); });
        if (kind == 4) std::reverse(by.begin(), by.end());
        std::vector<bool> keep(clusters, false);
        const double want = sel * static_cast<double>(rows);
        double have = 0;
        for (size_t i = 0; i < clusters && (have < want || i == 0); ++i) {
          keep[by[i]] = true;
          have += static_cast<double>(cluster_size[by[i]]);
        }
        for (size_t r = 0; r < rows; ++r)
          if (keep[label[r]]) b.Set(r);
      }
      std::vector<uint32_t> t;
      for (size_t i = 0; i < rows && t.size() < kK; ++i)
        if (b.Get(order[q][i])) t.push_back(order[q][i]);
      c.truth.push_back(std::move(t));
      c.pass.push_back(std::move(b));
    }
    return c;
  };

  std::printf("| filter | selectivity | passing (mean) | path | ef | recall@10 | QPS | us/query | walk scored | "
              "exact scored | links | plan |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  const FilteredGraphShape shape{dim, graph.m0(), graph.traversal() == Traversal::kSq8};
  for (int kind : kinds) {
    for (double sel : shares) {
      const Case c = make_case(kind, sel);
      double passing = 0;
      for (const Bitmap& b : c.pass) passing += static_cast<double>(b.Count());
      passing /= static_cast<double>(nq);
      struct Path {
        const char* name;
        FilteredPlan plan;
        size_t ef;
      };
      const Path paths[] = {{"exact", FilteredPlan::kExact, 0},         {"filtered", FilteredPlan::kFilteredWalk, 32},
                            {"filtered", FilteredPlan::kFilteredWalk, 64}, {"filtered", FilteredPlan::kFilteredWalk, 128},
                            {"gated", FilteredPlan::kGatedWalk, 32},    {"gated", FilteredPlan::kGatedWalk, 64},
                            {"gated", FilteredPlan::kGatedWalk, 128}};
      for (const Path& p : paths) {
        std::vector<std::vector<uint32_t>> found(nq);
        std::vector<Neighbor> out;
        double secs = 1e30;  // the fastest of kRepeats passes (the machine is shared)
        SearchWork work;
        for (int rep = 0; rep < kRepeats; ++rep) {
        for (auto& f : found) f.clear();
        ThreadSearchWork() = SearchWork();
        const auto start = std::chrono::steady_clock::now();
        for (size_t q = 0; q < nq; ++q) {
          const float* query = queries.data() + q * dim;
          Status st;
          switch (p.plan) {
            case FilteredPlan::kExact:
              st = SearchExact(data.data(), rows, dim, Metric::kL2, query, kK, c.pass[q], RowFilter(), &out);
              break;
            case FilteredPlan::kFilteredWalk:
              st = graph.SearchFiltered(query, kK, p.ef, c.pass[q], RowFilter(), &out);
              break;
            case FilteredPlan::kGatedWalk:
              st = graph.SearchGated(query, kK, p.ef, c.pass[q], RowFilter(), &out);
              break;
          }
          if (!st.ok()) {
            std::fprintf(stderr, "search: %s\n", st.ToString().c_str());
            return 1;
          }
          for (const Neighbor& n : out) found[q].push_back(n.row);
        }
        secs = std::min(secs, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        work = ThreadSearchWork();
        }
        const size_t ef = p.ef == 0 ? 64 : p.ef;
        const FilteredPlan chosen =
            ChooseFilteredPlan(rows, static_cast<uint64_t>(passing), kK, ef, shape);
        const double per_q = 1.0 / static_cast<double>(nq);
        std::printf("| %s | %g%% | %.0f | %s | %s | %.4f | %.0f | %.1f | %.0f | %.0f | %.0f | %s |\n", kKinds[kind],
                    sel * 100, passing, p.name, p.ef == 0 ? "-" : std::to_string(p.ef).c_str(),
                    Recall(c.truth, found), static_cast<double>(nq) / secs, secs * 1e6 * per_q,
                    static_cast<double>(work.walk_scored) * per_q, static_cast<double>(work.exact_scored) * per_q,
                    static_cast<double>(work.links) * per_q, chosen == p.plan ? "chosen" : "");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
