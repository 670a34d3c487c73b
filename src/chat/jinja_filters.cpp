// The built-in filters (Jinja2's, with transformers' tojson). Each binds its arguments like the
// Python signature it follows.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "chat/jinja_builtins.h"
#include "chat/jinja_builtins_internal.h"
#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {
namespace filters_detail {

using namespace builtins_detail;
using Args = std::vector<std::optional<Value>>;

Args bind(CallArgs& a, const std::vector<const char*>& names, size_t required, const char* f) {
  return bind_args(a, names, required, std::string("filter '") + f + "'");
}

std::string str_of(Interpreter& in, const Value& v) {
  return to_str(v, in.limits().max_string_bytes);
}

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "abs");
  if (v.is_float()) return Value::number(std::fabs(v.as_float()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min())
      fail(ErrorCode::kInvalidArgument, "integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  fail(ErrorCode::kInvalidArgument,
       std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

Value f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"name"}, 1, "attr");
  const std::string name = arg_string(in, p[0], "");
  if (v.is_namespace() || has_method(v, name)) return in.get_attr(v, name);
  return Value::undefined("'" + std::string(v.type_name()) + " object' has no attribute '" + name +
                          "'");
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"linecount", "fill_with"}, 1, "batch");
  const int64_t n = arg_int(p[0], 1, "linecount");
  if (n <= 0) fail(ErrorCode::kInvalidArgument, "batch size must be positive");
  std::vector<Value> out, cur;
  for (Value& x : iterate(in, v)) {
    cur.push_back(std::move(x));
    if (static_cast<int64_t>(cur.size()) == n)
      out.push_back(in.new_list(std::move(cur))), cur.clear();
  }
  if (!cur.empty()) {
    if (p[1])
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*p[1]);
    out.push_back(in.new_list(std::move(cur)));
  }
  return in.new_list(std::move(out));
}

Value f_capitalize(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "capitalize");
  return in.new_string(py_capitalize(str_of(in, v)));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"width"}, 0, "center");
  const std::string s = str_of(in, v);
  const int64_t width = std::min<int64_t>(arg_int(p[0], 80, "width"), 1 << 20);
  const int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return in.new_string(s);
  // Python's str.center: the extra space goes right when the padding is odd and len is even.
  const int64_t pad = width - len;
  const int64_t left = pad / 2 + (pad & width & 1);
  return in.new_string(std::string(static_cast<size_t>(left), ' ') + s +
                       std::string(static_cast<size_t>(pad - left), ' '));
}

Value f_length(Interpreter&, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "length");
  return Value::integer(length_of(v));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"default_value", "boolean"}, 0, "default");
  const bool boolean = arg_bool(p[1], false);
  if (v.is_undefined() || (boolean && !v.truthy())) return p[0] ? *p[0] : Value::string("");
  return v;
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"case_sensitive", "by", "reverse"}, 0, "dictsort");
  if (!v.is_map()) fail(ErrorCode::kInvalidArgument, "dictsort expects a mapping");
  const bool cs = arg_bool(p[0], false);
  const std::string by = arg_string(in, p[1], "key");
  if (by != "key" && by != "value")
    fail(ErrorCode::kInvalidArgument, "You can only sort by either 'key' or 'value'");
  const bool reverse = arg_bool(p[2], false);
  std::vector<Value> pairs;
  for (const auto& [k, x] : v.map().entries)
    pairs.push_back(in.new_list({in.new_string(k), x}, true));
  const size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    in.charge(1);
    const int c = compare(sort_key(in, x.items()[idx], cs), sort_key(in, y.items()[idx], cs));
    return reverse ? c > 0 : c < 0;
  });
  return in.new_list(std::move(pairs));
}

Value f_escape(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "escape");
  std::string out;
  for (char c : str_of(in, v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return in.new_string(std::move(out));
}

Value f_first(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "first");
  if (v.is_list()) {
    if (v.items().empty()) return Value::undefined("No first item, sequence was empty.");
    return v.items().front();
  }
  std::vector<Value> items = iterate(in, v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "last");
  if (v.is_list()) {
    if (v.items().empty()) return Value::undefined("No last item, sequence was empty.");
    return v.items().back();
  }
  std::vector<Value> items = iterate(in, v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

// Python's float(str): surrounding whitespace, underscores between digits, inf/nan.
std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    clean += s[i];
  }
  if (clean.empty()) return std::nullopt;
  const std::string low = py_lower(clean);
  const std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  const double sign = low[0] == '-' ? -1.0 : 1.0;
  if (body == "inf" || body == "infinity") return sign * HUGE_VAL;
  if (body == "nan") return std::nan("");
  for (char c : body)
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' ||
          c == '-'))
      return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

