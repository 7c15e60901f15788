// util/bitmap.h: every operation against a std::vector<bool> model, on sizes
// around word boundaries (the bits past size() stay zero).
#include "util/bitmap.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace pomai {
namespace {

std::vector<bool> Model(const Bitmap& b) {
  std::vector<bool> m(b.size());
  for (size_t i = 0; i < b.size(); ++i) m[i] = b.Get(i);
  return m;
}

// The bits past size() in the last word are zero.
void ExpectCleanTail(const Bitmap& b) {
  if (b.size() % 64 != 0) EXPECT_EQ(b.words()[b.word_count() - 1] >> (b.size() % 64), 0u);
}

TEST(Bitmap, OperationsMatchAModelAtEverySizeAroundWordBoundaries) {
  std::mt19937_64 rng(7);
  for (size_t n : {0, 1, 63, 64, 65, 127, 128, 129, 1000}) {
    SCOPED_TRACE(n);
    Bitmap a(n), b(n, true);
    EXPECT_EQ(b.Count(), n);
    ExpectCleanTail(b);
    std::vector<bool> ma(n, false), mb(n, true);
    for (size_t i = 0; i < n; ++i) {
      if (rng() % 3 == 0) {
        a.Set(i);
        ma[i] = true;
      }
      if (rng() % 4 == 0) {
        b.Assign(i, false);
        mb[i] = false;
      }
    }
    EXPECT_EQ(Model(a), ma);
    Bitmap x = a;
    x.And(b);
    Bitmap y = a;
    y.Or(b);
    Bitmap z = a;
    z.AndNot(b);
    Bitmap w = a;
    w.Not();
    size_t count = 0;
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(x.Get(i), ma[i] && mb[i]);
      EXPECT_EQ(y.Get(i), ma[i] || mb[i]);
      EXPECT_EQ(z.Get(i), ma[i] && !mb[i]);
      EXPECT_EQ(w.Get(i), !ma[i]);
      count += ma[i];
    }
    ExpectCleanTail(w);
    EXPECT_EQ(a.Count(), count);
    std::vector<size_t> seen;
    a.ForEach([&](size_t i) { seen.push_back(i); });
    std::vector<size_t> want;
    for (size_t i = 0; i < n; ++i)
      if (ma[i]) want.push_back(i);
    EXPECT_EQ(seen, want);
    // Every range [lo, hi), including empty ones and ones inside one word.
    for (size_t lo = 0; lo <= n; lo += 1 + lo / 3) {
      for (size_t hi = lo; hi <= n; hi += 1 + hi / 5) {
        std::vector<size_t> in, want_in;
        a.ForEachIn(lo, hi, [&](size_t i) { in.push_back(i); });
        for (size_t i = lo; i < hi; ++i)
          if (ma[i]) want_in.push_back(i);
        ASSERT_EQ(in, want_in) << lo << ".." << hi;
      }
    }
  }
}

}  // namespace
}  // namespace pomai
