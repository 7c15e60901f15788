#include "simd/distance.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace pomai::simd {
namespace {

constexpr Metric kMetrics[] = {Metric::kL2, Metric::kIP, Metric::kCosine};

// Every dim from 1 to 70 (all tail lengths for every lane count up to 16, and
// rows shorter than one vector) plus the dims real embeddings have.
std::vector<size_t> TestDims() {
  std::vector<size_t> dims;
  for (size_t d = 1; d <= 70; ++d) dims.push_back(d);
  for (size_t d : {96, 128, 384, 768, 960, 1536}) dims.push_back(d);
  return dims;
}

// `count` floats whose last one sits just before an inaccessible page, so any
// read past the end faults, with or without a sanitizer.
class GuardedFloats {
 public:
  explicit GuardedFloats(size_t count) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t bytes = (count * sizeof(float) + page - 1) / page * page;
    map_len_ = bytes + page;
    void* p = ::mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    map_ = static_cast<char*>(p);
    if (::mprotect(map_ + bytes, page, PROT_NONE) != 0) std::abort();
    data_ = reinterpret_cast<float*>(map_ + bytes) - count;
  }
  ~GuardedFloats() { ::munmap(map_, map_len_); }
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;

  float* data() { return data_; }

 private:
  char* map_ = nullptr;
  size_t map_len_ = 0;
  float* data_ = nullptr;
};

// Forces one Highway target for its lifetime.
class ForcedTarget {
 public:
  explicit ForcedTarget(int64_t target) { ForceTargetForTesting(target); }
  ~ForcedTarget() { ForceTargetForTesting(0); }
  ForcedTarget(const ForcedTarget&) = delete;
  ForcedTarget& operator=(const ForcedTarget&) = delete;
};

template <class Fn>
void ForEachTarget(Fn fn) {
  const std::vector<int64_t> targets = SupportedTargets();
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    SCOPED_TRACE("target " + TargetNameOf(target));
    ForcedTarget forced(target);
    fn(target);
  }
}

// n rows of dim random floats at stride floats, the last row ending at the
// guard page; the padding between rows is NaN, so a kernel that reads it
// produces NaN.
struct RowSet {
  RowSet(size_t n, size_t dim, size_t stride, std::mt19937& rng)
      : n(n), dim(dim), stride(stride), mem(n == 0 ? 0 : (n - 1) * stride + dim) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    float* base = mem.data();
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < dim; ++j) base[i * stride + j] = u(rng);
      if (i + 1 < n) {
        for (size_t j = dim; j < stride; ++j) base[i * stride + j] = std::numeric_limits<float>::quiet_NaN();
      }
    }
  }
  const float* row(size_t i) { return mem.data() + i * stride; }
  const float* base() { return mem.data(); }

  size_t n, dim, stride;
  GuardedFloats mem;
};

// The sum of |terms| in double: the scale that float rounding errors are
// proportional to.
double ErrorScale(Metric metric, const float* q, const float* r, size_t dim) {
  double abs_dot = 0, qq = 0, rr = 0, l2 = 0;
  for (size_t j = 0; j < dim; ++j) {
    abs_dot += std::fabs(double{q[j]} * r[j]);
    qq += double{q[j]} * q[j];
    rr += double{r[j]} * r[j];
    l2 += (double{q[j]} - r[j]) * (double{q[j]} - r[j]);
  }
  switch (metric) {
    case Metric::kL2: return l2;
    case Metric::kIP: return abs_dot;
    case Metric::kCosine: return (qq > 0 && rr > 0) ? abs_dot / std::sqrt(qq * rr) : 0.0;
  }
  return 0;
}

// 1e-4 of the error scale plus a small absolute slack: well above float
// rounding in a sum of up to 1536 terms. A single dropped or doubled term may
// hide under it at large dims; EveryCoordinateCountsOnce catches those exactly.
void ExpectClose(float got, float want, double scale) {
  EXPECT_NEAR(got, want, 1e-4 * scale + 1e-6);
}

// `got` is the scalar reference score of `q` against `row`.
void ExpectReferenceScore(float got, Metric metric, const float* q, const float* row, size_t dim) {
  ExpectClose(got, ScalarScore(metric, q, row, dim), ErrorScale(metric, q, row, dim));
}

TEST(SimdTargets, TargetNameReportsEachForcedTarget) {
  ForEachTarget([](int64_t target) {
    EXPECT_FALSE(TargetNameOf(target).empty());
    EXPECT_STRNE(TargetName(), "");
    EXPECT_EQ(std::string(TargetName()), TargetNameOf(target));
  });
  // Restoring picks the best target again (the lowest bit is the best).
  EXPECT_EQ(std::string(TargetName()), TargetNameOf(SupportedTargets().front()));
}

