// ScoreMany throughput per metric, dim and Highway target, against the plain
// scalar loop a user would write. items/s are rows scored per second; bytes/s
// count the row bytes read.
//
// The row set is sized to stay in L2 (at most 1 MiB, at most 4096 rows), so
// the numbers measure the kernels rather than DRAM.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "simd/distance.h"

namespace {

using pomai::simd::Metric;

constexpr size_t kDims[] = {32, 64, 128, 256, 384, 512, 768, 960, 1536};
constexpr size_t kMaxRowBytes = size_t{1} << 20;

size_t RowCount(size_t dim) {
  size_t n = kMaxRowBytes / (dim * sizeof(float));
  return n > 4096 ? 4096 : n;
}

// Rows are 64-byte aligned, as the engine stores them.
struct Data {
  Data(size_t n, size_t dim)
      : query(hwy::AllocateAligned<float>(dim)), rows(hwy::AllocateAligned<float>(n * dim)), out(n) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (size_t j = 0; j < dim; ++j) query[j] = u(rng);
    for (size_t j = 0; j < n * dim; ++j) rows[j] = u(rng);
  }
  hwy::AlignedFreeUniquePtr<float[]> query, rows;
  std::vector<float> out;
};

// The naive baseline: one plain loop per row, built with the project's flags.
void PlainScoreMany(Metric metric, const float* q, const float* rows, size_t n, size_t dim, float* out) {
  float qq = 0.0f;
  if (metric == Metric::kCosine) {
    for (size_t j = 0; j < dim; ++j) qq += q[j] * q[j];
  }
  for (size_t i = 0; i < n; ++i) {
    const float* r = rows + i * dim;
    if (metric == Metric::kL2) {
      float sum = 0.0f;
      for (size_t j = 0; j < dim; ++j) {
        const float diff = q[j] - r[j];
        sum += diff * diff;
      }
      out[i] = -sum;
    } else if (metric == Metric::kIP) {
      float sum = 0.0f;
      for (size_t j = 0; j < dim; ++j) sum += q[j] * r[j];
      out[i] = sum;
    } else {
      float dot = 0.0f, rr = 0.0f;
      for (size_t j = 0; j < dim; ++j) {
        dot += q[j] * r[j];
        rr += r[j] * r[j];
      }
      out[i] = (qq > 0.0f && rr > 0.0f) ? dot / (std::sqrt(qq) * std::sqrt(rr)) : 0.0f;
    }
  }
}

void SetCounters(benchmark::State& state, size_t n, size_t dim) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * dim * sizeof(float)));
}

void BM_Plain(benchmark::State& state, Metric metric, size_t dim) {
  const size_t n = RowCount(dim);
  Data data(n, dim);
  for (auto _ : state) {
    PlainScoreMany(metric, data.query.get(), data.rows.get(), n, dim, data.out.data());
    benchmark::DoNotOptimize(data.out.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, n, dim);
}

void BM_ScoreMany(benchmark::State& state, Metric metric, size_t dim, int64_t target) {
  const size_t n = RowCount(dim);
  Data data(n, dim);
  pomai::simd::ForceTargetForTesting(target);
  if (pomai::simd::TargetName() != pomai::simd::TargetNameOf(target)) {
    state.SkipWithError("could not force the target");
  }
  for (auto _ : state) {
    pomai::simd::ScoreMany(metric, data.query.get(), data.rows.get(), n, dim, dim, data.out.data());
    benchmark::DoNotOptimize(data.out.data());
    benchmark::ClobberMemory();
  }
  pomai::simd::ForceTargetForTesting(0);
  SetCounters(state, n, dim);
}

void RegisterAll() {
  const std::vector<int64_t> targets = pomai::simd::SupportedTargets();
  for (Metric metric : {Metric::kL2, Metric::kIP, Metric::kCosine}) {
    for (size_t dim : kDims) {
      const std::string suffix = pomai::simd::MetricName(metric) + "/" + std::to_string(dim);
      benchmark::RegisterBenchmark(("ScoreMany/" + suffix + "/plain").c_str(), BM_Plain, metric, dim);
      for (int64_t target : targets) {
        benchmark::RegisterBenchmark(("ScoreMany/" + suffix + "/" + pomai::simd::TargetNameOf(target)).c_str(),
                                     BM_ScoreMany, metric, dim, target);
      }
    }
  }
}

// Registered before BENCHMARK_MAIN's main runs: the set depends on the CPU.
[[maybe_unused]] const bool kRegistered = (RegisterAll(), true);

}  // namespace

BENCHMARK_MAIN();
