// Quantized matmul micro-benchmark, printed as one JSON object: y[n, m] = x[n, k] @ W^T for each
// weight type with integer kernels, on the matrix shapes of the synth models (an FFN matrix,
// m = 768, and the unembedding, m = 32000; k = 288 for the 32-element types as synth15M, 256 for
// the K types as synthK), n = 1 (decode) and n = 512 (prefill), 1 and 2 threads.
// Reported per case: median seconds per call (activation quantization included), GFLOP/s
// (2 n m k / t) and the weight-read rate GB/s (weight bytes / t; for n = 1 the figure to hold
// against memory bandwidth, ~25-30 GB/s here, or L3 when the matrix fits).
#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "bench_common.h"
#include "core/half.h"
#include "core/sysinfo.h"
#include "ops/half_matmul.h"
#include "ops/ops.h"
#include "ops/quant.h"

using namespace glassbox;

namespace {

// Decode as a model runs it: one activation row against a chain of weight matrices whose total
// exceeds the caches, so every byte comes from memory. One matrix is quantized and copied (the
// values do not change the speed).
int stream_decode(const std::vector<DType>& types, int64_t total_mb, ops::QuantPath path,
                  int reps) {
  constexpr int64_t m = 8192, k = 2048;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(m * k)), x(k), y(m);
  for (float& v : wf) v = 0.05f * normal(rng);
  for (float& v : x) v = normal(rng);
  nlohmann::json cases = nlohmann::json::array();
  for (DType t : types) {
    const size_t row_bytes = dtype_bytes(t, k), mat_bytes = row_bytes * m;
    const int64_t n_mats = std::max<int64_t>(1, (total_mb << 20) / static_cast<int64_t>(mat_bytes));
    std::vector<uint8_t> w(mat_bytes * static_cast<size_t>(n_mats));
    for (int64_t r = 0; r < m; ++r)
      ops::quantize_row(t, wf.data() + r * k, w.data() + r * row_bytes, k);
    for (int64_t i = 1; i < n_mats; ++i) std::copy_n(w.data(), mat_bytes, w.data() + i * mat_bytes);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      const auto pass = [&] {
        for (int64_t i = 0; i < n_mats; ++i)
          ops::quant_matmul(x.data(), 1, k, t, w.data() + i * mat_bytes, m, y.data(), pool, path);
      };
      pass();
      std::vector<double> s;
      for (int r = 0; r < reps; ++r) s.push_back(bench::seconds(pass));
      const double best = bench::minimum(s);
      const double mem = memory_read_gb_s(pool);
      const double gb_s = static_cast<double>(w.size()) / best * 1e-9;
      cases.push_back({{"type", dtype_name(t)},
                       {"threads", threads},
                       {"weight_mb", static_cast<double>(w.size()) / (1 << 20)},
                       {"gb_s", gb_s},
                       {"mem_read_gb_s", mem},
                       {"bw_fraction", gb_s / mem}});
    }
  }
  nlohmann::json out = {{"benchmark", "quant_decode_stream"},
                        {"cpu", cpu_model_name()},
                        {"path", ops::quant_path_name(ops::quant_path_resolve(path))},
                        {"cases", cases}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int prefill_cpu(const std::vector<DType>& types, ops::QuantPath path, int reps) {
  constexpr int64_t n = 512;
  const std::pair<int64_t, int64_t> shapes[] = {{2048, 2048}, {8192, 2048}, {2048, 8192}};
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  ThreadPool pool(1);
  nlohmann::json cases = nlohmann::json::array();
  for (DType t : types) {
    for (const auto& [m, k] : shapes) {
      std::vector<float> wf(static_cast<size_t>(m * k)), x(static_cast<size_t>(n * k)),
          y(static_cast<size_t>(n * m));
      for (float& v : wf) v = 0.05f * normal(rng);
      for (float& v : x) v = normal(rng);
      const size_t row_bytes = dtype_bytes(t, k);
      std::vector<uint8_t> w(row_bytes * static_cast<size_t>(m));
      for (int64_t r = 0; r < m; ++r)
        ops::quantize_row(t, wf.data() + r * k, w.data() + r * row_bytes, k);
      std::vector<double> s;
      for (int r = 0; r < reps; ++r) {
        const double t0 = cpu_seconds();
        ops::quant_matmul(x.data(), n, k, t, w.data(), m, y.data(), pool, path);
        s.push_back(cpu_seconds() - t0);
      }
      const double best = bench::minimum(s);
      cases.push_back({{"type", dtype_name(t)},
                       {"m", m},
                       {"k", k},
                       {"n", n},
                       {"cpu_ms", best * 1e3},
                       {"gflops", 2.0 * n * m * k / best * 1e-9}});
    }
  }
  nlohmann::json out = {{"benchmark", "quant_prefill_cpu"},
                        {"cpu", cpu_model_name()},
                        {"threads", 1},
                        {"path", ops::quant_path_name(ops::quant_path_resolve(path))},
                        {"cases", cases}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

// F16 / BF16 weights (ops/half_matmul.h) at 1B shapes: decode (n = 1) over a chain of
// [8192, 2048] matrices of `total_mb` in all (GB/s of weights beside the machine's read rate), and
// prefill (n = 512) through one [8192, 2048] and one [2048, 8192] matrix (GFLOP/s), beside the
// same products with the weights already in f32 (matmul_wt's sgemm path).
int half_cases(int64_t total_mb, int reps) {
  constexpr int64_t m = 8192, k = 2048;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> wf(static_cast<size_t>(m * k)), x(static_cast<size_t>(512 * k)),
      y(static_cast<size_t>(512 * m));
  for (float& v : wf) v = 0.05f * normal(rng);
  for (float& v : x) v = normal(rng);
  nlohmann::json cases = nlohmann::json::array();
  for (DType t : {DType::kBF16, DType::kF16, DType::kF32}) {
    const size_t mat_bytes = dtype_bytes(t, k) * m;
    const int64_t n_mats = std::max<int64_t>(1, (total_mb << 20) / static_cast<int64_t>(mat_bytes));
    std::vector<uint8_t> w(mat_bytes * static_cast<size_t>(n_mats));
    for (int64_t i = 0; i < m * k; ++i) {
      if (t == DType::kF32) {
        std::memcpy(w.data() + 4 * i, &wf[i], 4);
      } else {
        const uint16_t h = t == DType::kBF16 ? f32_to_bf16(wf[i]) : f32_to_f16(wf[i]);
        std::memcpy(w.data() + 2 * i, &h, 2);
      }
    }
    for (int64_t i = 1; i < n_mats; ++i) std::copy_n(w.data(), mat_bytes, w.data() + i * mat_bytes);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      const auto mul = [&](int64_t n, int64_t rows, int64_t cols, int64_t i) {
        const Tensor wt = Tensor::borrow(t, {rows, cols}, w.data() + i * mat_bytes, nullptr);
        ops::matmul_wt(x.data(), n, cols, wt, y.data(), pool);
      };
      const auto decode = [&] {
        for (int64_t i = 0; i < n_mats; ++i) mul(1, m, k, i);
      };
      const auto prefill = [&] {
        mul(512, m, k, 0);
        mul(512, k, m, 0);
      };
      decode();
      std::vector<double> sd, sp;
      for (int r = 0; r < reps; ++r) sd.push_back(bench::seconds(decode));
      prefill();
      for (int r = 0; r < std::min(reps, 3); ++r) sp.push_back(bench::seconds(prefill));
      const double gb_s = static_cast<double>(w.size()) / bench::minimum(sd) * 1e-9;
      cases.push_back({{"type", dtype_name(t)},
                       {"threads", threads},
                       {"decode_weight_gb_s", gb_s},
                       {"decode_bw_fraction", gb_s / memory_read_gb_s(pool)},
                       {"prefill_gflops", 2.0 * 2 * 512 * m * k / bench::minimum(sp) * 1e-9}});
    }
  }
  nlohmann::json out = {{"benchmark", "half_matmul"}, {"cpu", cpu_model_name()}, {"cases", cases}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glassbox quantized matmul benchmark (JSON on stdout)"};
  double min_seconds = 0.15;
  int reps = 5;
  std::string path_name = "auto";
  app.add_option("--min-time", min_seconds, "Seconds per repetition (default 0.15)");
  app.add_option("--reps,-r", reps, "Repetitions; the median is reported (default 5)");
  app.add_option("--path", path_name, "Kernel path: auto, avx512vnni, avx2, scalar")
      ->check(CLI::IsMember({"auto", "avx512vnni", "avx2", "scalar"}));
  int64_t stream_mb = 0;
  std::string only;
  app.add_option("--stream-mb", stream_mb,
                 "Decode stream mode: n = 1 over a chain of [8192, 2048] weights of this many MB "
                 "in all (larger than the caches), GB/s beside the machine's read bandwidth");
  bool prefill = false;
  app.add_flag("--prefill", prefill,
               "Prefill mode: n = 512 against the 1B shapes ([2048, 2048], [8192, 2048], "
               "[2048, 8192]) on one thread, GFLOP/s by the process's CPU time (robust to a "
               "busy machine)");
  int64_t half_mb = 0;
  app.add_option("--half-mb", half_mb,
                 "F16/BF16 mode: decode over [8192, 2048] weights of this many MB in all and "
                 "prefill (n = 512), beside f32 weights");
  app.add_option("--type", only, "Only this weight type (q8_0, q4_0, q4_k, q5_k, q6_k)");
  CLI11_PARSE(app, argc, argv);
  const ops::QuantPath path = path_name == "avx512vnni" ? ops::QuantPath::kAvx512Vnni
                              : path_name == "avx2"     ? ops::QuantPath::kAvx2
                              : path_name == "scalar"   ? ops::QuantPath::kScalar
                                                        : ops::QuantPath::kAuto;
  std::vector<DType> types = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
  if (!only.empty()) {
    std::optional<DType> t;
    for (DType c : types) {
      std::string name = dtype_name(c);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name == only) t = c;
    }
    if (!t) {
      std::fprintf(stderr, "bench_quant: --type %s is not a type with integer kernels\n",
                   only.c_str());
      return 2;
    }
    types = {*t};
  }
  if (half_mb > 0) return half_cases(half_mb, reps);
  if (stream_mb > 0) return stream_decode(types, stream_mb, path, reps);
  if (prefill) return prefill_cpu(types, path, reps);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  nlohmann::json cases = nlohmann::json::array();
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : types) {
      const int64_t k = dtype_info(t).block_size == 32 ? 288 : 256;
      for (int64_t m : {int64_t{768}, int64_t{32000}}) {
        std::vector<float> wf(static_cast<size_t>(m * k));
        for (float& v : wf) v = 0.05f * normal(rng);
        const size_t row_bytes = dtype_bytes(t, k);
        std::vector<uint8_t> w(row_bytes * static_cast<size_t>(m));
        for (int64_t r = 0; r < m; ++r) {
          ops::quantize_row(t, wf.data() + r * k, w.data() + r * row_bytes, k);
        }
        for (int64_t n : {int64_t{1}, int64_t{512}}) {
          if (n > 1 && m > 768) continue;  // prefill through the unembedding is not timed
          std::vector<float> x(static_cast<size_t>(n * k)), y(static_cast<size_t>(n * m));
          for (float& v : x) v = normal(rng);
          const auto call = [&] {
            ops::quant_matmul(x.data(), n, k, t, w.data(), m, y.data(), pool, path);
          };
          call();  // warm-up
          int64_t iters = 1;
          while (bench::seconds([&] {
                   for (int64_t i = 0; i < iters; ++i) call();
                 }) < min_seconds) {
            iters *= 2;
          }
          std::vector<double> per_call;
          for (int r = 0; r < reps; ++r) {
            per_call.push_back(bench::seconds([&] {
                                 for (int64_t i = 0; i < iters; ++i) call();
                               }) /
                               iters);
          }
          const double s = bench::median(per_call);
          cases.push_back({{"type", dtype_name(t)},
                           {"threads", threads},
                           {"n", n},
                           {"m", m},
                           {"k", k},
                           {"us_per_call", s * 1e6},
                           {"gflops", 2.0 * n * m * k / s * 1e-9},
                           {"weight_gb_s", static_cast<double>(w.size()) / s * 1e-9}});
        }
      }
    }
  }
  nlohmann::json out = {{"benchmark", "quant_matmul"},
                        {"cpu", cpu_model_name()},
                        {"path", ops::quant_path_name(ops::quant_path_resolve(path))},
                        {"cases", cases},
                        {"peak_rss_mib", peak_rss_mib()}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