// Python's int(str, base): whitespace, sign, underscores, 0x/0o/0b prefixes (base 0 or matching).
std::optional<int64_t> parse_py_int(const std::string& text, int64_t base) {
  std::string s = py_strip(text, std::nullopt, true, true);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(s[i + 1] | 0x20);
    const int64_t pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == 0 || base == pb)) {
      base = pb;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t v = 0;
  bool prev_digit = false;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (!prev_digit || i + 1 == s.size()) return std::nullopt;
      prev_digit = false;
      continue;
    }
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') d = (c | 0x20) - 'a' + 10;
    if (d < 0 || d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
      fail(ErrorCode::kInvalidArgument, "integer overflow");
    prev_digit = true;
  }
  return neg ? -v : v;
}

Value f_float(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"default"}, 0, "float");
  const Value dflt = p[0] ? *p[0] : Value::number(0.0);
  if (v.is_undefined()) in.undefined_error(v);
  if (v.is_number()) return Value::number(v.as_float());
  if (v.is_string()) {
    const auto d = parse_py_float(v.str());
    return d ? Value::number(*d) : dflt;
  }
  return dflt;
}

Value f_int(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"default", "base"}, 0, "int");
  const Value dflt = p[0] ? *p[0] : Value::integer(0);
  const int64_t base = arg_int(p[1], 10, "base");
  if (v.is_undefined()) in.undefined_error(v);
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double d = std::trunc(v.as_float());
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
    return Value::integer(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    if (const auto i = parse_py_int(v.str(), base)) return Value::integer(*i);
    if (const auto d = parse_py_float(v.str()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18)
      return Value::integer(static_cast<int64_t>(std::trunc(*d)));
  }
  return dflt;
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"width", "first", "blank"}, 0, "indent");
  std::string indention;
  if (p[0] && p[0]->is_string()) {
    indention = p[0]->str();
  } else {
    indention.assign(
        static_cast<size_t>(std::clamp<int64_t>(arg_int(p[0], 4, "width"), 0, 1 << 16)), ' ');
  }
  const bool first = arg_bool(p[1], false), blank = arg_bool(p[2], false);
  const std::vector<std::string> lines = py_splitlines(str_of(in, v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    if (i > 0 && (blank || !lines[i].empty())) out += indention;
    out += lines[i];
    if (out.size() > in.limits().max_string_bytes) return in.new_string(std::move(out));
  }
  if (first) out = indention + out;
  return in.new_string(std::move(out));
}

Value f_items(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "items");
  if (v.is_undefined()) return in.new_list({});
  if (!v.is_map()) fail(ErrorCode::kInvalidArgument, "Can only get item pairs from a mapping.");
  std::vector<Value> pairs;
  for (const auto& [k, x] : v.map().entries)
    pairs.push_back(in.new_list({in.new_string(k), x}, true));
  return in.new_list(std::move(pairs));
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"d", "attribute"}, 0, "join");
  const std::string sep = arg_string(in, p[0], "");
  std::string out;
  bool first = true;
  for (const Value& x : iterate(in, v)) {
    if (!first) out += sep;
    first = false;
    append_str(out, p[1] && !p[1]->is_none() ? attribute_path(in, x, *p[1]) : x,
               in.limits().max_string_bytes);
  }
  return in.new_string(std::move(out));
}

Value f_list(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "list");
  return in.new_list(iterate(in, v));
}

Value f_lower(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "lower");
  return in.new_string(py_lower(str_of(in, v)));
}

Value f_upper(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "upper");
  return in.new_string(py_upper(str_of(in, v)));
}

Value f_title(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "title");
  return in.new_string(jinja_title(str_of(in, v)));
}

Value f_trim(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"chars"}, 0, "trim");
  std::optional<std::string> chars;
  if (p[0] && !p[0]->is_none()) chars = arg_string(in, p[0], "");
  return in.new_string(py_strip(str_of(in, v), chars, true, true));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  const auto attr = std::find_if(a.keyword.begin(), a.keyword.end(),
                                 [](const auto& kw) { return kw.first == "attribute"; });
  if (attr != a.keyword.end()) {
    std::optional<Value> dflt;
    for (const auto& [k, x] : a.keyword) {
      if (k == "default") {
        dflt = x;
      } else if (k != "attribute") {
        fail(ErrorCode::kInvalidArgument,
             "filter 'map' got an unexpected keyword argument '" + k + "'");
      }
    }
    for (const Value& x : iterate(in, v)) {
      Value y = attribute_path(in, x, attr->second);
      out.push_back(y.is_undefined() && dflt ? *dflt : y);
    }
    return in.new_list(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string())
    fail(ErrorCode::kInvalidArgument, "map expects a filter name or attribute=...");
  const std::string name = a.positional[0].str();
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& x : iterate(in, v)) {
    CallArgs copy = rest;
    out.push_back(in.apply_filter(name, x, copy));
  }
  return in.new_list(std::move(out));
}

