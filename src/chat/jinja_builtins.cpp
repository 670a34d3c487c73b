// Shared helpers of the built-ins and the tests; the filters are in jinja_filters.cpp, the methods
// and global functions in jinja_methods.cpp.
#include "chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>

#include "chat/jinja_builtins_internal.h"
#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {

std::vector<Value> iterate(Interpreter& in, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      in.charge(static_cast<int64_t>(v.items().size()));
      return v.items();
    case Value::Kind::kMap: {
      std::vector<Value> keys;
      for (const auto& [k, x] : v.map().entries) keys.push_back(in.new_string(k));
      return keys;
    }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      for (const Utf8Char& c : utf8_chars(v.str()))
        chars.push_back(in.new_string(std::string(c.bytes)));
      return chars;
    }
    default:
      fail(ErrorCode::kInvalidArgument,
           std::string("'") + v.type_name() + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        fail(ErrorCode::kInvalidArgument,
             std::string("'in <string>' requires string as left operand, not ") + item.type_name());
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& x : container.items())
        if (equals(x, item)) return true;
      return false;
    case Value::Kind::kMap:
      if (item.is_list() || item.is_map())
        fail(ErrorCode::kInvalidArgument,
             std::string("unhashable type: '") + item.type_name() + "'");
      return item.is_string() && container.map().find(item.str()) != nullptr;
    default:
      fail(ErrorCode::kInvalidArgument,
           std::string("argument of type '") + container.type_name() + "' is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(utf8_length(v.str()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::kMap:
      return static_cast<int64_t>(v.map().entries.size());
    default:
      fail(ErrorCode::kInvalidArgument,
           std::string("object of type '") + v.type_name() + "' has no len()");
  }
}

namespace builtins_detail {

std::string arg_string(Interpreter& in, const std::optional<Value>& v, const std::string& dflt) {
  if (!v) return dflt;
  return to_str(*v, in.limits().max_string_bytes);
}

int64_t arg_int(const std::optional<Value>& v, int64_t dflt, const char* what) {
  if (!v || v->is_none()) return dflt;
  if (!v->is_int() && !v->is_bool()) {
    fail(ErrorCode::kInvalidArgument,
         std::string(what) + " must be an integer, got '" + v->type_name() + "'");
  }
  return v->as_int();
}

bool arg_bool(const std::optional<Value>& v, bool dflt) { return v ? v->truthy() : dflt; }

Value attribute_path(Interpreter& in, const Value& item, const Value& attribute) {
  if (!attribute.is_string()) return in.get_item(item, attribute);
  Value v = item;
  for (const std::string& part : py_split(attribute.str(), std::string("."), -1)) {
    bool digits = !part.empty();
    for (char c : part) digits = digits && c >= '0' && c <= '9';
    if (digits && part.size() < 18) {
      v = in.get_item(v, Value::integer(std::stoll(part)));
    } else {
      v = in.get_item(v, in.new_string(part));
    }
  }
  return v;
}

Value checked_replace(Interpreter& in, const std::string& s, const std::string& old,
                      const std::string& repl, int64_t count) {
  if (repl.size() > old.size()) {
    int64_t n = old.empty() ? static_cast<int64_t>(utf8_length(s)) + 1 : py_count(s, old);
    if (count >= 0) n = std::min(n, count);
    const uint64_t grow = static_cast<uint64_t>(n) * (repl.size() - old.size());
    if (s.size() + grow > in.limits().max_string_bytes) {
      fail(ErrorCode::kInvalidArgument, "a string would exceed the limit of " +
                                            std::to_string(in.limits().max_string_bytes) +
                                            " bytes");
    }
  }
  return in.new_string(py_replace(s, old, repl, count));
}

Value sort_key(Interpreter& in, const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return in.new_string(py_lower(v.str()));
  return v;
}

}  // namespace builtins_detail

// ---- tests --------------------------------------------------------------------------------

