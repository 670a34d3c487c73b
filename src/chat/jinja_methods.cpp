// Python methods templates call on values (str, dict, list; none of them mutate: the sandbox
// transformers uses refuses list.append and the like) and the global functions.
#include <algorithm>

#include "chat/jinja_builtins.h"
#include "chat/jinja_builtins_internal.h"
#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {
namespace methods_detail {

using namespace builtins_detail;
using Args = std::vector<std::optional<Value>>;

const char* const kStrMethods[] = {
    "strip",    "lstrip",  "rstrip",  "split",   "rsplit",     "splitlines", "startswith",
    "endswith", "upper",   "lower",   "title",   "capitalize", "replace",    "find",
    "rfind",    "index",   "rindex",  "count",   "join",       "isdigit",    "isalpha",
    "isalnum",  "isspace", "isupper", "islower", "format",     "center"};
const char* const kDictMethods[] = {"get", "items", "keys", "values"};
const char* const kListMethods[] = {"count", "index"};

template <size_t N>
bool listed(const char* const (&names)[N], std::string_view name) {
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return name == n; });
}

std::optional<std::string> opt_chars(Interpreter& in, const std::optional<Value>& v) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) fail(ErrorCode::kInvalidArgument, "strip arg must be None or str");
  return arg_string(in, v, "");
}

std::string need_str(const std::optional<Value>& v, const char* what) {
  if (!v || !v->is_string()) {
    fail(ErrorCode::kInvalidArgument,
         std::string(what) + " must be a string, got '" + (v ? v->type_name() : "nothing") + "'");
  }
  return v->str();
}

// The characters [start, end) of s, Python-style indices (startswith/endswith ranges).
std::string char_range(const std::string& s, const std::optional<Value>& start,
                       const std::optional<Value>& end) {
  if ((!start || start->is_none()) && (!end || end->is_none())) return s;
  const std::vector<Utf8Char> cs = utf8_chars(s);
  const int64_t n = static_cast<int64_t>(cs.size());
  const auto fix = [&](const std::optional<Value>& v, int64_t dflt) {
    int64_t x = arg_int(v, dflt, "index");
    if (x < 0) x = std::max<int64_t>(0, x + n);
    return std::min(x, n);
  };
  const int64_t b = fix(start, 0), e = fix(end, n);
  std::string out;
  for (int64_t i = b; i < e; ++i) out += cs[static_cast<size_t>(i)].bytes;
  return out;
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
  const auto one = [&](const Value& a) {
    if (!a.is_string()) {
      fail(ErrorCode::kInvalidArgument, std::string(prefix ? "startswith" : "endswith") +
                                            " first arg must be str or a tuple of str, not " +
                                            a.type_name());
    }
    const std::string& x = a.str();
    return x.size() <= s.size() && (prefix ? s.compare(0, x.size(), x) == 0
                                           : s.compare(s.size() - x.size(), x.size(), x) == 0);
  };
  if (affix.is_list()) return std::any_of(affix.items().begin(), affix.items().end(), one);
  return one(affix);
}

template <class Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (const Utf8Char& c : utf8_chars(s))
    if (!pred(c.cp)) return false;
  return true;
}

bool is_alpha_cp(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return c >= 0xAA && !py_is_space(c) && !(c >= 0x2000 && c <= 0x206F) &&
         !(c >= 0x3000 && c <= 0x303F) && !(c >= 0xDC80 && c <= 0xDCFF);
}
bool is_digit_cp(uint32_t c) { return c >= '0' && c <= '9'; }

// str.format with positional/keyword fields and !r/!s; format specs are not supported.
Value str_format(Interpreter& in, const std::string& s, CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '}') {
      if (i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      fail(ErrorCode::kInvalidArgument, "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < s.size() && s[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = s.find('}', i);
    if (close == std::string::npos)
      fail(ErrorCode::kInvalidArgument, "Single '{' encountered in format string");
    std::string field = s.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      if (colon + 1 < field.size())
        fail(ErrorCode::kInvalidArgument, "format specifications are not supported in str.format");
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 'r' && field[bang + 1] != 's'))
        fail(ErrorCode::kInvalidArgument, "only !r and !s conversions are supported");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_index >= a.positional.size())
        fail(ErrorCode::kInvalidArgument, "Replacement index " + std::to_string(auto_index) +
                                              " out of range for positional args tuple");
      v = &a.positional[auto_index++];
    } else if (std::all_of(field.begin(), field.end(),
                           [](char d) { return d >= '0' && d <= '9'; })) {
      const size_t k = field.size() < 9 ? static_cast<size_t>(std::stoul(field)) : SIZE_MAX;
      if (k >= a.positional.size())
        fail(ErrorCode::kInvalidArgument,
             "Replacement index " + field + " out of range for positional args tuple");
      v = &a.positional[k];
    } else {
      for (const auto& [k, x] : a.keyword)
        if (k == field) v = &x;
      if (!v) fail(ErrorCode::kInvalidArgument, "KeyError: '" + field + "'");
    }
    if (conversion == 'r') {
      append_repr(out, *v, in.limits().max_string_bytes);
    } else {
      append_str(out, *v, in.limits().max_string_bytes);
    }
    if (out.size() > in.limits().max_string_bytes) break;
  }
  return in.new_string(std::move(out));
}

