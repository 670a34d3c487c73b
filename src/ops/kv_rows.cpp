#include "ops/kv_rows.h"

#include <cstring>

#include "core/half.h"
#include "ops/ops.h"

namespace glassbox::ops {
namespace {

// Resolved once: the CPU does not change under a running process.
const bool kKvAvx512 = detail::kv_avx512_available();

// Reads element i of a row of the cache's type as float.
struct F32Elem {
  using T = float;
  static float get(const float* p, int64_t i) { return p[i]; }
};
struct F16Elem {
  using T = uint16_t;
  static float get(const uint16_t* p, int64_t i) { return f16_to_f32(p[i]); }
};
struct BF16Elem {
  using T = uint16_t;
  static float get(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }
};

template <typename E>
void scores_portable(const float* q, int64_t g, int64_t d, const void* kv, int64_t ldk, int64_t n,
                     float scale, float* s) {
  const auto* k = static_cast<const typename E::T*>(kv);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t h = 0; h < g; ++h) {
      float acc = 0.0f;
      for (int64_t i = 0; i < d; ++i) acc += q[h * d + i] * E::get(k + j * ldk, i);
      s[h * n + j] = scale * acc;
    }
}

template <typename E>
void values_portable(const float* p, int64_t g, int64_t n, const void* vv, int64_t ldv, int64_t d,
                     float* z) {
  const auto* v = static_cast<const typename E::T*>(vv);
  for (int64_t h = 0; h < g; ++h) {
    float* zh = z + h * d;
    for (int64_t i = 0; i < d; ++i) zh[i] = 0.0f;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < d; ++i) zh[i] += p[h * n + j] * E::get(v + j * ldv, i);
  }
}

}  // namespace

namespace detail {

void kv_store_portable(DType dtype, const float* x, int64_t n, void* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  auto* h = static_cast<uint16_t*>(dst);
  const bool f16 = dtype == DType::kF16;
  for (int64_t i = 0; i < n; ++i) h[i] = f16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
}

void kv_load_rows_portable(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d,
                           float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    float* out = dst + r * d;
    if (dtype == DType::kF32) {
      std::memcpy(out, static_cast<const float*>(src) + r * ld, static_cast<size_t>(d) * 4);
      continue;
    }
    const uint16_t* row = static_cast<const uint16_t*>(src) + r * ld;
    for (int64_t i = 0; i < d; ++i)
      out[i] = dtype == DType::kF16 ? f16_to_f32(row[i]) : bf16_to_f32(row[i]);
  }
}

void group_scores_portable(DType dtype, const float* q, int64_t g, int64_t d, const void* k,
                           int64_t ldk, int64_t n, float scale, float* s) {
  switch (dtype) {
    case DType::kF16:
      return scores_portable<F16Elem>(q, g, d, k, ldk, n, scale, s);
    case DType::kBF16:
      return scores_portable<BF16Elem>(q, g, d, k, ldk, n, scale, s);
    default:
      return scores_portable<F32Elem>(q, g, d, k, ldk, n, scale, s);
  }
}

void group_values_portable(DType dtype, const float* p, int64_t g, int64_t n, const void* v,
                           int64_t ldv, int64_t d, float* z) {
  switch (dtype) {
    case DType::kF16:
      return values_portable<F16Elem>(p, g, n, v, ldv, d, z);
    case DType::kBF16:
      return values_portable<BF16Elem>(p, g, n, v, ldv, d, z);
    default:
      return values_portable<F32Elem>(p, g, n, v, ldv, d, z);
  }
}

bool kv_avx512_available() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

}  // namespace detail

bool kv_dtype_supported(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

void kv_store(DType dtype, const float* x, int64_t n, void* dst) {
  if (kKvAvx512) return detail::kv_store_avx512(dtype, x, n, dst);
  detail::kv_store_portable(dtype, x, n, dst);
}

void kv_load_rows(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d, float* dst) {
  if (kKvAvx512) return detail::kv_load_rows_avx512(dtype, src, ld, rows, d, dst);
  detail::kv_load_rows_portable(dtype, src, ld, rows, d, dst);
}

void group_scores(const float* q, int64_t g, int64_t d, DType dtype, const void* k, int64_t ldk,
                  int64_t n, float scale, float* s) {
  if (kKvAvx512) return detail::group_scores_avx512(dtype, q, g, d, k, ldk, n, scale, s);
  detail::group_scores_portable(dtype, q, g, d, k, ldk, n, scale, s);
}

void group_values(const float* p, int64_t g, int64_t n, DType dtype, const void* v, int64_t ldv,
                  int64_t d, float* z) {
  if (kKvAvx512) return detail::group_values_avx512(dtype, p, g, n, v, ldv, d, z);
  detail::group_values_portable(dtype, p, g, n, v, ldv, d, z);
}

void group_scores(const float* q, int64_t g, int64_t d, const float* k, int64_t ldk, int64_t n,
                  float scale, float* s) {
  group_scores(q, g, d, DType::kF32, k, ldk, n, scale, s);
}

void group_values(const float* p, int64_t g, int64_t n, const float* v, int64_t ldv, int64_t d,
                  float* z) {
  group_values(p, g, n, DType::kF32, v, ldv, d, z);
}

}  // namespace glassbox::ops
