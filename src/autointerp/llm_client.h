// The OpenAI-compatible chat client of autointerp: POST {endpoint}/chat/completions with timeouts,
// retries with jittered exponential backoff (honouring Retry-After) and token usage.
// It owns the wire format (the canonical request JSON, reply parsing) and nothing else: no cache,
// no prompts, no concurrency of its own (callers run it from several threads). It must not leak
// httplib or JSON types through this header, and it never logs the API key.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autointerp/chat.h"

namespace glassbox::autointerp {

struct LlmConfig {
  std::string endpoint;  // base URL: "http://127.0.0.1:8080/v1", "https://api.openai.com/v1";
                         // a trailing '/' is fine; requests go to {endpoint}/chat/completions
  std::string model;
  std::string api_key;     // "" = no Authorization header; else "Authorization: Bearer KEY"
  double timeout_s = 60;   // per attempt, each of connect, read and write
  int max_retries = 5;     // retries after the first attempt
  double backoff_s = 1.0;  // first wait; doubles per retry, capped at max_backoff_s, +-20% jitter
  double max_backoff_s = 30;  // also caps a server's Retry-After
  int max_tokens = 200;
  double temperature = 0.0;
  // Optional: told about each retry ("HTTP 429: <server's message>, retrying in 1.0 s"). Called
  // from the thread that runs chat(), so it must be thread-safe when threads share the client.
  std::function<void(const std::string& what)> on_retry;
  // Optional: waits `seconds` between attempts (default: std::this_thread::sleep_for). Tests
  // record the waits here instead of timing the calls, so their verdicts never depend on load.
  std::function<void(double seconds)> sleep;
};

struct LlmUsage {
  int64_t prompt_tokens = 0, completion_tokens = 0;  // from the reply's "usage"; 0 when absent
};

struct LlmReply {
  std::string text;  // choices[0].message.content
  LlmUsage usage;
  int attempts = 1;  // 1 + the retries it took
};

class LlmClient {
 public:
  // Throws Error(kInvalidArgument) naming the CLI flag: "--endpoint 'x': expected
  // http://host[:port][/path] or https://host[:port][/path]", "--model: ...", "--timeout: ...",
  // "--retries: ...".
  explicit LlmClient(LlmConfig config);

  // The canonical request body: {"model","messages":[{"role","content"}],"max_tokens",
  // "temperature"} in that key order, compact, invalid UTF-8 replaced by U+FFFD. Also the input of
  // the reply cache key, so it must stay byte-stable for equal inputs.
  std::string request_json(const std::vector<ChatMessage>& messages) const;

  // POSTs request_json(messages). Thread-safe (one httplib::Client per call). Retries on
  // connection errors, timeouts, HTTP 429, HTTP 5xx and a 200 whose body is not JSON or lacks
  // choices[0].message.content as a string. Throws Error(kIo):
  //   other 4xx, at once:   "POST <url>: HTTP 401: <error.message or body, ~200 chars>"
  //   retries exhausted:    "POST <url>: gave up after N attempts: <last reason>"
  LlmReply chat(const std::vector<ChatMessage>& messages) const;

  const LlmConfig& config() const { return config_; }
  // The full request URL, {endpoint}/chat/completions.
  const std::string& url() const { return url_; }

 private:
  LlmConfig config_;
  std::string origin_;  // "scheme://host[:port]", what httplib::Client takes
  std::string path_;    // "/v1/chat/completions"
  std::string url_;     // origin_ + path_
};

// Adapts a client to the ChatFn of chat.h (returns reply.text). The client must outlive it.
ChatFn as_chat_fn(const LlmClient& client);

}  // namespace glassbox::autointerp
