// Options `glassbox explain` and `glassbox score` share: the LLM endpoint (--endpoint, --model,
// --api-key-env, --timeout, --retries, --concurrency, prices), --features ranges, and the LLM
// call through the feature DB's reply cache (never pay twice for the same prompt).
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autointerp/chat.h"
#include "autointerp/explanation_store.h"
#include "autointerp/llm_client.h"

namespace glassbox::cli {

struct LlmArgs {
  std::string endpoint, model;
  std::string api_key_env = "OPENAI_API_KEY";
  double timeout_s = 60;
  int retries = 5;
  int concurrency = 4;
  int max_tokens = 300;
  double price_in = 0, price_out = 0;  // USD per million tokens
};

// `what` says what the LLM is for ("explainer" / "judge") in the help texts.
void add_llm_options(CLI::App& cmd, LlmArgs& args, const std::string& what);
// Reads the API key from the environment variable (may be unset: local servers need none).
autointerp::LlmConfig make_llm_config(const LlmArgs& args);

// "0-99,120,200-" (a trailing '-' runs to the end) into ids below d_sae, ascending and unique;
// empty spec = all. Throws Error(kInvalidArgument) naming --features and the bad item.
std::vector<int64_t> parse_feature_range(const std::string& spec, int64_t d_sae);

// After a run whose jobs may fail one by one: nothing when `failures` is empty; else prints the
// first five and throws Error(kIo) "<n> <what> (see above); rerun the same command to retry them
// (<skipped>)".
void report_failures(const std::vector<std::string>& failures, const std::string& what,
                     const std::string& skipped);

// Tokens and money spent by the LLM calls of one run, across threads.
struct LlmSpend {
  std::atomic<int64_t> calls{0}, cached{0}, prompt_tokens{0}, completion_tokens{0};
  std::string summary(const LlmArgs& prices) const;  // "12 calls (3 cached), 4.1k tok, $0.0021"
};

// An LLM call through the cache: a reply stored under the request's key is reused (with the
// usage it had when paid for); a new reply is stored before it is returned, so a killed run
// never pays for it again. `spend` counts only what this run paid.
autointerp::CachedReply cached_reply(const autointerp::LlmClient& client,
                                     autointerp::ExplanationStore& store, LlmSpend& spend,
                                     const std::vector<autointerp::ChatMessage>& messages);
autointerp::ChatFn cached_chat(const autointerp::LlmClient& client,
                               autointerp::ExplanationStore& store, LlmSpend& spend);

}  // namespace glassbox::cli
