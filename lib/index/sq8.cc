// SQ8 encoding and the code-scoring kernel, compiled once per Highway target
// and dispatched at run time like lib/simd.
#include "index/sq8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "index/sq8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace pomai::index::sq8 {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using DI = hn::Rebind<int32_t, DF>;
using D8 = hn::Rebind<uint8_t, DF>;
using VF = hn::Vec<DF>;

HWY_INLINE VF LoadCodes(DF df, const uint8_t* HWY_RESTRICT p) {
  return hn::ConvertTo(df, hn::PromoteTo(DI(), hn::LoadU(D8(), p)));
}

// The reference loop, for targets whose vectors do not divide the stride.
float ScoreScalar(const Query& q, const uint8_t* HWY_RESTRICT r) {
  const float* a = q.a();
  const float* b = q.b();
  const float* c = q.c();
  float acc = 0, xx = 0;
  for (size_t j = 0; j < q.stride(); ++j) {
    const float x = static_cast<float>(r[j]);
    switch (q.metric()) {
      case simd::Metric::kL2: {
        const float d = a[j] - b[j] * x;
        acc += d * d;
        break;
      }
      case simd::Metric::kIP: acc += a[j] * x; break;
      case simd::Metric::kCosine: {
        const float v = c[j] + b[j] * x;
        acc += a[j] * v;
        xx += v * v;
        break;
      }
    }
  }
  switch (q.metric()) {
    case simd::Metric::kL2: return -acc;
    case simd::Metric::kIP: return q.base() + acc;
    case simd::Metric::kCosine: return xx > 0 ? acc * q.inv_norm() / std::sqrt(xx) : 0.0f;
  }
  return 0;
}

HWY_INLINE void Prefetch(const uint8_t* const* rows, size_t i, size_t n, size_t stride) {
  if (i >= n) return;
  const uint8_t* p = rows[i];
  for (size_t b = 0; b < stride; b += 64) hwy::Prefetch(p + b);
}

}  // namespace

// Sums Op over four code rows at once (four independent load streams), then
// over the rest one by one.
template <class Op>
HWY_INLINE void ScoreRows(DF df, const Query& q, const uint8_t* const* rows, size_t n, float* HWY_RESTRICT out) {
  const size_t lanes = hn::Lanes(df);
  const size_t stride = q.stride();
  const Op op(q);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 4; k < 8; ++k) Prefetch(rows, i + k, n, stride);
    const uint8_t* HWY_RESTRICT r0 = rows[i];
    const uint8_t* HWY_RESTRICT r1 = rows[i + 1];
    const uint8_t* HWY_RESTRICT r2 = rows[i + 2];
    const uint8_t* HWY_RESTRICT r3 = rows[i + 3];
    typename Op::Acc a0(df), a1(df), a2(df), a3(df);
    for (size_t j = 0; j < stride; j += lanes) {
      op.Step(df, j, LoadCodes(df, r0 + j), a0);
      op.Step(df, j, LoadCodes(df, r1 + j), a1);
      op.Step(df, j, LoadCodes(df, r2 + j), a2);
      op.Step(df, j, LoadCodes(df, r3 + j), a3);
    }
    out[i] = op.Finish(df, a0);
    out[i + 1] = op.Finish(df, a1);
    out[i + 2] = op.Finish(df, a2);
    out[i + 3] = op.Finish(df, a3);
  }
  for (; i < n; ++i) {
    const uint8_t* HWY_RESTRICT r = rows[i];
    typename Op::Acc a(df);
    for (size_t j = 0; j < stride; j += lanes) op.Step(df, j, LoadCodes(df, r + j), a);
    out[i] = op.Finish(df, a);
  }
}

struct L2Op {
  struct Acc {
    explicit Acc(DF df) : sum(hn::Zero(df)) {}
    VF sum;
  };
  explicit L2Op(const Query& q) : a(q.a()), b(q.b()) {}
  HWY_INLINE void Step(DF df, size_t j, VF x, Acc& acc) const {
    const VF d = hn::NegMulAdd(hn::LoadU(df, b + j), x, hn::LoadU(df, a + j));
    acc.sum = hn::MulAdd(d, d, acc.sum);
  }
  HWY_INLINE float Finish(DF df, const Acc& acc) const { return -hn::GetLane(hn::SumOfLanes(df, acc.sum)); }
  const float* HWY_RESTRICT a;
  const float* HWY_RESTRICT b;
};

