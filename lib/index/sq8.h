// SQ8: a per-dimension scaled 8-bit copy of a segment's vectors, used to walk
// the graph with a quarter of the memory traffic (the final candidates are
// re-scored exactly in float32).
//
// Row r's code c (dim bytes, zero padded to Stride(dim)) decodes to
// x_j = min_j + scale_j * c_j. Scores have the engine's meaning (simd::Metric)
// for the decoded vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "simd/distance.h"

namespace pomai::index::sq8 {

// Bytes per row: dim rounded up to a multiple of 16.
inline size_t Stride(size_t dim) { return (dim + 15) / 16 * 16; }

// Computes min_j and scale_j over the finite values of each dimension and
// writes params (dim min floats, then dim scale floats) and codes (rows * Stride(dim)).
void Encode(const float* vectors, size_t rows, size_t dim, std::string* params, std::string* codes);

// A query prepared for scoring codes: arrays of Stride(dim) floats, zero past dim.
class Query {
 public:
  // `min` and `scale` are the params' two arrays (dim floats each).
  void Prepare(simd::Metric metric, const float* query, const float* min, const float* scale, size_t dim);

  simd::Metric metric() const { return metric_; }
  size_t stride() const { return stride_; }
  const float* a() const { return a_.data(); }
  const float* b() const { return b_.data(); }
  const float* c() const { return c_.data(); }
  float base() const { return base_; }
  float inv_norm() const { return inv_norm_; }

 private:
  simd::Metric metric_ = simd::Metric::kL2;
  size_t stride_ = 0;
  // L2: a = q - min, b = scale. IP: a = q * scale, base = q . min.
  // Cosine: a = q, b = scale, c = min, inv_norm = 1 / |q| (0 if q is zero).
  std::vector<float> a_, b_, c_;
  float base_ = 0;
  float inv_norm_ = 0;
};

// out[i] = score of the query against the code row rows[i] (Stride(dim) bytes),
// one dispatch for all n rows.
void ScoreGather(const Query& q, const uint8_t* const* rows, size_t n, float* out);

}  // namespace pomai::index::sq8
