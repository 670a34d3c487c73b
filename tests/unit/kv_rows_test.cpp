// The KV-cache row kernels (ops/kv_rows.h) for 16-bit caches: rounding into the cache gives the
// bits of core/half.h (ties, subnormals, overflow, NaN, on the dispatched and the portable path),
// widening is exact, and the grouped decode-attention kernels on F16 / BF16 rows match a float64
// loop over the same rounded values (and the portable float loops). On AVX-512 machines the
// dispatched path is the SIMD one.
#include "ops/kv_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/half.h"
#include "ops/ops.h"

namespace glassbox::ops {
namespace {

std::vector<float> kv_randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

float kv_from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

float kv_widen(DType t, uint16_t h) { return t == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h); }
uint16_t kv_narrow(DType t, float f) { return t == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f); }

// Values at every rounding edge of both formats, then random bit patterns.
std::vector<float> kv_edge_values() {
  std::vector<float> v = {0.0f,
                          -0.0f,
                          1.0f,
                          -1.5f,
                          65504.0f,
                          65519.99f,
                          65520.0f,
                          -65520.0f,
                          1e30f,
                          -1e30f,
                          6.0e-8f,
                          2.98e-8f,
                          2.9802322e-8f,
                          5.96e-8f,
                          1e-40f,
                          -1e-40f,
                          kv_from_bits(0x00000001),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(),
                          kv_from_bits(0xff800001),
                          kv_from_bits(0x7fc12345),
                          3.4028235e38f};
  // Exact ties of each format: the half-way points between neighbours.
  for (uint32_t m : {0x3f801000u, 0x3f803000u, 0x3f808000u, 0x3f818000u, 0x38801000u, 0x33800000u,
                     0x33c00000u, 0x34200000u}) {
    v.push_back(kv_from_bits(m));
    v.push_back(kv_from_bits(m | 0x80000000u));
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) v.push_back(kv_from_bits(static_cast<uint32_t>(rng())));
  const auto g = kv_randn(3000, 8, 3.0f);
  v.insert(v.end(), g.begin(), g.end());
  return v;
}

TEST(KvRows, StoreRoundsAsHalfHeaderOnBothPaths) {
  const std::vector<float> x = kv_edge_values();
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{17}, static_cast<int64_t>(x.size())}) {
      std::vector<uint16_t> fast(static_cast<size_t>(n) + 1, 0xABCD),
          portable(static_cast<size_t>(n) + 1, 0xABCD);
      kv_store(t, x.data(), n, fast.data());
      detail::kv_store_portable(t, x.data(), n, portable.data());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(fast[i], kv_narrow(t, x[i])) << dtype_name(t) << " x=" << x[i] << " i=" << i;
        ASSERT_EQ(portable[i], kv_narrow(t, x[i])) << dtype_name(t) << " i=" << i;
      }
      EXPECT_EQ(fast[n], 0xABCD) << "wrote past n";  // the tail mask stops at n
    }
  }
  std::vector<float> f32(x.size());
  kv_store(DType::kF32, x.data(), static_cast<int64_t>(x.size()), f32.data());
  EXPECT_EQ(std::memcmp(f32.data(), x.data(), x.size() * 4), 0);
}

TEST(KvRows, LoadRowsWidensExactly) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    const int64_t rows = 5, ld = 83, d = 37;
    std::vector<uint16_t> src(static_cast<size_t>(rows * ld));
    std::mt19937 rng(3);
    for (auto& h : src) h = kv_narrow(t, std::normal_distribution<float>(0, 2)(rng));
    src[3] = 0x0001;  // a subnormal half (a tiny bf16)
    std::vector<float> out(static_cast<size_t>(rows * d)), ref(out.size());
    kv_load_rows(t, src.data() + 2, ld, rows, d, out.data());
    detail::kv_load_rows_portable(t, src.data() + 2, ld, rows, d, ref.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < d; ++i) {
        ASSERT_EQ(out[r * d + i], kv_widen(t, src[r * ld + 2 + i])) << dtype_name(t);
        ASSERT_EQ(ref[r * d + i], out[r * d + i]);
      }
  }
}

