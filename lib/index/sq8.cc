// SQ8 encoding and the code-scoring kernel, compiled once per Highway target
// and dispatched at run time like lib/simd.
#include "index/sq8.h"

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

void ScoreGatherImpl(const Query& q, const uint8_t* const* rows, size_t n, float* HWY_RESTRICT out) {
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

void ScoreGather(const Query& q, const uint8_t* const* rows, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(ScoreGatherImpl)(q, rows, n, out);
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

void Query::Prepare(simd::Metric metric, const float* query, const float* min, const float* scale, size_t dim) {
  metric_ = metric;
  stride_ = Stride(dim);
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
        qq += static_cast<double>(query[j]) * query[j];
        break;
    }
  }
  if (qq > 0) inv_norm_ = static_cast<float>(1.0 / std::sqrt(qq));
}

}  // namespace pomai::index::sq8
#endif  // HWY_ONCE
