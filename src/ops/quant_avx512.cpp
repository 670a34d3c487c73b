// AVX-512 VNNI kernels for the quantized matmul (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) and the int8
// activation quantizer. Compiled for that instruction set through a target pragma so the rest of
// the library does not need it; quant.cpp calls in only when the CPU reports the features.
//
// Each kernel computes an R x C micro-tile (R activation rows, C weight rows) so every weight
// vector unpacked from its blocks serves R rows and every activation vector C rows.
//   32-element types: codes are made unsigned (Q8_0: xor 0x80 = q + 128; Q4_0: the nibble = q + 8)
//   and vpdpbusd multiplies them with the signed activation codes; the bias times the activation
//   block sum is subtracted by starting the accumulator at -(bias * sum). One zmm holds two
//   blocks; lanes 0-7 and 8-15 are scaled by their own d_w * d_a and summed in float.
//   K types: vpmaddubsw gives 16-bit pair sums (at most 2 * 63 * 127, no saturation) and
//   vpdpwssd multiplies them by the 16-bit sub-block scales into int32, so a whole 256-element
//   super-block is one exact integer sum before a single float scaling; the Q4_K/Q5_K mins use the
//   activation sums of each 16 (vpmaddwd), the Q6_K offset of 32 the same way.
#include "ops/quant_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#include <cstring>
#include <memory>

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
// GCC 12's AVX-512 headers build "undefined" vectors from self-initialised locals, which
// -Wmaybe-uninitialized reports once inlined here (GCC bug 105593, fixed in 12.3 / 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace glassbox::ops::quant_detail {
namespace {

#define GB_INLINE inline __attribute__((always_inline))

// F16C conversion (one instruction; the portable f16() in core/half.h branches).
GB_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }

// ---- 32-element types ---------------------------------------------------------------------

// Two blocks (or one, the tail) of a weight row as biased unsigned codes plus their scales.
struct Q8_0Weights {
  static constexpr int kBiasShift = 7;  // bias 128
  static constexpr size_t kBytes = sizeof(BlockQ8_0);
  template <bool kTwo>
  static GB_INLINE __m512i codes(const uint8_t* blk) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i hi = kTwo ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kBytes + 2))
                            : _mm256_setzero_si256();
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

struct Q4_0Weights {
  static constexpr int kBiasShift = 3;  // bias 8
  static constexpr size_t kBytes = sizeof(BlockQ4_0);
  template <bool kTwo>
  static GB_INLINE __m512i codes(const uint8_t* blk) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    const __m128i hi = kTwo ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kBytes + 2))
                            : _mm_setzero_si128();
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
    // 128-bit lanes [lo, lo, hi, hi]; the second copy of each is shifted to its high nibbles.
    const __m512i dup = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
                                                 _mm512_castsi256_si512(both));
    const __m512i sh = _mm512_srlv_epi64(dup, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(sh, _mm512_set1_epi8(0x0f));
  }
};

// Horizontal sums of n <= 8 float vectors as the lanes of one (lane i = sum of v[i]): a vhaddps
// tree, a quarter of the instructions of one reduction per vector.
template <int N>
GB_INLINE __m256 hsum_lanes_ps(const __m256* v) {
  __m256 h[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) h[i] = i < N ? v[i] : _mm256_setzero_ps();
  const __m256 p01 = _mm256_hadd_ps(h[0], h[1]), p23 = _mm256_hadd_ps(h[2], h[3]);
  const __m256 p45 = _mm256_hadd_ps(h[4], h[5]), p67 = _mm256_hadd_ps(h[6], h[7]);
  const __m256 q0 = _mm256_hadd_ps(p01, p23), q1 = _mm256_hadd_ps(p45, p67);
  return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

// y[(r0 + r) * ldy + c0 + c] = the sum of acc[r][c]'s lanes, for an R x C tile (R * C <= 16):
// one reduction tree for the whole tile rather than a reduction per accumulator.
template <int R, int C>
GB_INLINE void store_tile_sums(const __m512 (&acc)[R][C], int64_t r0, int64_t c0, float* y,
                               int64_t ldy) {
  static_assert(R * C <= 16, "two reduction trees at most");
  alignas(32) float out[16];
  __m256 half[16];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c)
      half[r * C + c] =
          _mm256_add_ps(_mm512_castps512_ps256(acc[r][c]),
                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][c]), 1)));
  _mm256_store_ps(out, hsum_lanes_ps<(R * C < 8 ? R * C : 8)>(half));
  if constexpr (R * C > 8) _mm256_store_ps(out + 8, hsum_lanes_ps<R * C - 8>(half + 8));
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) y[(r0 + r) * ldy + c0 + c] = out[r * C + c];
}

