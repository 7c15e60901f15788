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

// The per-row term of the integer kernel for a code row (dim bytes used):
// L2 sum_j (scale_j c_j)^2, cosine sum_j (min_j + scale_j c_j)^2, IP 0;
// summed in double, returned as float.
float RowNorm(simd::Metric metric, const float* min, const float* scale, const uint8_t* code, size_t dim);

// RowNorm of every code row, as rows floats (the kHnswSq8Norms section).
void EncodeNorms(simd::Metric metric, const std::string& params, const std::string& codes, size_t rows, size_t dim,
                 std::string* norms);

// A query prepared for scoring codes.
//
// Without norms (graphs written before they existed) rows are scored in
// float: arrays of Stride(dim) floats, zero past dim. With norms the score
// is computed from one integer dot product per row, sum_j c_j u_j with u the
// query's per-dimension weights rounded to int16, and the row's norm:
//   L2      -(sum_j (q_j - min_j)^2 + norm - 2 * qscale * dot)
//   IP      sum_j q_j min_j + qscale * dot
//   cosine  (sum_j q_j min_j + qscale * dot) / (|q| * sqrt(norm)), 0 if either is 0
// which is the float formula's value up to the rounding of u (|u| is
// scaled so that no int32 sum can overflow for any stride).
class Query {
 public:
  // `min` and `scale` are the params' two arrays (dim floats each); `norms`
  // (rows floats) may be null.
  void Prepare(simd::Metric metric, const float* query, const float* min, const float* scale, size_t dim,
               const float* norms = nullptr);

  simd::Metric metric() const { return metric_; }
  size_t stride() const { return stride_; }
  const float* a() const { return a_.data(); }
  const float* b() const { return b_.data(); }
  const float* c() const { return c_.data(); }
  float base() const { return base_; }
  float inv_norm() const { return inv_norm_; }
  // Integer mode: the norms, the weights (Stride(dim) int16, zero past dim),
  // their scale, and sum_j (q_j - min_j)^2 for L2.
  const float* norms() const { return norms_; }
  const int16_t* weights() const { return w_.data(); }
  float qscale() const { return qscale_; }
  float q_term() const { return q_term_; }

 private:
  simd::Metric metric_ = simd::Metric::kL2;
  size_t stride_ = 0;
  // L2: a = q - min, b = scale. IP: a = q * scale. IP and cosine: base = q . min.
  // Cosine: a = q, b = scale, c = min, inv_norm = 1 / |q| (0 if q is zero).
  std::vector<float> a_, b_, c_;
  float base_ = 0;
  float inv_norm_ = 0;
  const float* norms_ = nullptr;
  std::vector<int16_t> w_;
  float qscale_ = 0;
  float q_term_ = 0;
};

// out[i] = score of the query against the code row rows[i] (Stride(dim)
// bytes), whose row number is ids[i] (read only when the query has norms),
// one dispatch for all n rows.
void ScoreGather(const Query& q, const uint8_t* const* rows, const uint32_t* ids, size_t n, float* out);

}  // namespace pomai::index::sq8
