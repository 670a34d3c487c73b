#include "chat/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {

const Value* MapData::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

namespace {

const std::string& jinja_empty_string() {
  static const std::string s;
  return s;
}

// Depth and namespace flag of a container holding `children`.
template <class It, class Get>
void summarize_children(It begin, It end, Get get, uint8_t& depth, bool& has_ns) {
  int d = 0;
  bool ns = false;
  for (It it = begin; it != end; ++it) {
    const Value& v = get(*it);
    d = std::max(d, v.depth());
    ns = ns || v.has_namespace() || v.is_namespace();
  }
  if (d + 1 > kMaxValueDepth) {
    fail(ErrorCode::kInvalidArgument,
         "a value nests lists/dicts more than " + std::to_string(kMaxValueDepth) + " levels deep");
  }
  depth = static_cast<uint8_t>(d + 1);
  has_ns = ns;
}

[[noreturn]] void throw_string_too_long(size_t max_bytes) {
  fail(ErrorCode::kInvalidArgument,
       "a string would exceed the limit of " + std::to_string(max_bytes) + " bytes");
}

void check_string_size(const std::string& out, size_t max_bytes) {
  if (out.size() > max_bytes) throw_string_too_long(max_bytes);
}

}  // namespace

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.str_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.scalar_.b = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.scalar_.i = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.scalar_.f = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.str_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.tuple_ = tuple;
  summarize_children(
      items.begin(), items.end(), [](const Value& x) -> const Value& { return x; }, v.depth_,
      v.has_namespace_);
  v.obj_ = std::make_shared<const ListData>(ListData{std::move(items)});
  return v;
}

Value Value::map(MapData map) {
  Value v;
  v.kind_ = Kind::kMap;
  summarize_children(
      map.entries.begin(), map.entries.end(),
      [](const std::pair<std::string, Value>& e) -> const Value& { return e.second; }, v.depth_,
      v.has_namespace_);
  v.obj_ = std::make_shared<const MapData>(std::move(map));
  return v;
}

Value Value::make_namespace(MapData attrs) {
  Value v;
  v.kind_ = Kind::kNamespace;
  for (const auto& [k, x] : attrs.entries) {
    if (x.is_namespace() || x.has_namespace())
      fail(ErrorCode::kInvalidArgument,
           "a namespace cannot hold a namespace (attribute '" + k + "')");
  }
  v.obj_ = std::make_shared<NamespaceData>(NamespaceData{std::move(attrs)});
  return v;
}

Value Value::callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  // A function may hold values (a bound method, a macro's scope): it counts as possibly reaching a
  // namespace, so it can never be stored in one (no reference cycles).
  v.has_namespace_ = true;
  v.obj_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}

double Value::as_float() const {
  if (is_float()) return scalar_.f;
  return static_cast<double>(as_int());
}

