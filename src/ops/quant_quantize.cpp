// Reference quantizers (f32 -> ggml blocks), used by conversion and by the tests. Each block's
// scale (and offset) is chosen by a small search: candidate scales around the one that maps the
// extreme value to the end of the code range, each refit by least squares for its rounding, the
// lowest squared error kept. Not bit-identical to llama.cpp's quantizer; comparable error.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops/quant_internal.h"

namespace glassbox::ops {
namespace {

using quant_detail::f16;
using quant_detail::f32_to_f16;

int clamp_round(float v, int lo, int hi) {
  return std::clamp(static_cast<int>(std::nearbyint(v)), lo, hi);
}

// x ~= d * q with integer q in [-n_neg, n_pos]. Returns d (0 for an all-zero block).
float fit_symmetric(const float* x, int n, int n_neg, int n_pos) {
  float xm = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(xm)) xm = x[i];
  }
  if (xm == 0.0f) return 0.0f;
  float best_d = 0.0f;
  double best_err = INFINITY;
  // Map the extreme value to either end of the range, at or slightly inside it.
  for (int side = 0; side < 2; ++side) {
    for (int step = 0; step <= 12; ++step) {
      const float end = side == 0 ? -static_cast<float>(n_neg) : static_cast<float>(n_pos);
      const float target = end - std::copysign(0.1f * step, end);
      if (target == 0.0f) continue;
      const float d0 = xm / target;
      double sxq = 0.0, sqq = 0.0;
      for (int i = 0; i < n; ++i) {
        const int q = clamp_round(x[i] / d0, -n_neg, n_pos);
        sxq += static_cast<double>(x[i]) * q;
        sqq += static_cast<double>(q) * q;
      }
      if (sqq == 0.0) continue;
      const auto d = static_cast<float>(sxq / sqq);  // least squares for these codes
      double err = 0.0;
      for (int i = 0; i < n; ++i) {
        const double e = x[i] - static_cast<double>(d) * clamp_round(x[i] / d, -n_neg, n_pos);
        err += e * e;
      }
      if (err < best_err) best_err = err, best_d = d;
    }
  }
  return best_d;
}

// x ~= s * q + o with q in [0, levels]; with `nonpositive_offset`, o <= 0 (the K types store -o
// as an unsigned min). Returns s and o through the pointers.
void fit_affine(const float* x, int n, int levels, bool nonpositive_offset, float* s_out,
                float* o_out) {
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  if (nonpositive_offset) lo = std::min(lo, 0.0f);
  *s_out = 0.0f, *o_out = lo;
  if (hi <= lo) return;
  double best_err = INFINITY;
  for (int step = 0; step <= 10; ++step) {
    float s = (hi - lo) / (static_cast<float>(levels) - 0.1f * step), o = lo;
    for (int iter = 0; iter < 3; ++iter) {
      double sq = 0, sx = 0, sqq = 0, sqx = 0;
      for (int i = 0; i < n; ++i) {
        const int q = clamp_round((x[i] - o) / s, 0, levels);
        sq += q, sx += x[i], sqq += static_cast<double>(q) * q,
            sqx += static_cast<double>(q) * x[i];
      }
      const double det = n * sqq - sq * sq;
      if (det <= 0.0) break;
      double ns = (n * sqx - sq * sx) / det, no = (sx - ns * sq) / n;
      if (nonpositive_offset && no > 0.0) no = 0.0, ns = sqq > 0 ? sqx / sqq : 0.0;
      if (ns <= 0.0) break;
      s = static_cast<float>(ns), o = static_cast<float>(no);
      double err = 0.0;
      for (int i = 0; i < n; ++i) {
        const double e =
            x[i] - (static_cast<double>(s) * clamp_round((x[i] - o) / s, 0, levels) + o);
        err += e * e;
      }
      if (err < best_err) best_err = err, *s_out = s, *o_out = o;
    }
  }
}

void quantize_q8_0(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
  out->d = f32_to_f16(amax / 127.0f);
  const float d = f16(out->d), id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < 32; ++i) out->qs[i] = static_cast<int8_t>(clamp_round(x[i] * id, -127, 127));
}

// Q4_0 / Q5_0: codes q + offset with q in [-offset, offset - 1].
void quantize_sym32(const float* x, int offset, uint16_t* d_out, uint8_t* qs, uint8_t* qh) {
  *d_out = f32_to_f16(fit_symmetric(x, 32, offset, offset - 1));
  const float d = f16(*d_out), id = d != 0.0f ? 1.0f / d : 0.0f;
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = clamp_round(x[j] * id, -offset, offset - 1) + offset;
    const int b = clamp_round(x[j + 16] * id, -offset, offset - 1) + offset;
    qs[j] = static_cast<uint8_t>((a & 15) | (b & 15) << 4);
    h |= static_cast<uint32_t>(a >> 4) << j | static_cast<uint32_t>(b >> 4) << (j + 16);
  }
  if (qh != nullptr) std::memcpy(qh, &h, 4);
}

// Q4_1 / Q5_1: x = d * q + m, q in [0, levels].
void quantize_affine32(const float* x, int levels, uint16_t* d_out, uint16_t* m_out, uint8_t* qs,
                       uint8_t* qh) {
  float s, o;
  fit_affine(x, 32, levels, false, &s, &o);
  *d_out = f32_to_f16(s), *m_out = f32_to_f16(o);
  const float d = f16(*d_out), m = f16(*m_out), id = d != 0.0f ? 1.0f / d : 0.0f;
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    const int a = clamp_round((x[j] - m) * id, 0, levels);
    const int b = clamp_round((x[j + 16] - m) * id, 0, levels);
    qs[j] = static_cast<uint8_t>((a & 15) | (b & 15) << 4);
    h |= static_cast<uint32_t>(a >> 4) << j | static_cast<uint32_t>(b >> 4) << (j + 16);
  }
  if (qh != nullptr) std::memcpy(qh, &h, 4);
}

