// Distance kernels, compiled once per Highway target (foreach_target.h
// re-includes this file) and chosen at run time by HWY_DYNAMIC_DISPATCH.
//
// Shape of the kernels: the rows are scored four at a time so that each query
// vector load serves four rows, with two accumulators per row for IP and L2
// (eight independent FMA chains) and a dot and a norm accumulator per row for
// cosine (two of each where there are 32 vector registers). Four-row sums are
// reduced together by one transpose-and-add. The last partial vector of a row is handled by reloading the
// last full vector of the row, [dim - N, dim), and zeroing the lanes already
// counted, so nothing past dim is ever read; rows shorter than one vector use
// plain scalar loops.
#include "simd/distance.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd/distance.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/cache_control.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace pomai::simd {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using MF = hn::Mask<DF>;

// Per-metric accumulation step for the metrics with one sum per row.
struct DotOp {
  static HWY_INLINE VF Step(VF q, VF r, VF acc) { return hn::MulAdd(q, r, acc); }
  static HWY_INLINE float Finish(float sum) { return sum; }
  template <class V>
  static HWY_INLINE V FinishVec(V sums) {
    return sums;
  }
};

struct L2Op {
  static HWY_INLINE VF Step(VF q, VF r, VF acc) {
    const VF diff = hn::Sub(q, r);
    return hn::MulAdd(diff, diff, acc);
  }
  static HWY_INLINE float Finish(float sum) { return -sum; }
  template <class V>
  static HWY_INLINE V FinishVec(V sums) {
    return hn::Neg(sums);
  }
};

HWY_INLINE float SumLanes(DF d, VF v) { return hn::GetLane(hn::SumOfLanes(d, v)); }

