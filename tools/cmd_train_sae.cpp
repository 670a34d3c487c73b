// `glassbox train-sae`: trains an SAE on one hook of an activation store. Streams shuffled rows
// (harvest/store_reader.h) into SaeTrainer steps; logs; checkpoints; resumes bit-identically
// after kill -9 (same seed and thread count); writes a SAELens directory at the end.
//
// DIR/ after a run: cfg.json + sae_weights.safetensors (SAELens), activation_mean.npy (the hook's
// mean over the training rows, for eval-sae's mean ablation), train_config.json (the settings,
// and "complete"), training_log.jsonl (one line per --log-steps), loss.svg, and while running
// checkpoint/state.bin (trainer state; the data position is steps x batch size).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "core/test_hooks.h"
#include "core/thread_pool.h"
#include "harvest/store_reader.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "progress.h"
#include "sae/sae_io.h"
#include "sae/train.h"
#include "svg_plot.h"

namespace glassbox::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct TrainArgs {
  std::string store, hook, arch = "topk", out;
  int64_t d_sae = 0;
  double expansion = 0;
  double epochs = 0;
  int64_t tokens = 0;
  int64_t log_steps = 50, checkpoint_steps = 200, mix_rows = 262144;
  int threads = 0;
  SaeTrainConfig config;
};

// The settings a resumed run must share with the one that started.
json settings_json(const TrainArgs& a, const SaeTrainConfig& c, const StoreRowStream& data) {
  return {{"store", fs::weakly_canonical(fs::absolute(a.store)).string()},
          {"store_model_sha256", data.manifest().settings.model_sha256},
          {"store_rows", data.manifest().rows},
          {"hook", a.hook},
          {"arch", sae_arch_name(c.arch)},
          {"d_in", c.d_in},
          {"d_sae", c.d_sae},
          {"k", c.k},
          {"batch_size", c.batch_size},
          {"total_steps", c.total_steps},
          {"lr", c.lr},
          {"lr_warmup_steps", c.lr_warmup_steps},
          {"lr_decay_frac", c.lr_decay_frac},
          {"l1_coeff", c.l1_coeff},
          {"l1_warmup_frac", c.l1_warmup_frac},
          {"grad_clip", c.grad_clip},
          {"l0_coeff", c.l0_coeff},
          {"bandwidth", c.bandwidth},
          {"aux_k", c.aux_k},
          {"aux_coeff", c.aux_coeff},
          {"dead_tokens", c.dead_tokens},
          {"normalize_inputs", c.normalize_inputs},
          {"b_dec_init_median", c.b_dec_init_median},
          {"seed", c.seed},
          {"mix_rows", a.mix_rows},
          {"threads", a.threads}};
}

// Keeps the log lines of steps <= `steps` (a resume drops what the lost steps had logged).
std::vector<json> read_log(const fs::path& path, int64_t steps) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t{0}) <= steps) out.push_back(j);
  }
  return out;
}

void write_log(const fs::path& path, const std::vector<json>& lines) {
  std::string text;
  for (const json& j : lines) text += j.dump() + "\n";
  write_text(path, text);
}

void write_plot(const fs::path& path, const std::vector<json>& lines) {
  std::vector<double> x;
  PlotSeries fvu{"FVU", {}, true}, l0{"L0 (active latents per token)", {}, false},
      dead{"dead latents (fraction)", {}, false};
  for (const json& j : lines) {
    x.push_back(j["tokens"].get<double>());
    fvu.y.push_back(j["fvu"].get<double>());
    l0.y.push_back(j["l0"].get<double>());
    dead.y.push_back(j["dead_frac"].get<double>());
  }
  write_text(path, svg_line_chart("training tokens", x, {fvu, l0, dead}));
}

