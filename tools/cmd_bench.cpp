// `glassbox bench`: prompt-processing and generation speed, measured as llama-bench measures it
// (pp: one batch of p tokens, logits of the last one only; tg: n single-token decode steps from
// an empty cache; with -d D both start with D tokens already in the KV cache, as llama-bench's
// -d), printed as one JSON object with the machine's streaming read bandwidth beside tg_gb_s.
// --cache-hooks caches the matching hook points in both phases, to show what interpretability
// costs.
#include <fnmatch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli_common.h"
#include "core/sysinfo.h"
#include "model/session.h"
#include "ops/ops.h"

namespace glassbox::cli {
namespace {

struct BenchArgs {
  std::string model_path;
  int p = 512, n = 64, threads = 0, reps = 5, depth = 0;
  bool no_mem_bw = false;
  std::string cache_hooks;
  std::string kv_type = "f32";
  std::optional<std::string> cache_type_k, cache_type_v;  // llama-bench's -ctk / -ctv
};

// --kv-type, or llama-bench's -ctk / -ctv: glassbox has one cache type for keys and values, so
// those must agree (with each other and with --kv-type when it is given too).
DType bench_kv_type(const BenchArgs& a, bool kv_type_given) {
  const DType kv = parse_kv_type(a.kv_type);
  std::optional<DType> k, v;
  if (a.cache_type_k) k = parse_kv_type(*a.cache_type_k, "-ctk/--cache-type-k");
  if (a.cache_type_v) v = parse_kv_type(*a.cache_type_v, "-ctv/--cache-type-v");
  const DType chosen = k ? *k : v ? *v : kv;
  if ((k && v && *k != *v) || ((k || v) && kv_type_given && chosen != kv)) {
    throw Error(ErrorCode::kInvalidArgument,
                "-ctk/--cache-type-k, -ctv/--cache-type-v and --kv-type must name the same type: "
                "glassbox keeps keys and values in one KV cache type");
  }
  return chosen;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Stats {
  double mean = 0, stddev = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x / static_cast<double>(v.size());
  for (double x : v) s.stddev += (x - s.mean) * (x - s.mean);
  s.stddev = v.size() > 1 ? std::sqrt(s.stddev / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

// Weight bytes and multiply-adds per token of the matrices every token passes through.
struct Work {
  double layer_macs = 0, layer_bytes = 0, unembed_macs = 0, unembed_bytes = 0;
};
Work work_of(const Model& m) {
  Work w;
  for (const LayerWeights& l : m.layers()) {
    for (const Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (t->numel() == 0) continue;
      w.layer_macs += static_cast<double>(t->numel());
      w.layer_bytes += static_cast<double>(t->nbytes());
    }
  }
  w.unembed_macs = static_cast<double>(m.unembedding().numel());
  w.unembed_bytes = static_cast<double>(m.unembedding().nbytes());
  return w;
}

int run_bench(const BenchArgs& a, bool kv_type_given) {
  const DType kv_type = bench_kv_type(a, kv_type_given);
  const Model model = load_model(a.model_path);
  const ModelConfig& c = model.config();
  if (a.p < 1 || a.n < 0 || a.depth < 0) {
    throw Error(ErrorCode::kInvalidArgument, "-p must be positive and -n and -d not negative");
  }
  // As llama-bench: the cache holds the longer of the two runs, past the trained context if the
  // model's positions allow it (a random prompt needs no more than that).
  SessionOptions options;
  options.n_threads = a.threads;
  options.n_ctx = a.depth + std::max(a.p, a.n);
  options.kv_type = kv_type;
  Session session(model, options);
  std::vector<HookHandle> handles;
  std::vector<std::string> cached;
  size_t cached_bytes = 0;
  if (!a.cache_hooks.empty()) {
    for (const std::string& name : available_hooks(c)) {
      if (fnmatch(a.cache_hooks.c_str(), name.c_str(), 0) != 0) continue;
      cached.push_back(name);
      handles.push_back(session.hooks().add(name, [&cached_bytes](const HookEvent&, Tensor& t) {
        cached_bytes += t.clone().nbytes();  // a real copy, as run_with_cache makes
      }));
    }
    if (cached.empty()) {
      throw Error(ErrorCode::kNotFound, "--cache-hooks '" + a.cache_hooks + "' matches no hook");
    }
  }
  std::vector<int32_t> prompt(static_cast<size_t>(a.p));
  for (int i = 0; i < a.p; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 1) % c.d_vocab);
  std::vector<int32_t> context(static_cast<size_t>(a.depth));
  for (int i = 0; i < a.depth; ++i) context[i] = static_cast<int32_t>((i * 104729 + 3) % c.d_vocab);
  // Each measurement starts from a cache holding exactly the depth tokens (untimed).
  const auto start = [&] {
    session.reset();
    if (a.depth > 0) session.forward(context, LogitsMode::kLast);
  };
  std::vector<double> pp, tg;
  for (int r = -1; r < a.reps; ++r) {  // r = -1 warms up (pages the weights in)
    start();
    double t0 = now();
    session.forward(prompt, LogitsMode::kLast);
    if (r >= 0) pp.push_back(a.p / (now() - t0));
    start();
    int32_t tok = 1;
    t0 = now();
    for (int i = 0; i < a.n; ++i) {
      session.forward(std::span<const int32_t>(&tok, 1), LogitsMode::kLast);
      tok = static_cast<int32_t>((i * 31 + 7) % c.d_vocab);
    }
    if (r >= 0 && a.n > 0) tg.push_back(a.n / (now() - t0));
  }
  const Work w = work_of(model);
  const Stats spp = stats(pp), stg = stats(tg);
  const double rss = peak_rss_mib();  // before the bandwidth buffer adds to it
  const double mem_gb_s = a.no_mem_bw ? 0.0 : memory_read_gb_s(session.pool());
  const double tg_gb_s = (w.layer_bytes + w.unembed_bytes) * stg.mean / 1e9;
  // pp FLOPs: every token through every layer, attention over the causal triangle, and the
  // unembedding of the last token only.
  const double attn_macs =
      2.0 * static_cast<double>(c.n_layers * c.n_heads * c.d_head) *
      (static_cast<double>(a.p) * (a.p + 1) / 2.0 + static_cast<double>(a.p) * a.depth);
  const double pp_flops = 2.0 * (a.p * w.layer_macs + attn_macs + w.unembed_macs);
  nlohmann::json out = {
      {"model", a.model_path},
      {"architecture", c.architecture},
      {"params", model.n_params()},
      {"weights_bytes", w.layer_bytes + w.unembed_bytes},
      {"cpu", cpu_model_name()},
      {"hardware_threads", std::thread::hardware_concurrency()},
      {"threads", session.pool().size()},
      {"blas_core", ops::blas_core_name()},
      {"reps", a.reps},
      {"n_prompt", a.p},
      {"n_gen", a.n},
      {"n_depth", a.depth},
      {"kv_type", dtype_name(kv_type)},
      {"kv_bytes", session.kv_bytes()},
      {"pp_tok_s", spp.mean},
      {"pp_tok_s_stddev", spp.stddev},
      {"pp_gflop_s", pp_flops / (a.p / spp.mean) / 1e9},
      {"tg_tok_s", stg.mean},
      {"tg_tok_s_stddev", stg.stddev},
      {"tg_gb_s", tg_gb_s},
      {"mem_read_gb_s", a.no_mem_bw ? nlohmann::json(nullptr) : nlohmann::json(mem_gb_s)},
      {"tg_bw_fraction",
       mem_gb_s > 0 ? nlohmann::json(tg_gb_s / mem_gb_s) : nlohmann::json(nullptr)},
      {"hooks_cached", cached.size()},
      {"peak_rss_mib", rss},
  };
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace

Action register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure prompt processing (pp) and generation (tg) speed as llama-bench does; JSON");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("--model,-m", a->model_path, "Model file or directory")->required();
  cmd->add_option("-p,--n-prompt", a->p, "Prompt tokens in one batch (default 512)");
  cmd->add_option("-n,--n-gen", a->n, "Decode steps (default 64)");
  cmd->add_option("-t,--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("-r,--reps", a->reps, "Repetitions (default 5)")->check(CLI::PositiveNumber);
  cmd->add_option("-d,--n-depth", a->depth,
                  "Tokens already in the KV cache before each pp and tg run (default 0)");
  cmd->add_flag("--no-mem-bw", a->no_mem_bw,
                "Skip the streaming-read bandwidth measurement (mem_read_gb_s, tg_bw_fraction)");
  cmd->add_option("--cache-hooks", a->cache_hooks,
                  "Cache every hook matching this glob (e.g. 'blocks.*.hook_resid_post')");
  auto* kv = cmd->add_option("--kv-type", a->kv_type,
                             "KV cache type: f32 (default), f16 or bf16 (one type for keys and "
                             "values)");
  cmd->add_option("--cache-type-k", a->cache_type_k,
                  "As llama-bench's -ctk (also accepted): the KV cache type; must equal -ctv");
  cmd->add_option("--cache-type-v", a->cache_type_v,
                  "As llama-bench's -ctv (also accepted): the KV cache type; must equal -ctk");
  return [a, kv] { return run_bench(*a, kv->count() > 0); };
}

}  // namespace glassbox::cli
