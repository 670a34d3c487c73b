// Jinja parser: tokens -> syntax tree, with Jinja2's grammar and operator precedence (lowest
// first): a if b else c; or; and; not; comparisons (== != < <= > >= in, not in; chained);
// + -; ~; * / // %; **; unary - +; then postfix .attr [subscript/slice] (call), filters
// (| name(args)) and tests (is [not] name(args) or name arg).
// Statements: for (with else, a loop filter `if`, tuple unpacking), if/elif/else, set (=, tuple
// targets, ns.attr, block set with filters), macro (with defaults), filter blocks, break,
// continue, and transformers' {% generation %}. Other tags (include, extends, block, import,
// call, with, ...) are errors: chat templates are single files.
// Nesting is bounded (kMaxNesting brackets/blocks, kMaxExprDepth for a subtree), so neither
// parsing nor evaluation can recurse without limit. Errors: Error(kFormat)
// "NAME: line L, column C: what".
#pragma once

#include <string>
#include <string_view>

#include "chat/jinja_ast.h"

namespace glassbox::jinja {

inline constexpr int kMaxNesting = 64;     // brackets, unary operators, nested blocks
inline constexpr int kMaxExprDepth = 256;  // depth of one expression's tree

Template parse_template(std::string_view source, const std::string& name);

}  // namespace glassbox::jinja