// Q4_K / Q5_K (levels 15 / 31): 8 sub-blocks of 32, each x = d*sc*q - dmin*m.
void quantize_k45(const float* x, int levels, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                  uint8_t* qs, uint8_t* qh) {
  float s[8], mn[8], max_s = 0.0f, max_m = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float o;
    fit_affine(x + 32 * j, 32, levels, true, &s[j], &o);
    mn[j] = -o;
    max_s = std::max(max_s, s[j]), max_m = std::max(max_m, mn[j]);
  }
  *d_out = f32_to_f16(max_s / 63.0f), *dmin_out = f32_to_f16(max_m / 63.0f);
  const float d = f16(*d_out), dmin = f16(*dmin_out);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(d > 0.0f ? clamp_round(s[j] / d, 0, 63) : 0);
    m[j] = static_cast<uint8_t>(dmin > 0.0f ? clamp_round(mn[j] / dmin, 0, 63) : 0);
  }
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
    scales[j + 4] = static_cast<uint8_t>(m[j] | (m[j + 4] >> 4) << 6);
    scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
  }
  if (qh != nullptr) std::memset(qh, 0, 32);
  std::memset(qs, 0, 128);
  for (int j = 0; j < 8; ++j) {
    const float step = d * sc[j], off = dmin * m[j];
    const float id = step != 0.0f ? 1.0f / step : 0.0f;
    for (int l = 0; l < 32; ++l) {
      const int q = clamp_round((x[32 * j + l] + off) * id, 0, levels);
      const int c = j / 2, hi = j % 2;  // chunk c holds sub-blocks 2c (low) and 2c + 1 (high)
      qs[32 * c + l] |= static_cast<uint8_t>((q & 15) << (4 * hi));
      if (qh != nullptr) qh[l] |= static_cast<uint8_t>((q >> 4) << j);
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* out) {
  float s[16], amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    s[j] = fit_symmetric(x + 16 * j, 16, 32, 31);
    amax = std::max(amax, std::fabs(s[j]));
  }
  out->d = f32_to_f16(amax / 127.0f);
  const float d = f16(out->d);
  std::memset(out->ql, 0, sizeof(out->ql));
  std::memset(out->qh, 0, sizeof(out->qh));
  for (int j = 0; j < 16; ++j) {
    out->scales[j] = static_cast<int8_t>(d > 0.0f ? clamp_round(s[j] / d, -128, 127) : 0);
  }
  for (int e = 0; e < 256; ++e) {
    const float step = d * out->scales[e / 16];
    const int q = (step != 0.0f ? clamp_round(x[e] / step, -32, 31) : 0) + 32;
    // Inverse of the layout in quant.h: half h, quarter t (0..3) of the half, lane l.
    const int h = e / 128, t = (e % 128) / 32, l = e % 32;
    const int ql_index = 64 * h + l + 32 * (t % 2);
    out->ql[ql_index] |= static_cast<uint8_t>((q & 15) << (4 * (t / 2)));
    out->qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * t));
  }
}

template <class Block>
Block* blocks(void* p) {
  return static_cast<Block*>(p);
}

}  // namespace

void quantize_row(DType dtype, const float* src, void* dst, int64_t k) {
  switch (dtype) {
    case DType::kQ8_0:
      for (int64_t b = 0; b < k / 32; ++b) quantize_q8_0(src + 32 * b, blocks<BlockQ8_0>(dst) + b);
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < k / 32; ++b) {
        BlockQ4_0& o = blocks<BlockQ4_0>(dst)[b];
        quantize_sym32(src + 32 * b, 8, &o.d, o.qs, nullptr);
      }
      return;
    case DType::kQ5_0:
      for (int64_t b = 0; b < k / 32; ++b) {
        BlockQ5_0& o = blocks<BlockQ5_0>(dst)[b];
        quantize_sym32(src + 32 * b, 16, &o.d, o.qs, o.qh);
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < k / 32; ++b) {
        BlockQ4_1& o = blocks<BlockQ4_1>(dst)[b];
        quantize_affine32(src + 32 * b, 15, &o.d, &o.m, o.qs, nullptr);
      }
      return;
    case DType::kQ5_1:
      for (int64_t b = 0; b < k / 32; ++b) {
        BlockQ5_1& o = blocks<BlockQ5_1>(dst)[b];
        quantize_affine32(src + 32 * b, 31, &o.d, &o.m, o.qs, o.qh);
      }
      return;
    case DType::kQ4_K:
      for (int64_t b = 0; b < k / 256; ++b) {
        BlockQ4_K& o = blocks<BlockQ4_K>(dst)[b];
        quantize_k45(src + 256 * b, 15, &o.d, &o.dmin, o.scales, o.qs, nullptr);
      }
      return;
    case DType::kQ5_K:
      for (int64_t b = 0; b < k / 256; ++b) {
        BlockQ5_K& o = blocks<BlockQ5_K>(dst)[b];
        quantize_k45(src + 256 * b, 31, &o.d, &o.dmin, o.scales, o.qs, o.qh);
      }
      return;
    case DType::kQ6_K:
      for (int64_t b = 0; b < k / 256; ++b)
        quantize_q6_k(src + 256 * b, blocks<BlockQ6_K>(dst) + b);
      return;
    default:
      GLASSBOX_ASSERT(false && "quantize_row: not a quantized type");
  }
}

}  // namespace glassbox::ops
