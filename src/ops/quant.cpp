// Dispatch and driver of the quantized matmul: picks the kernel set for the CPU, quantizes the
// activation rows, and splits the output into cache-sized tiles of weight rows over the pool.
#include <algorithm>
#include <string>

#include "ops/quant_internal.h"

namespace glassbox::ops {
namespace {

using quant_detail::Kernels;
using quant_detail::TileFn;

bool cpu_has_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

const Kernels& kernels_for(QuantPath path) {
  switch (quant_path_resolve(path)) {
    case QuantPath::kAvx512Vnni:
      return *quant_detail::avx512_vnni_kernels();
    case QuantPath::kAvx2:
      return *quant_detail::avx2_kernels();
    default:
      return quant_detail::scalar_kernels();
  }
}

// The kernel-table entry of a quantized type.
TileFn Kernels::*tile_member(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0:
      return &Kernels::q4_0;
    case DType::kQ4_1:
      return &Kernels::q4_1;
    case DType::kQ5_0:
      return &Kernels::q5_0;
    case DType::kQ5_1:
      return &Kernels::q5_1;
    case DType::kQ8_0:
      return &Kernels::q8_0;
    case DType::kQ4_K:
      return &Kernels::q4_k;
    case DType::kQ5_K:
      return &Kernels::q5_k;
    case DType::kQ6_K:
      return &Kernels::q6_k;
    default:
      GLASSBOX_ASSERT(false && "quant_matmul: not a quantized type");
      return nullptr;
  }
}

TileFn tile_for(const Kernels& k, DType dtype) {
  const auto member = tile_member(dtype);
  // Types without a kernel on this path use the scalar one (it has all of them).
  return k.*member != nullptr ? k.*member : quant_detail::scalar_kernels().*member;
}

// Products (n * m * k multiply-adds) below this run on the calling thread: waking the pool costs
// more than it saves (a 288 x 288 decode product takes ~3 us on one core).
constexpr double kMinParallelWork = 1 << 19;
// Weight bytes per tile for prefill: the tile stays in L1/L2 while all activation rows pass.
constexpr size_t kTileBytes = 24 * 1024;

void prepare(QuantizedActs* a, int64_t n, int64_t k, ActKind kind) {
  a->kind = kind;
  a->n = n, a->k = k;
  const int64_t group = kind == ActKind::kQ8x32 ? 32 : 256;
  a->qs.resize(static_cast<size_t>(n * k));
  a->d.resize(static_cast<size_t>(n * (k / group)));
  a->sum32.resize(kind == ActKind::kQ8x32 ? static_cast<size_t>(n * (k / 32)) : 0);
  a->bsum16.resize(kind == ActKind::kQ8x256 ? static_cast<size_t>(n * (k / 16)) : 0);
}

// The float activation sums of each 16 (kQ8x256), from the codes' sums and the group scales.
void finish(QuantizedActs* a) {
  if (a->kind != ActKind::kQ8x256) return;
  a->bsum16_f.resize(a->bsum16.size());
  for (size_t i = 0; i < a->bsum16.size(); ++i) {
    a->bsum16_f[i] = a->d[i / 16] * static_cast<float>(a->bsum16[i]);
  }
}

// The one check at the entry; past it nothing throws (kernels run inside the pool).
void check_shape(DType dtype, int64_t k) {
  if (!is_quant_type(dtype)) {
    throw Error(ErrorCode::kUnsupported,
                std::string("quant_matmul: ") + dtype_name(dtype) + " is not a quantized type");
  }
  if (k <= 0 || k % dtype_info(dtype).block_size != 0) {
    throw Error(ErrorCode::kShape, "quant_matmul: k = " + std::to_string(k) +
                                       " is not a whole number of " + dtype_name(dtype) +
                                       " blocks of " +
                                       std::to_string(dtype_info(dtype).block_size));
  }
}

void matmul_with(const Kernels& kern, const QuantizedActs& a, DType dtype, const void* w, int64_t m,
                 float* y, ThreadPool& pool) {
  const TileFn fn = tile_for(kern, dtype);
  const int64_t n = a.n, k = a.k;
  const size_t row_bytes = dtype_bytes(dtype, k);
  const auto* wb = static_cast<const uint8_t*>(w);
  const int threads = pool.size();
  const bool parallel =
      threads > 1 && static_cast<double>(n) * static_cast<double>(m) * k >= kMinParallelWork;
  // Decode reads each weight once: tiles only balance the threads. Prefill: cache-sized tiles.
  int64_t tile =
      n == 1 ? (m + threads * 8 - 1) / (threads * 8) : static_cast<int64_t>(kTileBytes / row_bytes);
  tile = std::max<int64_t>(8, (tile + 7) / 8 * 8);
  if (parallel) {
    // Whole multiples of the thread count, of nearly equal size: the threads finish together.
    const int64_t want = std::max<int64_t>(2 * threads, (m + tile - 1) / tile);
    const int64_t n_even = (want + threads - 1) / threads * threads;
    tile = std::max<int64_t>(8, ((m + n_even - 1) / n_even + 7) / 8 * 8);
  }
  const int64_t n_tiles = (m + tile - 1) / tile;
  const auto run = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = t * tile, c1 = std::min(m, c0 + tile);
      fn(a, 0, n, wb, row_bytes, c0, c1, y, m);
    }
  };
  if (parallel) {
    pool.parallel_for(n_tiles, run);
  } else {
    run(0, n_tiles);
  }
}

}  // namespace