// Both block scales (f16 at offset 0 of each block) broadcast to 8 lanes each.
template <class W, bool kTwo>
GB_INLINE __m512 weight_scales(const uint8_t* blk) {
  uint16_t d0, d1 = 0;
  std::memcpy(&d0, blk, 2);
  if (kTwo) std::memcpy(&d1, blk + W::kBytes, 2);
  const __m128 s = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d0 | (uint32_t{d1} << 16))));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                               _mm512_castps128_ps512(s));
}

template <class W, int R, int C, bool kTwo>
GB_INLINE void step32(const QuantizedActs& a, int64_t r0, const uint8_t* const* wrow, int64_t b,
                      __m512 (&acc)[R][C]) {
  const int64_t nb = a.k / 32;
  const __m512i lane_idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0);
  __m512i wq[C];
  __m512 ws[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) {
    const uint8_t* blk = wrow[c] + b * W::kBytes;
    wq[c] = W::template codes<kTwo>(blk);
    ws[c] = weight_scales<W, kTwo>(blk);
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const int64_t row = r0 + r;
    const int8_t* aq = a.qs.data() + row * a.k + b * 32;
    const __m512i x = kTwo ? _mm512_loadu_si512(aq) : _mm512_maskz_loadu_epi8(0xffffffffull, aq);
    const __mmask8 m2 = kTwo ? 0x3 : 0x1;
    const __m128 d2 = _mm_maskz_loadu_ps(m2, a.d.data() + row * nb + b);
    const __m128i s2 = _mm_maskz_loadu_epi32(m2, a.sum32.data() + row * nb + b);
    const __m512 da =
        _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
                              _mm512_castps128_ps512(d2));
    // -(bias * block sum) in lanes 0 and 8: what the biased codes add to the dot product.
    const __m512i sums =
        _mm512_maskz_permutexvar_epi32(0x0101, lane_idx, _mm512_castsi128_si512(s2));
    const __m512i init =
        _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, W::kBiasShift));
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) {
      const __m512i dot = _mm512_dpbusd_epi32(init, wq[c], x);
      acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(ws[c], da), acc[r][c]);
    }
  }
}

template <class W, int R, int C>
void micro32(const QuantizedActs& a, int64_t r0, const uint8_t* w, size_t row_bytes, int64_t c0,
             float* y, int64_t ldy) {
  const int64_t nb = a.k / 32;
  const uint8_t* wrow[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) wrow[c] = w + (c0 + c) * row_bytes;
  __m512 acc[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) step32<W, R, C, true>(a, r0, wrow, b, acc);
  if (b < nb) step32<W, R, C, false>(a, r0, wrow, b, acc);
  store_tile_sums<R, C>(acc, r0, c0, y, ldy);
}

// ---- K types ------------------------------------------------------------------------------

// The per-super-block part of a K block a micro-kernel keeps in registers: the 16-bit scales
// (Q4_K/Q5_K: [sc0..7, m0..7]; Q6_K: the 16 signed scales), the per-16 multipliers of the
// activation sums (mins for Q4_K/Q5_K, 32 * scale for Q6_K), and the float scales. The codes and
// the scale vector of each 64-element part are unpacked when used, to keep register pressure low.
struct KHeader {
  __m256i s16;
  __m256i corr;
  float d, dmin;
};

enum class KType { kQ4, kQ5, kQ6 };

template <KType T>
constexpr size_t kBlockBytes = T == KType::kQ4   ? sizeof(BlockQ4_K)
                               : T == KType::kQ5 ? sizeof(BlockQ5_K)
                                                 : sizeof(BlockQ6_K);

