// Values of the Jinja language as Hugging Face chat templates see them: Python's None, bool, int,
// float, str, list and dict, plus Jinja's Undefined, namespace() objects and callables (macros,
// built-in functions, bound methods). Truthiness, equality, ordering and printing follow Python
// (str() and repr(): True/False/None, floats as repr); JSON output follows transformers' tojson
// (json.dumps with ensure_ascii=False, insertion order kept). Values are immutable except
// namespaces; strings and containers are shared, so copying a Value is cheap.
//
// Every container records its nesting depth (at most kMaxValueDepth, so that recursive printing
// and destruction stay shallow) and whether it holds a namespace anywhere (a namespace may not be
// stored inside a namespace: that is the only way to build a reference cycle).
// No template logic here: the evaluator (jinja_eval.h) decides what operators mean.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glassbox::jinja {

// Deepest nesting of lists/dicts a value may have (JSON inputs and template literals alike).
inline constexpr int kMaxValueDepth = 64;

class Value;
class Interpreter;
struct CallArgs;

struct ListData {
  std::vector<Value> items;
};

// An insertion-ordered dict with string keys (what JSON objects and chat messages are).
struct MapData {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(std::string_view key) const;
};

// namespace(): the one mutable object; `set ns.attr = value` writes into it.
struct NamespaceData {
  MapData attrs;
};

// Anything a template can call: a built-in, a macro, a method bound to its object.
struct Callable {
  std::string name;  // for messages: "range", "macro 'foo'", "str.strip"
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kMap,
    kNamespace,
    kCallable,
  };

  Value() = default;  // Undefined
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  // Throws Error(kInvalidArgument) when an item makes the list deeper than kMaxValueDepth. A
  // tuple is a list that prints as (a, b) and never equals a list (Python's tuple).
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value map(MapData map);
  static Value make_namespace(MapData attrs);
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }  // lists and tuples
  bool is_tuple() const { return tuple_; }
  bool is_map() const { return kind_ == Kind::kMap; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return scalar_.b; }
  int64_t as_int() const { return is_bool() ? (scalar_.b ? 1 : 0) : scalar_.i; }  // int or bool
  double as_float() const;                                                        // any number
  const std::string& str() const { return *str_; }
  const std::vector<Value>& items() const;
  const MapData& map() const;
  NamespaceData& ns() const;
  const Callable& fn() const;
  // For Undefined: what was looked up, as Jinja words it ("'x' is undefined").
  const std::string& undefined_hint() const;

  int depth() const { return depth_; }  // 0 for scalars
  // A namespace (or a function, which may hold anything) anywhere inside.
  bool has_namespace() const { return has_namespace_; }
  // Python's type name: 'NoneType', 'bool', 'int', 'float', 'str', 'list', 'dict', ...
  const char* type_name() const;
  bool truthy() const;

 private:
  Kind kind_ = Kind::kUndefined;
  uint8_t depth_ = 0;
  bool has_namespace_ = false;
  bool tuple_ = false;
  union {
    bool b;
    int64_t i;
    double f;
  } scalar_{};
  std::shared_ptr<const std::string> str_;  // string; Undefined's hint
  std::shared_ptr<const void> obj_;         // list / map / namespace / callable
};

// Python's ==: numbers by value (1 == 1.0 == True), strings, lists and dicts element-wise,
// Undefined equals Undefined, namespaces and callables by identity.
bool equals(const Value& a, const Value& b);
// Python's ordering for <, >, sort, min, max: numbers, strings (by code point), lists
// (lexicographic). Other pairs throw Error(kInvalidArgument) ("'<' not supported between ...").
int compare(const Value& a, const Value& b, const char* op = "<");

// Appends Python's str(v) / repr(v) to `out`; Undefined prints nothing, None prints "None".
// Throws Error(kInvalidArgument) once `out` would exceed `max_bytes`.
void append_str(std::string& out, const Value& v, size_t max_bytes);
void append_repr(std::string& out, const Value& v, size_t max_bytes);
std::string to_str(const Value& v, size_t max_bytes);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter calls
// it. indent: nullopt = single line; a number of spaces or a string per level.
struct JsonFormat {
  std::optional<std::string> indent;
  bool ensure_ascii = false;
  std::optional<std::pair<std::string, std::string>> separators;  // (item, key)
  bool sort_keys = false;
};
// Throws Error(kInvalidArgument) for what json.dumps refuses (Undefined, namespaces, callables).
void append_json(std::string& out, const Value& v, const JsonFormat& format, size_t max_bytes);

}  // namespace glassbox::jinja