bool is_quant_type(DType dtype) {
  switch (dtype) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ8_0:
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

bool has_int_kernel(DType dtype) {
  return dtype == DType::kQ8_0 || dtype == DType::kQ4_0 || dtype == DType::kQ4_K ||
         dtype == DType::kQ5_K || dtype == DType::kQ6_K;
}

ActKind act_kind_for(DType weight) {
  const bool k_type = weight == DType::kQ4_K || weight == DType::kQ5_K || weight == DType::kQ6_K;
  return k_type ? ActKind::kQ8x256 : ActKind::kQ8x32;
}

bool quant_path_available(QuantPath path) {
  static const bool avx2 = cpu_has_avx2() && quant_detail::avx2_kernels() != nullptr;
  static const bool vnni = cpu_has_avx512_vnni() && quant_detail::avx512_vnni_kernels() != nullptr;
  switch (path) {
    case QuantPath::kAvx512Vnni:
      return vnni;
    case QuantPath::kAvx2:
      return avx2;
    default:
      return true;
  }
}

QuantPath quant_path_resolve(QuantPath path) {
  // An unavailable path falls back to the next best, never to an illegal instruction.
  if (path == QuantPath::kScalar) return path;
  if ((path == QuantPath::kAuto || path == QuantPath::kAvx512Vnni) &&
      quant_path_available(QuantPath::kAvx512Vnni)) {
    return QuantPath::kAvx512Vnni;
  }
  return quant_path_available(QuantPath::kAvx2) ? QuantPath::kAvx2 : QuantPath::kScalar;
}

const char* quant_path_name(QuantPath path) {
  switch (path) {
    case QuantPath::kAuto:
      return "auto";
    case QuantPath::kScalar:
      return "scalar";
    case QuantPath::kAvx2:
      return "avx2";
    case QuantPath::kAvx512Vnni:
      return "avx512vnni";
  }
  return "?";
}

void quantize_acts_ref(const float* x, int64_t n, int64_t k, ActKind kind, QuantizedActs* out) {
  prepare(out, n, k, kind);
  quant_detail::quantize_acts_rows_ref(x, 0, n, out);
  finish(out);
}

void quantize_acts(const float* x, int64_t n, int64_t k, ActKind kind, QuantizedActs* out,
                   QuantPath path) {
  prepare(out, n, k, kind);
  kernels_for(path).quantize_acts(x, 0, n, out);
  finish(out);
}

void quant_matmul_acts(const QuantizedActs& a, DType dtype, const void* w, int64_t m, float* y,
                       ThreadPool& pool, QuantPath path) {
  check_shape(dtype, a.k);
  GLASSBOX_ASSERT(a.kind == act_kind_for(dtype));
  matmul_with(kernels_for(path), a, dtype, w, m, y, pool);
}

void quant_matmul(const float* x, int64_t n, int64_t k, DType dtype, const void* w, int64_t m,
                  float* y, ThreadPool& pool, QuantPath path) {
  check_shape(dtype, k);
  const Kernels& kern = kernels_for(path);
  QuantizedActs a;
  prepare(&a, n, k, act_kind_for(dtype));
  if (n >= 64 && pool.size() > 1) {
    pool.parallel_for(n, [&](int64_t r0, int64_t r1) { kern.quantize_acts(x, r0, r1, &a); });
  } else {
    kern.quantize_acts(x, 0, n, &a);
  }
  finish(&a);
  matmul_with(kern, a, dtype, w, m, y, pool);
}

}  // namespace glassbox::ops
