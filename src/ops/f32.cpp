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
