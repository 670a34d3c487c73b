// Float32 vector kernels: dot products, matrix-vector products and exponentials, with an
// AVX-512 path (f32_avx512.cpp, compiled for that target and chosen at run time) and a portable
// one. Internal to ops/; the forward pass reaches them through ops.h.
#pragma once

#include <cstdint>

namespace glassbox::ops {

// sum_i a[i] * b[i]
float dot_f32(const float* a, const float* b, int64_t n);
// y[r - r0] = w[r, :] . x for rows [r0, r1) of a row-major [*, k] matrix.
void gemv_f32(const float* w, int64_t k, const float* x, int64_t r0, int64_t r1, float* y);
// x[i] = exp(x[i] - shift) (0 for -inf), returning the sum. The AVX-512 path evaluates exp by a
// polynomial after range reduction: relative error a few float ulps (~2e-7).
float exp_shift_sum(float* x, int64_t n, float shift);
// post[i] = silu(gate[i]) * up[i]
void silu_mul_f32(const float* gate, const float* up, int64_t n, float* post);

namespace detail {
bool f32_avx512_available();
float dot_f32_avx512(const float* a, const float* b, int64_t n);
void gemv_f32_avx512(const float* w, int64_t k, const float* x, int64_t r0, int64_t r1, float* y);
float exp_shift_sum_avx512(float* x, int64_t n, float shift);
void silu_mul_f32_avx512(const float* gate, const float* up, int64_t n, float* post);
}  // namespace detail

}  // namespace glassbox::ops
