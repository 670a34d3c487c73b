#include "ops/half_matmul.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/half.h"

namespace glassbox::ops {
namespace {

// Resolved once: the CPU does not change under a running process.
const bool kHalfAvx512 = detail::half_avx512_available();

// Products (n * m * k multiply-adds) below this run on the calling thread: waking the pool costs
// more than it saves.
constexpr double kHalfMinParallelWork = 1 << 19;
// Prefill: f32 bytes of one tile of widened weight rows. OpenBLAS packs x again for every sgemm
// call, so tiles should be large; but the tile is written and read back once per call, so it
// should stay in L2 (1 MiB per core here).
constexpr int64_t kHalfTileBytes = 512 * 1024;

}  // namespace

namespace detail {

// F16C is not asked for separately: AVX-512F (+VL) has vcvtph2ps in every width, every
// AVX-512 CPU has F16C, and clang's __builtin_cpu_supports does not know the name "f16c".
bool half_avx512_available() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

void gemv_half_ref(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0,
                   int64_t r1, float* y) {
  const bool bf16 = dtype == DType::kBF16;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* row = w + r * k;
    float s = 0.0f;
    for (int64_t i = 0; i < k; ++i) s += (bf16 ? bf16_to_f32(row[i]) : f16_to_f32(row[i])) * x[i];
    y[r - r0] = s;
  }
}

void half_to_f32_ref(DType dtype, const uint16_t* src, int64_t count, float* dst) {
  if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(src[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_f32(src[i]);
  }
}

}  // namespace detail

void gemv_half(DType dtype, const uint16_t* w, int64_t k, const float* x, int64_t r0, int64_t r1,
               float* y) {
  if (kHalfAvx512) return detail::gemv_half_avx512(dtype, w, k, x, r0, r1, y);
  detail::gemv_half_ref(dtype, w, k, x, r0, r1, y);
}

void half_to_f32(DType dtype, const uint16_t* src, int64_t count, float* dst) {
  if (kHalfAvx512) return detail::half_to_f32_avx512(dtype, src, count, dst);
  detail::half_to_f32_ref(dtype, src, count, dst);
}

void half_matmul(const float* x, int64_t n, int64_t k, DType dtype, const uint16_t* w, int64_t m,
                 float* y, ThreadPool& pool) {
  GLASSBOX_ASSERT(dtype == DType::kF16 || dtype == DType::kBF16);
  const int threads = pool.size();
  const bool parallel =
      threads > 1 && static_cast<double>(n) * static_cast<double>(m) * k >= kHalfMinParallelWork;
  if (n == 1) {
    // Decode reads each weight once: ranges of rows only balance the threads (a few per thread,
    // so one that starts late takes fewer).
    const int64_t tile = std::max<int64_t>(8, (m + threads * 8 - 1) / (threads * 8));
    const int64_t n_tiles = (m + tile - 1) / tile;
    const auto run = [&](int64_t t0, int64_t t1) {
      const int64_t r0 = t0 * tile, r1 = std::min(m, t1 * tile);
      gemv_half(dtype, w, k, x, r0, r1, y + r0);
    };
    if (parallel) {
      pool.parallel_for(n_tiles, run);
    } else {
      run(0, n_tiles);
    }
    return;
  }
  // Prefill: widen a tile of weight rows to f32, multiply all activation rows with it (sgemm,
  // single-threaded: the pool owns the threading), write the tile's output columns, repeat. Each
  // thread owns contiguous output columns, so writes never overlap.
  const int64_t tile = std::max<int64_t>(16, kHalfTileBytes / (4 * k) / 16 * 16);
  const int64_t n_tiles = (m + tile - 1) / tile;
  const auto run = [&](int64_t t0, int64_t t1) {
    std::vector<float> buf(static_cast<size_t>(std::min(tile, m) * k));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * tile, rows = std::min(m, r0 + tile) - r0;
      half_to_f32(dtype, w + r0 * k, rows * k, buf.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                  static_cast<int>(rows), static_cast<int>(k), 1.0f, x, static_cast<int>(k),
                  buf.data(), static_cast<int>(k), 0.0f, y + r0, static_cast<int>(m));
    }
  };
  if (parallel) {
    pool.parallel_for(n_tiles, run);
  } else {
    run(0, n_tiles);
  }
}

}  // namespace glassbox::ops
