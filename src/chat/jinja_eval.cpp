#include "chat/jinja_eval.h"

#include <cmath>
#include <limits>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {

// Deepest recursion of statement/expression evaluation (macro calls included): keeps the native
// stack use of one render far below a thread's stack.
constexpr int kMaxEvalDepth = 600;

// One scope: a for-loop iteration, a macro call, the template's top level, the globals.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const {
    for (const auto& [k, v] : vars)
      if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, x] : vars) {
      if (k == name) {
        x = std::move(v);
        return;
      }
    }
    vars.emplace_back(name, std::move(v));
  }
};

std::vector<std::optional<Value>> bind_args(const CallArgs& args,
                                            const std::vector<const char*>& names, size_t required,
                                            const std::string& what) {
  if (args.positional.size() > names.size()) {
    fail(ErrorCode::kInvalidArgument, what + " takes at most " + std::to_string(names.size()) +
                                          " argument(s), got " +
                                          std::to_string(args.positional.size()));
  }
  std::vector<std::optional<Value>> out(names.size());
  for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (const auto& [key, v] : args.keyword) {
    size_t i = 0;
    while (i < names.size() && key != names[i]) ++i;
    if (i == names.size())
      fail(ErrorCode::kInvalidArgument, what + " got an unexpected keyword argument '" + key + "'");
    if (out[i]) fail(ErrorCode::kInvalidArgument, what + " got multiple values for '" + key + "'");
    out[i] = v;
  }
  for (size_t i = 0; i < required; ++i)
    if (!out[i])
      fail(ErrorCode::kInvalidArgument, what + " is missing the argument '" + names[i] + "'");
  return out;
}

namespace eval_detail {

struct DepthGuard {
  explicit DepthGuard(int& depth) : depth_(depth) {
    if (++depth_ > kMaxEvalDepth)
      fail(ErrorCode::kInvalidArgument,
           "the template recurses more than " + std::to_string(kMaxEvalDepth) + " levels deep");
  }
  ~DepthGuard() { --depth_; }
  int& depth_;
};

[[noreturn]] void type_error(const std::string& op, const Value& a, const Value& b) {
  fail(ErrorCode::kInvalidArgument, "unsupported operand type(s) for " + op + ": '" +
                                        a.type_name() + "' and '" + b.type_name() + "'");
}

// `overflow` is evaluated before `*result` is read (the builtins write through the pointer).
int64_t checked(bool overflow, const int64_t* result) {
  if (overflow) fail(ErrorCode::kInvalidArgument, "integer overflow");
  return *result;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "/") {
    const double y = b.as_float();
    if (y == 0) fail(ErrorCode::kInvalidArgument, "division by zero");
    return Value::number(a.as_float() / y);
  }
  if (a.is_float() || b.is_float()) {
    const double x = a.as_float(), y = b.as_float();
    if (op == "+") return Value::number(x + y);
    if (op == "-") return Value::number(x - y);
    if (op == "*") return Value::number(x * y);
    if (op == "//" || op == "%") {
      if (y == 0) fail(ErrorCode::kInvalidArgument, "float division by zero");
      if (op == "//") return Value::number(std::floor(x / y));
      double r = std::fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      return Value::number(r);
    }
    // **
    if (x == 0 && y < 0)
      fail(ErrorCode::kInvalidArgument, "0.0 cannot be raised to a negative power");
    if (x < 0 && y != std::floor(y))
      fail(ErrorCode::kInvalidArgument, "a negative number cannot be raised to a fractional power");
    return Value::number(std::pow(x, y));
  }
  const int64_t x = a.as_int(), y = b.as_int();
  int64_t r = 0;
  if (op == "+") return Value::integer(checked(__builtin_add_overflow(x, y, &r), &r));
  if (op == "-") return Value::integer(checked(__builtin_sub_overflow(x, y, &r), &r));
  if (op == "*") return Value::integer(checked(__builtin_mul_overflow(x, y, &r), &r));
  if (op == "//" || op == "%") {
    if (y == 0) fail(ErrorCode::kInvalidArgument, "integer division or modulo by zero");
    if (y == -1) {  // avoids INT64_MIN / -1
      if (op == "%") return Value::integer(0);
      return Value::integer(checked(__builtin_sub_overflow(int64_t{0}, x, &r), &r));
    }
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    return Value::integer(op == "//" ? q : m);
  }
  // **
  if (y < 0) {
    if (x == 0) fail(ErrorCode::kInvalidArgument, "0.0 cannot be raised to a negative power");
    return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
  }
  int64_t result = 1, base = x, e = y;
  while (e > 0) {
    if (e & 1) result = checked(__builtin_mul_overflow(result, base, &result), &result);
    e >>= 1;
    if (e > 0) base = checked(__builtin_mul_overflow(base, base, &base), &base);
  }
  return Value::integer(result);
}

