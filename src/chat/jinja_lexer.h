// Jinja lexer: template text -> tokens, with the whitespace rules of Jinja2 as Hugging Face
// renders chat templates (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//  - one trailing newline of the template is dropped; "\r\n" and "\r" become "\n";
//  - {{ }} output, {% %} statements, {# #} comments; "{%-" / "{{-" / "{#-" strip all whitespace
//    before the tag, "-%}" / "-}}" / "-#}" all whitespace after it;
//  - trim_blocks: the first newline after a %} or #} is removed ("+%}" keeps it);
//  - lstrip_blocks: spaces and tabs from the start of a line up to a {% or {# are removed
//    ("{%+" keeps them);
//  - {% raw %}...{% endraw %} is text.
// Inside tags: names, integers, floats, strings (Python escapes), operators. A "}}" or "%}"
// closes the tag only outside brackets, so dict literals work in {{ }}.
// Errors: Error(kFormat) "NAME: line L, column C: what".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace glassbox::jinja {

struct Token {
  enum class Type : uint8_t {
    kText,        // literal output (text = the bytes)
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,        // identifier (text)
    kString,      // string literal (text = decoded value)
    kInteger,     // integer literal (int_value)
    kFloat,       // float literal (float_value)
    kOperator,    // one of + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : | ;
    kEnd,         // end of the template
  };
  Type type = Type::kEnd;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based, in the template source
  int column = 1;  // 1-based byte column
};

// Splits `source` into tokens (the last one kEnd); `name` names the template in errors.
std::vector<Token> tokenize(std::string_view source, const std::string& name);

// "NAME: line L, column C: what" as every template error starts.
std::string template_error_prefix(const std::string& name, int line, int column);

}  // namespace glassbox::jinja
