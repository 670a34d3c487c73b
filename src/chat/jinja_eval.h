// Jinja evaluator: runs a parsed template (jinja_ast.h) over variables and returns its output,
// with Jinja2's semantics as transformers renders chat templates (ImmutableSandboxedEnvironment,
// default Undefined, loopcontrols):
//  - scopes: each for-loop iteration and each macro call gets its own frame (a `set` inside
//    stays there); if-blocks do not; namespace() objects carry values out of loops;
//  - Undefined prints as "" and is false, iterable (empty) and comparable with ==; anything else
//    (attribute, item, arithmetic, <, call, tojson) is an error naming what was undefined;
//  - attribute access (x.name) prefers methods, subscripts (x['name']) prefer items;
//  - operators as Python's (int overflow is an error, / is float division, // and % floor).
// Hard limits (RenderLimits) bound the output, every string, the total work and the recursion,
// so an untrusted template cannot hang or exhaust memory. Every error is Error(kInvalidArgument)
// "NAME: line L, column C: what", at the node being evaluated.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace glassbox::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{8} << 20;   // the rendering (and any captured block)
  size_t max_string_bytes = size_t{8} << 20;   // any one string value
  int64_t max_steps = 20'000'000;              // expressions, statements, iterations, items
  size_t max_alloc_bytes = size_t{128} << 20;  // total bytes of strings and lists created
  int max_call_depth = 32;                     // nested macro calls
};

// Arguments of a call as the caller wrote them.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Binds `args` to a Python-style signature `names` (the first `required` of them without
// defaults): result[i] is the argument for names[i], nullopt when not given. Throws
// Error(kInvalidArgument) naming `what` for missing, unknown or repeated arguments, and for more
// positional arguments than names.
std::vector<std::optional<Value>> bind_args(const CallArgs& args,
                                            const std::vector<const char*>& names, size_t required,
                                            const std::string& what);

struct Frame;

class Interpreter {
 public:
  Interpreter(const Template& tmpl, const RenderLimits& limits);
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders the template with `variables` (over the built-in globals).
  std::string render(const MapData& variables);

  // For built-ins: the limits, work accounting and checked constructors.
  const RenderLimits& limits() const { return limits_; }
  void charge(int64_t steps);  // counts work; throws past max_steps
  Value new_string(std::string s);
  Value new_list(std::vector<Value> items, bool tuple = false);
  Value new_map(MapData map);
  // Calls a callable value (built-in, macro, bound method); Undefined or a non-callable throws.
  Value call(const Value& callee, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& operand, CallArgs& args);
  bool apply_test(const std::string& name, const Value& operand, CallArgs& args);
  // x.name / x[key] with Jinja2's sandboxed lookup rules.
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  // [[noreturn]] for Undefined used where a value is needed.
  [[noreturn]] void undefined_error(const Value& v) const;

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using FramePtr = std::shared_ptr<Frame>;

  Flow exec(const Body& body, const FramePtr& frame);
  Flow exec_stmt(const Stmt& s, const FramePtr& frame);
  Flow exec_for(const Stmt& s, const FramePtr& frame);
  void exec_set(const Stmt& s, const FramePtr& frame);
  void define_macro(const Stmt& s, const FramePtr& frame);
  Value call_macro(const Stmt& def, const std::weak_ptr<Frame>& scope, CallArgs& args);
  std::string capture(const Body& body, const FramePtr& frame);
  Value apply_filter_chain(const Expr& chain, Value innermost, const FramePtr& frame);
  void assign(const Target& t, const Value& v, const FramePtr& frame);

  Value eval(const Expr& e, const FramePtr& frame);
  Value eval_binary(const Expr& e, const FramePtr& frame);
  Value eval_compare(const Expr& e, const FramePtr& frame);
  Value eval_call(const Expr& e, const FramePtr& frame);
  Value eval_slice(const Expr& e, const FramePtr& frame);
  CallArgs eval_args(const ArgList& a, const FramePtr& frame);
  Value lookup(const std::string& name, const FramePtr& frame) const;

  void write(std::string_view text);
  void at(int line, int column) {
    line_ = line;
    column_ = column;
  }

  const Template& tmpl_;
  const RenderLimits& limits_;
  std::string* out_ = nullptr;
  int64_t steps_ = 0;
  size_t alloc_ = 0;
  int depth_ = 0;       // evaluation recursion
  int call_depth_ = 0;  // nested macro calls
  int line_ = 0, column_ = 0;
};

}  // namespace glassbox::jinja
