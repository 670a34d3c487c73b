// The KV cache's rows in their stored type (F32, F16 or BF16; SessionOptions::kv_type): rounding
// new rows into the cache, reading rows back as float, and the grouped decode-attention kernels
// over them. A portable path (kv_rows.cpp) and an AVX-512 one (kv_rows_avx512.cpp, chosen at run
// time); both round with round-to-nearest-even and give the bits of core/half.h's conversions.
// Internal to ops/; the forward pass reaches them through ops.h.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace glassbox::ops {

namespace detail {
bool kv_avx512_available();
// Element types of the kernels: float, or 16-bit patterns of IEEE half (F16) or bfloat16 (BF16).
void kv_store_avx512(DType dtype, const float* x, int64_t n, void* dst);
void kv_load_rows_avx512(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d,
                         float* dst);
void group_scores_avx512(DType dtype, const float* q, int64_t g, int64_t d, const void* k,
                         int64_t ldk, int64_t n, float scale, float* s);
void group_values_avx512(DType dtype, const float* p, int64_t g, int64_t n, const void* v,
                         int64_t ldv, int64_t d, float* z);
// The portable loops (also the scalar reference the tests compare the AVX-512 path with).
void kv_store_portable(DType dtype, const float* x, int64_t n, void* dst);
void kv_load_rows_portable(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d,
                           float* dst);
void group_scores_portable(DType dtype, const float* q, int64_t g, int64_t d, const void* k,
                           int64_t ldk, int64_t n, float scale, float* s);
void group_values_portable(DType dtype, const float* p, int64_t g, int64_t n, const void* v,
                           int64_t ldv, int64_t d, float* z);
}  // namespace detail

}  // namespace glassbox::ops
