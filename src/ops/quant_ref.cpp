// Scalar reference of the quantized formats: dequantization, the int8 activation quantizer, and
// the dot product of one weight row with one activation row for every type. Plain loops written
// straight from the layouts in quant.h; the SIMD kernels are tested against these.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/quant_internal.h"

namespace glassbox::ops {
namespace quant_detail {

void quantize_acts_rows_ref(const float* x, int64_t r0, int64_t r1, QuantizedActs* out) {
  const int64_t k = out->k;
  const int64_t group = out->kind == ActKind::kQ8x32 ? 32 : 256;
  const int64_t ng = k / group;
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* src = x + r * k + g * group;
      int8_t* q = out->qs.data() + r * k + g * group;
      float amax = 0.0f;
      for (int64_t j = 0; j < group; ++j) amax = std::max(amax, std::fabs(src[j]));
      // Symmetric codes in [-127, 127]; the SIMD quantizers use the same three operations
      // (divide, reciprocal, round-to-nearest-even product), so their codes are identical.
      const float d = amax / 127.0f;
      const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t j = 0; j < group; ++j) {
        const float v = std::nearbyint(src[j] * id);
        q[j] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
      }
      out->d[r * ng + g] = d;
      if (out->kind == ActKind::kQ8x32) {
        int32_t s = 0;
        for (int64_t j = 0; j < 32; ++j) s += q[j];
        out->sum32[r * ng + g] = s;
      } else {
        for (int64_t h = 0; h < 16; ++h) {
          int32_t s = 0;
          for (int64_t j = 0; j < 16; ++j) s += q[h * 16 + j];
          out->bsum16[(r * ng + g) * 16 + h] = static_cast<int16_t>(s);
        }
      }
    }
  }
}

namespace {

// Codes of one 32-element block with 4-bit nibbles (+ optional 5th bit), unsigned 0..31.
void unpack_nibbles(const uint8_t* qs, const uint8_t* qh, int* q) {
  uint32_t h = 0;
  if (qh != nullptr) std::memcpy(&h, qh, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = (qs[j] & 15) | static_cast<int>((h >> j) & 1u) << 4;
    q[j + 16] = (qs[j] >> 4) | static_cast<int>((h >> (j + 16)) & 1u) << 4;
  }
}

// Codes (0..63 before the -32 offset) of a Q6_K block, in element order.
void unpack_q6k(const BlockQ6_K& b, int* q) {
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    int* o = q + 128 * h;
    for (int l = 0; l < 32; ++l) {
      o[l] = (ql[l] & 15) | ((qh[l] >> 0) & 3) << 4;
      o[l + 32] = (ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4;
      o[l + 64] = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
      o[l + 96] = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
    }
  }
}

// Codes 0..31 of a Q4_K (qh == nullptr) or Q5_K block, in element order.
void unpack_k45(const uint8_t* qs, const uint8_t* qh, int* q) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
      if (qh != nullptr) {
        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      q[64 * c + l] = lo;
      q[64 * c + 32 + l] = hi;
    }
  }
}

template <class Block>
const Block* blocks(const void* p) {
  return static_cast<const Block*>(p);
}

}  // namespace
}  // namespace quant_detail

using namespace quant_detail;  // NOLINT: this file implements them

