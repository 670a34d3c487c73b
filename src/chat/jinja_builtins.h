// The Jinja built-ins the evaluator dispatches to: filters, tests, the methods of str / dict /
// list that templates call (x.strip(), d.items(), ...), and the global functions (range,
// namespace, dict, raise_exception). Semantics are Jinja2's (and Python's for methods), with
// transformers' tojson; the list per kind is in docs/chat_templates.md. Built-ins throw
// Error(kInvalidArgument) with a plain message; the evaluator adds the template position.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_eval.h"
#include "chat/jinja_value.h"

namespace glassbox::jinja {

using FilterFn = Value (*)(Interpreter& in, const Value& operand, CallArgs& args);
using TestFn = bool (*)(Interpreter& in, const Value& operand, CallArgs& args);

// nullptr when there is no such filter / test.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// Whether `self` has the method `name` (str, dict and list methods; none mutate).
bool has_method(const Value& self, std::string_view name);
Value call_method(Interpreter& in, const Value& self, const std::string& name, CallArgs& args);

// Adds range, namespace, dict and raise_exception to `globals`.
void add_global_functions(MapData& globals);

// What `for x in v` iterates: a list's items, a dict's keys, a string's characters; Undefined
// is empty; anything else throws ("'int' object is not iterable").
std::vector<Value> iterate(Interpreter& in, const Value& v);

// Python's `item in container` (str in str, item in list, key in dict; nothing is in Undefined).
bool contains(const Value& container, const Value& item);

// Python's len(); Undefined has length 0.
int64_t length_of(const Value& v);

}  // namespace glassbox::jinja
