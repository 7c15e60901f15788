// SIMD distance kernels (Google Highway, run-time dispatch).
//
// Every function here dispatches once per call to the best target the CPU
// supports (AVX-512, AVX2, SSE4, NEON, ... or the portable EMU128/SCALAR
// fallback). Callers therefore hand over many rows at once: at 128-d the
// dispatch costs as much as one distance. All functions are thread-safe and
// never read outside the ranges they are given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pomai::simd {

// Values are the C ABI's POMAI_METRIC_* values.
enum class Metric : uint8_t { kL2 = 0, kIP = 1, kCosine = 2 };

// "l2", "ip" or "cosine" (messages, pomai-inspect's JSON); "unknown" otherwise.
inline std::string MetricName(Metric m) {
  switch (m) {
    case Metric::kL2: return "l2";
    case Metric::kIP: return "ip";
    case Metric::kCosine: return "cosine";
  }
  return "unknown";
}

// Scores are "higher is better":
//   kIP     : dot(q, r)
//   kL2     : -||q - r||^2
//   kCosine : dot(q, r) / (|q| |r|), and 0 when either norm is 0.
//
// ScoreMany writes out[i] = score(query, row i) for i in [0, n), where row i
// starts at rows + i * stride (stride >= dim, in floats). `rows` needs no
// particular alignment; 64-byte aligned rows are faster.
void ScoreMany(Metric metric, const float* query, const float* rows, size_t n, size_t dim, size_t stride,
               float* out);

// Same, for rows given by pointers (rows[i] points at dim floats).
void ScoreGather(Metric metric, const float* query, const float* const* rows, size_t n, size_t dim, float* out);

// Single pairs (one dispatch each: for tests and cold paths only).
float Dot(const float* a, const float* b, size_t dim);
float L2Squared(const float* a, const float* b, size_t dim);
float Score(Metric metric, const float* a, const float* b, size_t dim);

// Index of the first NaN or infinity among v[0, n), or n when every value is finite.
size_t FirstNonFinite(const float* v, size_t n);

// The largest squared L2 norm a stored or query vector may have: a quarter of
// FLT_MAX, so that for any two such vectors every score (dot product, both
// norms and their product, ||q - r||^2 <= 2|q|^2 + 2|r|^2) is finite in
// float32 and no cosine or inner product comes out NaN.
constexpr float kMaxSquaredNorm = 3.40282346638528859811704183484516925440e+38f / 4;

// Index of the first row of rows[0, n) (dim floats each, contiguous) with a
// NaN or infinite component or a squared norm above kMaxSquaredNorm, or n.
// One pass over the rows.
size_t FirstRowOutOfRange(const float* rows, size_t n, size_t dim);
// What is wrong with a row FirstRowOutOfRange stopped at, for an error
// message: "has a non-finite value ... at component k" or "has a squared norm of ...".
std::string RowRangeError(const float* row, size_t dim);

// Plain scalar loops, the reference the kernels are tested and benchmarked against.
float ScalarScore(Metric metric, const float* a, const float* b, size_t dim);

// Name of the target the kernels dispatch to on this CPU, e.g. "AVX2"; static storage.
const char* TargetName();

// Test and benchmark hooks: the Highway targets compiled in and supported by
// this CPU (as HWY_* bit values), and a way to force one of them (0 restores
// the default choice). Not thread-safe with concurrent kernel calls.
std::vector<int64_t> SupportedTargets();
std::string TargetNameOf(int64_t target);
void ForceTargetForTesting(int64_t target);

}  // namespace pomai::simd