Value min_max(Interpreter& in, const Value& v, CallArgs& a, bool max, const char* f) {
  const Args p = bind(a, {"case_sensitive", "attribute"}, 0, f);
  const bool cs = arg_bool(p[0], false);
  std::optional<Value> best, best_key;
  for (const Value& x : iterate(in, v)) {
    const Value key = sort_key(in, p[1] && !p[1]->is_none() ? attribute_path(in, x, *p[1]) : x, cs);
    if (!best || (max ? compare(key, *best_key) > 0 : compare(key, *best_key) < 0)) {
      best = x;
      best_key = key;
    }
  }
  if (!best) return Value::undefined("No aggregated item, sequence was empty.");
  return *best;
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true, "max"); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) {
  return min_max(in, v, a, false, "min");
}

// select / reject / selectattr / rejectattr.
Value select_items(Interpreter& in, const Value& v, CallArgs& a, bool keep, bool by_attr) {
  size_t k = 0;
  std::optional<Value> attr;
  if (by_attr) {
    if (a.positional.empty())
      fail(ErrorCode::kInvalidArgument, "selectattr/rejectattr need an attribute name");
    attr = a.positional[k++];
  }
  std::optional<std::string> test;
  if (k < a.positional.size()) {
    if (!a.positional[k].is_string())
      fail(ErrorCode::kInvalidArgument, "the test name must be a string");
    test = a.positional[k++].str();
  }
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(k), a.positional.end());
  rest.keyword = a.keyword;
  std::vector<Value> out;
  for (const Value& x : iterate(in, v)) {
    const Value subject = attr ? attribute_path(in, x, *attr) : x;
    bool ok;
    if (test) {
      CallArgs copy = rest;
      ok = in.apply_test(*test, subject, copy);
    } else {
      ok = subject.truthy();
    }
    if (ok == keep) out.push_back(x);
  }
  return in.new_list(std::move(out));
}
Value f_select(Interpreter& in, const Value& v, CallArgs& a) {
  return select_items(in, v, a, true, false);
}
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) {
  return select_items(in, v, a, false, false);
}
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_items(in, v, a, true, true);
}
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_items(in, v, a, false, true);
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"old", "new", "count"}, 2, "replace");
  const std::string s = str_of(in, v), old = arg_string(in, p[0], ""),
                    repl = arg_string(in, p[1], "");
  const int64_t count = arg_int(p[2], -1, "count");
  return checked_replace(in, s, old, repl, count);
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "reverse");
  if (v.is_string()) {
    std::vector<Utf8Char> chars = utf8_chars(v.str());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->bytes;
    return in.new_string(std::move(out));
  }
  std::vector<Value> items = iterate(in, v);
  std::reverse(items.begin(), items.end());
  return in.new_list(std::move(items));
}

Value f_round(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"precision", "method"}, 0, "round");
  const int64_t precision = std::clamp<int64_t>(arg_int(p[0], 0, "precision"), -300, 300);
  const std::string method = arg_string(in, p[1], "common");
  if (method != "common" && method != "ceil" && method != "floor")
    fail(ErrorCode::kInvalidArgument, "method must be common, ceil or floor");
  if (!v.is_number()) {
    if (v.is_undefined()) in.undefined_error(v);
    fail(ErrorCode::kInvalidArgument,
         std::string("round expects a number, got '") + v.type_name() + "'");
  }
  if (method == "common" && !v.is_float()) return Value::integer(v.as_int());
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_float() * scale;
  const double r = method == "ceil"    ? std::ceil(x)
                   : method == "floor" ? std::floor(x)
                                       : std::nearbyint(x);
  return Value::number(r / scale);
}

Value f_safe(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "safe");
  return v.is_string() ? v : in.new_string(str_of(in, v));
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"reverse", "case_sensitive", "attribute"}, 0, "sort");
  const bool reverse = arg_bool(p[0], false), cs = arg_bool(p[1], false);
  std::vector<Value> items = iterate(in, v);
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& x : items)
    keyed.emplace_back(
        sort_key(in, p[2] && !p[2]->is_none() ? attribute_path(in, x, *p[2]) : x, cs), x);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    in.charge(1);
    const int c = compare(x.first, y.first);
    return reverse ? c > 0 : c < 0;
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return in.new_list(std::move(out));
}

