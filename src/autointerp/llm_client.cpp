#include "autointerp/llm_client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "core/error.h"

namespace glassbox::autointerp {
namespace {

using json = nlohmann::json;
// ordered_json keeps keys in insertion order, which makes the request body (and the cache key
// derived from it) read in the documented order rather than alphabetically.
using ordered_json = nlohmann::ordered_json;

constexpr size_t kMaxDetail = 200;  // bytes of a server's body quoted in an error

struct Endpoint {
  std::string origin;  // "scheme://host[:port]"
  std::string path;    // "" or "/v1" (no trailing '/')
};

bool valid_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

// "host", "host:port", "[v6]" or "[v6]:port"; rejects userinfo and anything httplib would misread.
bool valid_authority(const std::string& a) {
  size_t host_end = 0;
  if (!a.empty() && a[0] == '[') {
    host_end = a.find(']');
    if (host_end == std::string::npos || host_end < 2) return false;
    for (size_t i = 1; i < host_end; ++i) {
      if (!std::isxdigit(static_cast<unsigned char>(a[i])) && a[i] != ':') return false;
    }
    ++host_end;
  } else {
    while (host_end < a.size() && valid_host_char(a[host_end])) ++host_end;
    if (host_end == 0) return false;
  }
  if (host_end == a.size()) return true;
  if (a[host_end] != ':') return false;
  const std::string port = a.substr(host_end + 1);
  if (port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const int n = std::stoi(port);
  return n >= 1 && n <= 65535;
}

std::optional<Endpoint> parse_endpoint(const std::string& url) {
  const size_t sep = url.find("://");
  if (sep == std::string::npos) return std::nullopt;
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme != "http" && scheme != "https") return std::nullopt;
  const std::string rest = url.substr(sep + 3);
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "" : rest.substr(slash);
  if (!valid_authority(authority)) return std::nullopt;
  // A query or fragment would end up in the middle of ".../chat/completions".
  for (char c : path) {
    if (c == '?' || c == '#' || std::isspace(static_cast<unsigned char>(c)) || c < 0x20) {
      return std::nullopt;
    }
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  return Endpoint{scheme + "://" + authority, path};
}

// One line, at most kMaxDetail bytes: server bodies go into single-line CLI errors.
std::string one_line_detail(const std::string& s) {
  std::string out = s.substr(0, kMaxDetail);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  if (s.size() > kMaxDetail) out += "...";
  return out;
}

// The server's error.message (OpenAI's error shape) when the body has one, else the body itself.
std::string error_detail(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_string()) return one_line_detail(e.get<std::string>());
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      return one_line_detail(e["message"].get<std::string>());
    }
  }
  return body.empty() ? "(empty body)" : one_line_detail(body);
}

enum class Outcome { kOk, kRetry, kFatal };

struct Attempt {
  Outcome outcome = Outcome::kRetry;
  LlmReply reply;             // when kOk
  std::string reason;         // when not kOk: why, for on_retry and the final error
  double retry_after_s = -1;  // the server's Retry-After, when it sent one in seconds
};

Attempt retry(std::string reason) { return {Outcome::kRetry, {}, std::move(reason)}; }

int64_t usage_count(const json& usage, const char* key) {
  if (!usage.contains(key) || !usage[key].is_number_integer()) return 0;
  return usage[key].get<int64_t>();
}

Attempt parse_reply(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return retry("malformed reply (not JSON): " + one_line_detail(body));
  const json* content = nullptr;
  if (j.is_object() && j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    const json& choice = j["choices"][0];
    if (choice.is_object() && choice.contains("message") && choice["message"].is_object() &&
        choice["message"].contains("content")) {
      content = &choice["message"]["content"];
    }
  }
  if (content == nullptr || !content->is_string()) {
    return retry("malformed reply (no choices[0].message.content string): " + one_line_detail(body));
  }
  Attempt a;
  a.outcome = Outcome::kOk;
  a.reply.text = content->get<std::string>();
  if (j.contains("usage") && j["usage"].is_object()) {
    a.reply.usage.prompt_tokens = usage_count(j["usage"], "prompt_tokens");
    a.reply.usage.completion_tokens = usage_count(j["usage"], "completion_tokens");
  }
  return a;
}

// Retry-After in delta-seconds; the HTTP-date form is rare for APIs and falls back to backoff.
double parse_retry_after(const std::string& value) {
  if (value.empty()) return -1;
  char* end = nullptr;
  const double s = std::strtod(value.c_str(), &end);
  if (end == value.c_str() || *end != '\0' || !std::isfinite(s) || s < 0) return -1;
  return s;
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 1 ? "%.2f" : "%.1f", s);
  return buf;
}

Attempt network_failure(httplib::Error err, double timeout_s) {
  const std::string t = seconds_text(timeout_s);
  switch (err) {
    case httplib::Error::Connection:
      return retry("cannot connect (connection refused or host unreachable)");
    case httplib::Error::ConnectionTimeout:
      return retry("connect timed out after " + t + " s");
    case httplib::Error::Read:
      return retry("no complete reply within " + t + " s (read timed out or connection closed)");
    case httplib::Error::Write:
      return retry("sending the request failed or timed out after " + t + " s");
    // A certificate that fails verification will fail again: retrying only delays the error.
    case httplib::Error::SSLServerVerification:
    case httplib::Error::SSLLoadingCerts:
      return {Outcome::kFatal, {}, "TLS: " + httplib::to_string(err)};
    default:
      return retry("network error (" + httplib::to_string(err) + ")");
  }
}

