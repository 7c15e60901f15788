// The filter's SIMD kernels, compiled once per Highway target (foreach_target.h
// re-includes this file) and chosen at run time by HWY_DYNAMIC_DISPATCH. Each
// output word is built from 64 / N vector compares, N lanes at a time (lanes
// capped at 64 so a compare never spans two words); the last partial word is
// done by a scalar loop.
#include "filter/kernels.h"

#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "filter/kernels.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace pomai::filter {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;

// The mask's lanes as the low bits of a word.
template <class D, class M>
HWY_INLINE uint64_t MaskWord(D d, M m) {
  uint8_t bytes[8] = {0};
  hn::StoreMaskBits(d, m, bytes);
  uint64_t w;
  std::memcpy(&w, bytes, 8);
  return w;
}

// out words for n values: bit = pass(value); `fail` builds the mask of lanes
// that do NOT pass (the unsigned compares are cheapest that way round).
template <class T, class D, class FailVec, class PassScalar>
HWY_INLINE void Bits(D d, const T* HWY_RESTRICT v, size_t n, uint64_t* HWY_RESTRICT out, FailVec fail,
                     PassScalar pass) {
  const size_t N = hn::Lanes(d);
  const size_t full = n / 64;
  for (size_t w = 0; w < full; ++w) {
    const T* p = v + w * 64;
    uint64_t failed = 0;
    for (size_t i = 0; i < 64; i += N) failed |= MaskWord(d, fail(hn::LoadU(d, p + i))) << i;
    out[w] = ~failed;
  }
  if (n % 64 != 0) {
    uint64_t word = 0;
    for (size_t i = full * 64; i < n; ++i) word |= static_cast<uint64_t>(pass(v[i])) << (i % 64);
    out[full] = word;
  }
}

// (v - lo) <= (hi - lo) as unsigned: lo <= v <= hi for lo <= hi.
template <class T>
HWY_INLINE void URange(const T* HWY_RESTRICT v, size_t n, T lo, T span, uint64_t* HWY_RESTRICT out) {
  const hn::CappedTag<T, 64> d;
  const auto vlo = hn::Set(d, lo);
  const auto vspan = hn::Set(d, span);
  Bits(d, v, n, out, [&](auto x) { return hn::Sub(x, vlo) > vspan; },
       [&](T x) { return static_cast<T>(x - lo) <= span; });
}

}  // namespace

void RangeBitsU64Impl(const uint64_t* v, size_t n, uint64_t lo, uint64_t hi, uint64_t* out) {
  URange<uint64_t>(v, n, lo, hi - lo, out);
}

void RangeBitsU32Impl(const uint32_t* v, size_t n, uint32_t lo, uint32_t hi, uint64_t* out) {
  URange<uint32_t>(v, n, lo, hi - lo, out);
}

void RangeBitsF64Impl(const double* v, size_t n, double lo, double hi, uint64_t* out) {
  const hn::CappedTag<double, 64> d;
  const auto vlo = hn::Set(d, lo);
  const auto vhi = hn::Set(d, hi);
  Bits(d, v, n, out, [&](auto x) { return hn::Or(x < vlo, x > vhi); },
       [&](double x) { return lo <= x && x <= hi; });
}

void TableBitsU64Impl(const uint64_t* v, size_t n, uint64_t base, const uint64_t* table, uint64_t span,
                      uint64_t* out) {
  const hn::CappedTag<uint64_t, 64> d;
  const hn::RebindToSigned<decltype(d)> di;
  const auto vbase = hn::Set(d, base);
  const auto vspan = hn::Set(d, span);
  const auto low6 = hn::Set(d, 63);
  const auto zero = hn::Zero(d);
  Bits(d, v, n, out,
       [&](auto x) {
         const auto b = hn::Sub(x, vbase);
         const auto in = b < vspan;
         // Lanes outside the span read word 0 (any word: they fail anyway).
         const auto word = hn::GatherIndex(d, table, hn::BitCast(di, hn::IfThenElseZero(in, hn::ShiftRight<6>(b))));
         const auto bit = hn::And(hn::Shr(word, hn::And(b, low6)), hn::Set(d, 1));
         return hn::Or(hn::Not(in), bit == zero);
       },
       [&](uint64_t x) {
         const uint64_t b = x - base;
         return b < span && ((table[b / 64] >> (b % 64)) & 1) != 0;
       });
}

void NonZeroBitsImpl(const uint8_t* v, size_t n, uint64_t* out) {
  const hn::CappedTag<uint8_t, 64> d;
  const auto zero = hn::Zero(d);
  Bits(d, v, n, out, [&](auto x) { return x == zero; }, [](uint8_t x) { return x != 0; });
}

}  // namespace HWY_NAMESPACE
}  // namespace pomai::filter
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pomai::filter {

HWY_EXPORT(RangeBitsU64Impl);
HWY_EXPORT(RangeBitsU32Impl);
HWY_EXPORT(RangeBitsF64Impl);
HWY_EXPORT(NonZeroBitsImpl);
HWY_EXPORT(TableBitsU64Impl);

namespace {
void Zero(size_t n, uint64_t* out) { std::memset(out, 0, (n + 63) / 64 * sizeof(uint64_t)); }
}  // namespace

void RangeBitsI64(const int64_t* v, size_t n, int64_t lo, int64_t hi, uint64_t* out) {
  if (lo > hi) return Zero(n, out);
  // v - lo taken mod 2^64 is in [0, hi - lo] exactly when lo <= v <= hi.
  HWY_DYNAMIC_DISPATCH(RangeBitsU64Impl)(reinterpret_cast<const uint64_t*>(v), n, static_cast<uint64_t>(lo),
                                         static_cast<uint64_t>(hi), out);
}

void RangeBitsU64(const uint64_t* v, size_t n, uint64_t lo, uint64_t hi, uint64_t* out) {
  if (lo > hi) return Zero(n, out);
  HWY_DYNAMIC_DISPATCH(RangeBitsU64Impl)(v, n, lo, hi, out);
}

void RangeBitsU32(const uint32_t* v, size_t n, uint32_t lo, uint32_t hi, uint64_t* out) {
  if (lo > hi) return Zero(n, out);
  HWY_DYNAMIC_DISPATCH(RangeBitsU32Impl)(v, n, lo, hi, out);
}

void RangeBitsF64(const double* v, size_t n, double lo, double hi, uint64_t* out) {
  if (!(lo <= hi)) return Zero(n, out);
  HWY_DYNAMIC_DISPATCH(RangeBitsF64Impl)(v, n, lo, hi, out);
}

void NonZeroBits(const uint8_t* v, size_t n, uint64_t* out) { HWY_DYNAMIC_DISPATCH(NonZeroBitsImpl)(v, n, out); }

void TableBitsI64(const int64_t* v, size_t n, int64_t base, const uint64_t* table, uint64_t span, uint64_t* out) {
  HWY_DYNAMIC_DISPATCH(TableBitsU64Impl)(reinterpret_cast<const uint64_t*>(v), n, static_cast<uint64_t>(base), table,
                                         span, out);
}

}  // namespace pomai::filter
#endif  // HWY_ONCE
