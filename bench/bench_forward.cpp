// Forward-pass speed and hook overhead, printed as one JSON object.
//   pp:  one batch of --pp prompt tokens, logits of the last one only (llama-bench's method)
//   tg:  --tg single-token decode steps from an empty cache
//   hook_sites: pp with the hook-checking code path but no hook registered (cost of the sites)
//   cache_resid_post: pp while caching every blocks.L.hook_resid_post
// Prefill variants are interleaved rep by rep (rotating order) so machine noise hits all of them
// alike; medians reported, and overheads also from the fastest rep of each.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_common.h"
#include "model/model.h"
#include "model/run.h"
#include "model/session.h"

using namespace glassbox;

int main(int argc, char** argv) {
  CLI::App app{"glassbox forward-pass benchmark (JSON on stdout)"};
  std::string model_path;
  int pp = 128, tg = 64, reps = 7, threads = 0;
  app.add_option("--model,-m", model_path, "Model file")->required();
  app.add_option("--pp", pp, "Prompt tokens per prefill (default 128)");
  app.add_option("--tg", tg, "Decode steps (default 64)");
  app.add_option("--reps,-r", reps, "Repetitions (default 7)");
  app.add_option("--threads,-t", threads, "Threads (default: all cores)");
  CLI11_PARSE(app, argc, argv);
  try {
    const Model model = load_model(model_path);
    const ModelConfig& c = model.config();
    pp = static_cast<int>(std::min<int64_t>(pp, c.n_ctx));
    tg = static_cast<int>(std::min<int64_t>(tg, c.n_ctx));
    std::vector<int32_t> prompt(static_cast<size_t>(pp));
    for (int i = 0; i < pp; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 1) % c.d_vocab);

    SessionOptions plain_opts{threads};
    SessionOptions sites_opts{threads};
    sites_opts.force_hook_sites = true;
    Session plain(model, plain_opts), sites(model, sites_opts), cached(model, plain_opts);
    std::vector<Tensor> resid;  // kept alive so the copies are real work
    std::vector<HookHandle> handles;
    for (int l = 0; l < c.n_layers; ++l) {
      handles.push_back(cached.hooks().add(
          HookName{HookPoint::kResidPost, l},
          [&resid](const HookEvent&, Tensor& act) { resid.push_back(act.clone()); }));
    }
    auto prefill = [&](Session& s) {
      s.reset();
      s.forward(prompt, LogitsMode::kLast);
    };
    std::vector<double> t_pp, t_sites, t_cache, t_tg;
    prefill(plain);  // warm-up: page in the weights
    // Prefill variants rotate their order every rep, so none always follows the same work.
    std::vector<std::pair<Session*, std::vector<double>*>> variants = {
        {&plain, &t_pp}, {&sites, &t_sites}, {&cached, &t_cache}};
    for (int r = 0; r < reps; ++r) {
      for (size_t v = 0; v < variants.size(); ++v) {
        auto& [session, times] = variants[(v + static_cast<size_t>(r)) % variants.size()];
        times->push_back(bench::seconds([&] { prefill(*session); }));
      }
      resid.clear();
    }
    for (int r = 0; r < reps; ++r) {
      t_tg.push_back(bench::seconds([&] {
        plain.reset();
        int32_t tok = 1;
        for (int i = 0; i < tg; ++i) {
          const Tensor logits = plain.forward(std::span<const int32_t>(&tok, 1), LogitsMode::kLast);
          tok = static_cast<int32_t>(i % c.d_vocab);
        }
      }));
    }
    const double pp_s = bench::median(t_pp), sites_s = bench::median(t_sites),
                 cache_s = bench::median(t_cache), tg_s = bench::median(t_tg);
    // The fastest rep is the least disturbed by other processes: the cleanest view of what the
    // code itself costs.
    const double pp_min = bench::minimum(t_pp), sites_min = bench::minimum(t_sites),
                 cache_min = bench::minimum(t_cache);
    nlohmann::json out = {
        {"benchmark", "forward"},
        {"model", model_path},
        {"params", model.n_params()},
        {"cpu", bench::cpu_model()},
        {"hardware_threads", std::thread::hardware_concurrency()},
        {"threads", plain.pool().size()},
        {"reps", reps},
        {"pp", {{"n_tokens", pp}, {"tokens_per_s", pp / pp_s}}},
        {"tg", {{"n_tokens", tg}, {"tokens_per_s", tg / tg_s}}},
        {"hook_sites_no_hooks",
         {{"tokens_per_s", pp / sites_s},
          {"overhead_pct", 100.0 * (sites_s - pp_s) / pp_s},
          {"overhead_pct_of_fastest", 100.0 * (sites_min - pp_min) / pp_min}}},
        {"cache_every_resid_post",
         {{"tokens_per_s", pp / cache_s},
          {"overhead_pct", 100.0 * (cache_s - pp_s) / pp_s},
          {"overhead_pct_of_fastest", 100.0 * (cache_min - pp_min) / pp_min}}},
        {"peak_rss_mib", peak_rss_mib()},
    };
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_forward: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