// Python's slice index adjustment (PySlice_AdjustIndices).
std::vector<int64_t> slice_indices(int64_t len, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step_opt) {
  const int64_t step = step_opt.value_or(1);
  if (step == 0) fail(ErrorCode::kInvalidArgument, "slice step cannot be zero");
  const int64_t lower = step < 0 ? -1 : 0;
  const int64_t upper = step < 0 ? len - 1 : len;
  const auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += len;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  const int64_t b = adjust(start, step < 0 ? upper : lower);
  const int64_t e = adjust(stop, step < 0 ? lower : upper);
  std::vector<int64_t> idx;
  for (int64_t i = b; step > 0 ? i < e : i > e; i += step) idx.push_back(i);
  return idx;
}

}  // namespace eval_detail

using eval_detail::DepthGuard;

Interpreter::Interpreter(const Template& tmpl, const RenderLimits& limits)
    : tmpl_(tmpl), limits_(limits) {}
Interpreter::~Interpreter() = default;

std::string Interpreter::render(const MapData& variables) {
  auto root = std::make_shared<Frame>();
  MapData globals;
  add_global_functions(globals);
  for (const auto& [k, v] : globals.entries) root->set(k, v);
  for (const auto& [k, v] : variables.entries) root->set(k, v);
  auto top = std::make_shared<Frame>();
  top->parent = root;
  std::string out;
  out_ = &out;
  try {
    exec(tmpl_.body, top);
  } catch (const Error& e) {
    out_ = nullptr;
    throw Error(ErrorCode::kInvalidArgument,
                template_error_prefix(tmpl_.name, line_, column_) + e.what());
  }
  out_ = nullptr;
  return out;
}

void Interpreter::charge(int64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) {
    fail(ErrorCode::kInvalidArgument,
         "the template ran for more than " + std::to_string(limits_.max_steps) + " steps");
  }
}

Value Interpreter::new_string(std::string s) {
  if (s.size() > limits_.max_string_bytes) {
    fail(ErrorCode::kInvalidArgument, "a string would exceed the limit of " +
                                          std::to_string(limits_.max_string_bytes) + " bytes");
  }
  alloc_ += s.size();
  if (alloc_ > limits_.max_alloc_bytes) {
    fail(ErrorCode::kInvalidArgument,
         "the template allocated more than " + std::to_string(limits_.max_alloc_bytes) + " bytes");
  }
  return Value::string(std::move(s));
}

Value Interpreter::new_list(std::vector<Value> items, bool tuple) {
  charge(static_cast<int64_t>(items.size()));
  alloc_ += items.size() * sizeof(Value);
  if (alloc_ > limits_.max_alloc_bytes) {
    fail(ErrorCode::kInvalidArgument,
         "the template allocated more than " + std::to_string(limits_.max_alloc_bytes) + " bytes");
  }
  return Value::list(std::move(items), tuple);
}

Value Interpreter::new_map(MapData map) {
  charge(static_cast<int64_t>(map.entries.size()));
  alloc_ += map.entries.size() * (sizeof(Value) + sizeof(std::string));
  if (alloc_ > limits_.max_alloc_bytes) {
    fail(ErrorCode::kInvalidArgument,
         "the template allocated more than " + std::to_string(limits_.max_alloc_bytes) + " bytes");
  }
  return Value::map(std::move(map));
}

void Interpreter::undefined_error(const Value& v) const {
  fail(ErrorCode::kInvalidArgument,
       v.undefined_hint().empty() ? std::string("a value is undefined") : v.undefined_hint());
}

