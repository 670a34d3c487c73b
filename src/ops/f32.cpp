#include "ops/f32.h"

#include <cmath>
#include <limits>

namespace glassbox::ops {
namespace {

// Resolved once: the CPU does not change under a running process.
const bool kAvx512 = detail::f32_avx512_available();

}  // namespace

namespace detail {
bool f32_avx512_available() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}
}  // namespace detail

float dot_f32(const float* a, const float* b, int64_t n) {
  if (kAvx512) return detail::dot_f32_avx512(a, b, n);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void gemv_f32(const float* w, int64_t k, const float* x, int64_t r0, int64_t r1, float* y) {
  if (kAvx512) return detail::gemv_f32_avx512(w, k, x, r0, r1, y);
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = w + r * k;
    float s = 0.0f;
    for (int64_t i = 0; i < k; ++i) s += row[i] * x[i];
    y[r - r0] = s;
  }
}

void group_scores_f32(const float* q, int64_t g, int64_t d, const float* k, int64_t ldk, int64_t n,
                      float scale, float* s) {
  if (kAvx512) return detail::group_scores_f32_avx512(q, g, d, k, ldk, n, scale, s);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t h = 0; h < g; ++h) {
      float acc = 0.0f;
      for (int64_t i = 0; i < d; ++i) acc += q[h * d + i] * k[j * ldk + i];
      s[h * n + j] = scale * acc;
    }
}

void group_values_f32(const float* p, int64_t g, int64_t n, const float* v, int64_t ldv, int64_t d,
                      float* z) {
  if (kAvx512) return detail::group_values_f32_avx512(p, g, n, v, ldv, d, z);
  for (int64_t h = 0; h < g; ++h) {
    float* zh = z + h * d;
    for (int64_t i = 0; i < d; ++i) zh[i] = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < d; ++i) zh[i] += p[h * n + j] * v[j * ldv + i];
  }
}

float exp_shift_sum(float* x, int64_t n, float shift) {
  if (kAvx512) return detail::exp_shift_sum_avx512(x, n, shift);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void silu_mul_f32(const float* gate, const float* up, int64_t n, float* post) {
  if (kAvx512) return detail::silu_mul_f32_avx512(gate, up, n, post);
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    post[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace glassbox::ops
