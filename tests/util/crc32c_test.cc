#include "util/crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pomai {
namespace {

TEST(Crc32c, MatchesPublishedCheckValues) {
  // RFC 3720 B.4 test vectors and the standard "123456789" check value.
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), inc(32);
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c::Value(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c::Value(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c::Value(inc.data(), 32), 0x46DD794Eu);
}

TEST(Crc32c, ExtendEqualsWholeValueAtEverySplit) {
  std::string s;
  for (int i = 0; i < 1000; ++i) s.push_back(static_cast<char>(i * 31 + 7));
  const uint32_t whole = crc32c::Value(s.data(), s.size());
  for (size_t split = 0; split <= s.size(); split += 37) {
    uint32_t a = crc32c::Value(s.data(), split);
    EXPECT_EQ(crc32c::Extend(a, s.data() + split, s.size() - split), whole) << split;
  }
}

TEST(Crc32c, DetectsEverySingleBitFlip) {
  std::string s(64, 'x');
  const uint32_t base = crc32c::Value(s.data(), s.size());
  for (size_t i = 0; i < s.size() * 8; ++i) {
    std::string t = s;
    t[i / 8] ^= static_cast<char>(1 << (i % 8));
    EXPECT_NE(crc32c::Value(t.data(), t.size()), base);
  }
}

// Long inputs take the three-stream path (blocks of 3 x 8 KiB, then 3 x 256
// bytes, then single words and bytes): every length class and misaligned
// starts must agree with the plain table-driven CRC.
TEST(Crc32c, InterleavedPathAgreesWithPortableAtEveryLengthClass) {
  std::vector<uint8_t> data(200000 + 16);
  uint32_t x = 12345;
  for (auto& b : data) {
    x = x * 1103515245u + 12345u;
    b = static_cast<uint8_t>(x >> 24);
  }
  const size_t lengths[] = {0, 1, 7, 8, 767, 768, 769, 1000, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1,
                            3 * 8192 + 3 * 256 + 9, 100000, 200000};
  for (size_t offset : {0, 1, 3, 8}) {
    for (size_t n : lengths) {
      EXPECT_EQ(crc32c::Value(data.data() + offset, n), crc32c::ExtendPortableForTesting(0, data.data() + offset, n))
          << "offset " << offset << " length " << n;
      EXPECT_EQ(crc32c::Extend(0xDEADBEEF, data.data() + offset, n),
                crc32c::ExtendPortableForTesting(0xDEADBEEF, data.data() + offset, n))
          << "offset " << offset << " length " << n;
    }
  }
}

}  // namespace
}  // namespace pomai
