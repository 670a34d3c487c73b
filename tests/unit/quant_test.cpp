// Quantized formats and kernels (ops/quant.h): every SIMD path against the scalar reference on
// random blocks, quantize/dequantize round-trip error per type, the layouts against ggml's own
// dequantizer (when the llama.cpp anchor in shared/ is present), and matmul_wt on the quantized
// tensors of the two llama.cpp-written GGUF files against a double-precision product.
#include "ops/quant.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "ops/ops.h"
#include "ops/quant_internal.h"
#include "sanitized.h"
#include "test_models.h"

namespace glassbox::ops {
namespace {

constexpr DType kAllTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                               DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
constexpr DType kIntTypes[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ5_K,
                               DType::kQ6_K};

int64_t block_of(DType t) { return dtype_info(t).block_size; }

std::vector<float> gaussian(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Stats {
  double max_abs = 0.0, nmse = 0.0, max_ref = 0.0;
};

template <class A, class B>
Stats compare(const A* got, const B* ref, size_t n) {
  Stats s;
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(ref[i]);
    s.max_abs = std::max(s.max_abs, std::fabs(d));
    s.max_ref = std::max(s.max_ref, std::fabs(static_cast<double>(ref[i])));
    num += d * d, den += static_cast<double>(ref[i]) * ref[i];
  }
  s.nmse = den > 0.0 ? num / den : num;
  return s;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x, int64_t rows, int64_t k) {
  const size_t row_bytes = dtype_bytes(t, k);
  std::vector<uint8_t> out(row_bytes * rows);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(t, x.data() + r * k, out.data() + r * row_bytes, k);
  return out;
}

// Random bytes (every code and packed-scale bit pattern), with the f16 scale fields set to
// modest finite values so sums stay meaningful.
std::vector<uint8_t> random_blocks(DType t, int64_t rows, int64_t k, uint32_t seed) {
  const size_t bytes = dtype_bytes(t, rows * k), bb = dtype_info(t).block_bytes;
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(bytes);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  std::vector<size_t> f16_fields = {0};
  if (t == DType::kQ4_1 || t == DType::kQ5_1 || t == DType::kQ4_K || t == DType::kQ5_K) {
    f16_fields.push_back(2);
  }
  if (t == DType::kQ6_K) f16_fields = {208};
  for (size_t off = 0; off < bytes; off += bb) {
    for (size_t f : f16_fields) {
      const uint16_t h = quant_detail::f32_to_f16(scale(rng));
      std::memcpy(out.data() + off + f, &h, 2);
    }
  }
  return out;
}

std::vector<float> dequantize(DType t, const uint8_t* w, int64_t rows, int64_t k) {
  std::vector<float> out(static_cast<size_t>(rows * k));
  const size_t row_bytes = dtype_bytes(t, k);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t, w + r * row_bytes, out.data() + r * k, k);
  return out;
}

// y[n, m] = x[n, k] @ w[m, k]^T in double.
std::vector<double> matmul_f64(const std::vector<float>& x, const std::vector<float>& w, int64_t n,
                               int64_t m, int64_t k) {
  std::vector<double> y(static_cast<size_t>(n * m));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) {
      double s = 0.0;
      for (int64_t e = 0; e < k; ++e) s += static_cast<double>(x[i * k + e]) * w[j * k + e];
      y[i * m + j] = s;
    }
  }
  return y;
}

// The activations as the kernels see them: d * q per element.
std::vector<float> dequantize_acts(const QuantizedActs& a) {
  std::vector<float> out(a.qs.size());
  const int64_t group = a.k / a.groups();
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = a.d[i / group] * a.qs[i];
  }
  return out;
}

// NMSE of the int8 activations themselves. With random weights the output error is about as
// large relative to the output (E|W e|^2 / E|W x|^2 ~ |e|^2 / |x|^2), so bounds use 3x this.
// For a group with extreme a it is ~ (a / rms)^2 / (12 * 127^2): 5e-5 for Gaussian rows in
// groups of 256, ~2e-4 when one outlier of 6 rms dominates the group.
double act_nmse(const std::vector<float>& x, int64_t n, int64_t k, DType weight) {
  QuantizedActs a;
  quantize_acts_ref(x.data(), n, k, act_kind_for(weight), &a);
  return compare(dequantize_acts(a).data(), x.data(), x.size()).nmse;
}

