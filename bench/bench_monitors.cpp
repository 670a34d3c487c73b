// What server monitors cost per generated token, measured inside one process so the socket and
// the client's timing noise (larger than the effect on small models) stay out. Both sides run the
// server's own code path for a streamed /v1/completions: run_generation (sampling, stop
// handling), and per text piece the event JSON (completion_chunk + add_monitor_update) serialised
// as the server does. "on" adds two monitors: a projection on blocks.{L/2}.hook_resid_post and a
// probe on blocks.{L-1}.hook_resid_post (flag actions whose thresholds never fire, so both sides
// generate the same tokens). Per token = marginal cost: each side generates --n-short and
// --n-long tokens (EOS ignored) and the difference is divided by n_long - n_short, so one-time
// costs (prefill, hook set-up) cancel. Rounds alternate which side goes first; the overhead is
// the median of the per-round ratios (each round's two sides ran seconds apart, under the same
// machine load). Prints one JSON object.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "bench_common.h"
#include "model/model.h"
#include "model/session.h"
#include "server/generation.h"

using namespace glassbox;
using namespace glassbox::server;

namespace {

std::vector<MonitorSpec> make_monitors(const ModelConfig& c, const Probe& probe) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  MonitorSpec projection;
  projection.name = "projection";
  projection.type = MonitorType::kProjection;
  projection.hook = HookName{HookPoint::kResidPost, static_cast<int>(c.n_layers / 2)};
  projection.unit.resize(static_cast<size_t>(c.d_model));
  double norm = 0;
  for (float& x : projection.unit) {
    x = normal(rng);
    norm += static_cast<double>(x) * x;
  }
  for (float& x : projection.unit) x = static_cast<float>(x / std::sqrt(norm));
  projection.threshold = 1e30;
  MonitorSpec probe_monitor;
  probe_monitor.name = "probe";
  probe_monitor.type = MonitorType::kProbe;
  probe_monitor.hook = HookName{HookPoint::kResidPost, static_cast<int>(c.n_layers - 1)};
  probe_monitor.probe = &probe;
  probe_monitor.threshold = 2.0;  // a probability never exceeds it
  return {projection, probe_monitor};
}

Probe random_probe(int64_t d) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  Probe p;
  p.mean.assign(static_cast<size_t>(d), 0.0);
  p.scale.assign(static_cast<size_t>(d), 1.0);
  for (int64_t i = 0; i < d; ++i) p.w.push_back(normal(rng) / std::sqrt(static_cast<double>(d)));
  p.b = -1.0;
  return p;
}

// Seconds for one streamed generation of `n` tokens, events serialised into `sink`.
double stream_seconds(Session& session, const Tokenizer& tokenizer, GenerationRequest request,
                      int64_t n, std::string& sink) {
  request.sampling.max_tokens = n;
  const json base = {
      {"id", "cmpl-bench"}, {"object", "text_completion"}, {"created", 0}, {"model", "bench"}};
  std::vector<std::string> names;
  for (const MonitorSpec& m : request.monitors) names.push_back(m.name);
  sink.clear();
  return bench::seconds([&] {
    const GenerationResult r = run_generation(
        session, tokenizer, request, [&](const std::string& text, const MonitorUpdate& update) {
          json j = completion_chunk(base, text, "");
          add_monitor_update(j, names, update);
          sink += "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
          return true;
        });
    if (r.completion_tokens != n) throw std::runtime_error("generation ended early");
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"glassbox monitor-overhead benchmark (JSON on stdout)"};
  std::string model_path, prompt = "Once upon a time";
  int threads = 1, rounds = 21;
  int64_t n_short = 32, n_long = 288;
  app.add_option("--model,-m", model_path, "Model file")->required();
  app.add_option("--threads,-t", threads, "Threads (default 1)");
  app.add_option("--rounds,-r", rounds, "Rounds, alternating which side goes first (default 21)");
  app.add_option("--n-short", n_short, "Tokens of the short generation (default 32)");
  app.add_option("--n-long", n_long, "Tokens of the long generation (default 288)");
  app.add_option("--prompt,-p", prompt, "Prompt text");
  CLI11_PARSE(app, argc, argv);
  try {
    if (n_long <= n_short || n_short < 1)
      throw Error(ErrorCode::kInvalidArgument, "--n-long must exceed --n-short >= 1");
    const Model model = load_model(model_path);
    const ModelConfig& c = model.config();
    const auto tokenizer = load_model_tokenizer(model, std::nullopt);
    Session session(model, SessionOptions{threads});
    const Probe probe = random_probe(c.d_model);

    GenerationRequest off;
    off.prompt = tokenizer->encode(prompt, true, false);
    off.sampling.temperature = 0;
    off.sampling.ignore_eos = true;
    off.deadline = std::chrono::steady_clock::time_point::max();
    GenerationRequest on = off;
    on.monitors = make_monitors(c, probe);

    std::string sink_off, sink_on;
    auto per_token = [&](const GenerationRequest& req, std::string& sink) {
      const double t_short = stream_seconds(session, *tokenizer, req, n_short, sink);
      const double t_long = stream_seconds(session, *tokenizer, req, n_long, sink);
      return 1e3 * (t_long - t_short) / static_cast<double>(n_long - n_short);
    };
    (void)per_token(off, sink_off);  // warm-up: page in the weights, size the buffers
    (void)per_token(on, sink_on);
    std::vector<double> ms_off, ms_on, ratio;
    for (int r = 0; r < rounds; ++r) {
      double a = 0, b = 0;
      if (r % 2 == 0) {
        a = per_token(off, sink_off);
        b = per_token(on, sink_on);
      } else {
        b = per_token(on, sink_on);
        a = per_token(off, sink_off);
      }
      ms_off.push_back(a);
      ms_on.push_back(b);
      ratio.push_back(b / a);
    }
    if (sink_on.find("\"monitors\"") == std::string::npos)
      throw std::runtime_error("no monitor scores in the events");
    const double med_off = bench::median(ms_off), med_on = bench::median(ms_on);
    nlohmann::json out = {
        {"benchmark", "monitors"},
        {"model", model_path},
        {"cpu", bench::cpu_model()},
        {"hardware_threads", std::thread::hardware_concurrency()},
        {"threads", session.pool().size()},
        {"monitors",
         {"projection blocks." + std::to_string(c.n_layers / 2) + ".hook_resid_post",
          "probe blocks." + std::to_string(c.n_layers - 1) + ".hook_resid_post"}},
        {"rounds", rounds},
        {"n_short", n_short},
        {"n_long", n_long},
        {"ms_per_token_off", med_off},
        {"ms_per_token_on", med_on},
        {"overhead_pct", 100.0 * (bench::median(ratio) - 1.0)},
        {"overhead_pct_of_medians", 100.0 * (med_on / med_off - 1.0)},
        {"overhead_pct_of_fastest", 100.0 * (bench::minimum(ms_on) / bench::minimum(ms_off) - 1.0)},
        {"event_bytes_per_token_off", static_cast<double>(sink_off.size()) / n_long},
        {"event_bytes_per_token_on", static_cast<double>(sink_on.size()) / n_long},
        {"peak_rss_mib", peak_rss_mib()},
    };
    std::printf("%s\n", out.dump(2).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_monitors: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
