#include "util/crc32c.h"

#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <nmmintrin.h>
#define POMAI_CRC_X86 1
#endif

namespace pomai::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

uint32_t ExtendPortable(uint32_t crc, const uint8_t* p, size_t n) {
  const Tables& tb = GetTables();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    v ^= crc;
    crc = tb.t[7][v & 0xFF] ^ tb.t[6][(v >> 8) & 0xFF] ^ tb.t[5][(v >> 16) & 0xFF] ^ tb.t[4][(v >> 24) & 0xFF] ^
          tb.t[3][(v >> 32) & 0xFF] ^ tb.t[2][(v >> 40) & 0xFF] ^ tb.t[1][(v >> 48) & 0xFF] ^ tb.t[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ tb.t[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#ifdef POMAI_CRC_X86
// The crc32 instruction has a latency of 3 cycles and a throughput of 1, so
// one dependency chain runs at a third of the instruction's speed. Long
// inputs are cut into three interleaved streams whose CRCs are combined with
// "shift by L zero bytes" tables, as in Mark Adler's crc32c.c.
constexpr size_t kLong = 8192;
constexpr size_t kShort = 256;

struct ShiftTables {
  uint32_t long_t[4][256];
  uint32_t short_t[4][256];
};

// The raw CRC register after feeding `len` zero bytes to register `crc`.
__attribute__((target("sse4.2"))) uint32_t ZerosSse42(uint32_t crc, size_t len) {
  uint64_t c = crc;
  for (size_t i = 0; i < len; i += 8) c = _mm_crc32_u64(c, 0);
  return static_cast<uint32_t>(c);
}

const ShiftTables& GetShiftTables() {
  static const ShiftTables* tables = [] {
    auto* t = new ShiftTables;
    for (uint32_t b = 0; b < 256; ++b)
      for (int k = 0; k < 4; ++k) {
        t->long_t[k][b] = ZerosSse42(b << (8 * k), kLong);
        t->short_t[k][b] = ZerosSse42(b << (8 * k), kShort);
      }
    return t;
  }();
  return *tables;
}

inline uint32_t Shift(const uint32_t (&t)[4][256], uint32_t crc) {
  return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][crc >> 24];
}

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Three streams of `block` bytes each from p, combined into c0.
template <size_t kBlock>
__attribute__((target("sse4.2"))) inline uint64_t Interleaved(uint64_t c0, const uint8_t* p, const uint32_t (&t)[4][256]) {
  uint64_t c1 = 0, c2 = 0;
  for (size_t i = 0; i < kBlock; i += 8) {
    c0 = _mm_crc32_u64(c0, Load64(p + i));
    c1 = _mm_crc32_u64(c1, Load64(p + kBlock + i));
    c2 = _mm_crc32_u64(c2, Load64(p + 2 * kBlock + i));
  }
  c0 = Shift(t, static_cast<uint32_t>(c0)) ^ c1;
  return Shift(t, static_cast<uint32_t>(c0)) ^ c2;
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  if (n >= 3 * kShort) {
    const ShiftTables& t = GetShiftTables();
    while (n >= 3 * kLong) {
      c = Interleaved<kLong>(c, p, t.long_t);
      p += 3 * kLong;
      n -= 3 * kLong;
    }
    while (n >= 3 * kShort) {
      c = Interleaved<kShort>(c, p, t.short_t);
      p += 3 * kShort;
      n -= 3 * kShort;
    }
  }
  while (n >= 8) {
    c = _mm_crc32_u64(c, Load64(p));
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

bool CpuHasSse42() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_SSE4_2) != 0;
}
#endif

using ExtendFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

ExtendFn Choose() {
#ifdef POMAI_CRC_X86
  if (CpuHasSse42()) return ExtendSse42;
#endif
  return ExtendPortable;
}

const ExtendFn kExtend = Choose();

}  // namespace

uint32_t Extend(uint32_t init_crc, const void* data, size_t n) {
  return ~kExtend(~init_crc, static_cast<const uint8_t*>(data), n);
}

bool HardwareAccelerated() { return kExtend != ExtendPortable; }

uint32_t ExtendPortableForTesting(uint32_t init_crc, const void* data, size_t n) {
  return ~ExtendPortable(~init_crc, static_cast<const uint8_t*>(data), n);
}

}  // namespace pomai::crc32c