TEST(Quant, F16EncodeInvertsDecodeAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(quant_detail::f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(quant_detail::f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even (down)
  EXPECT_EQ(quant_detail::f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(quant_detail::f32_to_f16(65520.0f), 0x7c00);            // past the max: inf
  EXPECT_EQ(quant_detail::f32_to_f16(1e-8f), 0x0000);               // below half a subnormal
}

// Round trip error per type on N(0, 1) data. Expected NMSE ~ step^2 / 12 / var with the step set
// by the code range of a (sub-)block's extremes: 8 bits ~2e-5, 6 bits (Q6_K, 16-element blocks)
// ~3e-4, 5 bits ~1.5e-3, 4 bits ~5e-3. Bounds sit ~1.5x above what the quantizer reaches.
TEST(Quant, QuantizeRoundTripErrorPerType) {
  const struct {
    DType t;
    double max_nmse;
  } cases[] = {{DType::kQ8_0, 4e-5},   {DType::kQ6_K, 4e-4},  {DType::kQ5_0, 2e-3},
               {DType::kQ5_1, 2e-3},   {DType::kQ5_K, 2e-3},  {DType::kQ4_0, 7.5e-3},
               {DType::kQ4_1, 7.5e-3}, {DType::kQ4_K, 7.5e-3}};
  const int64_t rows = 16, k = 1024;
  const auto x = gaussian(rows * k, 7);
  for (const auto& c : cases) {
    const auto q = quantize(c.t, x, rows, k);
    const auto back = dequantize(c.t, q.data(), rows, k);
    const Stats s = compare(back.data(), x.data(), x.size());
    std::printf("[quant] round trip %-5s nmse=%.3e max_abs=%.3e (bound %.1e)\n", dtype_name(c.t),
                s.nmse, s.max_abs, c.max_nmse);
    EXPECT_LT(s.nmse, c.max_nmse) << dtype_name(c.t);
  }
  // Degenerate blocks come back exactly: zeros, and a constant (a code range of one value).
  for (DType t : kAllTypes) {
    std::vector<float> z(512, 0.0f);
    const auto back = dequantize(t, quantize(t, z, 1, 512).data(), 1, 512);
    EXPECT_EQ(compare(back.data(), z.data(), z.size()).max_abs, 0.0) << dtype_name(t);
  }
}

TEST(Quant, ActivationQuantizerPathsGiveIdenticalCodes) {
  const int64_t n = 5, k = 768;
  auto x = gaussian(n * k, 3);
  x[5] = 0.0f;
  std::fill(x.begin() + 256, x.begin() + 512, 0.0f);  // an all-zero group
  for (ActKind kind : {ActKind::kQ8x32, ActKind::kQ8x256}) {
    QuantizedActs ref;
    quantize_acts_ref(x.data(), n, k, kind, &ref);
    for (QuantPath p : {QuantPath::kAvx2, QuantPath::kAvx512Vnni}) {
      if (!quant_path_available(p)) continue;
      QuantizedActs got;
      quantize_acts(x.data(), n, k, kind, &got, p);
      EXPECT_EQ(got.qs, ref.qs) << quant_path_name(p);
      EXPECT_EQ(got.d, ref.d) << quant_path_name(p);
      EXPECT_EQ(got.sum32, ref.sum32) << quant_path_name(p);
      EXPECT_EQ(got.bsum16, ref.bsum16) << quant_path_name(p);
    }
    // Relative error of the int8 activations: rounding to amax/127 steps.
    const auto back = dequantize_acts(ref);
    const Stats s = compare(back.data(), x.data(), x.size());
    std::printf("[quant] activation int8 (group %lld) nmse=%.3e\n",
                static_cast<long long>(k / ref.groups()), s.nmse);
    EXPECT_LT(s.nmse, 1e-4);
  }
}

// The scalar reference dot (integer sums per block) equals the float64 dot of the dequantized
// weight row with the dequantized activation row.
TEST(Quant, ScalarDotEqualsDequantizedDot) {
  const int64_t k = 512, rows = 6;
  const auto x = gaussian(2 * k, 11);
  for (DType t : kAllTypes) {
    const auto w = random_blocks(t, rows, k, 21);
    const auto wf = dequantize(t, w.data(), rows, k);
    QuantizedActs a;
    quantize_acts_ref(x.data(), 2, k, act_kind_for(t), &a);
    const auto af = dequantize_acts(a);
    const auto exact = matmul_f64(af, wf, 2, rows, k);
    std::vector<float> got(exact.size());
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < rows; ++j) {
        got[i * rows + j] = quant_dot_ref(t, w.data() + j * dtype_bytes(t, k), a, i);
      }
    }
    const Stats s = compare(got.data(), exact.data(), got.size());
    EXPECT_LT(s.max_abs, 1e-5 * std::max(1.0, s.max_ref)) << dtype_name(t);
    EXPECT_LT(s.nmse, 1e-11) << dtype_name(t);
  }
}

// Every SIMD path against the scalar reference on the same int8 activations, with shapes that
// exercise the 4 x 4 / 4 x 2 micro-tiles, their edges, and an odd number of 32-blocks (k = 288).
TEST(Quant, SimdKernelsMatchScalarReference) {
  ThreadPool pool(2);
  const struct { int64_t n, m; } shapes[] = {{1, 1}, {1, 37}, {3, 5}, {4, 8}, {9, 67}, {37, 130}};
  for (QuantPath path : {QuantPath::kAvx2, QuantPath::kAvx512Vnni}) {
    if (!quant_path_available(path)) {
      std::printf("[quant] path %s not available on this CPU: skipped\n", quant_path_name(path));
      continue;
    }
    for (DType t : kIntTypes) {
      const int64_t bs = block_of(t);
      Stats worst;
      for (int64_t k : {bs == 32 ? int64_t{288} : int64_t{256}, int64_t{768}}) {
        for (const auto& sh : shapes) {
          const auto w = random_blocks(t, sh.m, k, static_cast<uint32_t>(sh.m * 7 + k));
          const auto x = gaussian(sh.n * k, static_cast<uint32_t>(sh.n + k), 2.0f);
          QuantizedActs a;
          quantize_acts_ref(x.data(), sh.n, k, act_kind_for(t), &a);
          std::vector<float> ref(static_cast<size_t>(sh.n * sh.m)), got(ref.size(), NAN);
          quant_matmul_acts(a, t, w.data(), sh.m, ref.data(), pool, QuantPath::kScalar);
          quant_matmul_acts(a, t, w.data(), sh.m, got.data(), pool, path);
          const Stats s = compare(got.data(), ref.data(), ref.size());
          // Integer sums are exact; only the float summation order of block terms differs.
          ASSERT_LE(s.max_abs, 2e-6 * std::max(1.0, s.max_ref))
              << dtype_name(t) << " " << quant_path_name(path) << " n=" << sh.n << " m=" << sh.m
              << " k=" << k;
          worst.max_abs = std::max(worst.max_abs, s.max_abs);
          worst.nmse = std::max(worst.nmse, s.nmse);
          worst.max_ref = std::max(worst.max_ref, s.max_ref);
        }
      }
      std::printf("[quant] %-10s %-5s vs scalar: max_abs=%.3e nmse=%.3e max|ref|=%.3g\n",
                  quant_path_name(path), dtype_name(t), worst.max_abs, worst.nmse, worst.max_ref);
    }
  }
}

// matmul_wt on quantized tensors (integer kernels, and the dequantize + sgemm path for
// Q4_1/Q5_0/Q5_1) against float64 on the dequantized weights and the float activations: the
// difference is the int8 rounding of the activations (NMSE ~1e-5) or float32 rounding.
TEST(Quant, MatmulWtMatchesFloat64OnDequantizedWeights) {
  ThreadPool pool(2);
  const int64_t k = 512, m = 48;
  for (DType t : kAllTypes) {
    for (int64_t n : {int64_t{1}, int64_t{19}}) {
      const auto w = quantize(t, gaussian(m * k, 5, 0.05f), m, k);
      const auto x = gaussian(n * k, 6);
      const auto exact = matmul_f64(x, dequantize(t, w.data(), m, k), n, m, k);
      const Tensor wt = Tensor::borrow(t, {m, k}, w.data(), nullptr);
      std::vector<float> y(static_cast<size_t>(n * m));
      matmul_wt(x.data(), n, k, wt, y.data(), pool);
      const Stats s = compare(y.data(), exact.data(), y.size());
      if (n > 1) {
        std::printf(
            "[quant] matmul_wt %-5s n=%lld vs float64: max_abs=%.3e nmse=%.3e max|ref|=%.3g\n",
            dtype_name(t), static_cast<long long>(n), s.max_abs, s.nmse, s.max_ref);
      }
      EXPECT_LT(s.nmse, has_int_kernel(t) ? 3.0 * act_nmse(x, n, k, t) : 1e-10)
          << dtype_name(t) << " n=" << n;
    }
  }
}

TEST(Quant, MatmulRejectsPartialBlocksUpFront) {
  ThreadPool pool(1);
  std::vector<float> x(48), y(2);
  std::vector<uint8_t> w(2 * sizeof(BlockQ8_0) * 2);
  try {
    quant_matmul(x.data(), 1, 48, DType::kQ8_0, w.data(), 2, y.data(), pool);
    FAIL() << "k = 48 accepted for q8_0";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShape);
    EXPECT_NE(std::string(e.what()).find("blocks of 32"), std::string::npos) << e.what();
  }
  EXPECT_THROW(quant_matmul(x.data(), 1, 48, DType::kF32, w.data(), 2, y.data(), pool), Error);
}