alignas(32) constexpr int16_t kMinIdx[16] = {8,  8,  9,  9,  10, 10, 11, 11,
                                             12, 12, 13, 13, 14, 14, 15, 15};
alignas(64) constexpr int16_t kQ6PartIdx[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};

GB_INLINE __m512i broadcast256(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Two 256-bit halves as one vector: `lo` in the lower lanes, `hi` in the upper.
GB_INLINE __m512i halves16(short lo, short hi) {
  return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1);
}

// sc (8 x u8) and m (8 x u8) of a Q4_K/Q5_K scales[12] field, as 16 x int16 [sc0..7, m0..7].
// Reads 16 bytes from `scales` (the 12 plus the first 4 of qh/qs, inside the same block).
//   bytes 0-3 -> sc0-3 (low 6 bits) and the top 2 bits of sc4-7; bytes 4-7 the same for m;
//   bytes 8-11 -> low nibbles: sc4-7, high nibbles: m4-7.
GB_INLINE __m256i k45_scales(const uint8_t* scales) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales));
  // a = [s0-3, s8-11, s4-7, s8-11]: the bytes holding the low bits of sc0-7, m0-7.
  const __m128i a =
      _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  // b = [0, s0-3, 0, s4-7]: the bytes whose top 2 bits are bits 4-5 of sc4-7, m4-7.
  const __m128i b =
      _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  const __m128i low_mask =
      _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0);
  const __m128i m_hi_low = _mm_and_si128(_mm_srli_epi16(a, 4), _mm_set1_epi8(0x0f));
  const __m128i low = _mm_mask_blend_epi8(0xf000, _mm_and_si128(a, low_mask), m_hi_low);
  const __m128i top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
  return _mm256_cvtepu8_epi16(_mm_or_si128(low, top));
}

// The same 16 x int16 unpacked with scalar integer operations (llama.cpp's utmp arrangement):
// they run on the integer units beside the vector work, which the decode kernel is short of.
GB_INLINE __m256i k45_scales_scalar(const uint8_t* scales) {
  uint32_t u[3];
  std::memcpy(u, scales, 12);
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  const uint32_t sc03 = u[0] & kLow6, m03 = u[1] & kLow6;
  const uint32_t sc47 = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);
  const uint32_t m47 = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);
  return _mm256_cvtepu8_epi16(_mm_set_epi32(static_cast<int>(m47), static_cast<int>(m03),
                                            static_cast<int>(sc47), static_cast<int>(sc03)));
}

// kScalarScales: unpack the Q4_K/Q5_K scales with k45_scales_scalar and leave `corr` unset (the
// decode kernel takes the mins from s16 directly).
template <KType T, bool kScalarScales = false>
GB_INLINE KHeader k_header(const uint8_t* blk) {
  KHeader h;
  if constexpr (T == KType::kQ6) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
    h.d = half(b->d), h.dmin = 0.0f;
    h.s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b->scales)));
    h.corr = _mm256_slli_epi16(h.s16, 5);  // 32 * scale, at most 4096 in magnitude
  } else {
    uint16_t d, dmin;
    std::memcpy(&d, blk, 2);
    std::memcpy(&dmin, blk + 2, 2);
    h.d = half(d), h.dmin = half(dmin);
    if constexpr (kScalarScales) {
      h.s16 = k45_scales_scalar(blk + 4);
      return h;
    }
    h.s16 = k45_scales(blk + 4);
    // Min of sub-block j for both of its 16-element groups: lanes 2j, 2j + 1 <- lane 8 + j.
    h.corr = _mm256_permutexvar_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(kMinIdx)),
                                      h.s16);
  }
  return h;
}

// Scales matching the maddubs pair lanes of part p (elements 64p .. 64p + 63). Q4_K/Q5_K: lanes
// 0-15 <- sub-block 2p, 16-31 <- 2p + 1. Q6_K: lane i <- sub-block (of 16) 4p + i / 8.
template <KType T>
GB_INLINE __m512i k_part_scales(const KHeader& h, int p) {
  __m512i idx;
  if constexpr (T == KType::kQ6) {
    idx = _mm512_add_epi16(_mm512_set1_epi16(static_cast<short>(4 * p)),
                           _mm512_load_si512(kQ6PartIdx));
  } else {
    idx = halves16(static_cast<short>(2 * p), static_cast<short>(2 * p + 1));
  }
  return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(h.s16));
}

