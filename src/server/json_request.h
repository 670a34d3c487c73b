// Request parsing for the server: the HttpError every handler throws for a bad request, the
// OpenAI-shaped error body, and typed access to JSON body fields and query parameters that
// throws a 400 naming the field. No HTTP library types here, so the fuzz target and tests can
// use it directly. Unknown fields are ignored (as OpenAI does); wrong types are errors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace glassbox::server {

using nlohmann::json;

// A request the server refuses: HTTP status, OpenAI error type/code, and the field at fault.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string message, std::string param = {}, std::string code = {})
      : std::runtime_error(std::move(message)),
        status_(status),
        param_(std::move(param)),
        code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

// 400 naming `field`: "field: message".
[[noreturn]] void bad_field(const std::string& field, const std::string& message);
// `e`, raised inside an entry of a list, rethrown as a 400 whose field is prefixed with the
// entry's place: where "steering[1]" + field "vector" -> "steering[1].vector: ...".
[[noreturn]] void rethrow_in_entry(const std::string& where, const HttpError& e);

// {"error": {"message", "type", "param", "code"}} for a status and message.
json error_body(int status, const std::string& message, const std::string& param = {},
                const std::string& code = {});
// The OpenAI error type for a status ("invalid_request_error", "authentication_error", ...).
const char* error_type(int status);

// Parses a request body that must be one JSON object; 400 (param null) otherwise.
json parse_json_object(const std::string& body);

// Typed field access on a JSON object. Absent or null fields give the default / nullopt; present
// fields of the wrong type or out of range throw a 400 naming the field and what was expected.
std::optional<std::string> opt_string(const json& obj, const std::string& field);
std::string req_string(const json& obj, const std::string& field);
std::optional<int64_t> opt_int(const json& obj, const std::string& field, int64_t min, int64_t max);
std::optional<double> opt_number(const json& obj, const std::string& field, double min, double max);
std::optional<bool> opt_bool(const json& obj, const std::string& field);
// A string, or a list of strings of at most `max_items` (each non-empty when `non_empty`).
std::vector<std::string> opt_string_or_list(const json& obj, const std::string& field,
                                            size_t max_items, bool non_empty);
// A list of integers in [min, max] of at most `max_items`.
std::vector<int64_t> opt_int_list(const json& obj, const std::string& field, int64_t min,
                                  int64_t max, size_t max_items);

// Query-parameter parsing (the text after '?' already split by the HTTP library).
int64_t parse_int_param(const std::string& field, const std::string& text, int64_t min,
                        int64_t max);
double parse_number_param(const std::string& field, const std::string& text);

// Sampling fields shared by /api/generate, /v1/completions and /v1/chat/completions.
struct SamplingRequest {
  int64_t max_tokens = 16;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // stop strings (not included in the output)
  bool ignore_eos = false;        // vLLM's extension: do not stop at EOS/BOS
};
// Reads max_tokens (or `alt_max_field` when given and set), temperature, top_p, top_k, seed, stop,
// ignore_eos; max_tokens beyond `max_tokens_cap` is a 400 naming it.
SamplingRequest parse_sampling(const json& obj, int64_t default_max_tokens,
                               double default_temperature, int64_t max_tokens_cap,
                               const std::string& alt_max_field = {});

}  // namespace glassbox::server
