// F16 / BF16 weight kernels (ops/half_matmul.h): the SIMD widening against the scalar one on every
// 16-bit pattern (bit-exact), the SIMD matrix-vector product against the scalar reference, and
// matmul_wt on F16/BF16 tensors (decode and prefill paths, threads, tiles) against float64 on the
// widened weights. Shapes have k off the vector width (16, 64) and m off the tiles.
#include "ops/half_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "ops/ops.h"

namespace glassbox::ops {
namespace {

constexpr DType kTypes[] = {DType::kBF16, DType::kF16};

std::vector<uint16_t> random_half(DType t, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<uint16_t> v(static_cast<size_t>(count));
  for (auto& h : v) h = t == DType::kBF16 ? f32_to_bf16(dist(rng)) : f32_to_f16(dist(rng));
  return v;
}

std::vector<float> randn(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = dist(rng);
  return v;
}

float widen(DType t, uint16_t h) { return t == DType::kBF16 ? bf16_to_f32(h) : f16_to_f32(h); }

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Every 16-bit pattern (f16 NaNs aside: vcvtph2ps quiets a signalling NaN, the scalar decode
// keeps its payload as is; both are NaN), at an odd count so the masked tail runs too.
TEST(HalfMatmul, SimdWideningIsBitExact) {
  if (!detail::half_avx512_available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (DType t : kTypes) {
    std::vector<uint16_t> all(65536 + 7);
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i * 40503u);
    std::vector<float> simd(all.size()), ref(all.size());
    detail::half_to_f32_avx512(t, all.data(), static_cast<int64_t>(all.size()), simd.data());
    detail::half_to_f32_ref(t, all.data(), static_cast<int64_t>(all.size()), ref.data());
    for (size_t i = 0; i < all.size(); ++i) {
      if (t == DType::kF16 && std::isnan(ref[i])) {
        EXPECT_TRUE(std::isnan(simd[i]));
        continue;
      }
      ASSERT_EQ(bits(simd[i]), bits(ref[i])) << dtype_name(t) << " pattern " << all[i];
    }
  }
}

TEST(HalfMatmul, SimdGemvMatchesScalarReference) {
  if (!detail::half_avx512_available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (DType t : kTypes) {
    for (int64_t k : {1, 15, 16, 17, 63, 64, 65, 100, 288, 1000}) {
      const int64_t rows = 9;
      const auto w = random_half(t, rows * k, 1);
      const auto x = randn(k, 2);
      std::vector<float> simd(rows), ref(rows);
      // From row 1: y is written relative to r0.
      detail::gemv_half_avx512(t, w.data(), k, x.data(), 1, rows, simd.data());
      detail::gemv_half_ref(t, w.data(), k, x.data(), 1, rows, ref.data());
      for (int64_t r = 1; r < rows; ++r) {
        double mag = 0;
        for (int64_t i = 0; i < k; ++i) mag += std::abs(widen(t, w[r * k + i]) * x[i]);
        // Both sum in float, in different orders: each is within ~k ulps of the magnitude.
        EXPECT_NEAR(simd[r - 1], ref[r - 1], 2e-6 * mag + 1e-7)
            << dtype_name(t) << " k=" << k << " row " << r;
      }
    }
  }
}

// matmul_wt routes F16/BF16 here: n = 1 is the row-by-row decode kernel, n > 1 the tiles + sgemm.
// k = 3000 gives 32-row tiles, so m = 100 ends in a partial tile and splits over both threads.
TEST(HalfMatmul, MatmulWtMatchesFloat64OnWidenedWeights) {
  ThreadPool pool(2);
  struct Shape {
    int64_t m, k;
  };
  for (DType t : kTypes) {
    for (Shape s : {Shape{1, 1}, Shape{7, 17}, Shape{33, 65}, Shape{100, 3000}, Shape{70, 288}}) {
      for (int64_t n : {1, 2, 5, 64}) {
        const int64_t m = s.m, k = s.k;
        const auto w = random_half(t, m * k, 3);
        const auto x = randn(n * k, 4);
        const Tensor wt = Tensor::borrow(t, {m, k}, w.data(), nullptr);
        std::vector<float> y(static_cast<size_t>(n * m), NAN);
        matmul_wt(x.data(), n, k, wt, y.data(), pool);
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t r = 0; r < m; ++r) {
            double ref = 0, mag = 0;
            for (int64_t j = 0; j < k; ++j) {
              const double p = static_cast<double>(widen(t, w[r * k + j])) * x[i * k + j];
              ref += p;
              mag += std::abs(p);
            }
            ASSERT_NEAR(y[i * m + r], ref, 2e-6 * mag + 1e-7)
                << dtype_name(t) << " n=" << n << " m=" << m << " k=" << k << " at " << i << ","
                << r;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace glassbox::ops