TEST(SimdTargets, ForcingChangesTheSupportedSet) {
  const std::vector<int64_t> targets = SupportedTargets();
  ForcedTarget forced(targets.back());
  EXPECT_EQ(SupportedTargets(), std::vector<int64_t>{targets.back()});
}

TEST(ScalarScore, MatchesDoublePrecision) {
  std::mt19937 rng(7);
  for (size_t dim : {1, 3, 17, 128, 1536}) {
    RowSet v(2, dim, dim, rng);
    const float* a = v.row(0);
    const float* b = v.row(1);
    double dot = 0, aa = 0, bb = 0, l2 = 0;
    for (size_t j = 0; j < dim; ++j) {
      dot += double{a[j]} * b[j];
      aa += double{a[j]} * a[j];
      bb += double{b[j]} * b[j];
      l2 += (double{a[j]} - b[j]) * (double{a[j]} - b[j]);
    }
    ExpectClose(ScalarScore(Metric::kIP, a, b, dim), dot, ErrorScale(Metric::kIP, a, b, dim));
    ExpectClose(ScalarScore(Metric::kL2, a, b, dim), -l2, l2);
    ExpectClose(ScalarScore(Metric::kCosine, a, b, dim), dot / std::sqrt(aa * bb), 1.0);
  }
}

TEST(ScoreMany, MatchesScalarReferenceOnEveryTarget) {
  ForEachTarget([](int64_t) {
    std::mt19937 rng(42);
    for (size_t dim : TestDims()) {
      for (size_t stride : {dim, dim + 3}) {
        for (size_t n : {0, 1, 5, 17}) {  // n = 0: nothing may be written
          RowSet rows(n, dim, stride, rng);
          RowSet query(1, dim, dim, rng);
          for (Metric metric : kMetrics) {
            SCOPED_TRACE(::testing::Message() << MetricName(metric) << " dim=" << dim << " stride=" << stride
                                              << " n=" << n);
            std::vector<float> out(n + 1, 12345.0f);
            ScoreMany(metric, query.row(0), rows.base(), n, dim, stride, out.data());
            for (size_t i = 0; i < n; ++i) ExpectReferenceScore(out[i], metric, query.row(0), rows.row(i), dim);
            EXPECT_EQ(out[n], 12345.0f) << "wrote past out[n-1]";
          }
        }
      }
    }
  });
}

TEST(ScoreGather, MatchesScalarReferenceOnEveryTarget) {
  ForEachTarget([](int64_t) {
    std::mt19937 rng(43);
    for (size_t dim : TestDims()) {
      for (size_t n : {0, 1, 5, 17}) {  // n = 0: nothing may be written
        // Rows in reverse memory order, so the first and last scored rows are
        // the ones at the guard page.
        RowSet rows(n, dim, dim + 1, rng);
        RowSet query(1, dim, dim, rng);
        std::vector<const float*> ptrs;
        for (size_t i = 0; i < n; ++i) ptrs.push_back(rows.row(n - 1 - i));
        if (n > 0) ptrs.push_back(rows.row(n - 1));  // Once more, at the end.
        for (Metric metric : kMetrics) {
          SCOPED_TRACE(::testing::Message() << MetricName(metric) << " dim=" << dim << " n=" << ptrs.size());
          std::vector<float> out(ptrs.size() + 1, 12345.0f);
          ScoreGather(metric, query.row(0), ptrs.data(), ptrs.size(), dim, out.data());
          for (size_t i = 0; i < ptrs.size(); ++i) ExpectReferenceScore(out[i], metric, query.row(0), ptrs[i], dim);
          EXPECT_EQ(out[ptrs.size()], 12345.0f) << "wrote past out[n-1]";
        }
      }
    }
  });
}

// Each row in its own exact heap allocation: an overread hits an ASan redzone.
TEST(ScoreGather, ReadsOnlyTheRowsOwnHeapAllocations) {
  ForEachTarget([](int64_t) {
    std::mt19937 rng(44);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (size_t dim : {1, 3, 7, 9, 15, 17, 31, 33, 63, 65, 100, 129, 777}) {
      std::unique_ptr<float[]> q(new float[dim]);
      for (size_t j = 0; j < dim; ++j) q[j] = u(rng);
      std::vector<std::unique_ptr<float[]>> rows;
      std::vector<const float*> ptrs;
      for (size_t i = 0; i < 7; ++i) {
        rows.emplace_back(new float[dim]);
        for (size_t j = 0; j < dim; ++j) rows.back()[j] = u(rng);
        ptrs.push_back(rows.back().get());
      }
      for (Metric metric : kMetrics) {
        SCOPED_TRACE(::testing::Message() << MetricName(metric) << " dim=" << dim);
        std::vector<float> out(ptrs.size());
        ScoreGather(metric, q.get(), ptrs.data(), ptrs.size(), dim, out.data());
        for (size_t i = 0; i < ptrs.size(); ++i) ExpectReferenceScore(out[i], metric, q.get(), ptrs[i], dim);
      }
    }
  });
}

