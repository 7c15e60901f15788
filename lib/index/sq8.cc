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

void ScoreGatherImpl(const Query& q, const uint8_t* const* rows, size_t n, float* HWY_RESTRICT out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t stride = q.stride();
  if (stride % lanes != 0) {
    for (size_t i = 0; i < n; ++i) out[i] = ScoreScalar(q, rows[i]);
    return;
  }
  const float* HWY_RESTRICT a = q.a();
  const float* HWY_RESTRICT b = q.b();
  const float* HWY_RESTRICT c = q.c();
  for (size_t i = 0; i < n; ++i) {
    Prefetch(rows, i + 2, n, stride);
    const uint8_t* HWY_RESTRICT r = rows[i];
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    switch (q.metric()) {
      case simd::Metric::kL2: {
        size_t j = 0;
        for (; j + 2 * lanes <= stride; j += 2 * lanes) {
          const VF d0 = hn::NegMulAdd(hn::LoadU(df, b + j), LoadCodes(df, r + j), hn::LoadU(df, a + j));
          const VF d1 =
              hn::NegMulAdd(hn::LoadU(df, b + j + lanes), LoadCodes(df, r + j + lanes), hn::LoadU(df, a + j + lanes));
          acc0 = hn::MulAdd(d0, d0, acc0);
          acc1 = hn::MulAdd(d1, d1, acc1);
        }
        if (j < stride) {
          const VF d0 = hn::NegMulAdd(hn::LoadU(df, b + j), LoadCodes(df, r + j), hn::LoadU(df, a + j));
          acc0 = hn::MulAdd(d0, d0, acc0);
        }
        out[i] = -hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
        break;
      }
      case simd::Metric::kIP: {
        size_t j = 0;
        for (; j + 2 * lanes <= stride; j += 2 * lanes) {
          acc0 = hn::MulAdd(hn::LoadU(df, a + j), LoadCodes(df, r + j), acc0);
          acc1 = hn::MulAdd(hn::LoadU(df, a + j + lanes), LoadCodes(df, r + j + lanes), acc1);
        }
        if (j < stride) acc0 = hn::MulAdd(hn::LoadU(df, a + j), LoadCodes(df, r + j), acc0);
        out[i] = q.base() + hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
        break;
      }
      case simd::Metric::kCosine: {
        VF xx = hn::Zero(df);
        for (size_t j = 0; j < stride; j += lanes) {
          const VF v = hn::MulAdd(hn::LoadU(df, b + j), LoadCodes(df, r + j), hn::LoadU(df, c + j));
          acc0 = hn::MulAdd(hn::LoadU(df, a + j), v, acc0);
          xx = hn::MulAdd(v, v, xx);
        }
        const float dot = hn::GetLane(hn::SumOfLanes(df, acc0));
        const float norm2 = hn::GetLane(hn::SumOfLanes(df, xx));
        out[i] = norm2 > 0 ? dot * q.inv_norm() / std::sqrt(norm2) : 0.0f;
        break;
      }
    }
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
