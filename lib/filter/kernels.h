// SIMD kernels of the filter evaluator (Highway, chosen at run time): each
// turns n values into n bits, bit i of out[i / 64] for value i. Bits from n to
// the end of the last word are zero; out has (n + 63) / 64 words.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pomai::filter {

// lo <= v[i] <= hi (nothing passes when lo > hi).
void RangeBitsI64(const int64_t* v, size_t n, int64_t lo, int64_t hi, uint64_t* out);
void RangeBitsU64(const uint64_t* v, size_t n, uint64_t lo, uint64_t hi, uint64_t* out);
void RangeBitsU32(const uint32_t* v, size_t n, uint32_t lo, uint32_t hi, uint64_t* out);
// lo <= v[i] <= hi for doubles (v holds no NaN; lo and hi may be infinite).
void RangeBitsF64(const double* v, size_t n, double lo, double hi, uint64_t* out);
// v[i] != 0.
void NonZeroBits(const uint8_t* v, size_t n, uint64_t* out);
// Bit (v[i] - base) of `table` is set, for 0 <= v[i] - base < span (taken
// mod 2^64); `table` holds span / 64 words (span a multiple of 64).
void TableBitsI64(const int64_t* v, size_t n, int64_t base, const uint64_t* table, uint64_t span, uint64_t* out);

}  // namespace pomai::filter