void dequantize_row(DType dtype, const void* src, float* dst, int64_t k) {
  int q[256];
  switch (dtype) {
    case DType::kQ4_0:
      for (int64_t b = 0; b < k / 32; ++b) {
        const BlockQ4_0& blk = blocks<BlockQ4_0>(src)[b];
        unpack_nibbles(blk.qs, nullptr, q);
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = f16(blk.d) * static_cast<float>(q[j] - 8);
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < k / 32; ++b) {
        const BlockQ4_1& blk = blocks<BlockQ4_1>(src)[b];
        unpack_nibbles(blk.qs, nullptr, q);
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = f16(blk.d) * q[j] + f16(blk.m);
      }
      return;
    case DType::kQ5_0:
      for (int64_t b = 0; b < k / 32; ++b) {
        const BlockQ5_0& blk = blocks<BlockQ5_0>(src)[b];
        unpack_nibbles(blk.qs, blk.qh, q);
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = f16(blk.d) * static_cast<float>(q[j] - 16);
      }
      return;
    case DType::kQ5_1:
      for (int64_t b = 0; b < k / 32; ++b) {
        const BlockQ5_1& blk = blocks<BlockQ5_1>(src)[b];
        unpack_nibbles(blk.qs, blk.qh, q);
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = f16(blk.d) * q[j] + f16(blk.m);
      }
      return;
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b) {
        const BlockQ8_0& blk = blocks<BlockQ8_0>(src)[b];
        for (int j = 0; j < 32; ++j) dst[b * 32 + j] = f16(blk.d) * blk.qs[j];
      }
      return;
    case DType::kQ4_K:
    case DType::kQ5_K:
      for (int64_t b = 0; b < k / 256; ++b) {
        const uint8_t *scales, *qs, *qh = nullptr;
        uint16_t d, dmin;
        if (dtype == DType::kQ4_K) {
          const BlockQ4_K& blk = blocks<BlockQ4_K>(src)[b];
          d = blk.d, dmin = blk.dmin, scales = blk.scales, qs = blk.qs;
        } else {
          const BlockQ5_K& blk = blocks<BlockQ5_K>(src)[b];
          d = blk.d, dmin = blk.dmin, scales = blk.scales, qs = blk.qs, qh = blk.qh;
        }
        unpack_k45(qs, qh, q);
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          k_scale_min(scales, j, &sc, &m);
          const float dl = f16(d) * sc, ml = f16(dmin) * m;
          for (int l = 0; l < 32; ++l) dst[b * 256 + 32 * j + l] = dl * q[32 * j + l] - ml;
        }
      }
      return;
    case DType::kQ6_K:
      for (int64_t b = 0; b < k / 256; ++b) {
        const BlockQ6_K& blk = blocks<BlockQ6_K>(src)[b];
        unpack_q6k(blk, q);
        for (int e = 0; e < 256; ++e) {
          dst[b * 256 + e] = f16(blk.d) * blk.scales[e / 16] * static_cast<float>(q[e] - 32);
        }
      }
      return;
    default:
      GLASSBOX_ASSERT(false && "dequantize_row: not a quantized type");
  }
}

