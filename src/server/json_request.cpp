#include "server/json_request.h"

#include <charconv>
#include <cmath>
#include <limits>

namespace glassbox::server {
namespace {

std::string type_of(const json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return std::string(v.type_name());
}

const json* field_of(const json& obj, const std::string& field) {
  const auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer value of `v`, also from an integral float (16.0); nullopt when not integral or out
// of int64 range.
std::optional<int64_t> as_int(const json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e18)
      return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::string range_text(int64_t min, int64_t max) {
  if (max == std::numeric_limits<int64_t>::max()) return ">= " + std::to_string(min);
  return "in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
}

std::string number_text(double d) {
  std::string s = json(d).dump();
  return s;
}

}  // namespace

void bad_field(const std::string& field, const std::string& message) {
  throw HttpError(400, field + ": " + message, field, "invalid_value");
}

void rethrow_in_entry(const std::string& where, const HttpError& e) {
  const std::string param = e.param().empty() ? where : where + "." + e.param();
  std::string msg = e.what();
  if (!e.param().empty() && msg.rfind(e.param() + ": ", 0) == 0)
    msg = msg.substr(e.param().size() + 2);
  throw HttpError(400, param + ": " + msg, param, e.code());
}

const char* error_type(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 500:
      return "server_error";
    case 503:
      return "service_unavailable";
    default:
      return "invalid_request_error";
  }
}

json error_body(int status, const std::string& message, const std::string& param,
                const std::string& code) {
  return json{{"error",
               {{"message", message},
                {"type", error_type(status)},
                {"param", param.empty() ? json(nullptr) : json(param)},
                {"code", code.empty() ? json(nullptr) : json(code)}}}};
}

json parse_json_object(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for huge numbers
    // The parser's message names the position; it quotes at most the last token read.
    throw HttpError(400, std::string("the request body is not valid JSON: ") + e.what(), {},
                    "invalid_json");
  }
  if (!j.is_object())
    throw HttpError(400, "the request body must be a JSON object, not " + type_of(j), {},
                    "invalid_json");
  return j;
}

std::optional<std::string> opt_string(const json& obj, const std::string& field) {
  const json* v = field_of(obj, field);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad_field(field, "expected a string, got " + type_of(*v));
  return v->get<std::string>();
}

std::string req_string(const json& obj, const std::string& field) {
  auto s = opt_string(obj, field);
  if (!s)
    throw HttpError(400, field + ": this field is required (a string)", field, "missing_field");
  return *s;
}

std::optional<int64_t> opt_int(const json& obj, const std::string& field, int64_t min,
                               int64_t max) {
  const json* v = field_of(obj, field);
  if (!v) return std::nullopt;
  const auto i = as_int(*v);
  if (!i) bad_field(field, "expected an integer " + range_text(min, max) + ", got " + type_of(*v));
  if (*i < min || *i > max)
    bad_field(field, "must be " + range_text(min, max) + ", got " + std::to_string(*i));
  return i;
}

std::optional<double> opt_number(const json& obj, const std::string& field, double min,
                                 double max) {
  const json* v = field_of(obj, field);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad_field(field, "expected a number, got " + type_of(*v));
  const double d = v->get<double>();
  if (!(d >= min && d <= max))
    bad_field(field, "must be in [" + number_text(min) + ", " + number_text(max) + "], got " +
                         number_text(d));
  return d;
}

std::optional<bool> opt_bool(const json& obj, const std::string& field) {
  const json* v = field_of(obj, field);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad_field(field, "expected a boolean, got " + type_of(*v));
  return v->get<bool>();
}

std::vector<std::string> opt_string_or_list(const json& obj, const std::string& field,
                                            size_t max_items, bool non_empty) {
  const json* v = field_of(obj, field);
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > max_items)
      bad_field(field, "at most " + std::to_string(max_items) + " items, got " +
                           std::to_string(v->size()));
    for (size_t i = 0; i < v->size(); ++i) {
      if (!(*v)[i].is_string())
        bad_field(field,
                  "item " + std::to_string(i) + ": expected a string, got " + type_of((*v)[i]));
      out.push_back((*v)[i].get<std::string>());
    }
  } else {
    bad_field(field, "expected a string or a list of strings, got " + type_of(*v));
  }
  if (non_empty)
    for (const auto& s : out)
      if (s.empty()) bad_field(field, "empty strings are not allowed");
  return out;
}

std::vector<int64_t> opt_int_list(const json& obj, const std::string& field, int64_t min,
                                  int64_t max, size_t max_items) {
  const json* v = field_of(obj, field);
  std::vector<int64_t> out;
  if (!v) return out;
  if (!v->is_array()) bad_field(field, "expected a list of integers, got " + type_of(*v));
  if (v->size() > max_items)
    bad_field(field,
              "at most " + std::to_string(max_items) + " items, got " + std::to_string(v->size()));
  for (size_t i = 0; i < v->size(); ++i) {
    const auto x = as_int((*v)[i]);
    if (!x || *x < min || *x > max)
      bad_field(field, "item " + std::to_string(i) + ": expected an integer " +
                           range_text(min, max) + ", got " + (*v)[i].dump());
    out.push_back(*x);
  }
  return out;
}

int64_t parse_int_param(const std::string& field, const std::string& text, int64_t min,
                        int64_t max) {
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size())
    bad_field(field, "expected an integer, got '" + text + "'");
  if (v < min || v > max)
    bad_field(field, "must be " + range_text(min, max) + ", got " + std::to_string(v));
  return v;
}

double parse_number_param(const std::string& field, const std::string& text) {
  // from_chars for double is in libstdc++ 11+; it rejects "nan"-free garbage and trailing text.
  double v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v))
    bad_field(field, "expected a number, got '" + text + "'");
  return v;
}

SamplingRequest parse_sampling(const json& obj, int64_t default_max_tokens,
                               double default_temperature, int64_t max_tokens_cap,
                               const std::string& alt_max_field) {
  SamplingRequest r;
  r.max_tokens = std::min(default_max_tokens, max_tokens_cap);
  const int64_t kHuge = std::numeric_limits<int64_t>::max();
  std::string max_field = "max_tokens";
  std::optional<int64_t> m = opt_int(obj, "max_tokens", 0, kHuge);
  if (!alt_max_field.empty()) {
    if (auto alt = opt_int(obj, alt_max_field, 0, kHuge)) {
      m = alt;
      max_field = alt_max_field;
    }
  }
  if (m) {
    if (*m > max_tokens_cap)
      bad_field(max_field, "at most " + std::to_string(max_tokens_cap) +
                               " tokens per request on this server (--max-tokens), got " +
                               std::to_string(*m));
    r.max_tokens = *m;
  }
  r.temperature = opt_number(obj, "temperature", 0.0, 2.0).value_or(default_temperature);
  if (auto p = opt_number(obj, "top_p", 0.0, 1.0)) {
    if (*p <= 0) bad_field("top_p", "must be in (0, 1], got 0");
    r.top_p = *p;
  }
  r.top_k = opt_int(obj, "top_k", 0, 1 << 24).value_or(0);
  if (auto s = opt_int(obj, "seed", std::numeric_limits<int64_t>::min(), kHuge))
    r.seed = static_cast<uint64_t>(*s);
  r.stop = opt_string_or_list(obj, "stop", 4, true);
  r.ignore_eos = opt_bool(obj, "ignore_eos").value_or(false);
  return r;
}

}  // namespace glassbox::server