// Unsigned codes of part p, in element order.
template <KType T>
GB_INLINE __m512i k_part_codes(const uint8_t* blk, int p) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  if constexpr (T == KType::kQ6) {
    const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
    const int h = p / 2;
    const __m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
    const __m512i qh = broadcast256(b->qh + 32 * h);
    if (p % 2 == 0) {
      // Elements 0..63 of the half: low nibbles of ql[0..63]; qh bits 0-1 (l < 32) / 2-3.
      const __m512i hb = _mm512_sllv_epi16(qh, halves16(4, 2));
      return _mm512_or_si512(_mm512_and_si512(ql, low4),
                             _mm512_and_si512(hb, _mm512_set1_epi8(0x30)));
    }
    // Elements 64..127: high nibbles; qh bits 4-5 / 6-7.
    const __m512i hb = _mm512_srlv_epi16(qh, halves16(0, 2));
    return _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                           _mm512_and_si512(hb, _mm512_set1_epi8(0x30)));
  } else {
    // Chunk p: low nibbles = sub-block 2p (lower 256 bits), high nibbles = 2p + 1 (upper).
    const uint8_t* qs = blk + (T == KType::kQ5 ? 48 : 16);
    __m512i q =
        _mm512_and_si512(_mm512_srlv_epi16(broadcast256(qs + 32 * p), halves16(0, 4)), low4);
    if constexpr (T == KType::kQ5) {
      // Bit 2p (lower half) / 2p + 1 (upper half) of qh[l], moved to bit 4 of each byte.
      const __m512i qh = broadcast256(blk + 16);
      const short lo = static_cast<short>(2 * p), hi = static_cast<short>(2 * p + 1);
      const __m512i hb = p < 2 ? _mm512_sllv_epi16(qh, halves16(4 - lo, 4 - hi))
                               : _mm512_srlv_epi16(qh, halves16(lo - 4, hi - 4));
      q = _mm512_or_si512(q, _mm512_and_si512(hb, _mm512_set1_epi8(0x10)));
    }
    return q;
  }
}

// Horizontal sums of n <= 8 int32 vectors as the lanes of one: lane i = sum of v[i]'s lanes.
// A tree of vphaddd instead of one reduction per vector (a quarter of the instructions), which
// matters when a row is only one or two super-blocks long.
template <int N>
GB_INLINE __m256i hsum_lanes(const __m256i* v) {
  __m256i h[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) h[i] = i < N ? v[i] : _mm256_setzero_si256();
  const __m256i p01 = _mm256_hadd_epi32(h[0], h[1]), p23 = _mm256_hadd_epi32(h[2], h[3]);
  const __m256i p45 = _mm256_hadd_epi32(h[4], h[5]), p67 = _mm256_hadd_epi32(h[6], h[7]);
  const __m256i q0 = _mm256_hadd_epi32(p01, p23), q1 = _mm256_hadd_epi32(p45, p67);
  // q0 = [v0..v3 partial (lanes 0-3 of each), v0..v3 partial (lanes 4-7)], q1 the same for v4-7.
  return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20),
                          _mm256_permute2x128_si256(q0, q1, 0x31));
}

// A tile of weight rows unpacked once for all the activation rows that pass over it (prefill), so
// the micro-kernel's inner loop is loads, a scale permute and two multiply instructions. Per
// (column, super-block): the codes as bytes in element order, the 16-bit scales (k_header's s16),
// d, and the offset of each 16 elements as a float (Q4_K/Q5_K: -dmin * m; Q6_K: -32 * d * scale),
// which meets the activations' float sums of each 16 in a separate dot product.
// Left uninitialised on allocation (make_unique_for_overwrite): unpack_k writes every element,
// and zero-filling ~100 KB per tile showed in profiles.
struct KTile {
  int64_t nsb = 0;
  std::unique_ptr<uint8_t[]> codes;  // [col][sb][256]
  std::unique_ptr<int16_t[]> s16;    // [col][sb][16]
  std::unique_ptr<float[]> d;        // [col][sb]
  std::unique_ptr<float[]> offset;   // [col][sb][16]
};