Value f_string(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "string");
  return v.is_string() ? v : in.new_string(str_of(in, v));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"attribute", "start"}, 0, "sum");
  Value total = p[1] ? *p[1] : Value::integer(0);
  for (const Value& x : iterate(in, v)) {
    const Value y = p[0] && !p[0]->is_none() ? attribute_path(in, x, *p[0]) : x;
    if (!total.is_number() || !y.is_number()) {
      if (y.is_undefined()) in.undefined_error(y);
      fail(ErrorCode::kInvalidArgument, std::string("unsupported operand type(s) for +: '") +
                                            total.type_name() + "' and '" + y.type_name() + "'");
    }
    if (total.is_float() || y.is_float()) {
      total = Value::number(total.as_float() + y.as_float());
    } else {
      int64_t r = 0;
      if (__builtin_add_overflow(total.as_int(), y.as_int(), &r))
        fail(ErrorCode::kInvalidArgument, "integer overflow");
      total = Value::integer(r);
    }
  }
  return total;
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"ensure_ascii", "indent", "separators", "sort_keys"}, 0, "tojson");
  JsonFormat f;
  f.ensure_ascii = arg_bool(p[0], false);
  if (p[1] && !p[1]->is_none()) {
    if (p[1]->is_string()) {
      f.indent = p[1]->str();
    } else {
      f.indent = std::string(
          static_cast<size_t>(std::clamp<int64_t>(arg_int(p[1], 0, "indent"), 0, 1 << 10)), ' ');
    }
  }
  if (p[2] && !p[2]->is_none()) {
    if (!p[2]->is_list() || p[2]->items().size() != 2 || !p[2]->items()[0].is_string() ||
        !p[2]->items()[1].is_string())
      fail(ErrorCode::kInvalidArgument, "separators must be a pair of strings");
    f.separators = std::make_pair(p[2]->items()[0].str(), p[2]->items()[1].str());
  }
  f.sort_keys = arg_bool(p[3], false);
  if (v.is_undefined()) in.undefined_error(v);
  std::string out;
  append_json(out, v, f, in.limits().max_string_bytes);
  return in.new_string(std::move(out));
}

Value f_truncate(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"length", "killwords", "end", "leeway"}, 0, "truncate");
  const std::string s = str_of(in, v);
  const int64_t length = arg_int(p[0], 255, "length");
  const bool killwords = arg_bool(p[1], false);
  const std::string end = arg_string(in, p[2], "...");
  const int64_t leeway = arg_int(p[3], 5, "leeway");
  const int64_t end_len = static_cast<int64_t>(utf8_length(end));
  if (length < end_len)
    fail(ErrorCode::kInvalidArgument, "expected length >= " + std::to_string(end_len));
  if (leeway < 0) fail(ErrorCode::kInvalidArgument, "expected leeway >= 0");
  const std::vector<Utf8Char> chars = utf8_chars(s);
  if (static_cast<int64_t>(chars.size()) <= length + leeway) return in.new_string(s);
  std::string head;
  for (int64_t i = 0; i < length - end_len; ++i) head += chars[static_cast<size_t>(i)].bytes;
  if (!killwords) head = py_rsplit(head, std::string(" "), 1)[0];
  return in.new_string(head + end);
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  const Args p = bind(a, {"case_sensitive", "attribute"}, 0, "unique");
  const bool cs = arg_bool(p[0], false);
  std::vector<Value> out, keys;
  for (const Value& x : iterate(in, v)) {
    const Value key = sort_key(in, p[1] && !p[1]->is_none() ? attribute_path(in, x, *p[1]) : x, cs);
    if (key.is_list() || key.is_map())
      fail(ErrorCode::kInvalidArgument, std::string("unhashable type: '") + key.type_name() + "'");
    in.charge(static_cast<int64_t>(keys.size()));
    if (std::none_of(keys.begin(), keys.end(), [&](const Value& k) { return equals(k, key); })) {
      keys.push_back(key);
      out.push_back(x);
    }
  }
  return in.new_list(std::move(out));
}

Value f_wordcount(Interpreter& in, const Value& v, CallArgs& a) {
  bind(a, {}, 0, "wordcount");
  int64_t n = 0;
  bool in_word = false;
  for (const Utf8Char& c : utf8_chars(str_of(in, v))) {
    const bool word = (c.cp >= '0' && c.cp <= '9') || (c.cp >= 'a' && c.cp <= 'z') ||
                      (c.cp >= 'A' && c.cp <= 'Z') || c.cp == '_' ||
                      (c.cp >= 0xAA && !py_is_space(c.cp));
    if (word && !in_word) ++n;
    in_word = word;
  }
  return Value::integer(n);
}

struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"forceescape", f_escape},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"truncate", f_truncate},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

}  // namespace filters_detail

FilterFn find_filter(std::string_view name) {
  for (const auto& f : filters_detail::kFilters)
    if (name == f.name) return f.fn;
  return nullptr;
}

}  // namespace glassbox::jinja