#if !HWY_HAVE_SCALABLE && HWY_TARGET != HWY_SCALAR
// Sums the lanes of a fixed-size vector into its first 128-bit block.
template <class D>
HWY_INLINE hn::Vec<hn::Full128<float>> FoldToBlock(D d, hn::Vec<D> v) {
  if constexpr (hn::MaxLanes(d) <= 4) {
    return v;
  } else {
    const hn::Half<D> dh;
    return FoldToBlock(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  }
}
#endif

#undef POMAI_SIMD_SUM4_VECTOR
#if !HWY_HAVE_SCALABLE && HWY_TARGET != HWY_SCALAR
#define POMAI_SIMD_SUM4_VECTOR 1
using D4 = hn::Full128<float>;

// Lane k = sum of the lanes of the k-th vector. One transposing reduction
// instead of four SumOfLanes: at 128-d the reductions would otherwise cost
// about as much as the FMAs.
HWY_INLINE hn::Vec<D4> Sum4(DF d, VF a, VF b, VF c, VF e) {
  // Within each 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, e.
  const VF ab = hn::Add(hn::InterleaveLower(d, a, b), hn::InterleaveUpper(d, a, b));
  const VF ce = hn::Add(hn::InterleaveLower(d, c, e), hn::InterleaveUpper(d, c, e));
  const hn::Repartition<uint64_t, DF> d64;
  const VF lo = hn::BitCast(d, hn::InterleaveLower(d64, hn::BitCast(d64, ab), hn::BitCast(d64, ce)));
  const VF hi = hn::BitCast(d, hn::InterleaveUpper(d64, hn::BitCast(d64, ab), hn::BitCast(d64, ce)));
  return FoldToBlock(d, hn::Add(lo, hi));
}
#else
#define POMAI_SIMD_SUM4_VECTOR 0
// out4[k] = sum of the lanes of the k-th vector.
HWY_INLINE void Sum4(DF d, VF a, VF b, VF c, VF e, float* HWY_RESTRICT out4) {
  out4[0] = SumLanes(d, a);
  out4[1] = SumLanes(d, b);
  out4[2] = SumLanes(d, c);
  out4[3] = SumLanes(d, e);
}
#endif

// What a kernel needs to score rows of `dim` >= Lanes(d) floats against q.
struct Query {
  const float* HWY_RESTRICT q;
  size_t dim;
  size_t tail_off;  // dim - Lanes(d): start of the last full vector of a row.
  bool has_tail;    // dim is not a multiple of Lanes(d).
};

// Lanes of the last full vector that the main loop already counted.
HWY_INLINE MF CountedLanes(DF d, const Query& qy) {
  const size_t n = hn::Lanes(d);
  return hn::FirstN(d, n - qy.dim % n);
}

// The last vector of a row, with the lanes already counted set to zero.
HWY_INLINE VF LoadTail(DF d, MF counted, const float* HWY_RESTRICT p, const Query& qy) {
  return hn::IfThenZeroElse(counted, hn::LoadU(d, p + qy.tail_off));
}

// Sums Op over four rows.
template <class Op>
HWY_INLINE void Rows4(DF d, const Query& qy, const float* HWY_RESTRICT r0, const float* HWY_RESTRICT r1,
                      const float* HWY_RESTRICT r2, const float* HWY_RESTRICT r3, float* HWY_RESTRICT out4) {
  const size_t n = hn::Lanes(d);
  const float* HWY_RESTRICT q = qy.q;
  const size_t dim = qy.dim;
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  VF b0 = hn::Zero(d), b1 = hn::Zero(d), b2 = hn::Zero(d), b3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * n <= dim; i += 2 * n) {
    const VF qa = hn::LoadU(d, q + i);
    const VF qb = hn::LoadU(d, q + i + n);
    a0 = Op::Step(qa, hn::LoadU(d, r0 + i), a0);
    a1 = Op::Step(qa, hn::LoadU(d, r1 + i), a1);
    a2 = Op::Step(qa, hn::LoadU(d, r2 + i), a2);
    a3 = Op::Step(qa, hn::LoadU(d, r3 + i), a3);
    b0 = Op::Step(qb, hn::LoadU(d, r0 + i + n), b0);
    b1 = Op::Step(qb, hn::LoadU(d, r1 + i + n), b1);
    b2 = Op::Step(qb, hn::LoadU(d, r2 + i + n), b2);
    b3 = Op::Step(qb, hn::LoadU(d, r3 + i + n), b3);
  }
  if (i + n <= dim) {
    const VF qa = hn::LoadU(d, q + i);
    a0 = Op::Step(qa, hn::LoadU(d, r0 + i), a0);
    a1 = Op::Step(qa, hn::LoadU(d, r1 + i), a1);
    a2 = Op::Step(qa, hn::LoadU(d, r2 + i), a2);
    a3 = Op::Step(qa, hn::LoadU(d, r3 + i), a3);
  }
  if (qy.has_tail) {
    const MF counted = CountedLanes(d, qy);
    const VF qt = LoadTail(d, counted, q, qy);
    b0 = Op::Step(qt, LoadTail(d, counted, r0, qy), b0);
    b1 = Op::Step(qt, LoadTail(d, counted, r1, qy), b1);
    b2 = Op::Step(qt, LoadTail(d, counted, r2, qy), b2);
    b3 = Op::Step(qt, LoadTail(d, counted, r3, qy), b3);
  }
#if POMAI_SIMD_SUM4_VECTOR
  hn::StoreU(Op::FinishVec(Sum4(d, hn::Add(a0, b0), hn::Add(a1, b1), hn::Add(a2, b2), hn::Add(a3, b3))), D4(),
             out4);
#else
  float sums[4];
  Sum4(d, hn::Add(a0, b0), hn::Add(a1, b1), hn::Add(a2, b2), hn::Add(a3, b3), sums);
  for (int k = 0; k < 4; ++k) out4[k] = Op::Finish(sums[k]);
#endif
}

// Sums Op over one row, with four accumulators.
template <class Op>
HWY_INLINE float Row1(DF d, const Query& qy, const float* HWY_RESTRICT r) {
  const size_t n = hn::Lanes(d);
  const float* HWY_RESTRICT q = qy.q;
  const size_t dim = qy.dim;
  VF a = hn::Zero(d), b = hn::Zero(d), c = hn::Zero(d), e = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * n <= dim; i += 4 * n) {
    a = Op::Step(hn::LoadU(d, q + i), hn::LoadU(d, r + i), a);
    b = Op::Step(hn::LoadU(d, q + i + n), hn::LoadU(d, r + i + n), b);
    c = Op::Step(hn::LoadU(d, q + i + 2 * n), hn::LoadU(d, r + i + 2 * n), c);
    e = Op::Step(hn::LoadU(d, q + i + 3 * n), hn::LoadU(d, r + i + 3 * n), e);
  }
  for (; i + n <= dim; i += n) a = Op::Step(hn::LoadU(d, q + i), hn::LoadU(d, r + i), a);
  if (qy.has_tail) {
    const MF counted = CountedLanes(d, qy);
    b = Op::Step(LoadTail(d, counted, q, qy), LoadTail(d, counted, r, qy), b);
  }
  return Op::Finish(SumLanes(d, hn::Add(hn::Add(a, b), hn::Add(c, e))));
}

