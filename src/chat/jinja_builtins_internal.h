// Argument helpers shared by the built-in filters, tests and methods (jinja_builtins.cpp,
// jinja_filters.cpp, jinja_methods.cpp). Internal to src/chat.
#pragma once

#include <optional>
#include <string>

#include "chat/jinja_eval.h"
#include "chat/jinja_value.h"

namespace glassbox::jinja::builtins_detail {

// str(v) of an argument, `dflt` when not given.
std::string arg_string(Interpreter& in, const std::optional<Value>& v, const std::string& dflt);
// An integer argument (None = not given); other types throw naming `what`.
int64_t arg_int(const std::optional<Value>& v, int64_t dflt, const char* what);
bool arg_bool(const std::optional<Value>& v, bool dflt);
// Jinja2's attribute getter ("a.b.0": item lookups, digits as indices; an int indexes).
Value attribute_path(Interpreter& in, const Value& item, const Value& attribute);
// py_replace after checking that the result fits the string limit.
Value checked_replace(Interpreter& in, const std::string& s, const std::string& old,
                      const std::string& repl, int64_t count);
// Strings lower-cased unless case-sensitive (sort, dictsort, unique, min, max).
Value sort_key(Interpreter& in, const Value& v, bool case_sensitive);

}  // namespace glassbox::jinja::builtins_detail
