// Quantized matmul micro-benchmark, printed as one JSON object: y[n, m] = x[n, k] @ W^T for each
// weight type with integer kernels, on the matrix shapes of the synth models (an FFN matrix,
// m = 768, and the unembedding, m = 32000; k = 288 for the 32-element types as synth15M, 256 for
// the K types as synthK), n = 1 (decode) and n = 512 (prefill), 1 and 2 threads.
// Reported per case: median seconds per call (activation quantization included), GFLOP/s
// (2 n m k / t) and the weight-read rate GB/s (weight bytes / t; for n = 1 the figure to hold
// against memory bandwidth, ~25-30 GB/s here, or L3 when the matrix fits).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_common.h"
#include "core/sysinfo.h"
#include "ops/quant.h"

using namespace glassbox;

int main(int argc, char** argv) {
  CLI::App app{"glassbox quantized matmul benchmark (JSON on stdout)"};
  double min_seconds = 0.15;
  int reps = 5;
  std::string path_name = "auto";
  app.add_option("--min-time", min_seconds, "Seconds per repetition (default 0.15)");
  app.add_option("--reps,-r", reps, "Repetitions; the median is reported (default 5)");
  app.add_option("--path", path_name, "Kernel path: auto, avx512vnni, avx2, scalar")
      ->check(CLI::IsMember({"auto", "avx512vnni", "avx2", "scalar"}));
  CLI11_PARSE(app, argc, argv);
  const ops::QuantPath path = path_name == "avx512vnni" ? ops::QuantPath::kAvx512Vnni
                              : path_name == "avx2"     ? ops::QuantPath::kAvx2
                              : path_name == "scalar"   ? ops::QuantPath::kScalar
                                                        : ops::QuantPath::kAuto;
  const DType types[] = {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};
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