HWY_INLINE float CosineFinish(float dot, float inv_qnorm, float rr) {
  return rr > 0.0f ? dot * inv_qnorm / std::sqrt(rr) : 0.0f;
}

// Targets with 32 vector registers afford 16 cosine accumulators; with 16
// registers, 8 accumulators plus operands already fill the register file.
constexpr bool kWideCosine = HWY_ARCH_ARM || (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3);

// Adds one vector of q . r and r . r for four rows, at offset i.
HWY_INLINE void CosineStep4(DF d, VF qv, const float* HWY_RESTRICT r0, const float* HWY_RESTRICT r1,
                            const float* HWY_RESTRICT r2, const float* HWY_RESTRICT r3, size_t i, VF& d0, VF& d1,
                            VF& d2, VF& d3, VF& s0, VF& s1, VF& s2, VF& s3) {
  const VF v0 = hn::LoadU(d, r0 + i);
  const VF v1 = hn::LoadU(d, r1 + i);
  const VF v2 = hn::LoadU(d, r2 + i);
  const VF v3 = hn::LoadU(d, r3 + i);
  d0 = hn::MulAdd(qv, v0, d0);
  d1 = hn::MulAdd(qv, v1, d1);
  d2 = hn::MulAdd(qv, v2, d2);
  d3 = hn::MulAdd(qv, v3, d3);
  s0 = hn::MulAdd(v0, v0, s0);
  s1 = hn::MulAdd(v1, v1, s1);
  s2 = hn::MulAdd(v2, v2, s2);
  s3 = hn::MulAdd(v3, v3, s3);
}

// Cosine of four rows: dot(q, r) and |r|^2 in the same pass.
HWY_INLINE void CosineRows4(DF d, const Query& qy, float inv_qnorm, const float* HWY_RESTRICT r0,
                            const float* HWY_RESTRICT r1, const float* HWY_RESTRICT r2,
                            const float* HWY_RESTRICT r3, float* HWY_RESTRICT out4) {
  const size_t n = hn::Lanes(d);
  const float* HWY_RESTRICT q = qy.q;
  const size_t dim = qy.dim;
  VF d0 = hn::Zero(d), d1 = hn::Zero(d), d2 = hn::Zero(d), d3 = hn::Zero(d);
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  if constexpr (kWideCosine) {
    VF e0 = hn::Zero(d), e1 = hn::Zero(d), e2 = hn::Zero(d), e3 = hn::Zero(d);
    VF t0 = hn::Zero(d), t1 = hn::Zero(d), t2 = hn::Zero(d), t3 = hn::Zero(d);
    for (; i + 2 * n <= dim; i += 2 * n) {
      CosineStep4(d, hn::LoadU(d, q + i), r0, r1, r2, r3, i, d0, d1, d2, d3, s0, s1, s2, s3);
      CosineStep4(d, hn::LoadU(d, q + i + n), r0, r1, r2, r3, i + n, e0, e1, e2, e3, t0, t1, t2, t3);
    }
    d0 = hn::Add(d0, e0), d1 = hn::Add(d1, e1), d2 = hn::Add(d2, e2), d3 = hn::Add(d3, e3);
    s0 = hn::Add(s0, t0), s1 = hn::Add(s1, t1), s2 = hn::Add(s2, t2), s3 = hn::Add(s3, t3);
  }
  for (; i + n <= dim; i += n) {
    CosineStep4(d, hn::LoadU(d, q + i), r0, r1, r2, r3, i, d0, d1, d2, d3, s0, s1, s2, s3);
  }
  if (qy.has_tail) {
    const MF counted = CountedLanes(d, qy);
    const VF qt = LoadTail(d, counted, q, qy);
    const VF v0 = LoadTail(d, counted, r0, qy);
    const VF v1 = LoadTail(d, counted, r1, qy);
    const VF v2 = LoadTail(d, counted, r2, qy);
    const VF v3 = LoadTail(d, counted, r3, qy);
    d0 = hn::MulAdd(qt, v0, d0);
    d1 = hn::MulAdd(qt, v1, d1);
    d2 = hn::MulAdd(qt, v2, d2);
    d3 = hn::MulAdd(qt, v3, d3);
    s0 = hn::MulAdd(v0, v0, s0);
    s1 = hn::MulAdd(v1, v1, s1);
    s2 = hn::MulAdd(v2, v2, s2);
    s3 = hn::MulAdd(v3, v3, s3);
  }
#if POMAI_SIMD_SUM4_VECTOR
  // One vector sqrt and divide for four rows: scalar ones would keep the
  // divider busy longer than the FMAs at 128-d.
  const D4 d4;
  const hn::Vec<D4> dots = Sum4(d, d0, d1, d2, d3);
  const hn::Vec<D4> norms = Sum4(d, s0, s1, s2, s3);
  const hn::Vec<D4> cosines = hn::Div(hn::Mul(dots, hn::Set(d4, inv_qnorm)), hn::Sqrt(norms));
  hn::StoreU(hn::IfThenElseZero(hn::Gt(norms, hn::Zero(d4)), cosines), d4, out4);
#else
  float dots[4], norms[4];
  Sum4(d, d0, d1, d2, d3, dots);
  Sum4(d, s0, s1, s2, s3, norms);
  for (int k = 0; k < 4; ++k) out4[k] = CosineFinish(dots[k], inv_qnorm, norms[k]);
#endif
}