int run_train(TrainArgs& a) {
  SaeTrainConfig& c = a.config;
  const std::optional<SaeArch> arch = parse_sae_arch(a.arch);
  if (!arch) {
    throw Error(ErrorCode::kInvalidArgument,
                "--arch '" + a.arch + "': expected topk, batchtopk, relu or jumprelu");
  }
  c.arch = *arch;
  StoreRowStream data(a.store, a.hook, c.seed, a.mix_rows);
  c.d_in = data.width();
  if ((a.d_sae > 0) == (a.expansion > 0)) {
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --d-sae and --expansion");
  }
  c.d_sae = a.d_sae > 0 ? a.d_sae : static_cast<int64_t>(std::llround(a.expansion * c.d_in));
  if ((a.epochs > 0) == (a.tokens > 0)) {
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --epochs and --tokens");
  }
  const int64_t tokens = a.tokens > 0 ? a.tokens
                                      : static_cast<int64_t>(std::llround(
                                            a.epochs * static_cast<double>(data.rows_per_epoch())));
  if (c.batch_size <= 0) throw Error(ErrorCode::kInvalidArgument, "--batch-size must be positive");
  c.total_steps = (tokens + c.batch_size - 1) / c.batch_size;
  ThreadPool pool(a.threads);
  a.threads = pool.size();
  const fs::path out(a.out), state = fs::path(a.out) / "checkpoint" / "state.bin";
  const json settings = settings_json(a, c, data);
  SaeTrainer trainer(c, pool);

  const fs::path cfg_path = out / "train_config.json";
  if (fs::exists(cfg_path)) {
    std::ifstream in(cfg_path);
    const json stored = json::parse(in, nullptr, false);
    if (stored.is_discarded() || stored.value("settings", json()) != settings) {
      throw Error(ErrorCode::kInvalidArgument,
                  a.out +
                      ": holds an SAE training run with other settings (left untouched; "
                      "choose another --out). Stored: " +
                      (stored.is_discarded() ? std::string("unreadable")
                                             : stored.value("settings", json()).dump()));
    }
    if (stored.value("complete", false)) {
      std::fprintf(stderr, "%s: already complete; nothing to do\n", a.out.c_str());
      return 0;
    }
  } else if (fs::exists(out) && !fs::is_empty(out)) {
    throw Error(ErrorCode::kInvalidArgument,
                a.out + ": a non-empty directory that is not an SAE training run (left untouched)");
  }
  fs::create_directories(out / "checkpoint");
  write_text(cfg_path, json{{"settings", settings}, {"complete", false}}.dump(1) + "\n");

  std::vector<float> batch(static_cast<size_t>(c.batch_size * c.d_in));
  std::vector<json> log;
  if (fs::exists(state)) {
    trainer.load_state(state.string());
    log = read_log(out / "training_log.jsonl", trainer.steps_done());
    std::fprintf(stderr, "resuming at step %lld of %lld\n",
                 static_cast<long long>(trainer.steps_done()),
                 static_cast<long long>(c.total_steps));
  } else {
    // Data-dependent init from the first rows of the stream (a shuffled sample).
    const int64_t n =
        std::min<int64_t>(data.rows_per_epoch(), std::max<int64_t>(c.batch_size, 16384));
    std::vector<float> sample(static_cast<size_t>(n * c.d_in));
    data.seek(0);
    data.next(sample.data(), n);
    trainer.init_from_data(sample.data(), n);
  }
  data.seek(trainer.steps_done() * c.batch_size);

  Progress bar("train-sae", "tok");
  const int64_t start_step = trainer.steps_done();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = start_step; step < c.total_steps; ++step) {
    const int64_t n = std::min<int64_t>(c.batch_size, tokens - step * c.batch_size);
    data.next(batch.data(), n);
    const SaeStepStats s = trainer.step(batch.data(), n);
    const int64_t done = step + 1;
    if (done % a.log_steps == 0 || done == c.total_steps) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log.push_back(
          {{"step", done},
           {"tokens", std::min(tokens, done * c.batch_size)},
           {"loss", s.loss},
           {"mse", s.mse},
           {"fvu", s.fvu},
           {"l0", s.l0},
           {"aux_loss", s.aux_loss},
           {"sparsity_loss", s.sparsity_loss},
           {"dead_frac", s.dead_frac},
           {"dense_frac", s.dense_frac},
           {"lr", s.lr},
           {"tok_s",
            secs > 0 ? static_cast<double>((done - start_step) * c.batch_size) / secs : 0.0}});
    }
    if (done % a.checkpoint_steps == 0 && done < c.total_steps) {
      write_log(out / "training_log.jsonl", log);  // before the state: never ahead of it
      kill_point("train.checkpoint", done);         // the log ahead of the state
      trainer.save_state(state.string());
    }
    kill_point("train.step", done);
    bar.update(std::min(tokens, done * c.batch_size), tokens, start_step * c.batch_size);
  }
  write_log(out / "training_log.jsonl", log);
  trainer.save_state(state.string());
  Sae sae = trainer.export_sae();
  sae.hook_name = a.hook;
  sae.model_name = fs::path(data.manifest().settings.model_path).stem().string();
  save_sae(sae, a.out, SaeFormat::kSaeLens);
  const std::vector<float> mean = data.mean();
  Tensor m = Tensor::zeros(DType::kF32, {static_cast<int64_t>(mean.size())});
  std::copy(mean.begin(), mean.end(), m.mutable_data<float>());
  write_npy((out / "activation_mean.npy").string(), m);
  write_plot(out / "loss.svg", log);
  write_text(cfg_path, json{{"settings", settings}, {"complete", true}}.dump(1) + "\n");
  fs::remove_all(out / "checkpoint");
  const json& last = log.empty() ? json::object() : log.back();
  std::fprintf(stderr,
               "%s: SAELens SAE written (%s, d_in %lld, d_sae %lld); last fvu %.4g, l0 %.3g\n",
               a.out.c_str(), sae_arch_name(c.arch), static_cast<long long>(c.d_in),
               static_cast<long long>(c.d_sae), last.value("fvu", 0.0), last.value("l0", 0.0));
  return 0;
}

}  // namespace

