#include "autointerp_options.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "cli_common.h"
#include "core/error.h"

namespace glassbox::cli {

void add_llm_options(CLI::App& cmd, LlmArgs& a, const std::string& what) {
  cmd.add_option("--endpoint", a.endpoint,
                 "OpenAI-compatible base URL of the " + what +
                     " (e.g. http://127.0.0.1:8080/v1, https://api.openai.com/v1)");
  cmd.add_option("--model", a.model, "Model name the " + what + " endpoint serves");
  cmd.add_option("--api-key-env", a.api_key_env,
                 "Environment variable holding the API key (default OPENAI_API_KEY; unset = none)");
  cmd.add_option("--timeout", a.timeout_s, "Seconds per request attempt (default 60)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd.add_option("--retries", a.retries,
                 "Retries on 429/5xx/timeouts/malformed replies, with backoff (default 5)")
      ->check(CLI::Range(0, 100));
  cmd.add_option("--concurrency", a.concurrency, "Requests in flight at once (default 4)")
      ->check(CLI::Range(1, 256));
  cmd.add_option("--max-tokens", a.max_tokens, "Reply token limit per request (default 300)")
      ->check(CLI::Range(1, 100000));
  cmd.add_option("--price-in", a.price_in, "USD per million prompt tokens, for the cost shown");
  cmd.add_option("--price-out", a.price_out, "USD per million completion tokens");
}

autointerp::LlmConfig make_llm_config(const LlmArgs& a) {
  if (a.endpoint.empty()) throw Error(ErrorCode::kInvalidArgument, "--endpoint: required here");
  if (a.model.empty())
    throw Error(ErrorCode::kInvalidArgument, "--model: required with --endpoint");
  autointerp::LlmConfig c;
  c.endpoint = a.endpoint;
  c.model = a.model;
  if (const char* key = std::getenv(a.api_key_env.c_str())) c.api_key = key;
  c.timeout_s = a.timeout_s;
  c.max_retries = a.retries;
  c.max_tokens = a.max_tokens;
  c.temperature = 0.0;
  return c;
}

std::vector<int64_t> parse_feature_range(const std::string& spec, int64_t d_sae) {
  std::set<int64_t> ids;
  const auto bad = [&](const std::string& item, const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, "--features: '" + item + "': " + why +
                                                 " (expected e.g. 0-99,120,200-; latents are 0.." +
                                                 std::to_string(d_sae - 1) + ")");
  };
  const auto number = [&](const std::string& item, const std::string& text) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
      bad(item, "not a latent number or range");
    if (text.size() > 12) bad(item, "out of range");
    const int64_t v = std::stoll(text);
    if (v >= d_sae) bad(item, "out of range");
    return v;
  };
  if (spec.empty()) {
    for (int64_t i = 0; i < d_sae; ++i) ids.insert(i);
  }
  for (const std::string& item : split_list(spec)) {
    const size_t dash = item.find('-');
    if (dash == std::string::npos) {
      ids.insert(number(item, item));
      continue;
    }
    const int64_t lo = number(item, item.substr(0, dash));
    const std::string rest = item.substr(dash + 1);
    const int64_t hi = rest.empty() ? d_sae - 1 : number(item, rest);
    if (hi < lo) bad(item, "empty range");
    for (int64_t i = lo; i <= hi; ++i) ids.insert(i);
  }
  return {ids.begin(), ids.end()};
}

void report_failures(const std::vector<std::string>& failures, const std::string& what,
                     const std::string& skipped) {
  if (failures.empty()) return;
  for (size_t i = 0; i < failures.size() && i < 5; ++i)
    std::fprintf(stderr, "failed: %s\n", failures[i].c_str());
  throw Error(ErrorCode::kIo, std::to_string(failures.size()) + " " + what +
                                  " (see above); rerun the same command to retry them (" + skipped +
                                  ")");
}

std::string LlmSpend::summary(const LlmArgs& p) const {
  const double cost = (static_cast<double>(prompt_tokens) * p.price_in +
                       static_cast<double>(completion_tokens) * p.price_out) /
                      1e6;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%lld calls (%lld cached), %lld+%lld tok, $%.4f",
                static_cast<long long>(calls.load()), static_cast<long long>(cached.load()),
                static_cast<long long>(prompt_tokens.load()),
                static_cast<long long>(completion_tokens.load()), cost);
  return buf;
}

autointerp::CachedReply cached_reply(const autointerp::LlmClient& client,
                                     autointerp::ExplanationStore& store, LlmSpend& spend,
                                     const std::vector<autointerp::ChatMessage>& messages) {
  // The endpoint is part of the key: one model name may mean different models on two servers.
  const std::string key =
      autointerp::cache_key(client.url() + "\n" + client.request_json(messages));
  ++spend.calls;
  if (auto hit = store.cached(key)) {
    ++spend.cached;
    return *hit;
  }
  const autointerp::LlmReply reply = client.chat(messages);
  const autointerp::CachedReply out{reply.text, reply.usage.prompt_tokens,
                                    reply.usage.completion_tokens};
  store.put_cached(key, out);
  spend.prompt_tokens += reply.usage.prompt_tokens;
  spend.completion_tokens += reply.usage.completion_tokens;
  return out;
}

autointerp::ChatFn cached_chat(const autointerp::LlmClient& client,
                               autointerp::ExplanationStore& store, LlmSpend& spend) {
  return [&client, &store, &spend](const std::vector<autointerp::ChatMessage>& messages) {
    return cached_reply(client, store, spend, messages).response;
  };
}

}  // namespace glassbox::cli
