// Little-endian fixed-width encoding, independent of the host byte order.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace pomai {

inline void EncodeFixed32(uint8_t* dst, uint32_t v) {
  for (int i = 0; i < 4; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void EncodeFixed64(uint8_t* dst, uint64_t v) {
  for (int i = 0; i < 8; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t DecodeFixed32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
inline uint64_t DecodeFixed64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

inline void PutFixed32(std::string* dst, uint32_t v) {
  uint8_t b[4];
  EncodeFixed32(b, v);
  dst->append(reinterpret_cast<const char*>(b), 4);
}
inline void PutFixed64(std::string* dst, uint64_t v) {
  uint8_t b[8];
  EncodeFixed64(b, v);
  dst->append(reinterpret_cast<const char*>(b), 8);
}
inline void PutBytes(std::string* dst, const void* p, size_t n) { dst->append(static_cast<const char*>(p), n); }

// Sequential decoder over a byte range that never reads past its end: every
// Get* returns false (and leaves the output unchanged) when too few bytes remain.
class Decoder {
 public:
  Decoder(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* pos() const { return p_; }
  bool GetFixed32(uint32_t* v) {
    if (remaining() < 4) return false;
    *v = DecodeFixed32(p_);
    p_ += 4;
    return true;
  }
  bool GetFixed64(uint64_t* v) {
    if (remaining() < 8) return false;
    *v = DecodeFixed64(p_);
    p_ += 8;
    return true;
  }
  bool GetU8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = *p_++;
    return true;
  }
  // Points *out at the next n bytes (no copy) and skips them.
  bool GetBytes(size_t n, const uint8_t** out) {
    if (remaining() < n) return false;
    *out = p_;
    p_ += n;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Checked arithmetic for sizes read from files.
inline bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }
inline bool AddOverflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }

}  // namespace pomai
