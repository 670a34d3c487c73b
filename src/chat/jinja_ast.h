// The syntax tree of a parsed Jinja template (jinja_parser.h builds it, jinja_eval.h runs it).
// One node type for expressions and one for statements, each a kind plus the fields that kind
// uses (listed per kind below); every node keeps its source line and column for error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace glassbox::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Positional and keyword arguments of a call, filter or test, with *args / **kwargs.
struct ArgList {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star;       // *args
  ExprPtr star_star;  // **kwargs
};

struct Expr {
  enum class Kind {
    kConst,    // constant
    kName,     // name
    kList,     // items
    kTuple,    // items (a tuple is a list here)
    kDict,     // items = key, value, key, value, ...
    kGetattr,  // items[0] . name
    kGetitem,  // items[0] [ items[1] ]
    kSlice,    // items[0] [ items[1] : items[2] : items[3] ] (null items = omitted)
    kCall,     // items[0] ( args )
    kFilter,   // items[0] | name ( args )
    kTest,     // items[0] is [not] name ( args ); negated
    kNot,      // not items[0]
    kNeg,      // - items[0]
    kPos,      // + items[0]
    kBinary,   // items[0] op items[1]; op in + - * / // % ** ~
    kAnd,      // items[0] and items[1]
    kOr,       // items[0] or items[1]
    kCompare,  // items[0] ops[0] items[1] ops[1] items[2] ... (chained, as Python)
    kCond,     // items[1] if items[0] else items[2] (items[2] null: Undefined)
  };
  Kind kind;
  int line = 0, column = 0;
  int depth = 1;  // of the subtree (the parser bounds it, so evaluation recursion is bounded)
  Value constant;
  std::string name;              // kName, kGetattr, kFilter, kTest; the operator of kBinary
  std::vector<std::string> ops;  // kCompare: == != < <= > >= in "not in"
  std::vector<ExprPtr> items;
  ArgList args;  // kCall, kFilter, kTest
  bool negated = false;
};

// Assignment targets of for / set: one name, several names (unpacking), or ns.attr.
struct Target {
  std::vector<std::string> names;
  bool tuple = false;
  std::string attr;  // non-empty: names[0].attr (namespace attribute)
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null = required
};

struct Stmt {
  enum class Kind {
    kText,    // text
    kOutput,  // {{ expr }}
    kIf,      // conditions[i] -> bodies[i]; else_body
    kFor,     // for target in expr [if condition] body [else else_body]
    kSet,     // set target = expr, or set target [| filters] body endset (filters in filter)
    kMacro,   // macro name(params) body
    kFilter,  // filter <filter> body endfilter (filter: a kFilter Expr on a null operand)
    kBreak,
    kContinue,
    kBlock,  // body rendered as is (transformers' {% generation %})
  };
  Kind kind;
  int line = 0, column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;                // kFor's loop filter
  ExprPtr filter;                   // kSet block filter chain, kFilter
  std::vector<ExprPtr> conditions;  // kIf
  std::vector<Body> bodies;         // kIf
  Body body;
  Body else_body;
  Target target;
  std::string name;                // kMacro
  std::vector<MacroParam> params;  // kMacro
};

struct Template {
  std::string name;
  Body body;
};

}  // namespace glassbox::jinja