struct IPOp {
  struct Acc {
    explicit Acc(DF df) : sum(hn::Zero(df)) {}
    VF sum;
  };
  explicit IPOp(const Query& q) : a(q.a()), base(q.base()) {}
  HWY_INLINE void Step(DF df, size_t j, VF x, Acc& acc) const { acc.sum = hn::MulAdd(hn::LoadU(df, a + j), x, acc.sum); }
  HWY_INLINE float Finish(DF df, const Acc& acc) const { return base + hn::GetLane(hn::SumOfLanes(df, acc.sum)); }
  const float* HWY_RESTRICT a;
  float base;
};

struct CosineOp {
  struct Acc {
    explicit Acc(DF df) : dot(hn::Zero(df)), xx(hn::Zero(df)) {}
    VF dot, xx;
  };
  explicit CosineOp(const Query& q) : a(q.a()), b(q.b()), c(q.c()), inv_norm(q.inv_norm()) {}
  HWY_INLINE void Step(DF df, size_t j, VF x, Acc& acc) const {
    const VF v = hn::MulAdd(hn::LoadU(df, b + j), x, hn::LoadU(df, c + j));
    acc.dot = hn::MulAdd(hn::LoadU(df, a + j), v, acc.dot);
    acc.xx = hn::MulAdd(v, v, acc.xx);
  }
  HWY_INLINE float Finish(DF df, const Acc& acc) const {
    const float dot = hn::GetLane(hn::SumOfLanes(df, acc.dot));
    const float xx = hn::GetLane(hn::SumOfLanes(df, acc.xx));
    return xx > 0 ? dot * inv_norm / std::sqrt(xx) : 0.0f;
  }
  const float* HWY_RESTRICT a;
  const float* HWY_RESTRICT b;
  const float* HWY_RESTRICT c;
  float inv_norm;
};

// Integer mode: dots[i] = sum_j code_ij * w_j over the stride, four rows at
// once; the caller checked that the stride is a multiple of the int16 lanes.
void DotRows(const Query& q, const uint8_t* const* rows, size_t n, int32_t* HWY_RESTRICT dots) {
  using D16 = hn::ScalableTag<int16_t>;
  using D32 = hn::Repartition<int32_t, D16>;
  using D8 = hn::Rebind<uint8_t, D16>;
  const D16 d16;
  const D32 d32;
  const D8 d8;
  const size_t lanes = hn::Lanes(d16);
  const size_t stride = q.stride();
  const int16_t* HWY_RESTRICT w = q.weights();
  auto codes = [&](const uint8_t* HWY_RESTRICT p) { return hn::PromoteTo(d16, hn::LoadU(d8, p)); };
  auto total = [&](hn::Vec<D32> s, hn::Vec<D32> t) { return hn::GetLane(hn::SumOfLanes(d32, hn::Add(s, t))); };
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 4; k < 8; ++k) Prefetch(rows, i + k, n, stride);
    const uint8_t* HWY_RESTRICT r0 = rows[i];
    const uint8_t* HWY_RESTRICT r1 = rows[i + 1];
    const uint8_t* HWY_RESTRICT r2 = rows[i + 2];
    const uint8_t* HWY_RESTRICT r3 = rows[i + 3];
    auto s0 = hn::Zero(d32), s1 = hn::Zero(d32), s2 = hn::Zero(d32), s3 = hn::Zero(d32);
    auto t0 = hn::Zero(d32), t1 = hn::Zero(d32), t2 = hn::Zero(d32), t3 = hn::Zero(d32);
    for (size_t j = 0; j < stride; j += lanes) {
      const auto wj = hn::LoadU(d16, w + j);
      s0 = hn::ReorderWidenMulAccumulate(d32, codes(r0 + j), wj, s0, t0);
      s1 = hn::ReorderWidenMulAccumulate(d32, codes(r1 + j), wj, s1, t1);
      s2 = hn::ReorderWidenMulAccumulate(d32, codes(r2 + j), wj, s2, t2);
      s3 = hn::ReorderWidenMulAccumulate(d32, codes(r3 + j), wj, s3, t3);
    }
    dots[i] = total(s0, t0);
    dots[i + 1] = total(s1, t1);
    dots[i + 2] = total(s2, t2);
    dots[i + 3] = total(s3, t3);
  }
  for (; i < n; ++i) {
    const uint8_t* HWY_RESTRICT r = rows[i];
    auto s0 = hn::Zero(d32), t0 = hn::Zero(d32);
    for (size_t j = 0; j < stride; j += lanes) s0 = hn::ReorderWidenMulAccumulate(d32, codes(r + j), hn::LoadU(d16, w + j), s0, t0);
    dots[i] = total(s0, t0);
  }
}