// ggml's own library (the llama.cpp anchor in shared/): its dequantizer gives the same floats as
// ours on random blocks of every type (an independent check of the layouts in quant.h), it
// dequantizes blocks from our quantizer, and our quantizer's error is no worse than its reference
// quantizer's (quantize_row_*_ref, no importance matrix) on the same data.
TEST(Quant, CrossCheckWithGgmlLibrary) {
  const std::string lib = testing::shared_path("anchors/llama.cpp-0ad4a86/libggml-base.so");
  if (!testing::exists(lib)) GTEST_SKIP() << lib << " not present";
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) GTEST_SKIP() << "dlopen failed: " << dlerror();
  using DequantFn = void (*)(const void*, float*, int64_t);
  using QuantFn = void (*)(const float*, void*, int64_t);
  const int64_t k = 1024, rows = 4;
  const auto x = gaussian(rows * k, 17);
  for (DType t : kAllTypes) {
    const std::string ggml_name = t == DType::kQ4_K   ? "q4_K"
                                  : t == DType::kQ5_K ? "q5_K"
                                  : t == DType::kQ6_K ? "q6_K"
                                                      : dtype_name(t);
    auto dequant = reinterpret_cast<DequantFn>(dlsym(h, ("dequantize_row_" + ggml_name).c_str()));
    auto quant =
        reinterpret_cast<QuantFn>(dlsym(h, ("quantize_row_" + ggml_name + "_ref").c_str()));
    ASSERT_NE(dequant, nullptr) << ggml_name;
    ASSERT_NE(quant, nullptr) << ggml_name;
    const auto w = random_blocks(t, rows, k, 99);
    std::vector<float> theirs(static_cast<size_t>(rows * k));
    dequant(w.data(), theirs.data(), rows * k);
    const auto ours = dequantize(t, w.data(), rows, k);
    // Same products; ggml may fuse d * q + m into one rounding.
    EXPECT_LE(compare(ours.data(), theirs.data(), ours.size()).max_abs,
              1e-6 * compare(ours.data(), theirs.data(), ours.size()).max_ref)
        << ggml_name;
    // Our blocks read back by ggml, and the two quantizers' errors on the same data.
    const auto mine = quantize(t, x, rows, k);
    dequant(mine.data(), theirs.data(), rows * k);
    const Stats s_mine = compare(theirs.data(), x.data(), x.size());
    std::vector<uint8_t> ref_blocks(mine.size());
    quant(x.data(), ref_blocks.data(), rows * k);
    dequant(ref_blocks.data(), theirs.data(), rows * k);
    const Stats s_ggml = compare(theirs.data(), x.data(), x.size());
    std::printf("[quant] quantizer %-5s round trip nmse: ours %.3e, ggml reference %.3e\n",
                ggml_name.c_str(), s_mine.nmse, s_ggml.nmse);
    EXPECT_LE(s_mine.nmse, 1.02 * s_ggml.nmse) << ggml_name;
  }
  dlclose(h);
}