void Interpreter::write(std::string_view text) {
  if (out_->size() + text.size() > limits_.max_output_bytes) {
    fail(ErrorCode::kInvalidArgument, "the output would exceed the limit of " +
                                          std::to_string(limits_.max_output_bytes) + " bytes");
  }
  out_->append(text);
}

// ---- statements ---------------------------------------------------------------------------

Interpreter::Flow Interpreter::exec(const Body& body, const FramePtr& frame) {
  for (const StmtPtr& s : body) {
    const Flow f = exec_stmt(*s, frame);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_stmt(const Stmt& s, const FramePtr& frame) {
  charge(1);
  DepthGuard guard(depth_);
  at(s.line, s.column);
  switch (s.kind) {
    case Stmt::Kind::kText:
      write(s.text);
      break;
    case Stmt::Kind::kOutput: {
      const Value v = eval(*s.expr, frame);
      if (v.is_string()) {
        write(v.str());
      } else {
        std::string text;
        append_str(text, v, limits_.max_string_bytes);
        write(text);
      }
      break;
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < s.conditions.size(); ++i)
        if (eval(*s.conditions[i], frame).truthy()) return exec(s.bodies[i], frame);
      return exec(s.else_body, frame);
    case Stmt::Kind::kFor:
      return exec_for(s, frame);
    case Stmt::Kind::kSet:
      exec_set(s, frame);
      break;
    case Stmt::Kind::kMacro:
      define_macro(s, frame);
      break;
    case Stmt::Kind::kFilter: {
      const Value v = apply_filter_chain(*s.filter, new_string(capture(s.body, frame)), frame);
      write(to_str(v, limits_.max_string_bytes));
      break;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kBlock:
      return exec(s.body, frame);
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s, const FramePtr& frame) {
  const Value seq = eval(*s.expr, frame);
  at(s.line, s.column);
  std::vector<Value> items = iterate(*this, seq);
  if (s.condition) {
    std::vector<Value> kept;
    for (Value& item : items) {
      charge(1);
      auto f = std::make_shared<Frame>();
      f->parent = frame;
      assign(s.target, item, f);
      if (eval(*s.condition, f).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    charge(1);
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    assign(s.target, items[static_cast<size_t>(i)], f);
    MapData loop;
    loop.entries = {
        {"index", Value::integer(i + 1)},
        {"index0", Value::integer(i)},
        {"revindex", Value::integer(n - i)},
        {"revindex0", Value::integer(n - i - 1)},
        {"first", Value::boolean(i == 0)},
        {"last", Value::boolean(i == n - 1)},
        {"length", Value::integer(n)},
        {"previtem",
         i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item")},
        {"nextitem",
         i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item")},
        {"depth", Value::integer(1)},
        {"depth0", Value::integer(0)},
        {"cycle",
         Value::callable("loop.cycle",
                         [i](Interpreter&, CallArgs& a) {
                           if (a.positional.empty())
                             fail(ErrorCode::kInvalidArgument, "no items for cycling given");
                           return a.positional[static_cast<size_t>(i) % a.positional.size()];
                         })},
    };
    f->set("loop", Value::map(std::move(loop)));
    if (exec(s.body, f) == Flow::kBreak) break;
  }
  if (n == 0) {
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    return exec(s.else_body, f);
  }
  return Flow::kNormal;
}

void Interpreter::assign(const Target& t, const Value& v, const FramePtr& frame) {
  if (!t.attr.empty()) {
    const Value ns = lookup(t.names[0], frame);
    if (!ns.is_namespace())
      fail(ErrorCode::kInvalidArgument, "cannot assign attribute on non-namespace object");
    if (v.is_namespace() || v.has_namespace()) {
      fail(ErrorCode::kInvalidArgument,
           "a namespace cannot hold a namespace or a function (attribute '" + t.attr + "')");
    }
    MapData& attrs = ns.ns().attrs;
    for (auto& [k, x] : attrs.entries) {
      if (k == t.attr) {
        x = v;
        return;
      }
    }
    attrs.entries.emplace_back(t.attr, v);
    return;
  }
  if (!t.tuple) {
    frame->set(t.names[0], v);
    return;
  }
  if (!v.is_list() && !v.is_string() && !v.is_map())
    fail(ErrorCode::kInvalidArgument,
         std::string("cannot unpack non-iterable ") + v.type_name() + " object");
  const std::vector<Value> parts = iterate(*this, v);
  if (parts.size() != t.names.size()) {
    fail(ErrorCode::kInvalidArgument,
         parts.size() > t.names.size()
             ? "too many values to unpack (expected " + std::to_string(t.names.size()) + ")"
             : "not enough values to unpack (expected " + std::to_string(t.names.size()) +
                   ", got " + std::to_string(parts.size()) + ")");
  }
  for (size_t i = 0; i < parts.size(); ++i) frame->set(t.names[i], parts[i]);
}

void Interpreter::exec_set(const Stmt& s, const FramePtr& frame) {
  if (s.expr) {
    const Value v = eval(*s.expr, frame);
    at(s.line, s.column);
    assign(s.target, v, frame);
    return;
  }
  Value v = new_string(capture(s.body, frame));
  if (s.filter) v = apply_filter_chain(*s.filter, v, frame);
  at(s.line, s.column);
  assign(s.target, v, frame);
}

std::string Interpreter::capture(const Body& body, const FramePtr& frame) {
  std::string buffer;
  std::string* saved = out_;
  out_ = &buffer;
  try {
    exec(body, frame);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buffer;
}

Value Interpreter::apply_filter_chain(const Expr& chain, Value innermost, const FramePtr& frame) {
  const Value operand = chain.items[0]
                            ? apply_filter_chain(*chain.items[0], std::move(innermost), frame)
                            : std::move(innermost);
  CallArgs args = eval_args(chain.args, frame);
  at(chain.line, chain.column);
  return apply_filter(chain.name, operand, args);
}

void Interpreter::define_macro(const Stmt& s, const FramePtr& frame) {
  const Stmt* def = &s;
  // The macro sees its defining scope (late binding: names set there later are visible) but
  // must not keep it alive: the scope holds the macro.
  std::weak_ptr<Frame> scope = frame;
  frame->set(s.name, Value::callable("macro '" + s.name + "'",
                                     [def, scope](Interpreter& in, CallArgs& args) {
                                       return in.call_macro(*def, scope, args);
                                     }));
}

Value Interpreter::call_macro(const Stmt& def, const std::weak_ptr<Frame>& scope, CallArgs& args) {
  FramePtr parent = scope.lock();
  if (!parent) fail(ErrorCode::kInvalidArgument, "macro '" + def.name + "' outlived its scope");
  if (call_depth_ >= limits_.max_call_depth) {
    fail(ErrorCode::kInvalidArgument,
         "macro calls nest more than " + std::to_string(limits_.max_call_depth) + " levels deep");
  }
  struct CallDepth {
    explicit CallDepth(int& d) : d_(d) { ++d_; }
    ~CallDepth() { --d_; }
    int& d_;
  } call_depth(call_depth_);
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  const size_t np = def.params.size();
  std::vector<bool> given(np, false);
  std::vector<Value> varargs;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < np) {
      f->set(def.params[i].name, args.positional[i]);
      given[i] = true;
    } else {
      varargs.push_back(args.positional[i]);
    }
  }
  MapData kwargs;
  for (const auto& [key, v] : args.keyword) {
    size_t i = 0;
    while (i < np && def.params[i].name != key) ++i;
    if (i == np) {
      kwargs.entries.emplace_back(key, v);
      continue;
    }
    if (given[i]) {
      fail(ErrorCode::kInvalidArgument,
           "macro '" + def.name + "' got multiple values for argument '" + key + "'");
    }
    f->set(key, v);
    given[i] = true;
  }
  for (size_t i = 0; i < np; ++i) {
    if (given[i]) continue;
    const MacroParam& p = def.params[i];
    f->set(p.name, p.default_value
                       ? eval(*p.default_value, f)
                       : Value::undefined("parameter '" + p.name + "' was not provided"));
  }
  f->set("varargs", new_list(std::move(varargs), true));
  f->set("kwargs", new_map(std::move(kwargs)));
  return new_string(capture(def.body, f));
}

// ---- expressions --------------------------------------------------------------------------

Value Interpreter::lookup(const std::string& name, const FramePtr& frame) const {
  for (const Frame* f = frame.get(); f; f = f->parent.get())
    if (const Value* v = f->find(name)) return *v;
  return Value::undefined("'" + name + "' is undefined");
}

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  charge(1);
  DepthGuard guard(depth_);
  at(e.line, e.column);
  switch (e.kind) {
    case Expr::Kind::kConst:
      return e.constant;
    case Expr::Kind::kName:
      return lookup(e.name, frame);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.items.size());
      for (const ExprPtr& x : e.items) items.push_back(eval(*x, frame));
      return new_list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      MapData m;
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        const Value k = eval(*e.items[i], frame);
        Value v = eval(*e.items[i + 1], frame);
        if (!k.is_string()) {
          at(e.line, e.column);
          fail(ErrorCode::kInvalidArgument,
               std::string("dict keys must be strings here, got '") + k.type_name() + "'");
        }
        bool replaced = false;
        for (auto& [key, x] : m.entries) {
          if (key == k.str()) {
            x = v;
            replaced = true;
          }
        }
        if (!replaced) m.entries.emplace_back(k.str(), std::move(v));
      }
      return new_map(std::move(m));
    }
    case Expr::Kind::kGetattr: {
      const Value obj = eval(*e.items[0], frame);
      at(e.line, e.column);
      return get_attr(obj, e.name);
    }
    case Expr::Kind::kGetitem: {
      const Value obj = eval(*e.items[0], frame);
      const Value key = eval(*e.items[1], frame);
      at(e.line, e.column);
      return get_item(obj, key);
    }
    case Expr::Kind::kSlice:
      return eval_slice(e, frame);
    case Expr::Kind::kCall:
      return eval_call(e, frame);
    case Expr::Kind::kFilter: {
      const Value operand = eval(*e.items[0], frame);
      CallArgs args = eval_args(e.args, frame);
      at(e.line, e.column);
      return apply_filter(e.name, operand, args);
    }
    case Expr::Kind::kTest: {
      const Value operand = eval(*e.items[0], frame);
      CallArgs args = eval_args(e.args, frame);
      at(e.line, e.column);
      return Value::boolean(apply_test(e.name, operand, args) != e.negated);
    }
    case Expr::Kind::kNot:
      return Value::boolean(!eval(*e.items[0], frame).truthy());
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      const Value v = eval(*e.items[0], frame);
      at(e.line, e.column);
      const char* op = e.kind == Expr::Kind::kNeg ? "-" : "+";
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number()) {
        fail(ErrorCode::kInvalidArgument,
             std::string("bad operand type for unary ") + op + ": '" + v.type_name() + "'");
      }
      if (e.kind == Expr::Kind::kPos) return v.is_bool() ? Value::integer(v.as_int()) : v;
      if (v.is_float()) return Value::number(-v.as_float());
      if (v.as_int() == std::numeric_limits<int64_t>::min())
        fail(ErrorCode::kInvalidArgument, "integer overflow");
      return Value::integer(-v.as_int());
    }
    case Expr::Kind::kBinary:
      return eval_binary(e, frame);
    case Expr::Kind::kAnd: {
      Value a = eval(*e.items[0], frame);
      if (!a.truthy()) return a;
      return eval(*e.items[1], frame);
    }
    case Expr::Kind::kOr: {
      Value a = eval(*e.items[0], frame);
      if (a.truthy()) return a;
      return eval(*e.items[1], frame);
    }
    case Expr::Kind::kCompare:
      return eval_compare(e, frame);
    case Expr::Kind::kCond:
      if (eval(*e.items[0], frame).truthy()) return eval(*e.items[1], frame);
      if (e.items[2]) return eval(*e.items[2], frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and had no else");
  }
  return Value();
}

Value Interpreter::eval_binary(const Expr& e, const FramePtr& frame) {
  const Value a = eval(*e.items[0], frame);
  const Value b = eval(*e.items[1], frame);
  at(e.line, e.column);
  const std::string& op = e.name;
  if (op == "~") {
    std::string s = to_str(a, limits_.max_string_bytes);
    append_str(s, b, limits_.max_string_bytes);
    return new_string(std::move(s));
  }
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (a.is_number() && b.is_number()) return eval_detail::arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.str().size() + b.str().size() > limits_.max_string_bytes) {
        fail(ErrorCode::kInvalidArgument, "a string would exceed the limit of " +
                                              std::to_string(limits_.max_string_bytes) + " bytes");
      }
      return new_string(a.str() + b.str());
    }
    if (a.is_list() && b.is_list()) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return new_list(std::move(items));
    }
    if (a.is_string() || a.is_list()) {
      fail(ErrorCode::kInvalidArgument, std::string("can only concatenate ") + a.type_name() +
                                            " (not \"" + b.type_name() + "\") to " + a.type_name());
    }
  } else if (op == "*") {
    const Value* seq = a.is_number() ? &b : &a;
    const Value* count = a.is_number() ? &a : &b;
    if ((seq->is_string() || seq->is_list()) && (count->is_int() || count->is_bool())) {
      const int64_t n = std::max<int64_t>(0, count->as_int());
      if (seq->is_string()) {
        const size_t len = seq->str().size();
        if (len > 0 && static_cast<uint64_t>(n) > limits_.max_string_bytes / len) {
          fail(ErrorCode::kInvalidArgument, "a string would exceed the limit of " +
                                                std::to_string(limits_.max_string_bytes) +
                                                " bytes");
        }
        std::string s;
        s.reserve(len * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) s += seq->str();
        return new_string(std::move(s));
      }
      const size_t len = seq->items().size();
      if (len > 0)
        charge(n > limits_.max_steps / static_cast<int64_t>(len) ? limits_.max_steps + 1
                                                                 : n * static_cast<int64_t>(len));
      std::vector<Value> items;
      for (int64_t i = 0; i < n && len > 0; ++i)
        items.insert(items.end(), seq->items().begin(), seq->items().end());
      return new_list(std::move(items));
    }
  } else if (op == "%" && a.is_string()) {
    fail(ErrorCode::kInvalidArgument, "printf-style formatting with '%' is not supported");
  }
  eval_detail::type_error(op, a, b);
}

