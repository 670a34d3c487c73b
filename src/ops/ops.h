// Kernels of the forward pass over raw float buffers (row-major). They never throw and never
// allocate per element; callers validate shapes and dtypes at their entry points.
// ops/ must not include model/: everything it needs arrives as plain arguments.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace glassbox::ops {

// scale[i] = sqrt(mean_j x[i, j]^2 + eps) for x [n, d] (accumulated in double).
void rms_scale(const float* x, int64_t n, int64_t d, double eps, float* scale);
// out[i, j] = x[i, j] / scale[i]  (out may alias x)
void divide_rows(const float* x, int64_t n, int64_t d, const float* scale, float* out);
// x[i, j] *= w[j]
void mul_columns(float* x, int64_t n, int64_t d, const float* w);
// out[i, j] = x[i, j] - mean_j x[i, j]  (out may alias x; mean accumulated in double)
void center_rows(const float* x, int64_t n, int64_t d, float* out);
// x[i, j] += b[j]
void add_columns(float* x, int64_t n, int64_t d, const float* b);
// sum_i a[i] b[i]
float dot(const float* a, const float* b, int64_t n);
// y[i] += alpha x[i]
void axpy(float alpha, const float* x, float* y, int64_t n);
// Decode attention for one KV head's group of g query rows (grouped-query attention):
//   group_scores: s[h * n + j] = scale * (q[h * d ...] . k[j * ldk ...]), h < g, j < n;
//   group_values: z[h * d ...] = sum_j p[h * n + j] * v[j * ldv ...].
// Keys and values are walked in blocks that stay in L1 while every query of the group uses
// them, so each cached row is read from memory once per group rather than once per query head.
void group_scores(const float* q, int64_t g, int64_t d, const float* k, int64_t ldk, int64_t n,
                  float scale, float* s);
void group_values(const float* p, int64_t g, int64_t n, const float* v, int64_t ldv, int64_t d,
                  float* z);

// KV-cache rows stored as F32, F16 or BF16 (SessionOptions::kv_type; ops/kv_rows.h). Strides and
// counts are in elements of that type.
bool kv_dtype_supported(DType dtype);
// dst[i] = x[i] rounded to `dtype` (round-to-nearest-even, the bits of core/half.h), i < n.
void kv_store(DType dtype, const float* x, int64_t n, void* dst);
// dst[r * d + i] = float(src[r * ld + i]) for r < rows, i < d (exact: every value widens).
void kv_load_rows(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d, float* dst);
// group_scores / group_values on keys / values of `dtype`, widened to float as they are read
// (the float overloads above are dtype = F32). The arithmetic after the load is the same.
void group_scores(const float* q, int64_t g, int64_t d, DType dtype, const void* k, int64_t ldk,
                  int64_t n, float scale, float* s);
void group_values(const float* p, int64_t g, int64_t n, DType dtype, const void* v, int64_t ldv,
                  int64_t d, float* z);
// Element-wise y += x over n values.
void add_inplace(float* y, const float* x, int64_t n);
// post[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* post);
// out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  — GPT-2's "gelu_new"
void gelu_tanh(const float* x, int64_t n, float* out);
// post[i] = gelu_tanh(gate[i]) * up[i]  — Gemma's gated MLP
void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* post);
// x[i] = cap * tanh(x[i] / cap)  (Gemma 2's soft-capping of attention scores and logits)
void softcap(float* x, int64_t n, float cap);
// In-place softmax of one row; -inf entries become 0. A row of all -inf becomes all 0.
void softmax_row(float* x, int64_t n);

// Whether matmul_wt/dequantize_rows can read weights of this dtype.
bool weight_dtype_supported(DType dtype);
// dst[r, :] = float(src row r) for rows [row_begin, row_end) of a [rows, k] weight of `dtype`.
void dequantize_rows(DType dtype, const void* src, int64_t k, int64_t row_begin, int64_t row_end,
                     float* dst);
// y[n, m] = x[n, k] @ w^T where w is a [m, k] weight (F32: own SIMD kernel for n = 1, sgemm
// otherwise; F16/BF16 by ops/half_matmul.h, exact f32 products of the widened weights with the
// unrounded x; Q8_0/Q4_0/Q4_K/Q5_K/Q6_K by the integer kernels of ops/quant.h, on int8-rounded x;
// other quantized dtypes dequantized tile by tile). `pool` splits the work by output columns; BLAS
// calls are made single-threaded from the pool's threads.
void matmul_wt(const float* x, int64_t n, int64_t k, const Tensor& w, float* y, ThreadPool& pool);

// Rotary embedding tables for absolute positions pos_start + p, p < n_pos: cos/sin [n_pos, n_freq]
// of angle (pos_start + p) * inv_freq[i] (angles in double: float loses digits at long contexts).
void rope_table(const double* inv_freq, int64_t n_freq, int64_t pos_start, int64_t n_pos,
                float* cos_t, float* sin_t);
// Rotary embedding on x [n_pos, n_heads, d_head] with row p of the tables: rotates the first
// 2 * n_freq dims of each head, pairing (2i, 2i+1) when interleaved, else (i, i + n_freq)
// (NeoX / Hugging Face layout).
void rope(float* x, int64_t n_pos, int64_t n_heads, int64_t d_head, const float* cos_t,
          const float* sin_t, int64_t n_freq, bool interleaved);

// OpenBLAS's kernel family as chosen when it loaded ("Haswell", "SkylakeX", "Cooperlake", ...):
// its own pick for the CPU, or OPENBLAS_CORETYPE's. Benchmarks print it: the sgemm behind F32 and
// F16/BF16 prefill runs twice as fast with the AVX-512 kernels as with the Haswell (AVX2) ones.
const char* blas_core_name();

}  // namespace glassbox::ops