HWY_INLINE float CosineRow1(DF d, const Query& qy, float inv_qnorm, const float* HWY_RESTRICT r) {
  const size_t n = hn::Lanes(d);
  const float* HWY_RESTRICT q = qy.q;
  const size_t dim = qy.dim;
  VF da = hn::Zero(d), db = hn::Zero(d), sa = hn::Zero(d), sb = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * n <= dim; i += 2 * n) {
    const VF va = hn::LoadU(d, r + i);
    const VF vb = hn::LoadU(d, r + i + n);
    da = hn::MulAdd(hn::LoadU(d, q + i), va, da);
    db = hn::MulAdd(hn::LoadU(d, q + i + n), vb, db);
    sa = hn::MulAdd(va, va, sa);
    sb = hn::MulAdd(vb, vb, sb);
  }
  if (i + n <= dim) {
    const VF va = hn::LoadU(d, r + i);
    da = hn::MulAdd(hn::LoadU(d, q + i), va, da);
    sa = hn::MulAdd(va, va, sa);
  }
  if (qy.has_tail) {
    const MF counted = CountedLanes(d, qy);
    const VF vb = LoadTail(d, counted, r, qy);
    db = hn::MulAdd(LoadTail(d, counted, q, qy), vb, db);
    sb = hn::MulAdd(vb, vb, sb);
  }
  return CosineFinish(SumLanes(d, hn::Add(da, db)), inv_qnorm, SumLanes(d, hn::Add(sa, sb)));
}

// Rows at base + i * stride.
struct StridedRows {
  const float* base;
  size_t stride;
  HWY_INLINE const float* operator[](size_t i) const { return base + i * stride; }
  HWY_INLINE void Prefetch(size_t /*i*/) const {}  // Sequential: the hardware prefetcher does it.
};

// Rows given by pointers, scattered in memory (graph walks).
struct GatheredRows {
  const float* const* rows;
  size_t n;
  size_t row_bytes;
  HWY_INLINE const float* operator[](size_t i) const { return rows[i]; }
  // Starts loading the first lines of row i; the hardware prefetcher follows
  // the rest once the row is being read.
  HWY_INLINE void Prefetch(size_t i) const {
    if (i >= n) return;
    const char* p = reinterpret_cast<const char*>(rows[i]);
    const size_t bytes = row_bytes < 256 ? row_bytes : 256;
    for (size_t b = 0; b < bytes; b += 64) hwy::Prefetch(p + b);
  }
};

// Rows shorter than one vector (and dim 0): the reference loops.
template <class Rows>
HWY_INLINE void ScoreShortRows(Metric metric, const float* HWY_RESTRICT q, const Rows& rows, size_t n,
                               size_t dim, float* HWY_RESTRICT out) {
  for (size_t i = 0; i < n; ++i) {
    const float* HWY_RESTRICT r = rows[i];
    float dot = 0.0f, rr = 0.0f, qq = 0.0f, l2 = 0.0f;
    for (size_t j = 0; j < dim; ++j) {
      dot += q[j] * r[j];
      rr += r[j] * r[j];
      qq += q[j] * q[j];
      l2 += (q[j] - r[j]) * (q[j] - r[j]);
    }
    switch (metric) {
      case Metric::kL2: out[i] = -l2; break;
      case Metric::kIP: out[i] = dot; break;
      case Metric::kCosine:
        out[i] = (qq > 0.0f && rr > 0.0f) ? dot / (std::sqrt(qq) * std::sqrt(rr)) : 0.0f;
        break;
    }
  }
}

