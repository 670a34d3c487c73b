// Block-quantized weights (ggml layouts): dequantization, quantization, and matrix products that
// run directly on the quantized blocks. This module owns the block formats, the scalar reference
// of every operation on them, the int8 activation format of the integer kernels, and the SIMD
// kernels (AVX-512 VNNI, AVX2) behind a runtime dispatch. It knows nothing of files or models:
// ops.cpp routes weights here; io/gguf hands over the blocks as borrowed tensors.
//
// Block layouts, as ggml stores them (little-endian; f16 = IEEE half; "q" = stored code):
//   Q4_0  32 elems, 18 B: f16 d | u8 qs[16]. Elem j < 16 = low nibble of qs[j], elem j + 16 =
//         high nibble of qs[j]; x = d * (q - 8).
//   Q4_1  32 elems, 20 B: f16 d | f16 m | u8 qs[16] (nibbles as Q4_0); x = d * q + m.
//   Q5_0  32 elems, 22 B: f16 d | u32 qh (4 bytes) | u8 qs[16]. Nibbles as Q4_0; bit j of qh is
//         bit 4 of elem j (j < 32); x = d * (q - 16).
//   Q5_1  32 elems, 24 B: f16 d | f16 m | u32 qh | u8 qs[16]; x = d * q + m.
//   Q8_0  32 elems, 34 B: f16 d | i8 qs[32]; x = d * q.
//   Q4_K  256 elems in 8 sub-blocks of 32, 144 B: f16 d | f16 dmin | u8 scales[12] | u8 qs[128].
//         Sub-block j has a 6-bit scale sc_j and a 6-bit min m_j packed in `scales`:
//           j < 4:  sc = scales[j] & 63,  m = scales[j + 4] & 63
//           j >= 4: sc = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4,
//                   m  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
//         qs in 4 chunks of 32 bytes: chunk c holds sub-block 2c in its low nibbles and 2c + 1 in
//         its high nibbles (elem 64c + l = low nibble of qs[32c + l], 64c + 32 + l = high nibble).
//         x = d * sc_j * q - dmin * m_j.
//   Q5_K  256 elems, 176 B: f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]. As Q4_K,
//         plus a 5th bit: elem 64c + l takes bit 2c of qh[l], elem 64c + 32 + l bit 2c + 1.
//   Q6_K  256 elems in 16 sub-blocks of 16, 210 B: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d.
//         Two halves of 128 (h = 0, 1) use ql[64h..], qh[32h..], scales[8h..]; for l < 32:
//           elem 128h + l      = low  nibble of ql[64h + l]      | (qh[32h + l] >> 0 & 3) << 4
//           elem 128h + l + 32 = low  nibble of ql[64h + l + 32] | (qh[32h + l] >> 2 & 3) << 4
//           elem 128h + l + 64 = high nibble of ql[64h + l]      | (qh[32h + l] >> 4 & 3) << 4
//           elem 128h + l + 96 = high nibble of ql[64h + l + 32] | (qh[32h + l] >> 6 & 3) << 4
//         x = d * scales[e / 16] * (q - 32), e the element index in the block.
// A row of k elements is k / block_size consecutive blocks; a [rows, k] weight is rows rows.
//
// Matrix product y[n, m] = x[n, k] @ W^T (W quantized, [m, k]): the activation rows are
// quantized once per call to int8 (symmetric, scale amax / 127) in blocks of 32 (for the 32-element
// weight types; with the sum of each block) or 256 (for the K types; with the sum of each 16),
// then every output is an integer dot product per block scaled in float, as llama.cpp does. The
// error this adds is that of rounding x to 8 bits (relative ~1e-3 per product, see
// docs/quantization.md); the integer part is exact, so the SIMD kernels equal the scalar reference
// up to float summation order.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace glassbox::ops {

// clang-format off
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
// clang-format on
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// The quantized types handled here (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K).
bool is_quant_type(DType dtype);
// Those with integer matmul kernels (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K); the others are multiplied by
// dequantizing tiles and calling sgemm.
bool has_int_kernel(DType dtype);

// Scalar reference: k floats from k / block_size consecutive blocks at `src`.
void dequantize_row(DType dtype, const void* src, float* dst, int64_t k);
// Scalar reference quantizer (for conversion and tests): k floats -> dtype_bytes(dtype, k) bytes.
// Scales are searched to minimise the squared error of each (sub-)block; the block scales of the
// K types are then quantized to 6 (Q4_K/Q5_K) or 8 (Q6_K) bits and the codes refit to them.
void quantize_row(DType dtype, const float* src, void* dst, int64_t k);

// int8 activation rows, the form the integer kernels consume. Group = 32 (Q8x32) or 256 (Q8x256).
enum class ActKind { kQ8x32, kQ8x256 };
ActKind act_kind_for(DType weight);  // kQ8x256 for the K types
struct QuantizedActs {
  ActKind kind = ActKind::kQ8x32;
  int64_t n = 0, k = 0;
  std::vector<int8_t> qs;       // [n, k] codes in [-127, 127]; x ~= d * q
  std::vector<float> d;         // [n, k / group] scale of each group
  std::vector<int32_t> sum32;   // kQ8x32: [n, k / 32] sum of the codes of each block
  std::vector<int16_t> bsum16;  // kQ8x256: [n, k / 16] sum of the codes of each 16
  std::vector<float> bsum16_f;  // kQ8x256: [n, k / 16] d of the group * bsum16 (the prefill
                                // kernels' offset terms are float dot products with these)
  int64_t groups() const { return k / (kind == ActKind::kQ8x32 ? 32 : 256); }
};
// Scalar reference of the activation quantizer (the SIMD one gives identical codes).
void quantize_acts_ref(const float* x, int64_t n, int64_t k, ActKind kind, QuantizedActs* out);
// Scalar reference dot product of weight row `w_row` (k / block_size blocks) and act row `r`.
float quant_dot_ref(DType dtype, const void* w_row, const QuantizedActs& a, int64_t r);

// Code path of the integer kernels. kAuto picks the best the CPU supports (AVX-512 VNNI, else
// AVX2, else scalar); tests and benchmarks force the others.
enum class QuantPath { kAuto, kScalar, kAvx2, kAvx512Vnni };
bool quant_path_available(QuantPath path);
QuantPath quant_path_resolve(QuantPath path);  // kAuto -> the concrete best path
const char* quant_path_name(QuantPath path);

// y[n, m] = x[n, k] @ W^T for a quantized W [m, k] (row-major). Threads split the output columns
// (weight rows); large n is tiled so a weight tile is reused from cache across all activation
// rows. Throws Error(kShape) up front when k is not a whole number of blocks (the loaders reject
// such tensors already) and kUnsupported for a non-quantized dtype; nothing throws after that.
void quant_matmul(const float* x, int64_t n, int64_t k, DType dtype, const void* w, int64_t m,
                  float* y, ThreadPool& pool, QuantPath path = QuantPath::kAuto);

// The same on already quantized activations (a.k == k), for tests and benchmarks.
void quant_matmul_acts(const QuantizedActs& a, DType dtype, const void* w, int64_t m, float* y,
                       ThreadPool& pool, QuantPath path = QuantPath::kAuto);
// Activation quantizer with the chosen path (identical codes on every path).
void quantize_acts(const float* x, int64_t n, int64_t k, ActKind kind, QuantizedActs* out,
                   QuantPath path = QuantPath::kAuto);

}  // namespace glassbox::ops