size_t Int16Lanes() { return hn::Lanes(hn::ScalableTag<int16_t>()); }

void ScoreGatherImpl(const Query& q, const uint8_t* const* rows, const uint32_t* ids, size_t n,
                     float* HWY_RESTRICT out) {
  if (q.norms() != nullptr && q.stride() % Int16Lanes() == 0) {
    const float* norms = q.norms();
    const float qscale = q.qscale();
    constexpr size_t kChunk = 64;
    int32_t dots[kChunk];
    for (size_t b = 0; b < n; b += kChunk) {
      const size_t m = std::min(kChunk, n - b);
      for (size_t i = 0; i < m; ++i) hwy::Prefetch(norms + ids[b + i]);
      DotRows(q, rows + b, m, dots);
      float* HWY_RESTRICT o = out + b;
      const uint32_t* HWY_RESTRICT id = ids + b;
      switch (q.metric()) {
        case simd::Metric::kL2: {
          const float q_term = q.q_term();
          for (size_t i = 0; i < m; ++i) o[i] = 2.0f * qscale * static_cast<float>(dots[i]) - (q_term + norms[id[i]]);
          break;
        }
        case simd::Metric::kIP:
          for (size_t i = 0; i < m; ++i) o[i] = q.base() + qscale * static_cast<float>(dots[i]);
          break;
        case simd::Metric::kCosine:
          for (size_t i = 0; i < m; ++i) {
            const float norm = norms[id[i]];
            o[i] = norm > 0 ? (q.base() + qscale * static_cast<float>(dots[i])) * q.inv_norm() / std::sqrt(norm) : 0.0f;
          }
          break;
      }
    }
    return;
  }
  const DF df;
  if (q.stride() % hn::Lanes(df) != 0) {
    for (size_t i = 0; i < n; ++i) out[i] = ScoreScalar(q, rows[i]);
    return;
  }
  switch (q.metric()) {
    case simd::Metric::kL2: ScoreRows<L2Op>(df, q, rows, n, out); break;
    case simd::Metric::kIP: ScoreRows<IPOp>(df, q, rows, n, out); break;
    case simd::Metric::kCosine: ScoreRows<CosineOp>(df, q, rows, n, out); break;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pomai::index::sq8
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pomai::index::sq8 {

HWY_EXPORT(ScoreGatherImpl);

void ScoreGather(const Query& q, const uint8_t* const* rows, const uint32_t* ids, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(ScoreGatherImpl)(q, rows, ids, n, out);
}

float RowNorm(simd::Metric metric, const float* min, const float* scale, const uint8_t* code, size_t dim) {
  double sum = 0;
  for (size_t j = 0; j < dim; ++j) {
    switch (metric) {
      case simd::Metric::kL2: {
        const double x = static_cast<double>(scale[j]) * code[j];
        sum += x * x;
        break;
      }
      case simd::Metric::kCosine: {
        const double x = static_cast<double>(min[j]) + static_cast<double>(scale[j]) * code[j];
        sum += x * x;
        break;
      }
      case simd::Metric::kIP: break;
    }
  }
  return static_cast<float>(sum);
}

void EncodeNorms(simd::Metric metric, const std::string& params, const std::string& codes, size_t rows, size_t dim,
                 std::string* norms) {
  const float* min = reinterpret_cast<const float*>(params.data());
  const float* scale = min + dim;
  const size_t stride = Stride(dim);
  norms->assign(rows * sizeof(float), '\0');
  for (size_t r = 0; r < rows; ++r) {
    const float n = RowNorm(metric, min, scale, reinterpret_cast<const uint8_t*>(codes.data()) + r * stride, dim);
    std::memcpy(norms->data() + r * sizeof(float), &n, sizeof(float));
  }
}

void Encode(const float* vectors, size_t rows, size_t dim, std::string* params, std::string* codes) {
  std::vector<float> lo(dim, std::numeric_limits<float>::infinity());
  std::vector<float> hi(dim, -std::numeric_limits<float>::infinity());
  for (size_t r = 0; r < rows; ++r) {
    const float* v = vectors + r * dim;
    for (size_t j = 0; j < dim; ++j) {
      if (!std::isfinite(v[j])) continue;
      lo[j] = std::min(lo[j], v[j]);
      hi[j] = std::max(hi[j], v[j]);
    }
  }
  std::vector<float> scale(dim);
  for (size_t j = 0; j < dim; ++j) {
    if (!(lo[j] <= hi[j])) lo[j] = hi[j] = 0;  // no finite value
    const double s = (static_cast<double>(hi[j]) - lo[j]) / 255.0;
    scale[j] = std::isfinite(s) ? static_cast<float>(s) : std::numeric_limits<float>::max() / 255.0f;
  }
  params->assign(2 * dim * sizeof(float), '\0');
  std::memcpy(params->data(), lo.data(), dim * sizeof(float));
  std::memcpy(params->data() + dim * sizeof(float), scale.data(), dim * sizeof(float));

  const size_t stride = Stride(dim);
  codes->assign(rows * stride, '\0');
  for (size_t r = 0; r < rows; ++r) {
    const float* v = vectors + r * dim;
    uint8_t* out = reinterpret_cast<uint8_t*>(codes->data()) + r * stride;
    for (size_t j = 0; j < dim; ++j) {
      if (!(scale[j] > 0)) continue;
      const float t = (v[j] - lo[j]) / scale[j];
      // NaN -> 0; +-inf and out-of-range values clamp.
      out[j] = t >= 255.0f ? 255 : (t > 0.0f ? static_cast<uint8_t>(std::lround(t)) : 0);
    }
  }
}

void Query::Prepare(simd::Metric metric, const float* query, const float* min, const float* scale, size_t dim,
                    const float* norms) {
  metric_ = metric;
  stride_ = Stride(dim);
  norms_ = norms;
  a_.assign(stride_, 0.0f);
  b_.assign(stride_, 0.0f);
  c_.assign(stride_, 0.0f);
  base_ = 0;
  inv_norm_ = 0;
  double qq = 0;
  for (size_t j = 0; j < dim; ++j) {
    switch (metric) {
      case simd::Metric::kL2:
        a_[j] = query[j] - min[j];
        b_[j] = scale[j];
        break;
      case simd::Metric::kIP:
        a_[j] = query[j] * scale[j];
        base_ += query[j] * min[j];
        break;
      case simd::Metric::kCosine:
        a_[j] = query[j];
        b_[j] = scale[j];
        c_[j] = min[j];
        base_ += query[j] * min[j];
        qq += static_cast<double>(query[j]) * query[j];
        break;
    }
  }
  if (qq > 0) inv_norm_ = static_cast<float>(1.0 / std::sqrt(qq));
  if (norms == nullptr) return;
  // The integer mode's weights u_j: L2 (q_j - min_j) * scale_j, IP and
  // cosine q_j * scale_j, rounded to int16 at a scale small enough that a
  // row's whole dot product, at most 255 * stride * max |w|, fits an int32.
  // (The kernel falls back to the float arrays above on targets whose
  // int16 vectors do not divide the stride.)
  auto weight = [&](size_t j) {
    return (metric == simd::Metric::kL2 ? static_cast<double>(query[j]) - min[j] : query[j]) * scale[j];
  };
  double umax = 0, q_term = 0;
  for (size_t j = 0; j < dim; ++j) {
    umax = std::max(umax, std::fabs(weight(j)));
    if (metric == simd::Metric::kL2) q_term += (static_cast<double>(query[j]) - min[j]) * (query[j] - min[j]);
  }
  const double wmax = std::min(32767.0, std::floor(2147483647.0 / (255.0 * static_cast<double>(stride_))));
  const double qscale = umax > 0 ? umax / wmax : 0.0;
  w_.assign(stride_, 0);  // reuses the per-thread query's capacity: no allocation after the first search
  for (size_t j = 0; j < dim && qscale > 0; ++j) w_[j] = static_cast<int16_t>(std::lround(weight(j) / qscale));
  qscale_ = static_cast<float>(qscale);
  q_term_ = static_cast<float>(q_term);
}

}  // namespace pomai::index::sq8
#endif  // HWY_ONCE