template <KType T>
void unpack_k(const uint8_t* w, size_t row_bytes, int64_t c0, int64_t c1, int64_t nsb, KTile* t) {
  const auto n = static_cast<size_t>((c1 - c0) * nsb);
  t->nsb = nsb;
  t->codes = std::make_unique_for_overwrite<uint8_t[]>(n * 256);
  t->s16 = std::make_unique_for_overwrite<int16_t[]>(n * 16);
  t->d = std::make_unique_for_overwrite<float[]>(n);
  t->offset = std::make_unique_for_overwrite<float[]>(n * 16);
  for (int64_t c = c0; c < c1; ++c) {
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* blk = w + c * row_bytes + sb * kBlockBytes<T>;
      const size_t i = static_cast<size_t>((c - c0) * nsb + sb);
      const KHeader h = k_header<T, true>(blk);
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) {
        _mm512_storeu_si512(t->codes.get() + i * 256 + 64 * p, k_part_codes<T>(blk, p));
      }
      int16_t* s = t->s16.get() + i * 16;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s), h.s16);
      t->d[i] = h.d;
      float* off = t->offset.get() + i * 16;
      for (int g = 0; g < 16; ++g) {
        off[g] = T == KType::kQ6 ? -32.0f * h.d * s[g] : -h.dmin * s[8 + g / 2];
      }
    }
  }
}

// R x C micro-tile (activation rows r0.., tile columns tc.. = weight rows c..) over an unpacked
// tile. Per super-block each (row, column) pair's exact integer sum is scaled into a float vector
// accumulator; the offsets follow as float dot products; one reduction at the end.
template <KType T, int R, int C>
void micro_k(const QuantizedActs& a, int64_t r0, const KTile& t, int64_t tc, int64_t c, float* y,
             int64_t ldy) {
  const int64_t nsb = t.nsb;
  __m512 acc[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int j = 0; j < C; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    KHeader h[C];
    const uint8_t* codes[C];
#pragma GCC unroll 16
    for (int j = 0; j < C; ++j) {
      const size_t i = static_cast<size_t>((tc + j) * nsb + sb);
      h[j].s16 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.s16.get() + i * 16));
      h[j].d = t.d[i];
      codes[j] = t.codes.get() + i * 256;
    }
    __m512i isum[R][C];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
      for (int j = 0; j < C; ++j) isum[r][j] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      __m512i q[C], sc[C];
#pragma GCC unroll 16
      for (int j = 0; j < C; ++j) {
        q[j] = _mm512_loadu_si512(codes[j] + 64 * p);
        sc[j] = k_part_scales<T>(h[j], p);
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512i x = _mm512_loadu_si512(a.qs.data() + (r0 + r) * a.k + sb * 256 + 64 * p);
#pragma GCC unroll 16
        for (int j = 0; j < C; ++j) {
          isum[r][j] = _mm512_dpwssd_epi32(isum[r][j], _mm512_maddubs_epi16(q[j], x), sc[j]);
        }
      }
    }
    // d_a * d_w from one broadcast per row and per column.
    __m512 dw[C];
#pragma GCC unroll 16
    for (int j = 0; j < C; ++j) dw[j] = _mm512_set1_ps(h[j].d);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 da = _mm512_set1_ps(a.d[(r0 + r) * nsb + sb]);
#pragma GCC unroll 16
      for (int j = 0; j < C; ++j) {
        acc[r][j] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][j]), _mm512_mul_ps(da, dw[j]), acc[r][j]);
      }
    }
  }
  for (int64_t sb = 0; sb < nsb; ++sb) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 s = _mm512_loadu_ps(a.bsum16_f.data() + ((r0 + r) * nsb + sb) * 16);
#pragma GCC unroll 16
      for (int j = 0; j < C; ++j) {
        const size_t i = static_cast<size_t>((tc + j) * nsb + sb);
        acc[r][j] = _mm512_fmadd_ps(s, _mm512_loadu_ps(t.offset.get() + i * 16), acc[r][j]);
      }
    }
  }
  store_tile_sums<R, C>(acc, r0, c, y, ldy);
}

