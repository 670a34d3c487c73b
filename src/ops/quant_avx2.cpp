// AVX2 kernels for the quantized matmul: the portable SIMD path for x86 CPUs without AVX-512 VNNI.
// One weight row against one activation row at a time (no register tiling): vpmaddubsw for the
// unsigned x signed byte products (Q8_0 uses |w| and sign-transferred activations), vpmaddwd to
// widen and apply 16-bit scales, one float scaling per block. Integer sums are exact, so results
// equal the scalar reference up to float summation order.
#include "ops/quant_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstring>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace glassbox::ops::quant_detail {
namespace {

#define GB_INLINE inline __attribute__((always_inline))

// F16C conversion (one instruction; the portable f16() in core/half.h branches).
GB_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }

GB_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

GB_INLINE __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Sum of byte products u8 x s8 as 8 x int32 (pair sums fit int16: at most 2 * 255 * 127 for Q8_0's
// |w| <= 127 and the other codes are smaller).
GB_INLINE __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

float dot_q8_0(const uint8_t* w, const QuantizedActs& a, int64_t r) {
  const int64_t nb = a.k / 32;
  const int8_t* x = a.qs.data() + r * a.k;
  const float* ad = a.d.data() + r * nb;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(w) + b;
    const __m256i q = load256(blk->qs), xv = load256(x + 32 * b);
    const __m256i p = dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xv, q));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(half(blk->d) * ad[b]), acc);
  }
  return hsum(acc);
}

float dot_q4_0(const uint8_t* w, const QuantizedActs& a, int64_t r) {
  const int64_t nb = a.k / 32;
  const int8_t* x = a.qs.data() + r * a.k;
  const float* ad = a.d.data() + r * nb;
  const int32_t* as = a.sum32.data() + r * nb;
  __m256 acc = _mm256_setzero_ps();
  float corr = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(w) + b;
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs));
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m256i q =
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
    const float s = half(blk->d) * ad[b];
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(q, load256(x + 32 * b))), _mm256_set1_ps(s),
                          acc);
    corr += s * static_cast<float>(8 * as[b]);  // the codes carry +8
  }
  return hsum(acc) - corr;
}

// Q4_K (kQ5 = false) and Q5_K.
template <bool kQ5>
float dot_k45(const uint8_t* w, const QuantizedActs& a, int64_t r) {
  const int64_t nsb = a.k / 256;
  const size_t bytes = kQ5 ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = w + sb * bytes;
    const int8_t* x = a.qs.data() + r * a.k + sb * 256;
    const int16_t* bs = a.bsum16.data() + (r * nsb + sb) * 16;
    uint16_t d, dmin;
    std::memcpy(&d, blk, 2);
    std::memcpy(&dmin, blk + 2, 2);
    const uint8_t* qs = blk + (kQ5 ? 48 : 16);
    const __m256i qh = kQ5 ? load256(blk + 16) : _mm256_setzero_si256();
    __m256i isum = _mm256_setzero_si256();
    int32_t msum = 0;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc0, m0, sc1, m1;
      k_scale_min(blk + 4, 2 * c, &sc0, &m0);
      k_scale_min(blk + 4, 2 * c + 1, &sc1, &m1);
      const __m256i raw = load256(qs + 32 * c);
      __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi8(0x0f));
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0f));
      if (kQ5) {
        const __m256i bit = _mm256_set1_epi8(1);
        const __m128i s0 = _mm_cvtsi32_si128(2 * c), s1 = _mm_cvtsi32_si128(2 * c + 1);
        lo = _mm256_or_si256(lo,
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s0), bit), 4));
        hi = _mm256_or_si256(hi,
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s1), bit), 4));
      }
      const __m256i plo = _mm256_maddubs_epi16(lo, load256(x + 64 * c));
      const __m256i phi = _mm256_maddubs_epi16(hi, load256(x + 64 * c + 32));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc0)));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc1)));
      msum += m0 * (bs[4 * c] + bs[4 * c + 1]) + m1 * (bs[4 * c + 2] + bs[4 * c + 3]);
    }
    const float da = a.d[r * nsb + sb];
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(half(d) * da), acc);
    mins += half(dmin) * da * static_cast<float>(msum);
  }
  return hsum(acc) - mins;
}

float dot_q6_k(const uint8_t* w, const QuantizedActs& a, int64_t r) {
  const int64_t nsb = a.k / 256;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w) + sb;
    const int8_t* x = a.qs.data() + r * a.k + sb * 256;
    const int16_t* bs = a.bsum16.data() + (r * nsb + sb) * 16;
    __m256i isum = _mm256_setzero_si256();
    int32_t corr = 0;
    for (int s = 0; s < 16; ++s) corr += blk->scales[s] * bs[s];
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(blk->ql + 64 * h), ql1 = load256(blk->ql + 64 * h + 32);
      const __m256i qh = load256(blk->qh + 32 * h);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4),
                          _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4))};
      for (int t = 0; t < 4; ++t) {
        // 32 elements = sub-blocks (of 16) s and s + 1: 16-bit lanes 0-7 and 8-15.
        const int s = 8 * h + 2 * t;
        const __m256i sc =
            _mm256_set_m128i(_mm_set1_epi16(blk->scales[s + 1]), _mm_set1_epi16(blk->scales[s]));
        const __m256i p = _mm256_maddubs_epi16(q[t], load256(x + 128 * h + 32 * t));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sc));
      }
    }
    const __m256 f = _mm256_cvtepi32_ps(
        _mm256_sub_epi32(isum, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0)));
    acc = _mm256_fmadd_ps(f, _mm256_set1_ps(half(blk->d) * a.d[r * nsb + sb]), acc);
  }
  return hsum(acc);
}

template <float (*kDot)(const uint8_t*, const QuantizedActs&, int64_t)>
void tile(const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w, size_t row_bytes,
          int64_t c0, int64_t c1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) y[r * ldy + c] = kDot(w + c * row_bytes, a, r);
  }
}

#undef GB_INLINE

// Constant-initialised inside the target region, so the templates are instantiated with it.
constexpr Kernels kAvx2Kernels = {.q4_0 = tile<dot_q4_0>,
                                  .q8_0 = tile<dot_q8_0>,
                                  .q4_k = tile<dot_k45<false>>,
                                  .q5_k = tile<dot_k45<true>>,
                                  .q6_k = tile<dot_q6_k>,
                                  .quantize_acts = quantize_acts_rows_ref};

}  // namespace
}  // namespace glassbox::ops::quant_detail

#pragma GCC pop_options

namespace glassbox::ops::quant_detail {
const Kernels* avx2_kernels() { return &kAvx2Kernels; }
}  // namespace glassbox::ops::quant_detail

#else

namespace glassbox::ops::quant_detail {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace glassbox::ops::quant_detail

#endif