Action register_train_sae(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "train-sae",
      "Train a sparse autoencoder on one hook of an activation store (BOS rows skipped); rerun "
      "the same command to resume after an interruption");
  auto a = std::make_shared<TrainArgs>();
  SaeTrainConfig& c = a->config;
  cmd->add_option("--store", a->store, "Activation store (glassbox harvest --out)")->required();
  cmd->add_option("--hook", a->hook, "Hook name in the store")->required();
  cmd->add_option("--arch", a->arch, "topk (default), batchtopk, relu or jumprelu");
  cmd->add_option("--d-sae", a->d_sae, "Latents");
  cmd->add_option("--expansion", a->expansion, "Latents as a multiple of d_in");
  cmd->add_option("--k", c.k, "Active latents per token (topk, batchtopk; default 32)");
  cmd->add_option("--epochs", a->epochs, "Passes over the store (fractions allowed)");
  cmd->add_option("--tokens", a->tokens, "Training tokens");
  cmd->add_option("--batch-size", c.batch_size, "Rows per step (default 4096)");
  cmd->add_option("--lr", c.lr, "Adam learning rate (default 2e-4)");
  cmd->add_option("--lr-warmup-steps", c.lr_warmup_steps, "Linear warm-up steps (default 0)");
  cmd->add_option("--lr-decay-frac", c.lr_decay_frac,
                  "Linear decay to 0 over this last fraction of steps (default 0.2)");
  cmd->add_option("--l1-coeff", c.l1_coeff, "relu: L1 coefficient (default 5)");
  cmd->add_option("--l1-warmup-frac", c.l1_warmup_frac,
                  "relu/jumprelu: sparsity coefficient warm-up fraction (default 0.05)");
  cmd->add_option("--l0-coeff", c.l0_coeff, "jumprelu: L0 coefficient (default 1e-3)");
  cmd->add_option("--grad-clip", c.grad_clip,
                  "Clip the gradient norm to this (default: 1 for relu, off otherwise; 0 = off)");
  cmd->add_option("--bandwidth", c.bandwidth, "jumprelu: STE kernel width (default 1e-3)");
  cmd->add_option("--aux-k", c.aux_k, "topk/batchtopk: AuxK latents (default d_in / 2)");
  cmd->add_option("--aux-coeff", c.aux_coeff, "AuxK loss coefficient (default 1/32)");
  cmd->add_option("--dead-tokens", c.dead_tokens,
                  "A latent is dead after this many tokens without firing (default 10M)");
  cmd->add_flag("!--no-normalize", c.normalize_inputs,
                "Do not scale inputs to mean squared norm d_in");
  cmd->add_flag("--b-dec-median", c.b_dec_init_median,
                "Initialise b_dec at the geometric median (default: the mean)");
  cmd->add_option("--seed", c.seed, "Random seed (default 0)");
  cmd->add_option("--log-steps", a->log_steps, "Log every N steps (default 50)");
  cmd->add_option("--checkpoint-steps", a->checkpoint_steps,
                  "Checkpoint every N steps (default 200)");
  cmd->add_option("--mix-rows", a->mix_rows,
                  "Rows shuffled together (shards grouped up to this; default 262144)");
  cmd->add_option("-t,--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("--out", a->out, "Output directory (SAELens format)")->required();
  return [a] { return run_train(*a); };
}

}  // namespace glassbox::cli