// Row i is (i+1) e_i: any coordinate dropped, counted twice or paired with
// the wrong query coordinate changes a score that is exact in float.
TEST(ScoreMany, EveryCoordinateCountsOnce) {
  ForEachTarget([](int64_t) {
    for (size_t dim : TestDims()) {
      SCOPED_TRACE(::testing::Message() << "dim=" << dim);
      GuardedFloats rows(dim * dim);
      GuardedFloats q(dim);
      for (size_t i = 0; i < dim; ++i) {
        for (size_t j = 0; j < dim; ++j) rows.data()[i * dim + j] = (i == j) ? static_cast<float>(i + 1) : 0.0f;
      }
      std::vector<float> out(dim);

      for (size_t j = 0; j < dim; ++j) q.data()[j] = static_cast<float>(j + 1);
      ScoreMany(Metric::kIP, q.data(), rows.data(), dim, dim, dim, out.data());
      for (size_t i = 0; i < dim; ++i) ASSERT_EQ(out[i], static_cast<float>((i + 1) * (i + 1))) << "IP row " << i;

      for (size_t j = 0; j < dim; ++j) q.data()[j] = 0.0f;
      ScoreMany(Metric::kL2, q.data(), rows.data(), dim, dim, dim, out.data());
      for (size_t i = 0; i < dim; ++i) ASSERT_EQ(out[i], -static_cast<float>((i + 1) * (i + 1))) << "L2 row " << i;

      for (size_t j = 0; j < dim; ++j) q.data()[j] = 1.0f;
      ScoreMany(Metric::kCosine, q.data(), rows.data(), dim, dim, dim, out.data());
      for (size_t i = 0; i < dim; ++i) {
        ASSERT_NEAR(out[i], 1.0 / std::sqrt(static_cast<double>(dim)), 1e-6) << "Cosine row " << i;
      }
    }
  });
}

TEST(ScoreMany, CosineWithAZeroVectorIsZero) {
  ForEachTarget([](int64_t) {
    std::mt19937 rng(45);
    for (size_t dim : {1, 4, 7, 16, 17, 128, 131}) {
      SCOPED_TRACE(::testing::Message() << "dim=" << dim);
      RowSet rows(6, dim, dim, rng);
      RowSet query(1, dim, dim, rng);
      for (size_t j = 0; j < dim; ++j) rows.mem.data()[2 * dim + j] = 0.0f;  // Row 2 is zero.
      std::vector<float> out(6, 12345.0f);

      ScoreMany(Metric::kCosine, query.row(0), rows.base(), 6, dim, dim, out.data());
      EXPECT_EQ(out[2], 0.0f);
      for (size_t i : {0, 1, 3, 4, 5}) {
        ExpectClose(out[i], ScalarScore(Metric::kCosine, query.row(0), rows.row(i), dim), 1.0);
      }

      std::vector<float> zero_query(dim, 0.0f);
      ScoreMany(Metric::kCosine, zero_query.data(), rows.base(), 6, dim, dim, out.data());
      for (size_t i = 0; i < 6; ++i) EXPECT_EQ(out[i], 0.0f) << i;

      const float* ptrs[] = {rows.row(2), rows.row(0)};
      ScoreGather(Metric::kCosine, query.row(0), ptrs, 2, dim, out.data());
      EXPECT_EQ(out[0], 0.0f);
      EXPECT_EQ(Score(Metric::kCosine, zero_query.data(), zero_query.data(), dim), 0.0f);
    }
  });
}

TEST(Distance, PairFunctionsAgreeWithScalarReference) {
  ForEachTarget([](int64_t) {
    std::mt19937 rng(46);
    for (size_t dim : TestDims()) {
      SCOPED_TRACE(::testing::Message() << "dim=" << dim);
      RowSet v(2, dim, dim, rng);
      const float* a = v.row(0);
      const float* b = v.row(1);
      ExpectClose(Dot(a, b, dim), ScalarScore(Metric::kIP, a, b, dim), ErrorScale(Metric::kIP, a, b, dim));
      ExpectClose(L2Squared(a, b, dim), -ScalarScore(Metric::kL2, a, b, dim), ErrorScale(Metric::kL2, a, b, dim));
      for (Metric metric : kMetrics) ExpectReferenceScore(Score(metric, a, b, dim), metric, a, b, dim);
    }
  });
}

