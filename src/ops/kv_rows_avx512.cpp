// AVX-512 kernels over KV-cache rows (see kv_rows.h). Compiled for that target whatever the build
// flags, and only called after kv_avx512_available() said yes. Each kernel is one template over
// the element type: F16 rows widen with vcvtph2ps, BF16 rows by zero-extending to 32 bits and
// shifting left 16, F32 rows load as they are; the arithmetic after the load is the same.
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma")
// GCC 12's AVX-512 headers build "undefined" vectors from self-initialised locals, which
// -Wmaybe-uninitialized reports once inlined here (GCC bug 105593, fixed in 12.3 / 13).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/kv_rows.h"

namespace glassbox::ops::detail {
namespace {

__mmask16 kv_tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

// load(p, m): 16 floats from p[0..16) under mask m (masked-off lanes are 0, never read).
struct LoadF32 {
  using T = float;
  static __m512 load(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p, __mmask16 m) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
};

// Keys / values per block: 64 rows of up to 256 values stay in L1 (64 KiB at d = 256 f32 is L2,
// still close) while each query of the group passes over them.
constexpr int64_t kKvBlock = 64;

template <typename L>
void scores(const float* q, int64_t g, int64_t d, const void* kv, int64_t ldk, int64_t n,
            float scale, float* s) {
  const auto* k = static_cast<const typename L::T*>(kv);
  for (int64_t j0 = 0; j0 < n; j0 += kKvBlock) {
    const int64_t j1 = std::min(n, j0 + kKvBlock);
    for (int64_t h = 0; h < g; ++h) {
      const float* qh = q + h * d;
      for (int64_t j = j0; j < j1; ++j) {
        const auto* kr = k + j * ldk;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < d; i += 16) {
          const __mmask16 m = kv_tail_mask(d - i);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qh + i), L::load(kr + i, m), acc);
        }
        s[h * n + j] = scale * _mm512_reduce_add_ps(acc);
      }
    }
  }
}

template <typename L>
void values(const float* p, int64_t g, int64_t n, const void* vv, int64_t ldv, int64_t d,
            float* z) {
  const auto* v = static_cast<const typename L::T*>(vv);
  for (int64_t i = 0; i < g * d; ++i) z[i] = 0.0f;
  for (int64_t j0 = 0; j0 < n; j0 += kKvBlock) {
    const int64_t j1 = std::min(n, j0 + kKvBlock);
    for (int64_t h = 0; h < g; ++h) {
      const float* ph = p + h * n;
      float* zh = z + h * d;
      // 64 columns of z at a time in four registers across the block's rows (four independent
      // FMA chains; columns past d are masked off).
      for (int64_t i = 0; i < d; i += 64) {
        __mmask16 m[4];
        __m512 acc[4];
        for (int c = 0; c < 4; ++c) {
          m[c] = i + 16 * c < d ? kv_tail_mask(d - i - 16 * c) : static_cast<__mmask16>(0);
          acc[c] = _mm512_maskz_loadu_ps(m[c], zh + i + 16 * c);
        }
        for (int64_t j = j0; j < j1; ++j) {
          const __m512 pj = _mm512_set1_ps(ph[j]);
          const auto* vr = v + j * ldv + i;
          for (int c = 0; c < 4; ++c)
            acc[c] = _mm512_fmadd_ps(pj, L::load(vr + 16 * c, m[c]), acc[c]);
        }
        for (int c = 0; c < 4; ++c) _mm512_mask_storeu_ps(zh + i + 16 * c, m[c], acc[c]);
      }
    }
  }
}

// 16 floats to IEEE half, round-to-nearest-even (vcvtps2ph); NaN lanes become the quiet NaN
// sign | 0x7e00 that f32_to_f16 gives (the instruction would keep the payload).
__m256i to_f16(__m512 x) {
  const __m256i h = _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i qnan =
      _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x8000)),
                      _mm512_set1_epi32(0x7e00));
  return _mm256_mask_blend_epi16(nan, h, _mm512_cvtepi32_epi16(qnan));
}

// 16 floats to bfloat16 as f32_to_bf16: add 0x7fff + the kept lowest bit, keep the high half;
// NaN lanes keep their high half with the quiet bit set. (vcvtneps2bf16 would flush subnormals.)
__m256i to_bf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

}  // namespace

void kv_store_avx512(DType dtype, const float* x, int64_t n, void* dst) {
  if (dtype == DType::kF32) {
    std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  const bool f16 = dtype == DType::kF16;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = kv_tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm256_mask_storeu_epi16(out + i, m, f16 ? to_f16(v) : to_bf16(v));
  }
}

void kv_load_rows_avx512(DType dtype, const void* src, int64_t ld, int64_t rows, int64_t d,
                         float* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    float* out = dst + r * d;
    if (dtype == DType::kF32) {
      std::memcpy(out, static_cast<const float*>(src) + r * ld, static_cast<size_t>(d) * 4);
      continue;
    }
    const uint16_t* row = static_cast<const uint16_t*>(src) + r * ld;
    for (int64_t i = 0; i < d; i += 16) {
      const __mmask16 m = kv_tail_mask(d - i);
      const __m512 v =
          dtype == DType::kF16 ? LoadF16::load(row + i, m) : LoadBF16::load(row + i, m);
      _mm512_mask_storeu_ps(out + i, m, v);
    }
  }
}

void group_scores_avx512(DType dtype, const float* q, int64_t g, int64_t d, const void* k,
                         int64_t ldk, int64_t n, float scale, float* s) {
  switch (dtype) {
    case DType::kF16:
      return scores<LoadF16>(q, g, d, k, ldk, n, scale, s);
    case DType::kBF16:
      return scores<LoadBF16>(q, g, d, k, ldk, n, scale, s);
    default:
      return scores<LoadF32>(q, g, d, k, ldk, n, scale, s);
  }
}

void group_values_avx512(DType dtype, const float* p, int64_t g, int64_t n, const void* v,
                         int64_t ldv, int64_t d, float* z) {
  switch (dtype) {
    case DType::kF16:
      return values<LoadF16>(p, g, n, v, ldv, d, z);
    case DType::kBF16:
      return values<LoadBF16>(p, g, n, v, ldv, d, z);
    default:
      return values<LoadF32>(p, g, n, v, ldv, d, z);
  }
}

}  // namespace glassbox::ops::detail