const std::vector<Value>& Value::items() const {
  return static_cast<const ListData*>(obj_.get())->items;
}
const MapData& Value::map() const { return *static_cast<const MapData*>(obj_.get()); }
NamespaceData& Value::ns() const {
  // Namespaces are the one mutable object: created non-const in make_namespace.
  return *const_cast<NamespaceData*>(static_cast<const NamespaceData*>(obj_.get()));
}
const Callable& Value::fn() const { return *static_cast<const Callable*>(obj_.get()); }
const std::string& Value::undefined_hint() const { return str_ ? *str_ : jinja_empty_string(); }

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "dict";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kCallable:
      return "function";
  }
  return "?";
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return scalar_.b;
    case Kind::kInt:
      return scalar_.i != 0;
    case Kind::kFloat:
      return scalar_.f != 0.0;
    case Kind::kString:
      return !str_->empty();
    case Kind::kList:
      return !items().empty();
    case Kind::kMap:
      return !map().entries.empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.str() == b.str();
    case Value::Kind::kList: {
      const auto& x = a.items();
      const auto& y = b.items();
      if (x.size() != y.size() || a.is_tuple() != b.is_tuple()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Value::Kind::kMap: {
      const auto& x = a.map().entries;
      const auto& y = b.map();
      if (x.size() != y.entries.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* w = y.find(k);
        if (!w || !equals(v, *w)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.ns() == &b.ns();
    case Value::Kind::kCallable:
      return &a.fn() == &b.fn();
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_float(), y = b.as_float();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());  // UTF-8 byte order is code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.items();
    const auto& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  fail(ErrorCode::kInvalidArgument, std::string("'") + op +
                                        "' not supported between instances of '" + a.type_name() +
                                        "' and '" + b.type_name() + "'");
}

void append_repr(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kString:
      append_py_repr(out, v.str());
      break;
    case Value::Kind::kList: {
      out += v.is_tuple() ? '(' : '[';
      bool first = true;
      for (const Value& x : v.items()) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, x, max_bytes);
      }
      if (v.is_tuple() && v.items().size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      break;
    }
    case Value::Kind::kMap: {
      out += '{';
      bool first = true;
      for (const auto& [k, x] : v.map().entries) {
        if (!first) out += ", ";
        first = false;
        append_py_repr(out, k);
        out += ": ";
        append_repr(out, x, max_bytes);
      }
      out += '}';
      break;
    }
    case Value::Kind::kNamespace: {
      out += "<Namespace ";
      append_repr(out, Value::map(v.ns().attrs), max_bytes);
      out += '>';
      break;
    }
    case Value::Kind::kUndefined:
      break;
    default:
      append_str(out, v, max_bytes);
  }
  check_string_size(out, max_bytes);
}

void append_str(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      break;
    case Value::Kind::kNone:
      out += "None";
      break;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      break;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::kFloat:
      out += py_float_repr(v.as_float());
      break;
    case Value::Kind::kString:
      if (out.size() + v.str().size() > max_bytes) throw_string_too_long(max_bytes);
      out += v.str();
      break;
    case Value::Kind::kCallable:
      out += "<" + v.fn().name + ">";
      break;
    default:
      append_repr(out, v, max_bytes);
      break;
  }
  check_string_size(out, max_bytes);
}

std::string to_str(const Value& v, size_t max_bytes) {
  if (v.is_string()) return v.str();
  std::string out;
  append_str(out, v, max_bytes);
  return out;
}

namespace {

void json_dump_rec(std::string& out, const Value& v, const JsonFormat& f, int level,
                   size_t max_bytes) {
  const std::string item_sep = f.separators ? f.separators->first : (f.indent ? "," : ", ");
  const std::string key_sep = f.separators ? f.separators->second : ": ";
  const auto newline = [&](int lvl) {
    if (!f.indent) return;
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *f.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      break;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      break;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Value::Kind::kFloat: {
      const double d = v.as_float();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += py_float_repr(d);
      }
      break;
    }
    case Value::Kind::kString:
      append_json_string(out, v.str(), f.ensure_ascii);
      break;
    case Value::Kind::kList: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        json_dump_rec(out, items[i], f, level + 1, max_bytes);
      }
      newline(level);
      out += ']';
      break;
    }
    case Value::Kind::kMap: {
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.map().entries) entries.push_back(&e);
      if (f.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      if (entries.empty()) {
        out += "{}";
        break;
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += item_sep;
        newline(level + 1);
        append_json_string(out, entries[i]->first, f.ensure_ascii);
        out += key_sep;
        json_dump_rec(out, entries[i]->second, f, level + 1, max_bytes);
      }
      newline(level);
      out += '}';
      break;
    }
    default:
      fail(ErrorCode::kInvalidArgument,
           std::string("Object of type ") + v.type_name() + " is not JSON serializable");
  }
  check_string_size(out, max_bytes);
}

}  // namespace

void append_json(std::string& out, const Value& v, const JsonFormat& format, size_t max_bytes) {
  json_dump_rec(out, v, format, 0, max_bytes);
}

}  // namespace glassbox::jinja