Value Interpreter::eval_compare(const Expr& e, const FramePtr& frame) {
  Value left = eval(*e.items[0], frame);
  for (size_t k = 0; k < e.ops.size(); ++k) {
    Value right = eval(*e.items[k + 1], frame);
    at(e.line, e.column);
    const std::string& op = e.ops[k];
    bool ok = false;
    if (op == "==") {
      ok = equals(left, right);
    } else if (op == "!=") {
      ok = !equals(left, right);
    } else if (op == "in" || op == "not in") {
      ok = contains(right, left) == (op == "in");
    } else {
      if (left.is_undefined()) undefined_error(left);
      if (right.is_undefined()) undefined_error(right);
      const int c = compare(left, right, op.c_str());
      ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

CallArgs Interpreter::eval_args(const ArgList& a, const FramePtr& frame) {
  CallArgs args;
  for (const ExprPtr& x : a.positional) args.positional.push_back(eval(*x, frame));
  if (a.star) {
    const Value v = eval(*a.star, frame);
    for (Value& item : iterate(*this, v)) args.positional.push_back(std::move(item));
  }
  for (const auto& [k, x] : a.keyword) args.keyword.emplace_back(k, eval(*x, frame));
  if (a.star_star) {
    const Value v = eval(*a.star_star, frame);
    if (!v.is_map())
      fail(ErrorCode::kInvalidArgument,
           std::string("argument after ** must be a mapping, not ") + v.type_name());
    for (const auto& [k, x] : v.map().entries) {
      for (const auto& kw : args.keyword)
        if (kw.first == k) fail(ErrorCode::kInvalidArgument, "got multiple values for '" + k + "'");
      args.keyword.emplace_back(k, x);
    }
  }
  return args;
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) undefined_error(callee);
  if (!callee.is_callable())
    fail(ErrorCode::kInvalidArgument,
         std::string("'") + callee.type_name() + "' object is not callable");
  return callee.fn().fn(*this, args);
}

Value Interpreter::eval_call(const Expr& e, const FramePtr& frame) {
  const Expr& callee = *e.items[0];
  if (callee.kind == Expr::Kind::kGetattr) {  // obj.method(...): no bound-method value needed
    const Value obj = eval(*callee.items[0], frame);
    CallArgs args = eval_args(e.args, frame);
    at(e.line, e.column);
    if (obj.is_undefined()) undefined_error(obj);
    if (has_method(obj, callee.name)) return call_method(*this, obj, callee.name, args);
    return call(get_attr(obj, callee.name), args);
  }
  const Value fn = eval(callee, frame);
  CallArgs args = eval_args(e.args, frame);
  at(e.line, e.column);
  return call(fn, args);
}

Value Interpreter::eval_slice(const Expr& e, const FramePtr& frame) {
  const Value obj = eval(*e.items[0], frame);
  std::optional<int64_t> idx[3];
  for (int k = 0; k < 3; ++k) {
    if (!e.items[static_cast<size_t>(k) + 1]) continue;
    const Value v = eval(*e.items[static_cast<size_t>(k) + 1], frame);
    if (v.is_none()) continue;
    if (!v.is_int() && !v.is_bool()) {
      at(e.line, e.column);
      fail(ErrorCode::kInvalidArgument,
           "slice indices must be integers or None, got '" + std::string(v.type_name()) + "'");
    }
    idx[k] = v.as_int();
  }
  at(e.line, e.column);
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.is_list()) {
    const auto& items = obj.items();
    std::vector<Value> out;
    for (int64_t i :
         eval_detail::slice_indices(static_cast<int64_t>(items.size()), idx[0], idx[1], idx[2]))
      out.push_back(items[static_cast<size_t>(i)]);
    return new_list(std::move(out));
  }
  if (obj.is_string()) {
    const std::vector<Utf8Char> chars = utf8_chars(obj.str());
    charge(static_cast<int64_t>(chars.size()));
    std::string out;
    for (int64_t i :
         eval_detail::slice_indices(static_cast<int64_t>(chars.size()), idx[0], idx[1], idx[2]))
      out += chars[static_cast<size_t>(i)].bytes;
    return new_string(std::move(out));
  }
  fail(ErrorCode::kInvalidArgument,
       std::string("'") + obj.type_name() + "' object is not subscriptable");
}

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) undefined_error(obj);
  if ((obj.is_map() || obj.is_string() || obj.is_list()) && has_method(obj, name)) {
    return Value::callable(
        std::string(obj.type_name()) + "." + name,
        [obj, name](Interpreter& in, CallArgs& args) { return call_method(in, obj, name, args); });
  }
  if (obj.is_map()) {
    if (const Value* v = obj.map().find(name)) return *v;
  } else if (obj.is_namespace()) {
    if (const Value* v = obj.ns().attrs.find(name)) return *v;
  }
  return Value::undefined("'" + std::string(obj.type_name()) + " object' has no attribute '" +
                          name + "'");
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  if (key.is_string()) {
    if (obj.is_map()) {
      if (const Value* v = obj.map().find(key.str())) return *v;
    }
    return get_attr(obj, key.str());
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
      return Value::undefined("list object has no element " + std::to_string(key.as_int()));
    }
    const std::vector<Utf8Char> chars = utf8_chars(obj.str());
    const int64_t n = static_cast<int64_t>(chars.size());
    if (i < 0) i += n;
    if (i >= 0 && i < n) return new_string(std::string(chars[static_cast<size_t>(i)].bytes));
    return Value::undefined("str object has no element " + std::to_string(key.as_int()));
  }
  return Value::undefined("'" + std::string(obj.type_name()) + " object' has no element " +
                          to_str(key, 256));
}

Value Interpreter::apply_filter(const std::string& name, const Value& operand, CallArgs& args) {
  const FilterFn f = find_filter(name);
  if (!f) fail(ErrorCode::kInvalidArgument, "no filter named '" + name + "'");
  return f(*this, operand, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& operand, CallArgs& args) {
  const TestFn t = find_test(name);
  if (!t) fail(ErrorCode::kInvalidArgument, "no test named '" + name + "'");
  return t(*this, operand, args);
}

}  // namespace glassbox::jinja