Attempt classify(const httplib::Result& res, double timeout_s) {
  if (!res) return network_failure(res.error(), timeout_s);
  const int status = res->status;
  if (status >= 200 && status < 300) return parse_reply(res->body);
  Attempt a;
  a.outcome = status == 429 || status >= 500 ? Outcome::kRetry : Outcome::kFatal;
  a.reason = "HTTP " + std::to_string(status) + ": " + error_detail(res->body);
  if (a.outcome == Outcome::kRetry) {
    a.retry_after_s = parse_retry_after(res->get_header_value("Retry-After"));
  }
  return a;
}

// Wait before retry number `retry` (1-based): backoff_s * 2^(retry-1), capped, +-20% jitter so
// that parallel workers do not retry in lockstep; never shorter than the server's Retry-After.
double retry_wait(const LlmConfig& c, int retry, double retry_after_s, std::minstd_rand& rng) {
  const double base = std::min(c.max_backoff_s, std::ldexp(c.backoff_s, std::min(retry - 1, 60)));
  double wait = base * std::uniform_real_distribution<double>(0.8, 1.2)(rng);
  if (retry_after_s >= 0) wait = std::max(wait, std::min(retry_after_s, c.max_backoff_s));
  return wait;
}

template <class SetFn>
void set_timeout(double seconds, SetFn set) {
  const auto sec = static_cast<time_t>(seconds);
  set(sec, static_cast<time_t>((seconds - static_cast<double>(sec)) * 1e6));
}

void validate(const LlmConfig& c) {
  auto bad = [](const std::string& m) { throw Error(ErrorCode::kInvalidArgument, m); };
  if (c.model.empty()) bad("--model: empty; name the model the endpoint serves");
  if (!(c.timeout_s > 0) || !std::isfinite(c.timeout_s)) {
    bad("--timeout: must be a positive number of seconds, got " + std::to_string(c.timeout_s));
  }
  if (c.max_retries < 0) bad("--retries: must be >= 0, got " + std::to_string(c.max_retries));
  if (!(c.backoff_s >= 0) || !(c.max_backoff_s >= 0)) bad("LlmConfig: backoff must be >= 0");
  if (c.max_tokens <= 0) bad("LlmConfig: max_tokens must be > 0");
}

}  // namespace

LlmClient::LlmClient(LlmConfig config) : config_(std::move(config)) {
  const std::optional<Endpoint> ep = parse_endpoint(config_.endpoint);
  // httplib parses the origin once more; its verdict catches forms our parser let through.
  if (!ep || !httplib::Client(ep->origin).is_valid()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--endpoint '" + config_.endpoint +
                    "': expected http://host[:port][/path] or https://host[:port][/path]");
  }
  validate(config_);
  origin_ = ep->origin;
  path_ = ep->path + "/chat/completions";
  url_ = origin_ + path_;
}

std::string LlmClient::request_json(const std::vector<ChatMessage>& messages) const {
  ordered_json body;
  body["model"] = config_.model;
  body["messages"] = ordered_json::array();
  for (const ChatMessage& m : messages) {
    ordered_json msg;
    msg["role"] = m.role;
    msg["content"] = m.content;
    body["messages"].push_back(std::move(msg));
  }
  body["max_tokens"] = config_.max_tokens;
  body["temperature"] = config_.temperature;
  // Contexts cut at token boundaries can hold partial UTF-8; replacing beats throwing mid-run.
  return body.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

LlmReply LlmClient::chat(const std::vector<ChatMessage>& messages) const {
  const std::string body = request_json(messages);
  httplib::Headers headers = {{"Accept", "application/json"}};
  if (!config_.api_key.empty()) headers.emplace("Authorization", "Bearer " + config_.api_key);
  std::minstd_rand rng(std::random_device{}());
  for (int attempt = 1;; ++attempt) {
    // A fresh client per attempt: nothing shared between threads, and no stale keep-alive socket
    // is reused after a timeout.
    httplib::Client cli(origin_);
    cli.enable_server_certificate_verification(true);
    set_timeout(config_.timeout_s, [&](time_t s, time_t us) { cli.set_connection_timeout(s, us); });
    set_timeout(config_.timeout_s, [&](time_t s, time_t us) { cli.set_read_timeout(s, us); });
    set_timeout(config_.timeout_s, [&](time_t s, time_t us) { cli.set_write_timeout(s, us); });
    Attempt a = classify(cli.Post(path_, headers, body, "application/json"), config_.timeout_s);
    if (a.outcome == Outcome::kOk) {
      a.reply.attempts = attempt;
      return std::move(a.reply);
    }
    if (a.outcome == Outcome::kFatal) throw Error(ErrorCode::kIo, "POST " + url_ + ": " + a.reason);
    if (attempt > config_.max_retries) {
      throw Error(ErrorCode::kIo, "POST " + url_ + ": gave up after " + std::to_string(attempt) +
                                      (attempt == 1 ? " attempt: " : " attempts: ") + a.reason);
    }
    const double wait = retry_wait(config_, attempt, a.retry_after_s, rng);
    if (config_.on_retry) config_.on_retry(a.reason + ", retrying in " + seconds_text(wait) + " s");
    if (config_.sleep) {
      config_.sleep(wait);
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    }
  }
}

ChatFn as_chat_fn(const LlmClient& client) {
  return [&client](const std::vector<ChatMessage>& messages) { return client.chat(messages).text; };
}

}  // namespace glassbox::autointerp
