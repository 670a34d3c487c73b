// Text generation for the server's routes: prompt ids in, text pieces out as they are decoded,
// with OpenAI stop strings (held back while they might still match, cut from the output), the
// model's stop ids (EOS, and BOS for llama2.c vocabularies, as `glassbox generate`), a deadline,
// and a callback that can stop early (a client gone). Streaming and non-streaming responses both
// come from here, so their texts are equal by construction. No HTTP here.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/session.h"
#include "server/json_request.h"
#include "server/stop_matcher.h"
#include "steer/interventions.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::server {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // non-empty, at most the context length
  SamplingRequest sampling;
  std::chrono::steady_clock::time_point deadline;
  std::vector<Intervention> steering;  // hooked into the session for this generation only
};

struct GenerationResult {
  std::string text;  // the whole completion (also when streamed)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string finish_reason;  // "stop" (stop id or string) or "length" (max_tokens, context, time)
  uint64_t seed = 0;
};

// The stop ids of `tokenizer`: EOS and BOS when it has them.
std::vector<int32_t> default_stop_ids(const Tokenizer& tokenizer);

// Resets `session` and generates. `on_text` receives each non-empty piece of completion text and
// returns false to stop (the caller is gone; finish_reason is then "length").
GenerationResult run_generation(Session& session, const Tokenizer& tokenizer,
                                const GenerationRequest& request,
                                const std::function<bool(const std::string&)>& on_text);

}  // namespace glassbox::server
