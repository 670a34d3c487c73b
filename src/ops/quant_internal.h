// Internals shared by the quant_*.cpp files (not for use outside ops/): the kernel table each
// instruction set fills in, and the half-precision conversions the block formats need.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/half.h"
#include "ops/quant.h"

namespace glassbox::ops::quant_detail {

// One tile: y[r * ldy + c] = dot(act row r, weight row c) for r in [r0, r1), c in [c0, c1).
// `w` points at weight row 0; rows are `row_bytes` apart. The caller sizes [c0, c1) so that
// those weight rows stay in cache while every activation row passes over them.
using TileFn = void (*)(const QuantizedActs& a, int64_t r0, int64_t r1, const uint8_t* w,
                        size_t row_bytes, int64_t c0, int64_t c1, float* y, int64_t ldy);
// Quantizes rows [r0, r1) of x into `out` (already sized by the caller).
using QuantizeActsFn = void (*)(const float* x, int64_t r0, int64_t r1, QuantizedActs* out);

struct Kernels {
  TileFn q4_0 = nullptr, q4_1 = nullptr, q5_0 = nullptr, q5_1 = nullptr, q8_0 = nullptr;
  TileFn q4_k = nullptr, q5_k = nullptr, q6_k = nullptr;
  QuantizeActsFn quantize_acts = nullptr;
};

const Kernels& scalar_kernels();
// nullptr when the file was built without that instruction set (non-x86 compilers).
const Kernels* avx2_kernels();
const Kernels* avx512_vnni_kernels();

// f16 <-> f32 (core/half.h). The decode is exact; the encode rounds to nearest even.
inline float f16(uint16_t h) { return f16_to_f32(h); }
using glassbox::f32_to_f16;

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (layout in quant.h).
inline void k_scale_min(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Scalar activation quantizer (the reference; SIMD versions reproduce its codes exactly).
void quantize_acts_rows_ref(const float* x, int64_t r0, int64_t r1, QuantizedActs* out);

}  // namespace glassbox::ops::quant_detail