// FirstNonFinite finds the first NaN or infinity at every position of every
// length on every target, counts the largest, smallest and subnormal finite
// values as finite, and reads nothing past n (the row ends at a guard page).
TEST(FirstNonFinite, FindsTheFirstNanOrInfinityOnEveryTarget) {
  const float kBad[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                        std::bit_cast<float>(0x7f800001u)};  // a signalling NaN
  const float kEdge[] = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                         std::numeric_limits<float>::denorm_min(), -0.0f};
  ForEachTarget([&](int64_t) {
    std::mt19937 rng(7);
    for (size_t n : {0, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000}) {
      SCOPED_TRACE("n=" + std::to_string(n));
      RowSet v(1, n, n, rng);
      float* p = n == 0 ? nullptr : const_cast<float*>(v.row(0));
      EXPECT_EQ(FirstNonFinite(p, n), n);
      for (size_t i = 0; i < n; ++i) p[i] = kEdge[i % 4];
      EXPECT_EQ(FirstNonFinite(p, n), n) << "an extreme finite value counted as non-finite";
      for (size_t at = 0; at < n; at += (n > 70 ? 13 : 1)) {
        for (float bad : kBad) {
          const float keep = p[at];
          p[at] = bad;
          EXPECT_EQ(FirstNonFinite(p, n), at) << "value bits " << std::bit_cast<uint32_t>(bad);
          if (at + 1 < n) {
            p[n - 1] = bad;  // a later one does not hide the first
            EXPECT_EQ(FirstNonFinite(p, n), at);
            p[n - 1] = kEdge[(n - 1) % 4];
          }
          p[at] = keep;
        }
      }
    }
  });
}

// FirstRowOutOfRange stops at the first row with a NaN or infinite component
// or a squared norm above kMaxSquaredNorm, on every target and length, and
// vectors at the limit score finitely with every metric: the cosine of a
// vector with itself is 1, no score is NaN or infinite.
TEST(FirstRowOutOfRange, FindsTheFirstRowWhoseNormWouldOverflowAScore) {
  ForEachTarget([&](int64_t) {
    std::mt19937 rng(11);
    for (size_t dim : {1, 2, 3, 7, 8, 15, 16, 17, 33, 128, 129}) {
      SCOPED_TRACE("dim=" + std::to_string(dim));
      const size_t n = 6;
      RowSet v(n, dim, dim, rng);
      float* rows = const_cast<float*>(v.row(0));
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), n);
      // Row 2 at just under the limit (spread over its components): accepted.
      const float each = std::sqrt(kMaxSquaredNorm / static_cast<float>(dim)) * 0.999f;
      for (size_t j = 0; j < dim; ++j) rows[2 * dim + j] = (j % 2 == 0) ? each : -each;
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), n);
      for (Metric m : kMetrics) {
        for (size_t other = 0; other < n; ++other) {
          const float s = Score(m, rows + 2 * dim, rows + other * dim, dim);
          EXPECT_TRUE(std::isfinite(s)) << "metric " << static_cast<int>(m) << " row " << other << ": " << s;
        }
        // The negated row: the farthest pair at the limit.
        std::vector<float> neg(rows + 2 * dim, rows + 3 * dim);
        for (float& x : neg) x = -x;
        EXPECT_TRUE(std::isfinite(Score(m, rows + 2 * dim, neg.data(), dim))) << static_cast<int>(m);
      }
      EXPECT_NEAR(Score(Metric::kCosine, rows + 2 * dim, rows + 2 * dim, dim), 1.0f, 1e-4f);
      // Row 4 over the limit: it is found, and a later bad row does not hide it.
      const float keep = rows[4 * dim];
      rows[4 * dim] = std::sqrt(kMaxSquaredNorm) * 1.01f;
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), 4u);
      EXPECT_NE(RowRangeError(rows + 4 * dim, dim).find("squared norm"), std::string::npos);
      rows[5 * dim] = std::numeric_limits<float>::quiet_NaN();
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), 4u);
      rows[4 * dim] = keep;
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), 5u);
      EXPECT_NE(RowRangeError(rows + 5 * dim, dim).find("non-finite value"), std::string::npos);
      rows[5 * dim] = std::numeric_limits<float>::infinity();
      EXPECT_EQ(FirstRowOutOfRange(rows, n, dim), 5u);
      // The example: finite components whose squared norm overflows float32.
      const float huge[2] = {3e38f, 3e38f};
      EXPECT_EQ(FirstRowOutOfRange(huge, 1, 2), 0u);
    }
  });
}

}  // namespace
}  // namespace pomai::simd