// One activation row against one weight row: the decode (matrix-vector) shape, which reads each
// weight byte once and must keep up with memory (decode_rows walks the rows). Unlike micro_k it
// reduces nothing per super-block: a float vector accumulator takes the super-block's exact
// integer lane sums times d_a * d_w (the Q4_K/Q5_K mins likewise) and is reduced once at the end.
template <KType T>
void gemv_k(const QuantizedActs& a, int64_t r, const uint8_t* w, size_t row_bytes, int64_t c,
            float* y, int64_t ldy) {
  const int64_t nsb = a.k / 256;
  const int8_t* xr = a.qs.data() + r * a.k;
  const int16_t* bs = a.bsum16.data() + r * nsb * 16;
  const float* dr = a.d.data() + r * nsb;
  const uint8_t* row = w + c * row_bytes;
  __m512 acc = _mm512_setzero_ps();
  __m256 macc = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = row + sb * kBlockBytes<T>;
    const __m256i bsum = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + sb * 16));
    const KHeader h = k_header<T, true>(blk);
    __m512i isum = _mm512_setzero_si512();
    if constexpr (T == KType::kQ6) {  // the offset of 32: -32 * sum(scale * activation sums)
      const __m256i corr = _mm256_madd_epi16(h.corr, bsum);
      isum = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), corr));
    }
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const __m512i x = _mm512_loadu_si512(xr + sb * 256 + 64 * p);
      isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(k_part_codes<T>(blk, p), x),
                                 k_part_scales<T>(h, p));
    }
    const float da = dr[sb];
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(da * h.d), acc);
    if constexpr (T != KType::kQ6) {
      // The activation sums of each 32 in lanes 8-15, against the mins in s16's lanes 8-15
      // (lanes 0-7, the scales, meet zeros).
      const __m256i pair_sums = _mm256_inserti128_si256(
          _mm256_setzero_si256(),
          _mm_hadd_epi16(_mm256_castsi256_si128(bsum), _mm256_extracti128_si256(bsum, 1)), 1);
      const __m256 mins = _mm256_cvtepi32_ps(_mm256_madd_epi16(h.s16, pair_sums));
      macc = _mm256_fnmadd_ps(mins, _mm256_set1_ps(da * h.dmin), macc);
    }
  }
  y[r * ldy + c] = _mm512_reduce_add_ps(_mm512_add_ps(acc, _mm512_zextps256_ps512(macc)));
}

// ---- tiling -------------------------------------------------------------------------------

using MicroFn = void (*)(const QuantizedActs&, int64_t, const uint8_t*, size_t, int64_t, float*,
                         int64_t);

// Walks the tile in R x C micro-tiles, with 1-row / 1-column kernels for the edges.
template <int R, int C>
void walk(MicroFn full, MicroFn row1, MicroFn col1, MicroFn one, const QuantizedActs& a, int64_t r0,
          int64_t r1, const uint8_t* w, size_t row_bytes, int64_t c0, int64_t c1, float* y,
          int64_t ldy) {
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    int64_t c = c0;
    for (; c + C <= c1; c += C) full(a, r, w, row_bytes, c, y, ldy);
    for (; c < c1; ++c) col1(a, r, w, row_bytes, c, y, ldy);
  }
  for (; r < r1; ++r) {
    int64_t c = c0;
    for (; c + C <= c1; c += C) row1(a, r, w, row_bytes, c, y, ldy);
    for (; c < c1; ++c) one(a, r, w, row_bytes, c, y, ldy);
  }
}

// Rows [r0, r1) against weight rows [c0, c1), one weight row at a time. With a single activation
// row every weight byte comes from memory once, and one sequential stream per thread is what the
// hardware prefetcher follows best: interleaving 4 or 8 weight rows (4-8 streams 1-2 KiB apart)
// read 30 GB/s with 2 threads where this reads 43-50 (bench_quant --stream-mb, 1B shapes).
void decode_rows(MicroFn one, const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w,
                 size_t row_bytes, int64_t c0, int64_t c1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) one(a, r, w, row_bytes, c, y, ldy);
}

