// SAE training step benchmark, printed as one JSON object: SaeTrainer::step on synthetic sparse
// data (each row a sparse non-negative combination of random unit directions plus noise), the
// default case being OpenAI's TopK at d_in 288 (stories15M's d_model), d_sae 4608 (16x), k 32,
// batch 4096, F32. Reported: median seconds per step, tokens/s, and the dense encoder alone
// (sae_train::encoder_pre: the same per-block sgemms the step runs) as seconds and GFLOP/s
// (2 n d_in d_sae / t) — the figure to hold against the machine's sgemm limit.
// bench/sae_train_torch.py runs the same model in PyTorch for comparison.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "bench_common.h"
#include "core/sysinfo.h"
#include "sae/train.h"
#include "sae/train_grad.h"

using namespace glassbox;

int main(int argc, char** argv) {
  CLI::App app{"glassbox SAE training benchmark (JSON on stdout)"};
  std::string arch_name = "topk";
  int64_t d_in = 288, d_sae = 4608, k = 32, batch = 4096;
  int threads = 2, steps = 10, warmup = 2;
  app.add_option("--arch", arch_name, "relu, topk, batchtopk, jumprelu (default topk)");
  app.add_option("--d-in", d_in, "Input width (default 288)");
  app.add_option("--d-sae", d_sae, "Latents (default 4608)");
  app.add_option("--k", k, "Active latents per row (default 32)");
  app.add_option("--batch", batch, "Rows per step (default 4096)");
  app.add_option("--threads,-t", threads, "Pool threads (default 2)");
  app.add_option("--steps", steps, "Timed steps (default 10)");
  app.add_option("--warmup", warmup, "Untimed steps first (default 2)");
  CLI11_PARSE(app, argc, argv);
  const auto arch = parse_sae_arch(arch_name);
  if (!arch) {
    std::fprintf(stderr, "bench_sae_train: unknown arch %s\n", arch_name.c_str());
    return 1;
  }

  // Synthetic data: 4 batches, each row = sum of 8 random directions (of 2 d_sae) with
  // exponential magnitudes, plus small noise.
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::exponential_distribution<float> expo(1.0f);
  const int64_t n_dirs = 2 * d_sae, n_batches = 4;
  std::vector<float> dirs(static_cast<size_t>(n_dirs * d_in));
  for (int64_t r = 0; r < n_dirs; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d_in; ++i) ss += std::pow(dirs[r * d_in + i] = normal(rng), 2);
    for (int64_t i = 0; i < d_in; ++i) dirs[r * d_in + i] /= static_cast<float>(std::sqrt(ss));
  }
  std::vector<float> data(static_cast<size_t>(n_batches * batch * d_in));
  std::uniform_int_distribution<int64_t> pick(0, n_dirs - 1);
  for (int64_t r = 0; r < n_batches * batch; ++r) {
    float* row = data.data() + r * d_in;
    for (int64_t i = 0; i < d_in; ++i) row[i] = 0.05f * normal(rng);
    for (int q = 0; q < 8; ++q) {
      const int64_t dd = pick(rng);
      const float a = expo(rng);
      for (int64_t i = 0; i < d_in; ++i) row[i] += a * dirs[dd * d_in + i];
    }
  }

  ThreadPool pool(threads);
  SaeTrainConfig cfg;
  cfg.arch = *arch;
  cfg.d_in = d_in;
  cfg.d_sae = d_sae;
  cfg.k = k;
  cfg.batch_size = batch;
  cfg.total_steps = 1000;
  cfg.lr_decay_frac = 0;
  SaeTrainer trainer(cfg, pool);
  trainer.init_from_data(data.data(), batch);
  std::vector<double> step_s;
  SaeStepStats last;
  for (int s = 0; s < warmup + steps; ++s) {
    const float* x = data.data() + (s % n_batches) * batch * d_in;
    const double t = bench::seconds([&] { last = trainer.step(x, batch); });
    if (s >= warmup) step_s.push_back(t);
  }
  const double step_med = bench::median(step_s);

  // The dense encoder alone, on the trained weights' shapes (random values are as good).
  sae_train::Params p = sae_train::Params::zeros(*arch, d_in, d_sae);
  for (float& w : p.W_encT) w = 0.05f * normal(rng);
  std::vector<float> pre(static_cast<size_t>(batch * d_sae));
  std::vector<double> enc_s;
  for (int s = 0; s < warmup + steps; ++s) {
    const double t = bench::seconds([&] {
      sae_train::encoder_pre(*arch, p, d_in, d_sae, data.data(), batch, pre.data(), pool);
    });
    if (s >= warmup) enc_s.push_back(t);
  }
  const double enc_med = bench::median(enc_s);
  const double enc_flop = 2.0 * double(batch) * double(d_in) * double(d_sae);

  nlohmann::json out = {{"benchmark", "sae_train"},
                        {"cpu", cpu_model_name()},
                        {"threads", threads},
                        {"arch", arch_name},
                        {"d_in", d_in},
                        {"d_sae", d_sae},
                        {"k", k},
                        {"batch", batch},
                        {"steps", steps},
                        {"step_ms", step_med * 1e3},
                        {"tokens_per_s", double(batch) / step_med},
                        {"encoder_ms", enc_med * 1e3},
                        {"encoder_gflops", enc_flop / enc_med * 1e-9},
                        {"encoder_share_of_step", enc_med / step_med},
                        {"last_loss", last.loss},
                        {"last_fvu", last.fvu},
                        {"last_l0", last.l0},
                        {"peak_rss_mib", peak_rss_mib()}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}
