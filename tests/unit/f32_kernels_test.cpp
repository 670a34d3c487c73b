// The float32 vector kernels (ops/f32.h) against double-precision loops. On AVX-512 machines this
// checks the SIMD path (masked tails, four-row blocks, the polynomial exp); elsewhere the
// portable one.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "ops/f32.h"
#include "ops/ops.h"

namespace glassbox::ops {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(F32Kernels, DotAndGemvMatchDouble) {
  for (int64_t k : {1, 15, 16, 17, 31, 32, 33, 48, 288, 1000}) {
    for (int64_t rows : {1, 3, 4, 5, 9}) {
      const auto w = randn(static_cast<size_t>(rows * k), 1);
      const auto x = randn(static_cast<size_t>(k), 2);
      std::vector<float> y(static_cast<size_t>(rows)), part(static_cast<size_t>(rows - 1));
      gemv_f32(w.data(), k, x.data(), 0, rows, y.data());
      // A row range starting mid-matrix writes y relative to r0 (other blocks of four).
      gemv_f32(w.data(), k, x.data(), 1, rows, part.data());
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < k; ++i) {
          ref += static_cast<double>(w[r * k + i]) * x[i];
          mag += std::abs(static_cast<double>(w[r * k + i]) * x[i]);
        }
        // float accumulation: error bounded by ~k ulps of the sum of magnitudes
        const double tol = 1e-6 * mag + 1e-7;
        EXPECT_NEAR(y[r], ref, tol) << "k=" << k << " row " << r;
        EXPECT_NEAR(dot_f32(w.data() + r * k, x.data(), k), ref, tol);
        if (r > 0) {
          EXPECT_NEAR(part[r - 1], ref, tol);
        }
      }
    }
  }
}

// Grouped decode attention (ops::group_scores / group_values) against float64 loops on strided
// key/value rows: head sizes with tails (d = 24, 80) and past one 64-column pass (d = 256),
// group sizes 1-8, key counts crossing the 64-row blocks.
TEST(F32Kernels, GroupAttentionMatchesDouble) {
  for (int64_t d : {24, 64, 80, 128, 256}) {
    for (int64_t g : {1, 4, 7}) {
      for (int64_t n : {1, 63, 64, 65, 200}) {
        const int64_t ld = d * 3 + 5;  // rows of a wider cache, as kv_dim > d_head
        const auto q = randn(static_cast<size_t>(g * d), 3);
        const auto k = randn(static_cast<size_t>(n * ld), 4);
        const auto v = randn(static_cast<size_t>(n * ld), 5);
        const auto p = randn(static_cast<size_t>(g * n), 6, 0.1f);
        std::vector<float> s(static_cast<size_t>(g * n)), z(static_cast<size_t>(g * d), NAN);
        group_scores(q.data(), g, d, k.data(), ld, n, 0.125f, s.data());
        group_values(p.data(), g, n, v.data(), ld, d, z.data());
        for (int64_t h = 0; h < g; ++h) {
          for (int64_t j = 0; j < n; ++j) {
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < d; ++i) {
              ref += static_cast<double>(q[h * d + i]) * k[j * ld + i];
              mag += std::abs(static_cast<double>(q[h * d + i]) * k[j * ld + i]);
            }
            ASSERT_NEAR(s[h * n + j], 0.125 * ref, 0.125 * (1e-6 * mag + 1e-7))
                << "d=" << d << " g=" << g << " n=" << n;
          }
          for (int64_t i = 0; i < d; ++i) {
            double ref = 0, mag = 0;
            for (int64_t j = 0; j < n; ++j) {
              ref += static_cast<double>(p[h * n + j]) * v[j * ld + i];
              mag += std::abs(static_cast<double>(p[h * n + j]) * v[j * ld + i]);
            }
            ASSERT_NEAR(z[h * d + i], ref, 1e-6 * mag + 1e-7)
                << "d=" << d << " g=" << g << " n=" << n;
          }
        }
      }
    }
  }
}

TEST(F32Kernels, ExpAndSoftmaxMatchLibm) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 0.0f; v += 0.01953125f) x.push_back(v);
  x.push_back(-std::numeric_limits<float>::infinity());
  std::vector<float> e = x;
  const float sum = exp_shift_sum(e.data(), static_cast<int64_t>(e.size()), 0.0f);
  double ref_sum = 0, worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    ref_sum += ref;
    if (ref > 1e-30) worst = std::max(worst, std::abs(e[i] - ref) / ref);
    if (x[i] < -88.0f) {
      EXPECT_LT(e[i], 1e-37f);
    }
  }
  EXPECT_EQ(e.back(), 0.0f);  // exp(-inf)
  EXPECT_LT(worst, 4e-7) << "worst relative error of exp";
  EXPECT_NEAR(sum, ref_sum, 1e-5 * ref_sum);

  // softmax_row: -inf entries become exactly 0, the rest sums to 1.
  std::vector<float> row = {1.0f, -std::numeric_limits<float>::infinity(), 3.0f, -2.0f};
  softmax_row(row.data(), 4);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(-2.0);
  EXPECT_NEAR(row[0], std::exp(1.0) / z, 1e-7);
  EXPECT_EQ(row[1], 0.0f);
  EXPECT_NEAR(row[2], std::exp(3.0) / z, 1e-7);
  EXPECT_NEAR(row[3], std::exp(-2.0) / z, 1e-7);
}

TEST(F32Kernels, SiluMulMatchesDouble) {
  auto gate = randn(1000, 3, 8.0f);
  gate.push_back(-120.0f);  // exp(-g) overflows float: silu -> -0
  gate.push_back(120.0f);   // exp(-g) underflows: silu -> g
  const auto up = randn(gate.size(), 4);
  std::vector<float> post(gate.size());
  silu_mul_f32(gate.data(), up.data(), static_cast<int64_t>(gate.size()), post.data());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    const double ref = g / (1.0 + std::exp(-g)) * up[i];
    EXPECT_NEAR(post[i], ref, 1e-6 * std::abs(ref) + 1e-30) << "gate " << g;
  }
}

}  // namespace
}  // namespace glassbox::ops