template <class Op, class Rows>
HWY_INLINE void ScoreRows(DF d, const Query& qy, const Rows& rows, size_t n, float* HWY_RESTRICT out) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 4; k < 8; ++k) rows.Prefetch(i + k);
    Rows4<Op>(d, qy, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], out + i);
  }
  for (; i < n; ++i) {
    rows.Prefetch(i + 1);
    out[i] = Row1<Op>(d, qy, rows[i]);
  }
}

template <class Rows>
HWY_INLINE void ScoreRowsCosine(DF d, const Query& qy, const Rows& rows, size_t n, float* HWY_RESTRICT out) {
  const float qq = Row1<DotOp>(d, qy, qy.q);
  if (!(qq > 0.0f)) {
    for (size_t i = 0; i < n; ++i) out[i] = 0.0f;
    return;
  }
  const float inv_qnorm = 1.0f / std::sqrt(qq);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 4; k < 8; ++k) rows.Prefetch(i + k);
    CosineRows4(d, qy, inv_qnorm, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], out + i);
  }
  for (; i < n; ++i) {
    rows.Prefetch(i + 1);
    out[i] = CosineRow1(d, qy, inv_qnorm, rows[i]);
  }
}

template <class Rows>
HWY_INLINE void ScoreAll(Metric metric, const float* HWY_RESTRICT q, const Rows& rows, size_t n, size_t dim,
                      float* HWY_RESTRICT out) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  if (n == 0) return;
  if (dim < lanes) {
    ScoreShortRows(metric, q, rows, n, dim, out);
    return;
  }
  const Query qy{q, dim, dim - lanes, dim % lanes != 0};
  switch (metric) {
    case Metric::kL2: ScoreRows<L2Op>(d, qy, rows, n, out); break;
    case Metric::kIP: ScoreRows<DotOp>(d, qy, rows, n, out); break;
    case Metric::kCosine: ScoreRowsCosine(d, qy, rows, n, out); break;
  }
}

}  // namespace

void ScoreManyImpl(Metric metric, const float* query, const float* rows, size_t n, size_t dim, size_t stride,
                   float* out) {
  ScoreAll(metric, query, StridedRows{rows, stride}, n, dim, out);
}

void ScoreGatherImpl(Metric metric, const float* query, const float* const* rows, size_t n, size_t dim,
                     float* out) {
  ScoreAll(metric, query, GatheredRows{rows, n, dim * sizeof(float)}, n, dim, out);
}

size_t FirstNonFiniteImpl(const float* v, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::RebindToUnsigned<decltype(df)> du;
  const size_t N = hn::Lanes(df);
  // A float is NaN or infinite exactly when its exponent bits are all ones.
  const auto exp = hn::Set(du, 0x7f800000u);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const auto a = hn::And(hn::BitCast(du, hn::LoadU(df, v + i)), exp);
    const auto b = hn::And(hn::BitCast(du, hn::LoadU(df, v + i + N)), exp);
    const auto c = hn::And(hn::BitCast(du, hn::LoadU(df, v + i + 2 * N)), exp);
    const auto d = hn::And(hn::BitCast(du, hn::LoadU(df, v + i + 3 * N)), exp);
    const auto bad = hn::Or(hn::Or(hn::Eq(a, exp), hn::Eq(b, exp)), hn::Or(hn::Eq(c, exp), hn::Eq(d, exp)));
    if (!hn::AllFalse(du, bad)) break;  // the scalar loop below finds which one
  }
  for (; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, 4);
    if ((bits & 0x7f800000u) == 0x7f800000u) return i;
  }
  return n;
}