float quant_dot_ref(DType dtype, const void* w_row, const QuantizedActs& a, int64_t r) {
  const int64_t k = a.k;
  const int8_t* aq = a.qs.data() + r * k;
  int q[256];
  float sum = 0.0f;
  if (a.kind == ActKind::kQ8x32) {
    const int64_t nb = k / 32;
    const float* ad = a.d.data() + r * nb;
    const int32_t* as = a.sum32.data() + r * nb;
    for (int64_t b = 0; b < nb; ++b) {
      float dw = 0.0f, mw = 0.0f;
      int offset = 0;
      switch (dtype) {
        case DType::kQ8_0: {
          const BlockQ8_0& blk = blocks<BlockQ8_0>(w_row)[b];
          for (int j = 0; j < 32; ++j) q[j] = blk.qs[j];
          dw = f16(blk.d);
          break;
        }
        case DType::kQ4_0: {
          const BlockQ4_0& blk = blocks<BlockQ4_0>(w_row)[b];
          unpack_nibbles(blk.qs, nullptr, q);
          dw = f16(blk.d), offset = 8;
          break;
        }
        case DType::kQ4_1: {
          const BlockQ4_1& blk = blocks<BlockQ4_1>(w_row)[b];
          unpack_nibbles(blk.qs, nullptr, q);
          dw = f16(blk.d), mw = f16(blk.m);
          break;
        }
        case DType::kQ5_0: {
          const BlockQ5_0& blk = blocks<BlockQ5_0>(w_row)[b];
          unpack_nibbles(blk.qs, blk.qh, q);
          dw = f16(blk.d), offset = 16;
          break;
        }
        case DType::kQ5_1: {
          const BlockQ5_1& blk = blocks<BlockQ5_1>(w_row)[b];
          unpack_nibbles(blk.qs, blk.qh, q);
          dw = f16(blk.d), mw = f16(blk.m);
          break;
        }
        default:
          GLASSBOX_ASSERT(false && "quant_dot_ref: weight type does not match Q8x32 acts");
      }
      int32_t isum = 0;
      for (int j = 0; j < 32; ++j) isum += (q[j] - offset) * aq[b * 32 + j];
      sum += ad[b] * (dw * static_cast<float>(isum) + mw * static_cast<float>(as[b]));
    }
    return sum;
  }
  const int64_t nsb = k / 256;
  for (int64_t b = 0; b < nsb; ++b) {
    const int8_t* x = aq + b * 256;
    const int16_t* bs = a.bsum16.data() + (r * nsb + b) * 16;
    const float da = a.d[r * nsb + b];
    if (dtype == DType::kQ6_K) {
      const BlockQ6_K& blk = blocks<BlockQ6_K>(w_row)[b];
      unpack_q6k(blk, q);
      int32_t isum = 0;
      for (int s = 0; s < 16; ++s) {
        int32_t t = 0;
        for (int l = 0; l < 16; ++l) t += (q[16 * s + l] - 32) * x[16 * s + l];
        isum += blk.scales[s] * t;
      }
      sum += da * f16(blk.d) * static_cast<float>(isum);
      continue;
    }
    GLASSBOX_ASSERT((dtype == DType::kQ4_K || dtype == DType::kQ5_K) &&
                    "quant_dot_ref: weight type does not match Q8x256 acts");
    const uint8_t *scales, *qs, *qh = nullptr;
    uint16_t d, dmin;
    if (dtype == DType::kQ4_K) {
      const BlockQ4_K& blk = blocks<BlockQ4_K>(w_row)[b];
      d = blk.d, dmin = blk.dmin, scales = blk.scales, qs = blk.qs;
    } else {
      const BlockQ5_K& blk = blocks<BlockQ5_K>(w_row)[b];
      d = blk.d, dmin = blk.dmin, scales = blk.scales, qs = blk.qs, qh = blk.qh;
    }
    unpack_k45(qs, qh, q);
    int32_t isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      k_scale_min(scales, j, &sc, &m);
      int32_t t = 0;
      for (int l = 0; l < 32; ++l) t += q[32 * j + l] * x[32 * j + l];
      isum += sc * t;
      msum += m * (bs[2 * j] + bs[2 * j + 1]);
    }
    sum += da * (f16(d) * static_cast<float>(isum) - f16(dmin) * static_cast<float>(msum));
  }
  return sum;
}

namespace quant_detail {
namespace {

template <DType kType>
void scalar_tile(const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w, size_t row_bytes,
                 int64_t c0, int64_t c1, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c)
      y[r * ldy + c] = quant_dot_ref(kType, w + c * row_bytes, a, r);
  }
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k = [] {
    Kernels t;
    t.q4_0 = scalar_tile<DType::kQ4_0>;
    t.q4_1 = scalar_tile<DType::kQ4_1>;
    t.q5_0 = scalar_tile<DType::kQ5_0>;
    t.q5_1 = scalar_tile<DType::kQ5_1>;
    t.q8_0 = scalar_tile<DType::kQ8_0>;
    t.q4_k = scalar_tile<DType::kQ4_K>;
    t.q5_k = scalar_tile<DType::kQ5_K>;
    t.q6_k = scalar_tile<DType::kQ6_K>;
    t.quantize_acts = quantize_acts_rows_ref;
    return t;
  }();
  return k;
}

}  // namespace quant_detail
}  // namespace glassbox::ops