template <class W>
void tile32(const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w, size_t row_bytes,
            int64_t c0, int64_t c1, float* y, int64_t ldy) {
  // Whole 4-row tiles with 4 x 4 micro-tiles; the rows left over (all of them when decoding) one
  // weight row after the other (see decode_rows).
  const int64_t r4 = r0 + (r1 - r0) / 4 * 4;
  walk<4, 4>(micro32<W, 4, 4>, micro32<W, 1, 4>, micro32<W, 4, 1>, micro32<W, 1, 1>, a, r0, r4, w,
             row_bytes, c0, c1, y, ldy);
  decode_rows(micro32<W, 1, 1>, a, r4, r1, w, row_bytes, c0, c1, y, ldy);
}

template <KType T>
void tile_k(const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w, size_t row_bytes,
            int64_t c0, int64_t c1, float* y, int64_t ldy) {
  // Whole 4-row tiles with micro_k on the unpacked tile; the rows left over (all of them when
  // decoding) row by row on the blocks themselves.
  const int64_t r4 = r0 + (r1 - r0) / 4 * 4;
  if (r4 > r0) {
    KTile t;
    unpack_k<T>(w, row_bytes, c0, c1, a.k / 256, &t);
    for (int64_t r = r0; r < r4; r += 4) {
      int64_t c = c0;
      for (; c + 2 <= c1; c += 2) micro_k<T, 4, 2>(a, r, t, c - c0, c, y, ldy);
      for (; c < c1; ++c) micro_k<T, 4, 1>(a, r, t, c - c0, c, y, ldy);
    }
  }
  decode_rows(gemv_k<T>, a, r4, r1, w, row_bytes, c0, c1, y, ldy);
}

// ---- activation quantizer -------------------------------------------------------------------

void quantize_acts_avx512(const float* x, int64_t r0, int64_t r1, QuantizedActs* out) {
  const int64_t k = out->k;
  const bool k32 = out->kind == ActKind::kQ8x32;
  const int64_t group = k32 ? 32 : 256, ng = k / group;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* src = x + r * k + g * group;
      int8_t* q = out->qs.data() + r * k + g * group;
      __m512 mx = _mm512_setzero_ps();
      for (int64_t j = 0; j < group; j += 16)
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(src + j)));
      const float amax = _mm512_reduce_max_ps(mx);
      const float d = amax / 127.0f;  // same operations as the scalar reference
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m512 vid = _mm512_set1_ps(id);
      int32_t total = 0;
      for (int64_t j = 0; j < group; j += 16) {
        // cvtps rounds to nearest even (default MXCSR), as nearbyint does.
        const __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(src + j), vid));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(q + j), _mm512_cvtsepi32_epi8(qi));
        const int32_t s = _mm512_reduce_add_epi32(qi);
        if (k32) {
          total += s;
        } else {
          out->bsum16[(r * ng + g) * 16 + j / 16] = static_cast<int16_t>(s);
        }
      }
      out->d[r * ng + g] = d;
      if (k32) out->sum32[r * ng + g] = total;
    }
  }
}

#undef GB_INLINE

// Constant-initialised inside the target region, so the templates are instantiated with it.
constexpr Kernels kAvx512Kernels = {.q4_0 = tile32<Q4_0Weights>,
                                    .q8_0 = tile32<Q8_0Weights>,
                                    .q4_k = tile_k<KType::kQ4>,
                                    .q5_k = tile_k<KType::kQ5>,
                                    .q6_k = tile_k<KType::kQ6>,
                                    .quantize_acts = quantize_acts_avx512};

}  // namespace
}  // namespace glassbox::ops::quant_detail

#pragma GCC diagnostic pop
#pragma GCC pop_options

namespace glassbox::ops::quant_detail {

// Outside the target region: this runs before the CPU check and must not use AVX-512 itself.
const Kernels* avx512_vnni_kernels() { return &kAvx512Kernels; }

}  // namespace glassbox::ops::quant_detail

#else

namespace glassbox::ops::quant_detail {
const Kernels* avx512_vnni_kernels() { return nullptr; }
}  // namespace glassbox::ops::quant_detail

#endif