namespace tests_detail {

using builtins_detail::arg_int;

const Value& one_arg(CallArgs& a, const char* test) {
  if (a.positional.size() != 1 || !a.keyword.empty())
    fail(ErrorCode::kInvalidArgument, std::string("test '") + test + "' takes one argument");
  return a.positional[0];
}

void no_args(CallArgs& a, const char* test) {
  if (!a.positional.empty() || !a.keyword.empty())
    fail(ErrorCode::kInvalidArgument, std::string("test '") + test + "' takes no arguments");
}

int64_t int_operand(Interpreter& in, const Value& v, const char* test) {
  if (v.is_undefined()) in.undefined_error(v);
  if (!v.is_int() && !v.is_bool())
    fail(ErrorCode::kInvalidArgument,
         std::string("test '") + test + "' needs an integer, got '" + v.type_name() + "'");
  return v.as_int();
}

bool compare_test(Interpreter& in, const Value& v, CallArgs& a, const char* op) {
  const Value& other = one_arg(a, op);
  if (v.is_undefined()) in.undefined_error(v);
  if (other.is_undefined()) in.undefined_error(other);
  const int c = compare(v, other, op);
  const std::string o = op;
  return o == "<" ? c < 0 : o == "<=" ? c <= 0 : o == ">" ? c > 0 : c >= 0;
}

struct TestEntry {
  const char* name;
  TestFn fn;
};

#define GB_TEST(expr)                                        \
  [](Interpreter& in, const Value& v, CallArgs& a) -> bool { \
    (void)in;                                                \
    (void)a;                                                 \
    expr;                                                    \
  }

const TestEntry kTests[] = {
    {"defined", GB_TEST(no_args(a, "defined"); return !v.is_undefined())},
    {"undefined", GB_TEST(no_args(a, "undefined"); return v.is_undefined())},
    {"none", GB_TEST(no_args(a, "none"); return v.is_none())},
    {"boolean", GB_TEST(no_args(a, "boolean"); return v.is_bool())},
    {"true", GB_TEST(no_args(a, "true"); return v.is_bool() && v.as_bool())},
    {"false", GB_TEST(no_args(a, "false"); return v.is_bool() && !v.as_bool())},
    {"integer", GB_TEST(no_args(a, "integer"); return v.is_int())},
    {"float", GB_TEST(no_args(a, "float"); return v.is_float())},
    {"number", GB_TEST(no_args(a, "number"); return v.is_number())},
    {"string", GB_TEST(no_args(a, "string"); return v.is_string())},
    {"mapping", GB_TEST(no_args(a, "mapping"); return v.is_map())},
    {"iterable", GB_TEST(no_args(a, "iterable");
                         return v.is_string() || v.is_list() || v.is_map() || v.is_undefined())},
    {"sequence", GB_TEST(no_args(a, "sequence");
                         return v.is_string() || v.is_list() || v.is_map() || v.is_undefined())},
    {"callable", GB_TEST(no_args(a, "callable"); return v.is_callable())},
    {"escaped", GB_TEST(no_args(a, "escaped"); return false)},
    {"odd",
     GB_TEST(no_args(a, "odd"); const int64_t n = int_operand(in, v, "odd"); return n % 2 != 0)},
    {"even", GB_TEST(no_args(a, "even"); return int_operand(in, v, "even") % 2 == 0)},
    {"divisibleby",
     GB_TEST(const int64_t n = int_operand(in, v, "divisibleby");
             const int64_t d = arg_int(one_arg(a, "divisibleby"), 1, "divisor");
             if (d == 0) fail(ErrorCode::kInvalidArgument, "integer division or modulo by zero");
             return d == -1 || n % d == 0)},
    {"eq", GB_TEST(return equals(v, one_arg(a, "eq")))},
    {"equalto", GB_TEST(return equals(v, one_arg(a, "equalto")))},
    {"==", GB_TEST(return equals(v, one_arg(a, "==")))},
    {"ne", GB_TEST(return !equals(v, one_arg(a, "ne")))},
    {"!=", GB_TEST(return !equals(v, one_arg(a, "!=")))},
    {"lt", GB_TEST(return compare_test(in, v, a, "<"))},
    {"lessthan", GB_TEST(return compare_test(in, v, a, "<"))},
    {"<", GB_TEST(return compare_test(in, v, a, "<"))},
    {"le", GB_TEST(return compare_test(in, v, a, "<="))},
    {"<=", GB_TEST(return compare_test(in, v, a, "<="))},
    {"gt", GB_TEST(return compare_test(in, v, a, ">"))},
    {"greaterthan", GB_TEST(return compare_test(in, v, a, ">"))},
    {">", GB_TEST(return compare_test(in, v, a, ">"))},
    {"ge", GB_TEST(return compare_test(in, v, a, ">="))},
    {">=", GB_TEST(return compare_test(in, v, a, ">="))},
    {"in", GB_TEST(return contains(one_arg(a, "in"), v))},
    {"sameas",
     GB_TEST(const Value& o = one_arg(a, "sameas"); if (v.kind() != o.kind()) return false;
             if (v.is_list() || v.is_map() || v.is_string()) return false; return equals(v, o))},
    {"lower",
     GB_TEST(no_args(a, "lower"); return py_is_lower(to_str(v, in.limits().max_string_bytes)))},
    {"upper",
     GB_TEST(no_args(a, "upper"); return py_is_upper(to_str(v, in.limits().max_string_bytes)))},
    {"filter", GB_TEST(const Value& n = one_arg(a, "filter");
                       return n.is_string() && find_filter(n.str()) != nullptr)},
    {"test", GB_TEST(const Value& n = one_arg(a, "test");
                     return n.is_string() && find_test(n.str()) != nullptr)},
};

#undef GB_TEST

}  // namespace tests_detail

TestFn find_test(std::string_view name) {
  for (const auto& t : tests_detail::kTests)
    if (name == t.name) return t.fn;
  return nullptr;
}

}  // namespace glassbox::jinja
