// AVX-512 kernels for F16 / BF16 weights (see half_matmul.h). Compiled for that target whatever
// the build flags, and only called after half_avx512_available() said yes.
//   bf16 -> f32: zero-extend each 16-bit value to 32 bits and shift it into the top half (exact).
//   f16 -> f32: vcvtph2ps (exact).
#include "ops/half_matmul.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
// GCC 12's AVX-512 headers build "undefined" vectors from self-initialised locals, which
// -Wmaybe-uninitialized reports once inlined here (GCC bug 105593, fixed in 12.3 / 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace glassbox::ops::detail {
namespace {

#define GB_INLINE inline __attribute__((always_inline))

__mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
}

struct Bf16 {
  static GB_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};
struct F16 {
  static GB_INLINE __m512 widen(__m256i h) { return _mm512_cvtph_ps(h); }
};

template <class T>
GB_INLINE __m512 load16(const uint16_t* p) {
  return T::widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <class T>
GB_INLINE __m512 load16(const uint16_t* p, __mmask16 m) {
  return T::widen(_mm256_maskz_loadu_epi16(m, p));
}

// One weight row against x: 64 elements (128 bytes, two cache lines) per step in four
// independent FMA chains, the rest 16 at a time with a masked tail.
template <class T>
GB_INLINE float row_dot(const uint16_t* w, const float* x, int64_t k) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
         a3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= k; i += 64) {
    a0 = _mm512_fmadd_ps(load16<T>(w + i), _mm512_loadu_ps(x + i), a0);
    a1 = _mm512_fmadd_ps(load16<T>(w + i + 16), _mm512_loadu_ps(x + i + 16), a1);
    a2 = _mm512_fmadd_ps(load16<T>(w + i + 32), _mm512_loadu_ps(x + i + 32), a2);
    a3 = _mm512_fmadd_ps(load16<T>(w + i + 48), _mm512_loadu_ps(x + i + 48), a3);
  }
  for (; i < k; i += 16) {
    const __mmask16 m = tail_mask(k - i);
    a0 = _mm512_fmadd_ps(load16<T>(w + i, m), _mm512_maskz_loadu_ps(m, x + i), a0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// Rows one after the other: a single sequential stream per thread reads at ~50 GB/s with two
// threads on this machine, where interleaving several rows' streams reads ~30 (see quant decode).
template <class T>
void gemv(const uint16_t* w, int64_t k, const float* x, int64_t r0, int64_t r1, float* y) {
  for (int64_t r = r0; r < r1; ++r) y[r - r0] = row_dot<T>(w + r * k, x, k);
}

template <class T>
void widen_all(const uint16_t* src, int64_t count, float* dst) {
  int64_t i = 0;
  for (; i + 32 <= count; i += 32) {
    _mm512_storeu_ps(dst + i, load16<T>(src + i));
    _mm512_storeu_ps(dst + i + 16, load16<T>(src + i + 16));
  }
  for (; i < count; i += 16) {
    const __mmask16 m = tail_mask(count - i);
    _mm512_mask_storeu_ps(dst + i, m, load16<T>(src + i, m));
  }
}

}  // namespace

void gemv_half_avx512(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0,
                      int64_t r1, float* y) {
  if (dtype == DType::kBF16) {
    gemv<Bf16>(w, k, x, r0, r1, y);
  } else {
    gemv<F16>(w, k, x, r0, r1, y);
  }
}

void half_to_f32_avx512(DType dtype, const uint16_t* src, int64_t count, float* dst) {
  if (dtype == DType::kBF16) {
    widen_all<Bf16>(src, count, dst);
  } else {
    widen_all<F16>(src, count, dst);
  }
}

}  // namespace glassbox::ops::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else  // not x86-64 GCC/Clang: never called (half_avx512_available() is false)

namespace glassbox::ops::detail {
void gemv_half_avx512(DType, const uint16_t*, int64_t, const float*, int64_t, int64_t, float*) {}
void half_to_f32_avx512(DType, const uint16_t*, int64_t, float*) {}
}  // namespace glassbox::ops::detail

#endif