// The two llama.cpp-written files: matmul_wt over their quantized weights against float64 on
// the dequantized weights, for the activations as given and as the kernels quantize them.
TEST(Quant, SharedGgufTensorsMatchFloat64) {
  const struct {
    const char* file;
    std::vector<std::string> tensors;
  } files[] = {
      {"models/gguf/synth15M-q8_0.gguf",
       {"blk.0.attn_q.weight", "blk.3.ffn_down.weight", "blk.5.ffn_up.weight", "output.weight"}},
      {"models/gguf/synthK-q4_k_m.gguf",
       {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.3.attn_v.weight",
        "blk.3.ffn_down.weight", "output.weight"}},
  };
  ThreadPool pool(2);
  int checked = 0;
  for (const auto& f : files) {
    const std::string path = testing::shared_path(f.file);
    if (!testing::exists(path)) continue;
    const GgufFile gguf = GgufFile::open(path);
    for (const auto& name : f.tensors) {
      Tensor w = gguf.tensor(name);
      ASSERT_TRUE(has_int_kernel(w.dtype())) << name << " " << dtype_name(w.dtype());
      int64_t m = w.dim(0);
#ifdef GLASSBOX_SANITIZED
      m = std::min<int64_t>(m, 512);
#endif
      const int64_t k = w.dim(1);
      w = w.slice_rows(0, m);
      std::vector<float> wf(static_cast<size_t>(m * k));
      dequantize_rows(w.dtype(), w.raw(), k, 0, m, wf.data());
      for (int64_t n : {int64_t{1}, int64_t{6}}) {
        // Activations shaped like the model's: RMS-normalised rows (unit RMS, some outliers).
        auto x = gaussian(n * k, static_cast<uint32_t>(k + n));
        x[3] = 6.0f;
        std::vector<float> y(static_cast<size_t>(n * m));
        matmul_wt(x.data(), n, k, w, y.data(), pool);
        const Stats s = compare(y.data(), matmul_f64(x, wf, n, m, k).data(), y.size());
        QuantizedActs a;
        quantize_acts_ref(x.data(), n, k, act_kind_for(w.dtype()), &a);
        const Stats sq =
            compare(y.data(), matmul_f64(dequantize_acts(a), wf, n, m, k).data(), y.size());
        const double an = act_nmse(x, n, k, w.dtype());
        std::printf(
            "[quant] %s %s (%s, m=%lld k=%lld n=%lld): vs float64 max_abs=%.3e nmse=%.3e "
            "max|ref|=%.3g (int8 acts nmse %.2e); vs int8-rounded acts max_abs=%.3e "
            "nmse=%.3e\n",
            f.file + 12, name.c_str(), dtype_name(w.dtype()), static_cast<long long>(m),
            static_cast<long long>(k), static_cast<long long>(n), s.max_abs, s.nmse, s.max_ref, an,
            sq.max_abs, sq.nmse);
        EXPECT_LT(s.nmse, 3.0 * an) << name;  // activation rounding
        EXPECT_LT(sq.nmse, 1e-11) << name;    // the rest is float32 summation
        EXPECT_LT(sq.max_abs, 1e-5 * std::max(1.0, sq.max_ref)) << name;
        ++checked;
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "shared GGUF files not present";
}

}  // namespace
}  // namespace glassbox::ops
