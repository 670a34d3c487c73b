#include "ops/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/f32.h"
#include "ops/half_matmul.h"
#include "ops/quant.h"

namespace glassbox::ops {

void rms_scale(const float* x, int64_t n, int64_t d, double eps, float* scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * d;
    double ss = 0.0;
    for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(row[j]) * row[j];
    scale[i] = static_cast<float>(std::sqrt(ss / static_cast<double>(d) + eps));
  }
}

void divide_rows(const float* x, int64_t n, int64_t d, const float* scale, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float inv = 1.0f / scale[i];
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = x[i * d + j] * inv;
  }
}

void mul_columns(float* x, int64_t n, int64_t d, const float* w) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) x[i * d + j] *= w[j];
}

void center_rows(const float* x, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0.0;
    for (int64_t j = 0; j < d; ++j) sum += x[i * d + j];
    const float mean = static_cast<float>(sum / static_cast<double>(d));
    for (int64_t j = 0; j < d; ++j) out[i * d + j] = x[i * d + j] - mean;
  }
}

void add_columns(float* x, int64_t n, int64_t d, const float* b) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) x[i * d + j] += b[j];
}

void gelu_tanh(const float* x, int64_t n, float* out) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

void gelu_tanh_mul(const float* gate, const float* up, int64_t n, float* post) {
  gelu_tanh(gate, n, post);
  for (int64_t i = 0; i < n; ++i) post[i] *= up[i];
}

void softcap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

float dot(const float* a, const float* b, int64_t n) { return dot_f32(a, b, n); }

void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void silu_mul(const float* gate, const float* up, int64_t n, float* post) {
  silu_mul_f32(gate, up, n, post);
}

void softmax_row(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  const float inv = 1.0f / exp_shift_sum(x, n, mx);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

bool weight_dtype_supported(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         is_quant_type(dtype);
}

void dequantize_rows(DType dtype, const void* src, int64_t k, int64_t row_begin, int64_t row_end,
                     float* dst) {
  const int64_t count = (row_end - row_begin) * k;
  switch (dtype) {
    case DType::kF32:
      std::copy_n(static_cast<const float*>(src) + row_begin * k, count, dst);
      return;
    case DType::kF16:
    case DType::kBF16:
      half_to_f32(dtype, static_cast<const uint16_t*>(src) + row_begin * k, count, dst);
      return;
    default: {
      GLASSBOX_ASSERT(is_quant_type(dtype) &&
                      "dequantize_rows: unsupported dtype (checked at load)");
      const size_t row_bytes = dtype_bytes(dtype, k);  // k is whole blocks (checked at load)
      const auto* s = static_cast<const uint8_t*>(src);
      for (int64_t r = row_begin; r < row_end; ++r) {
        dequantize_row(dtype, s + r * row_bytes, dst + (r - row_begin) * k, k);
      }
      return;
    }
  }
}

namespace {

// Float weights: our own matrix-vector kernel for one row (decode is bound by reading the weights,
// which it does at memory speed), single-threaded OpenBLAS sgemm per slice of output columns
// otherwise. All threading is the pool's: OpenBLAS is kept at one thread (see Session), so its
// own spinning threads never compete with ours.
void matmul_f32(const float* x, int64_t n, int64_t k, const float* w, int64_t m, float* y,
                ThreadPool& pool) {
  constexpr int64_t kCols = 16;         // slices are whole multiples of this many columns
  constexpr int64_t kInline = 1 << 15;  // below this many multiply-adds one thread is quicker
  const int64_t n_slices = (m + kCols - 1) / kCols;
  const auto run = [&](int64_t s0, int64_t s1) {
    const int64_t c0 = s0 * kCols, c1 = std::min(m, s1 * kCols);
    if (n == 1) {
      gemv_f32(w, k, x, c0, c1, y + c0);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                static_cast<int>(c1 - c0), static_cast<int>(k), 1.0f, x, static_cast<int>(k),
                w + c0 * k, static_cast<int>(k), 0.0f, y + c0, static_cast<int>(m));
  };
  if (n * m * k < kInline) {
    run(0, n_slices);
  } else {
    pool.parallel_for(n_slices, run);
  }
}

}  // namespace

void matmul_wt(const float* x, int64_t n, int64_t k, const Tensor& w, float* y, ThreadPool& pool) {
  const int64_t m = w.dim(0);
  GLASSBOX_ASSERT(w.dim(1) == k);
  if (w.dtype() == DType::kF32) {
    matmul_f32(x, n, k, w.data<float>(), m, y, pool);
    return;
  }
  if (has_int_kernel(w.dtype())) {  // integer kernels on the blocks, activations as int8
    quant_matmul(x, n, k, w.dtype(), w.raw(), m, y, pool);
    return;
  }
  if (w.dtype() == DType::kF16 || w.dtype() == DType::kBF16) {  // exact f32 products
    half_matmul(x, n, k, w.dtype(), static_cast<const uint16_t*>(w.raw()), m, y, pool);
    return;
  }
  // Quantized types without integer kernels: dequantize a tile of weight rows to f32, multiply,
  // repeat. Each thread owns a contiguous range of output columns, so writes never overlap.
  constexpr int64_t kTile = 64;
  const int64_t n_tiles = (m + kTile - 1) / kTile;
  pool.parallel_for(n_tiles, [&](int64_t t0, int64_t t1) {
    std::vector<float> tile(static_cast<size_t>(kTile * k));
    std::vector<float> out(static_cast<size_t>(n * kTile));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * kTile, r1 = std::min(m, r0 + kTile), rows = r1 - r0;
      dequantize_rows(w.dtype(), w.raw(), k, r0, r1, tile.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n),
                  static_cast<int>(rows), static_cast<int>(k), 1.0f, x, static_cast<int>(k),
                  tile.data(), static_cast<int>(k), 0.0f, out.data(), static_cast<int>(rows));
      for (int64_t i = 0; i < n; ++i) std::copy_n(out.data() + i * rows, rows, y + i * m + r0);
    }
  });
}

void rope_table(const double* inv_freq, int64_t n_freq, int64_t pos_start, int64_t n_pos,
                float* cos_t, float* sin_t) {
  for (int64_t p = 0; p < n_pos; ++p) {
    const double pos = static_cast<double>(pos_start + p);
    for (int64_t i = 0; i < n_freq; ++i) {
      cos_t[p * n_freq + i] = static_cast<float>(std::cos(pos * inv_freq[i]));
      sin_t[p * n_freq + i] = static_cast<float>(std::sin(pos * inv_freq[i]));
    }
  }
}

void rope(float* x, int64_t n_pos, int64_t n_heads, int64_t d_head, const float* cos_t,
          const float* sin_t, int64_t n_freq, bool interleaved) {
  for (int64_t p = 0; p < n_pos; ++p) {
    const float* c = cos_t + p * n_freq;
    const float* s = sin_t + p * n_freq;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (p * n_heads + h) * d_head;
      for (int64_t i = 0; i < n_freq; ++i) {
        const int64_t a = interleaved ? 2 * i : i;
        const int64_t b = interleaved ? 2 * i + 1 : i + n_freq;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * c[i] - x1 * s[i];
        v[b] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

const char* blas_core_name() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "unknown";
}

}  // namespace glassbox::ops
