#include "chat/jinja_lexer.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "chat/jinja_strings.h"
#include "core/error.h"

namespace glassbox::jinja {

std::string template_error_prefix(const std::string& name, int line, int column) {
  return name + ": line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
}

namespace lexer_detail {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
bool is_octal_digit(char c) { return c >= '0' && c <= '7'; }
bool is_binary_digit(char c) { return c == '0' || c == '1'; }
bool is_tag_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& name) : name_(name) {
    // Jinja2 splits the source on any newline sequence and joins it with "\n", dropping one
    // trailing newline (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char mod = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos_, tag - pos_);
      if (mod == '-') {
        rstrip_all(text);
      } else if (kind != '{' && mod != '+') {
        lstrip_line(text);
      }
      emit_text(std::move(text), pos_);
      pos_ = tag + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      if (kind == '#') {
        comment(tag);
      } else if (kind == '%') {
        if (!raw_block(tag)) {
          push(Token::Type::kBlockBegin, "{%", tag);
          tag_body(false);
        }
      } else {
        push(Token::Type::kVarBegin, "{{", tag);
        tag_body(true);
      }
    }
    push(Token::Type::kEnd, "", src_.size());
    return std::move(out_);
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& what) const {
    const auto [line, col] = line_col(at);
    fail(ErrorCode::kFormat, template_error_prefix(name_, line, col) + what);
  }

  std::pair<int, int> line_col(size_t at) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(at - line_starts_[line - 1] + 1)};
  }

  void push(Token::Type type, std::string text, size_t at) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    std::tie(t.line, t.column) = line_col(at);
    out_.push_back(std::move(t));
  }

  void emit_text(std::string text, size_t at) {
    if (text.empty()) return;
    push(Token::Type::kText, std::move(text), at);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return std::string::npos;
  }

  // "{%-": all whitespace (str.isspace) before the tag goes.
  static void rstrip_all(std::string& text) {
    size_t keep = 0;
    for (size_t i = 0; i < text.size();) {
      const Utf8Char ch = utf8_char_at(text, i);
      i += ch.bytes.size();
      if (!py_is_space(ch.cp)) keep = i;
    }
    text.resize(keep);
  }

  // lstrip_blocks: spaces/tabs between the start of the line and the tag go.
  void lstrip_line(std::string& text) const {
    const size_t nl = text.rfind('\n');
    if (nl == std::string::npos && !line_starting_) return;
    const size_t from = nl == std::string::npos ? 0 : nl + 1;
    for (size_t i = from; i < text.size(); ++i)
      if (text[i] != ' ' && text[i] != '\t') return;
    text.resize(from);
  }

  // After a tag's closing delimiter: "-" strips all whitespace, trim_blocks one newline.
  void after_tag_end(char mod, bool trim) {
    line_starting_ = false;
    if (mod == '-') {
      size_t i = pos_;
      while (i < src_.size()) {
        const Utf8Char ch = utf8_char_at(src_, i);
        if (!py_is_space(ch.cp)) break;
        i += ch.bytes.size();
      }
      line_starting_ = i > pos_ && src_[i - 1] == '\n';
      pos_ = i;
    } else if (trim && mod != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      line_starting_ = true;
    }
  }

  void comment(size_t tag) {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) error(tag, "unterminated comment: missing '#}'");
    const char mod = end > pos_ ? src_[end - 1] : '\0';
    pos_ = end + 2;
    after_tag_end(mod, true);
  }

  // {% raw %}...{% endraw %}: the body is text. Returns false when the tag is not "raw".
  bool raw_block(size_t tag) {
    size_t i = pos_;
    while (i < src_.size() && is_tag_space(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0 || (i + 3 < src_.size() && is_name_char(src_[i + 3])))
      return false;
    i += 3;
    while (i < src_.size() && is_tag_space(src_[i])) ++i;
    char mod = '\0';
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) mod = src_[i++];
    if (src_.compare(i, 2, "%}") != 0) error(i, "expected '%}' after 'raw'");
    pos_ = i + 2;
    if (mod == '-') after_tag_end('-', false);
    // Find {% endraw %} with optional modifiers and spaces.
    for (size_t at = src_.find("{%", pos_); at != std::string::npos; at = src_.find("{%", at + 2)) {
      size_t j = at + 2;
      char open_mod = '\0';
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) open_mod = src_[j++];
      while (j < src_.size() && is_tag_space(src_[j])) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && is_tag_space(src_[j])) ++j;
      char close_mod = '\0';
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) close_mod = src_[j++];
      if (src_.compare(j, 2, "%}") != 0) continue;
      std::string text = src_.substr(pos_, at - pos_);
      if (open_mod == '-') {
        rstrip_all(text);
      } else if (open_mod != '+') {
        line_starting_ = false;
        lstrip_line(text);
      }
      emit_text(std::move(text), pos_);
      pos_ = j + 2;
      after_tag_end(close_mod, true);
      return true;
    }
    error(tag, "unterminated raw block: missing '{% endraw %}'");
  }

  void tag_body(bool variable) {
    std::vector<char> brackets;
    const size_t start = pos_;
    while (true) {
      while (pos_ < src_.size() && is_tag_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        error(start, std::string("unexpected end of template: missing '") +
                         (variable ? "}}" : "%}") + "'");
      }
      const char c = src_[pos_];
      if (brackets.empty()) {
        const char close = variable ? '}' : '%';
        size_t at = pos_;
        char mod = '\0';
        if ((c == '-' || c == '+') && pos_ + 2 < src_.size() && src_[pos_ + 1] == close &&
            src_[pos_ + 2] == '}') {
          mod = c;
          ++at;
        }
        if (at + 1 < src_.size() && src_[at] == close && src_[at + 1] == '}') {
          push(variable ? Token::Type::kVarEnd : Token::Type::kBlockEnd, variable ? "}}" : "%}",
               pos_);
          pos_ = at + 2;
          after_tag_end(mod, !variable);
          return;
        }
      }
      if (is_name_start(c)) {
        const size_t b = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        push(Token::Type::kName, src_.substr(b, pos_ - b), b);
      } else if (is_digit(c)) {
        number();
      } else if (c == '\'' || c == '"') {
        string_literal();
      } else {
        operator_token(brackets);
      }
    }
  }

  void operator_token(std::vector<char>& brackets) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (src_.compare(pos_, 2, op) == 0) {
        push(Token::Type::kOperator, op, pos_);
        pos_ += 2;
        return;
      }
    }
    const char c = src_[pos_];
    static const std::string kOne = "+-*/%~<>=()[]{},.:|;";
    if (kOne.find(c) == std::string::npos) {
      const Utf8Char ch = utf8_char_at(src_, pos_);
      error(pos_, "unexpected character '" + std::string(ch.bytes) + "'");
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c);
    } else if (c == ')' || c == ']' || c == '}') {
      const char open = c == ')' ? '(' : (c == ']' ? '[' : '{');
      if (brackets.empty() || brackets.back() != open)
        error(pos_, std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    push(Token::Type::kOperator, std::string(1, c), pos_);
    ++pos_;
  }

  // Digits with optional '_' separators between them.
  std::string digits(bool (*ok)(char)) {
    std::string d;
    while (pos_ < src_.size()) {
      if (ok(src_[pos_])) {
        d += src_[pos_++];
      } else if (src_[pos_] == '_' && !d.empty() && pos_ + 1 < src_.size() && ok(src_[pos_ + 1])) {
        ++pos_;
      } else {
        break;
      }
    }
    return d;
  }

  void number() {
    const size_t b = pos_;
    Token t;
    std::tie(t.line, t.column) = line_col(b);
    const auto finish_int = [&](const std::string& d, int base) {
      if (d.empty()) error(b, "invalid number");
      int64_t v = 0;
      for (char ch : d) {
        const int digit = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
        if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, digit, &v))
          error(b, "integer literal too large");
      }
      t.type = Token::Type::kInteger;
      t.int_value = v;
      t.text = src_.substr(b, pos_ - b);
      out_.push_back(std::move(t));
    };
    if (src_[pos_] == '0' && pos_ + 1 < src_.size()) {
      const char p = static_cast<char>(src_[pos_ + 1] | 0x20);
      if (p == 'x' || p == 'o' || p == 'b') {
        pos_ += 2;
        bool (*ok)(char) = p == 'x' ? is_hex_digit : (p == 'o' ? is_octal_digit : is_binary_digit);
        finish_int(digits(ok), p == 'x' ? 16 : (p == 'o' ? 8 : 2));
        return;
      }
    }
    std::string whole = digits(is_digit);
    // Floats are not lexed right after '.', so that x.0.1 is x[0][1].
    const bool after_dot =
        !out_.empty() && out_.back().type == Token::Type::kOperator && out_.back().text == ".";
    std::string text = whole;
    bool is_float = false;
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      text += "." + digits(is_digit);
      is_float = true;
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] | 0x20) == 'e') {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && is_digit(src_[k])) {
        text += "e";
        if (src_[pos_ + 1] == '-') text += "-";
        pos_ = k;
        text += digits(is_digit);
        is_float = true;
      }
    }
    if (!is_float) {
      finish_int(whole, 10);
      return;
    }
    t.type = Token::Type::kFloat;
    t.float_value = std::strtod(text.c_str(), nullptr);
    t.text = text;
    out_.push_back(std::move(t));
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }

  void string_literal() {
    const size_t b = pos_;
    const char quote = src_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) error(b, "unterminated string literal");
      const char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c != '\\') {
        value += c;
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= src_.size()) error(b, "unterminated string literal");
      const char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case 'a':
          value += '\a';
          break;
        case '\n':
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int h = pos_ < src_.size() ? hex_value(src_[pos_]) : -1;
            if (h < 0) error(pos_ - 2 - k, std::string("truncated \\") + e + " escape");
            cp = cp * 16 + static_cast<uint32_t>(h);
            ++pos_;
          }
          if (cp > 0x10FFFF) error(b, "illegal Unicode character in \\U escape");
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // no lone surrogates in UTF-8
          append_code_point(value, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7';
                 ++k)
              cp = cp * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            append_code_point(value, cp);
          } else {
            value += '\\';  // Python keeps unknown escapes as they are
            value += e;
          }
      }
    }
    push(Token::Type::kString, std::move(value), b);
  }

  const std::string& name_;
  std::string src_;
  std::vector<size_t> line_starts_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

}  // namespace lexer_detail

std::vector<Token> tokenize(std::string_view source, const std::string& name) {
  return lexer_detail::Lexer(source, name).run();
}

}  // namespace glassbox::jinja
