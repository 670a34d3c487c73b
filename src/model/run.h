// TransformerLens-style entry points over a Session: run_with_cache, run_with_hooks, and
// generation with sampling. Each run_* call processes the tokens as a fresh sequence (the
// session is reset first), and every hook it adds is removed before it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "model/hooks.h"
#include "model/session.h"

namespace glassbox {

struct CacheRun {
  Tensor logits;          // [n_tokens, d_vocab]
  ActivationCache cache;  // name -> owned copy with the TL shape (no batch axis)
};

// Throws Error(kNotFound) for an unknown hook name before running anything.
CacheRun run_with_cache(Session& session, std::span<const int32_t> tokens,
                        const std::vector<std::string>& names);

Tensor run_with_hooks(Session& session, std::span<const int32_t> tokens,
                      const std::vector<std::pair<std::string, HookFn>>& hooks);

struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy (argmax, lowest id on ties)
  int top_k = 0;             // 0 = no limit
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  uint64_t seed = 0;
};

// Throws Error(kInvalidArgument) for a negative temperature/top_k or top_p outside (0, 1].
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these
};

// Continues the session's sequence with `prompt` (prefilled in one call), then decodes token by
// token. `on_token` sees each new id and may return false to stop. Returns the new ids.
std::vector<int32_t> generate(Session& session, std::span<const int32_t> prompt,
                              const GenerateOptions& options,
                              const std::function<bool(int32_t)>& on_token = {});

}  // namespace glassbox
