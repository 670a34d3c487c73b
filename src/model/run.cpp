#include "model/run.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace glassbox {

CacheRun run_with_cache(Session& session, std::span<const int32_t> tokens,
                        const std::vector<std::string>& names) {
  CacheRun result;
  std::vector<HookHandle> handles;
  for (const std::string& name : names) {
    const HookName hook = resolve_hook_name(name, session.config());
    const std::string key = hook_name_string(hook);
    handles.push_back(session.hooks().add(
        hook, [&result, key](const HookEvent&, Tensor& act) { result.cache[key] = act.clone(); }));
  }
  session.reset();
  result.logits = session.forward(tokens, LogitsMode::kAll);
  return result;
}

Tensor run_with_hooks(Session& session, std::span<const int32_t> tokens,
                      const std::vector<std::pair<std::string, HookFn>>& hooks) {
  std::vector<HookHandle> handles;
  for (const auto& [name, fn] : hooks) handles.push_back(session.hooks().add(name, fn));
  session.reset();
  return session.forward(tokens, LogitsMode::kAll);
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (!(params.temperature >= 0.0f) || !std::isfinite(params.temperature)) {
    throw Error(ErrorCode::kInvalidArgument, "temperature must be >= 0");
  }
  if (params.top_k < 0) throw Error(ErrorCode::kInvalidArgument, "top-k must be >= 0");
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    throw Error(ErrorCode::kInvalidArgument, "top-p must be in (0, 1]");
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  GLASSBOX_ASSERT(!logits.empty());
  if (params_.temperature == 0.0f) {
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  }
  // Candidates sorted by logit (descending; lower id first on ties), truncated by top-k.
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  const size_t k = params_.top_k > 0 ? std::min<size_t>(params_.top_k, ids.size()) : ids.size();
  const auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), by_logit);
  ids.resize(k);
  std::vector<double> probs(k);
  const double mx = logits[ids[0]];
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    probs[i] = std::exp((logits[ids[i]] - mx) / params_.temperature);
    sum += probs[i];
  }
  // Nucleus: keep the smallest prefix whose mass reaches top_p.
  size_t keep = k;
  if (params_.top_p < 1.0f) {
    double mass = 0.0;
    for (size_t i = 0; i < k; ++i) {
      mass += probs[i] / sum;
      if (mass >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  const double kept_sum = std::accumulate(probs.begin(), probs.begin() + keep, 0.0);
  const double r = std::uniform_real_distribution<double>(0.0, kept_sum)(rng_);
  double acc = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    acc += probs[i];
    if (r < acc) return ids[i];
  }
  return ids[keep - 1];
}

std::vector<int32_t> generate(Session& session, std::span<const int32_t> prompt,
                              const GenerateOptions& options,
                              const std::function<bool(int32_t)>& on_token) {
  Sampler sampler(options.sampling);
  std::vector<int32_t> out;
  if (options.max_new_tokens <= 0) return out;
  Tensor logits = session.forward(prompt, LogitsMode::kLast);
  for (;;) {
    const int32_t id = sampler.sample(logits.floats());
    out.push_back(id);
    const bool stop =
        std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end();
    if ((on_token && !on_token(id)) || stop) break;
    if (static_cast<int64_t>(out.size()) >= options.max_new_tokens) break;
    if (session.n_past() >= session.n_ctx()) break;  // context full: stop, never throw
    logits = session.forward(std::span<const int32_t>(&out.back(), 1), LogitsMode::kLast);
  }
  return out;
}

}  // namespace glassbox