size_t FirstRowOutOfRangeImpl(const float* rows, size_t n, size_t dim) {
  const DF d;
  const size_t N = hn::Lanes(d);
  for (size_t r = 0; r < n; ++r) {
    const float* HWY_RESTRICT v = rows + r * dim;
    VF a0 = hn::Zero(d), a1 = hn::Zero(d);
    size_t j = 0;
    for (; j + 2 * N <= dim; j += 2 * N) {
      const VF x = hn::LoadU(d, v + j), y = hn::LoadU(d, v + j + N);
      a0 = hn::MulAdd(x, x, a0);
      a1 = hn::MulAdd(y, y, a1);
    }
    float sum = SumLanes(d, hn::Add(a0, a1));
    for (; j < dim; ++j) sum += v[j] * v[j];
    // NaN and infinity fail the comparison too.
    if (!(sum <= kMaxSquaredNorm)) return r;
  }
  return n;
}

int64_t TargetImpl() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace pomai::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pomai::simd {

HWY_EXPORT(ScoreManyImpl);
HWY_EXPORT(ScoreGatherImpl);
HWY_EXPORT(TargetImpl);
HWY_EXPORT(FirstNonFiniteImpl);
HWY_EXPORT(FirstRowOutOfRangeImpl);

size_t FirstNonFinite(const float* v, size_t n) { return HWY_DYNAMIC_DISPATCH(FirstNonFiniteImpl)(v, n); }

size_t FirstRowOutOfRange(const float* rows, size_t n, size_t dim) {
  return HWY_DYNAMIC_DISPATCH(FirstRowOutOfRangeImpl)(rows, n, dim);
}

std::string RowRangeError(const float* row, size_t dim) {
  if (const size_t k = FirstNonFinite(row, dim); k < dim)
    return "has a non-finite value " + std::to_string(row[k]) + " at component " + std::to_string(k);
  double sum = 0;
  for (size_t j = 0; j < dim; ++j) sum += static_cast<double>(row[j]) * row[j];
  return "has a squared norm of " + std::to_string(sum) + ", above the limit " + std::to_string(kMaxSquaredNorm) +
         " (a quarter of the float32 maximum, so that every score stays finite)";
}

void ScoreMany(Metric metric, const float* query, const float* rows, size_t n, size_t dim, size_t stride,
               float* out) {
  HWY_DYNAMIC_DISPATCH(ScoreManyImpl)(metric, query, rows, n, dim, stride, out);
}

void ScoreGather(Metric metric, const float* query, const float* const* rows, size_t n, size_t dim, float* out) {
  HWY_DYNAMIC_DISPATCH(ScoreGatherImpl)(metric, query, rows, n, dim, out);
}

float Score(Metric metric, const float* a, const float* b, size_t dim) {
  float out = 0.0f;
  HWY_DYNAMIC_DISPATCH(ScoreManyImpl)(metric, a, b, 1, dim, dim, &out);
  return out;
}

float Dot(const float* a, const float* b, size_t dim) { return Score(Metric::kIP, a, b, dim); }

float L2Squared(const float* a, const float* b, size_t dim) { return -Score(Metric::kL2, a, b, dim); }

float ScalarScore(Metric metric, const float* a, const float* b, size_t dim) {
  switch (metric) {
    case Metric::kL2: {
      float sum = 0.0f;
      for (size_t i = 0; i < dim; ++i) {
        const float diff = a[i] - b[i];
        sum += diff * diff;
      }
      return -sum;
    }
    case Metric::kIP: {
      float sum = 0.0f;
      for (size_t i = 0; i < dim; ++i) sum += a[i] * b[i];
      return sum;
    }
    case Metric::kCosine: {
      float dot = 0.0f, aa = 0.0f, bb = 0.0f;
      for (size_t i = 0; i < dim; ++i) {
        dot += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
      }
      return (aa > 0.0f && bb > 0.0f) ? dot / (std::sqrt(aa) * std::sqrt(bb)) : 0.0f;
    }
  }
  return 0.0f;
}

const char* TargetName() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(TargetImpl)()); }

std::vector<int64_t> SupportedTargets() {
  std::vector<int64_t> targets;
  for (int64_t bits = hwy::SupportedTargets() & HWY_TARGETS; bits != 0; bits &= bits - 1) {
    targets.push_back(bits & -bits);
  }
  return targets;
}

std::string TargetNameOf(int64_t target) { return hwy::TargetName(target); }

void ForceTargetForTesting(int64_t target) { hwy::SetSupportedTargetsForTest(target); }

}  // namespace pomai::simd
#endif  // HWY_ONCE