// As F32Kernels.GroupAttentionMatchesDouble, on 16-bit rows: the float64 reference widens the same
// rounded keys and values, so the only error is the float accumulation's.
TEST(KvRows, GroupAttentionOnHalfRowsMatchesDouble) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t d : {24, 64, 80, 128, 256}) {
      for (int64_t g : {1, 4, 7}) {
        for (int64_t n : {1, 63, 64, 65, 200}) {
          const int64_t ld = d * 3 + 5;  // rows of a wider cache, as kv_dim > d_head
          const auto q = kv_randn(static_cast<size_t>(g * d), 3);
          const auto kf = kv_randn(static_cast<size_t>(n * ld), 4);
          const auto vf = kv_randn(static_cast<size_t>(n * ld), 5);
          const auto p = kv_randn(static_cast<size_t>(g * n), 6, 0.1f);
          std::vector<uint16_t> k(kf.size()), v(vf.size());
          for (size_t i = 0; i < k.size(); ++i)
            k[i] = kv_narrow(t, kf[i]), v[i] = kv_narrow(t, vf[i]);
          std::vector<float> s(static_cast<size_t>(g * n)), z(static_cast<size_t>(g * d), NAN);
          std::vector<float> s_port(s.size()), z_port(z.size());
          group_scores(q.data(), g, d, t, k.data(), ld, n, 0.125f, s.data());
          group_values(p.data(), g, n, t, v.data(), ld, d, z.data());
          detail::group_scores_portable(t, q.data(), g, d, k.data(), ld, n, 0.125f, s_port.data());
          detail::group_values_portable(t, p.data(), g, n, v.data(), ld, d, z_port.data());
          for (int64_t h = 0; h < g; ++h) {
            for (int64_t j = 0; j < n; ++j) {
              double ref = 0, mag = 0;
              for (int64_t i = 0; i < d; ++i) {
                const double kk = kv_widen(t, k[j * ld + i]);
                ref += q[h * d + i] * kk;
                mag += std::abs(q[h * d + i] * kk);
              }
              const double tol = 0.125 * (1e-6 * mag + 1e-7);
              ASSERT_NEAR(s[h * n + j], 0.125 * ref, tol)
                  << dtype_name(t) << " d=" << d << " g=" << g << " n=" << n;
              ASSERT_NEAR(s_port[h * n + j], 0.125 * ref, tol);
            }
            for (int64_t i = 0; i < d; ++i) {
              double ref = 0, mag = 0;
              for (int64_t j = 0; j < n; ++j) {
                const double vv = kv_widen(t, v[j * ld + i]);
                ref += p[h * n + j] * vv;
                mag += std::abs(p[h * n + j] * vv);
              }
              const double tol = 1e-6 * mag + 1e-7;
              ASSERT_NEAR(z[h * d + i], ref, tol)
                  << dtype_name(t) << " d=" << d << " g=" << g << " n=" << n;
              ASSERT_NEAR(z_port[h * d + i], ref, tol);
            }
          }
        }
      }
    }
  }
}

// The float overloads are the F32 case of the typed ones, bit for bit.
TEST(KvRows, FloatOverloadsAreTheF32Type) {
  const int64_t g = 4, d = 80, n = 130, ld = 170;
  const auto q = kv_randn(static_cast<size_t>(g * d), 1),
             k = kv_randn(static_cast<size_t>(n * ld), 2);
  const auto p = kv_randn(static_cast<size_t>(g * n), 3);
  std::vector<float> a(static_cast<size_t>(g * n)), b(a.size()), za(static_cast<size_t>(g * d)),
      zb(za.size());
  group_scores(q.data(), g, d, k.data(), ld, n, 0.5f, a.data());
  group_scores(q.data(), g, d, DType::kF32, k.data(), ld, n, 0.5f, b.data());
  group_values(p.data(), g, n, k.data(), ld, d, za.data());
  group_values(p.data(), g, n, DType::kF32, k.data(), ld, d, zb.data());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  EXPECT_EQ(std::memcmp(za.data(), zb.data(), za.size() * 4), 0);
}

}  // namespace
}  // namespace glassbox::ops