Value string_method(Interpreter& in, const std::string& s, const std::string& name, CallArgs& a) {
  const std::string what = "str." + name + "()";
  const auto bind = [&](const std::vector<const char*>& names, size_t required) {
    return bind_args(a, names, required, what);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Args p = bind({"chars"}, 0);
    return in.new_string(py_strip(s, opt_chars(in, p[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const Args p = bind({"sep", "maxsplit"}, 0);
    std::optional<std::string> sep;
    if (p[0] && !p[0]->is_none()) sep = need_str(p[0], "sep");
    const int64_t maxsplit = arg_int(p[1], -1, "maxsplit");
    std::vector<Value> parts;
    for (std::string& x :
         name == "split" ? py_split(s, sep, maxsplit) : py_rsplit(s, sep, maxsplit))
      parts.push_back(in.new_string(std::move(x)));
    return in.new_list(std::move(parts));
  }
  if (name == "splitlines") {
    bind({}, 0);
    std::vector<Value> parts;
    for (std::string& x : py_splitlines(s)) parts.push_back(in.new_string(std::move(x)));
    return in.new_list(std::move(parts));
  }
  if (name == "startswith" || name == "endswith") {
    const Args p = bind({"affix", "start", "end"}, 1);
    return Value::boolean(affix_match(char_range(s, p[1], p[2]), *p[0], name == "startswith"));
  }
  if (name == "upper") return bind({}, 0), in.new_string(py_upper(s));
  if (name == "lower") return bind({}, 0), in.new_string(py_lower(s));
  if (name == "title") return bind({}, 0), in.new_string(py_title(s));
  if (name == "capitalize") return bind({}, 0), in.new_string(py_capitalize(s));
  if (name == "replace") {
    const Args p = bind({"old", "new", "count"}, 2);
    return checked_replace(in, s, need_str(p[0], "old"), need_str(p[1], "new"),
                           arg_int(p[2], -1, "count"));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const Args p = bind({"sub"}, 1);
    const int64_t at = py_find(s, need_str(p[0], "sub"), name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos)
      fail(ErrorCode::kInvalidArgument, "substring not found");
    return Value::integer(at);
  }
  if (name == "count") {
    const Args p = bind({"sub"}, 1);
    return Value::integer(py_count(s, need_str(p[0], "sub")));
  }
  if (name == "join") {
    const Args p = bind({"iterable"}, 1);
    std::string out;
    size_t k = 0;
    for (const Value& x : iterate(in, *p[0])) {
      if (!x.is_string()) {
        fail(ErrorCode::kInvalidArgument, "sequence item " + std::to_string(k) +
                                              ": expected str instance, " + x.type_name() +
                                              " found");
      }
      if (k++) out += s;
      out += x.str();
      if (out.size() > in.limits().max_string_bytes) break;
    }
    return in.new_string(std::move(out));
  }
  if (name == "isdigit") return bind({}, 0), Value::boolean(all_chars(s, is_digit_cp));
  if (name == "isalpha") return bind({}, 0), Value::boolean(all_chars(s, is_alpha_cp));
  if (name == "isalnum")
    return bind({}, 0), Value::boolean(all_chars(
                            s, [](uint32_t c) { return is_alpha_cp(c) || is_digit_cp(c); }));
  if (name == "isspace") return bind({}, 0), Value::boolean(all_chars(s, py_is_space));
  if (name == "isupper") return bind({}, 0), Value::boolean(py_is_upper(s));
  if (name == "islower") return bind({}, 0), Value::boolean(py_is_lower(s));
  if (name == "format") return str_format(in, s, a);
  // center
  const Args p = bind({"width", "fillchar"}, 1);
  const int64_t width = std::min<int64_t>(arg_int(p[0], 0, "width"), 1 << 20);
  const std::string fill = p[1] ? need_str(p[1], "fillchar") : " ";
  if (utf8_length(fill) != 1)
    fail(ErrorCode::kInvalidArgument, "The fill character must be exactly one character long");
  const int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return in.new_string(s);
  const int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < pad; ++i) out += fill;
  return in.new_string(std::move(out));
}

Value dict_method(Interpreter& in, const Value& d, const std::string& name, CallArgs& a) {
  const std::string what = "dict." + name + "()";
  if (name == "get") {
    const Args p = bind_args(a, {"key", "default"}, 1, what);
    if (p[0]->is_list() || p[0]->is_map())
      fail(ErrorCode::kInvalidArgument,
           std::string("unhashable type: '") + p[0]->type_name() + "'");
    if (p[0]->is_string())
      if (const Value* v = d.map().find(p[0]->str())) return *v;
    return p[1] ? *p[1] : Value::none();
  }
  bind_args(a, {}, 0, what);
  std::vector<Value> out;
  for (const auto& [k, v] : d.map().entries) {
    if (name == "items") {
      out.push_back(in.new_list({in.new_string(k), v}, true));
    } else {
      out.push_back(name == "keys" ? in.new_string(k) : v);
    }
  }
  return in.new_list(std::move(out));
}

Value list_method(Interpreter& in, const Value& l, const std::string& name, CallArgs& a) {
  const Args p = bind_args(a, {"value"}, 1, "list." + name + "()");
  in.charge(static_cast<int64_t>(l.items().size()));
  int64_t count = 0;
  for (size_t i = 0; i < l.items().size(); ++i) {
    if (!equals(l.items()[i], *p[0])) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") fail(ErrorCode::kInvalidArgument, "value is not in list");
  return Value::integer(count);
}

// ---- global functions ----------------------------------------------------------------------

constexpr int64_t kMaxRange = 100000;  // Jinja2's sandbox MAX_RANGE

Value g_range(Interpreter& in, CallArgs& a) {
  if (!a.keyword.empty()) fail(ErrorCode::kInvalidArgument, "range() takes no keyword arguments");
  if (a.positional.empty() || a.positional.size() > 3)
    fail(ErrorCode::kInvalidArgument, "range expected 1 to 3 arguments");
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < a.positional.size(); ++i) {
    const Value& x = a.positional[i];
    if (x.is_undefined()) in.undefined_error(x);
    if (!x.is_int() && !x.is_bool())
      fail(ErrorCode::kInvalidArgument,
           std::string("'") + x.type_name() + "' object cannot be interpreted as an integer");
  }
  if (a.positional.size() == 1) {
    v[1] = a.positional[0].as_int();
  } else {
    for (size_t i = 0; i < a.positional.size(); ++i) v[i] = a.positional[i].as_int();
  }
  const int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) fail(ErrorCode::kInvalidArgument, "range() arg 3 must not be zero");
  const __int128 span =
      step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  const __int128 stride = step > 0 ? static_cast<__int128>(step) : -static_cast<__int128>(step);
  const __int128 n = span <= 0 ? 0 : (span + stride - 1) / stride;
  if (n > kMaxRange) {
    fail(ErrorCode::kInvalidArgument,
         "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i)
    out.push_back(Value::integer(start + i * step));
  return in.new_list(std::move(out));
}

// namespace(...) and dict(...): an optional mapping (or list of pairs), then keywords.
MapData mapping_args(Interpreter& in, CallArgs& a, const char* what) {
  if (a.positional.size() > 1)
    fail(ErrorCode::kInvalidArgument,
         std::string(what) + " expected at most 1 positional argument");
  MapData m;
  const auto put = [&](const std::string& k, const Value& v) {
    for (auto& [key, x] : m.entries) {
      if (key == k) {
        x = v;
        return;
      }
    }
    m.entries.emplace_back(k, v);
  };
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_map()) {
      for (const auto& [k, v] : src.map().entries) put(k, v);
    } else if (src.is_list()) {
      for (const Value& pair : src.items()) {
        if (!pair.is_list() || pair.items().size() != 2 || !pair.items()[0].is_string())
          fail(ErrorCode::kInvalidArgument, std::string(what) + " expects pairs of (str, value)");
        put(pair.items()[0].str(), pair.items()[1]);
      }
    } else {
      fail(ErrorCode::kInvalidArgument,
           std::string("'") + src.type_name() + "' object is not iterable");
    }
  }
  for (const auto& [k, v] : a.keyword) put(k, v);
  in.charge(static_cast<int64_t>(m.entries.size()));
  return m;
}

}  // namespace methods_detail

bool has_method(const Value& self, std::string_view name) {
  using namespace methods_detail;
  if (self.is_string()) return listed(kStrMethods, name);
  if (self.is_map()) return listed(kDictMethods, name);
  if (self.is_list()) return listed(kListMethods, name);
  return false;
}

Value call_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args) {
  using namespace methods_detail;
  if (self.is_string() && listed(kStrMethods, name))
    return string_method(in, self.str(), name, args);
  if (self.is_map() && listed(kDictMethods, name)) return dict_method(in, self, name, args);
  if (self.is_list() && listed(kListMethods, name)) return list_method(in, self, name, args);
  fail(ErrorCode::kInvalidArgument,
       std::string("'") + self.type_name() + "' object has no method '" + name + "'");
}

void add_global_functions(MapData& globals) {
  using namespace methods_detail;
  globals.entries.emplace_back("range", Value::callable("range", g_range));
  globals.entries.emplace_back("namespace",
                               Value::callable("namespace", [](Interpreter& in, CallArgs& a) {
                                 return Value::make_namespace(mapping_args(in, a, "namespace"));
                               }));
  globals.entries.emplace_back("dict", Value::callable("dict", [](Interpreter& in, CallArgs& a) {
                                 return in.new_map(mapping_args(in, a, "dict"));
                               }));
  globals.entries.emplace_back(
      "raise_exception",
      Value::callable("raise_exception", [](Interpreter& in, CallArgs& a) -> Value {
        const Args p = bind_args(a, {"message"}, 0, "raise_exception()");
        fail(ErrorCode::kInvalidArgument,
             "the template raised an exception: " + arg_string(in, p[0], ""));
      }));
}

}  // namespace glassbox::jinja
