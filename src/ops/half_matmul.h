// Matrix products with F16 / BF16 weights (16-bit floats, row-major [m, k], as stored in GGUF and
// safetensors) and f32 activations: y[n, m] = x[n, k] @ W^T. Internal to ops/; the forward pass
// reaches it through ops::matmul_wt.
//
// Numbers: every weight converts exactly to f32 (bf16: the 16 bits become the top half of the f32;
// f16: IEEE half -> single is exact), and the products and sums are f32 FMAs with the f32
// activations unrounded. So the result is the f32 matmul of the widened weights, up to the order
// of the f32 additions. (llama.cpp instead rounds the activations to bf16 / f16 for such weights.)
//   n == 1 (decode): gemv_half, one weight row after the other (one sequential memory stream per
//   thread, which reads fastest here), threads on contiguous ranges of rows.
//   n > 1 (prefill): tiles of weight rows widened to f32 in a cache-sized buffer, then sgemm.
// An AVX-512 path (half_matmul_avx512.cpp, chosen at run time) and a portable scalar one, the
// reference.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace glassbox::ops {

// dtype is kF16 or kBF16 (asserted); w holds m * k 16-bit values; x is [n, k], y is [n, m].
void half_matmul(const float* x, int64_t n, int64_t k, DType dtype, const uint16_t* w, int64_t m,
                 float* y, ThreadPool& pool);

// y[r - r0] = w[r, :] . x for rows [r0, r1) of the [*, k] matrix w.
void gemv_half(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0, int64_t r1,
               float* y);
// dst[i] = the f32 value of src[i], i < count.
void half_to_f32(DType dtype, const uint16_t* src, int64_t count, float* dst);

namespace detail {
bool half_avx512_available();
// The portable loops (the reference for the tests).
void gemv_half_ref(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0,
                   int64_t r1, float* y);
void half_to_f32_ref(DType dtype, const uint16_t* src, int64_t count, float* dst);
// The AVX-512 versions; call only when half_avx512_available().
void gemv_half_avx512(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0,
                      int64_t r1, float* y);
void half_to_f32_avx512(DType dtype, const uint16_t* src, int64_t count, float* dst);
}  // namespace detail

}  // namespace glassbox::ops
