#include "chat/jinja_strings.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace glassbox::jinja {

Utf8Char utf8_char_at(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t b0 = byte(pos);
  const auto invalid = [&]() { return Utf8Char{0xDC00u + b0, s.substr(pos, 1)}; };
  if (b0 < 0x80) return {b0, s.substr(pos, 1)};
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return invalid();
  }
  if (pos + len > s.size()) return invalid();
  if (byte(pos + 1) < lo || byte(pos + 1) > hi) return invalid();
  for (size_t k = 2; k < len; ++k)
    if (byte(pos + k) < 0x80 || byte(pos + k) > 0xBF) return invalid();
  uint32_t cp = b0 & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte(pos + k) & 0x3F);
  return {cp, s.substr(pos, len)};
}

std::vector<Utf8Char> utf8_chars(std::string_view s) {
  std::vector<Utf8Char> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    out.push_back(utf8_char_at(s, i));
    i += out.back().bytes.size();
  }
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) i += utf8_char_at(s, i).bytes.size();
  return n;
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an invalid byte, kept as it was
    out += static_cast<char>(cp - 0xDC00);
  } else if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool py_is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

namespace {

// Simple (one to one) case mappings of the scripts listed in the header.
uint32_t upper_cp(uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if (c == 0x130 || c == 0x138 || c == 0x149) return c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 0 ? c - 1 : c;
    return c % 2 == 1 ? c - 1 : c;
  }
  if (c >= 0x3B1 && c <= 0x3C9) return c == 0x3C2 ? 0x3A3 : c - 32;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

uint32_t lower_cp(uint32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return c % 2 == 1 ? c + 1 : c;
    return c % 2 == 0 ? c + 1 : c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool is_upper_cp(uint32_t c) { return lower_cp(c) != c || c == 0x130; }
bool is_lower_cp(uint32_t c) { return upper_cp(c) != c || c == 0xDF || c == 0x138 || c == 0x149; }
bool is_cased_cp(uint32_t c) { return is_upper_cp(c) || is_lower_cp(c); }

template <class F>
std::string map_case_chars(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Utf8Char ch = utf8_char_at(s, i);
    append_code_point(out, f(ch.cp));
    i += ch.bytes.size();
  }
  return out;
}

bool in_char_set(const std::vector<Utf8Char>& set, uint32_t cp) {
  for (const Utf8Char& c : set)
    if (c.cp == cp) return true;
  return false;
}

}  // namespace

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                     bool right) {
  const std::vector<Utf8Char> cs = utf8_chars(s);
  const std::vector<Utf8Char> set = chars ? utf8_chars(*chars) : std::vector<Utf8Char>{};
  const auto strip = [&](uint32_t cp) { return chars ? in_char_set(set, cp) : py_is_space(cp); };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip(cs[b].cp)) ++b;
  if (right)
    while (e > b && strip(cs[e - 1].cp)) --e;
  if (b == e) return {};
  const size_t from = static_cast<size_t>(cs[b].bytes.data() - s.data());
  const size_t to = static_cast<size_t>(cs[e - 1].bytes.data() - s.data()) + cs[e - 1].bytes.size();
  return std::string(s.substr(from, to - from));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep) {
    const std::vector<Utf8Char> cs = utf8_chars(s);
    size_t i = 0;
    const auto at = [&](size_t k) { return static_cast<size_t>(cs[k].bytes.data() - s.data()); };
    while (true) {
      while (i < cs.size() && py_is_space(cs[i].cp)) ++i;
      if (i == cs.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.emplace_back(s.substr(at(i)));
        break;
      }
      size_t j = i;
      while (j < cs.size() && !py_is_space(cs[j].cp)) ++j;
      out.emplace_back(s.substr(at(i), (j < cs.size() ? at(j) : s.size()) - at(i)));
      i = j;
    }
    return out;
  }
  if (sep->empty()) fail(ErrorCode::kInvalidArgument, "empty separator");
  size_t start = 0;
  while (true) {
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) break;
    const size_t hit = s.find(*sep, start);
    if (hit == std::string_view::npos) break;
    out.emplace_back(s.substr(start, hit - start));
    start = hit + sep->size();
  }
  out.emplace_back(s.substr(start));
  return out;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep,
                                   int64_t maxsplit) {
  std::vector<std::string> out;
  if (!sep) {
    const std::vector<Utf8Char> cs = utf8_chars(s);
    const auto at = [&](size_t k) { return static_cast<size_t>(cs[k].bytes.data() - s.data()); };
    size_t e = cs.size();  // exclusive end, in characters
    while (true) {
      while (e > 0 && py_is_space(cs[e - 1].cp)) --e;
      if (e == 0) break;
      const size_t end_byte = e < cs.size() ? at(e) : s.size();
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        out.emplace_back(s.substr(0, end_byte));
        break;
      }
      size_t b = e;
      while (b > 0 && !py_is_space(cs[b - 1].cp)) --b;
      out.emplace_back(s.substr(at(b), end_byte - at(b)));
      e = b;
    }
  } else {
    if (sep->empty()) fail(ErrorCode::kInvalidArgument, "empty separator");
    size_t end = s.size();
    while (!(maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      if (end < sep->size()) break;
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
  }
  return {out.rbegin(), out.rend()};
}

std::vector<std::string> py_splitlines(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    const Utf8Char ch = utf8_char_at(s, i);
    const uint32_t c = ch.cp;
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      i += ch.bytes.size();
      continue;
    }
    out.emplace_back(s.substr(start, i - start));
    i += ch.bytes.size();
    if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
    start = i;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view repl,
                       int64_t count) {
  std::string out;
  if (old.empty()) {
    int64_t done = 0;
    for (size_t i = 0; i <= s.size();) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i == s.size()) break;
      const size_t n = utf8_char_at(s, i).bytes.size();
      out += s.substr(i, n);
      i += n;
    }
    return out;
  }
  size_t start = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t hit = s.find(old, start);
    if (hit == std::string_view::npos) break;
    out += s.substr(start, hit - start);
    out += repl;
    start = hit + old.size();
  }
  out += s.substr(start);
  return out;
}

int64_t py_find(std::string_view s, std::string_view sub, bool reverse) {
  const size_t hit = reverse ? s.rfind(sub) : s.find(sub);
  if (hit == std::string_view::npos) return -1;
  return static_cast<int64_t>(utf8_length(s.substr(0, hit)));
}

int64_t py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(utf8_length(s)) + 1;
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string_view::npos; at = s.find(sub, at + sub.size()))
    ++n;
  return n;
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const Utf8Char ch = utf8_char_at(s, i);
    if (ch.cp == 0xDF) {
      out += "SS";  // the one full (one-to-two) mapping kept: German sharp s
    } else {
      append_code_point(out, upper_cp(ch.cp));
    }
    i += ch.bytes.size();
  }
  return out;
}
std::string py_lower(std::string_view s) { return map_case_chars(s, lower_cp); }

std::string py_title(std::string_view s) {
  bool prev_cased = false;
  return map_case_chars(s, [&](uint32_t c) {
    const uint32_t r = prev_cased ? lower_cp(c) : upper_cp(c);
    prev_cased = is_cased_cp(c);
    return r;
  });
}

std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (size_t i = 0; i < s.size();) {
    const Utf8Char ch = utf8_char_at(s, i);
    i += ch.bytes.size();
    const uint32_t c = ch.cp;
    if (py_is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<') {
      out += ch.bytes;
      word_start = true;
    } else if (word_start) {
      out += py_upper(ch.bytes);
      word_start = false;
    } else {
      append_code_point(out, lower_cp(c));
    }
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  bool first = true;
  return map_case_chars(s, [&](uint32_t c) {
    const uint32_t r = first ? upper_cp(c) : lower_cp(c);
    first = false;
    return r;
  });
}

bool py_is_upper(std::string_view s) {
  bool cased = false;
  for (const Utf8Char& c : utf8_chars(s)) {
    if (is_lower_cp(c.cp)) return false;
    cased = cased || is_upper_cp(c.cp);
  }
  return cased;
}

bool py_is_lower(std::string_view s) {
  bool cased = false;
  for (const Utf8Char& c : utf8_chars(s)) {
    if (is_upper_cp(c.cp)) return false;
    cased = cased || is_lower_cp(c.cp);
  }
  return cased;
}

namespace {

// str.isprintable() for one character, approximately: controls, separators other than the
// space, format characters, surrogates, private use and noncharacters are not printable.
bool py_is_printable_cp(uint32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c == 0x1680 || c == 0x180E || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F))
    return false;
  if ((c >= 0x205F && c <= 0x206F) || c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF)) return false;
  if (c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) || c == 0xFFFE || c == 0xFFFF) return false;
  return true;
}

void append_hex_escape(std::string& out, const char* prefix, uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s%0*x", prefix, digits, v);
  out += buf;
}

}  // namespace

void append_py_repr(std::string& out, std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  for (size_t i = 0; i < s.size();) {
    const Utf8Char ch = utf8_char_at(s, i);
    i += ch.bytes.size();
    const uint32_t c = ch.cp;
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (py_is_printable_cp(c)) {
      out += ch.bytes;
    } else if (c < 0x100) {
      append_hex_escape(out, "\\x", c, 2);
    } else if (c < 0x10000) {
      append_hex_escape(out, "\\u", c, 4);
    } else {
      append_hex_escape(out, "\\U", c, 8);
    }
  }
  out += quote;
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const Utf8Char ch = utf8_char_at(s, i);
    i += ch.bytes.size();
    const uint32_t c = ch.cp;
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      append_hex_escape(out, "\\u", c, 4);
    } else if (c < 0x80 || !ensure_ascii) {
      out += ch.bytes;
    } else if (c < 0x10000) {
      append_hex_escape(out, "\\u", c, 4);
    } else {
      const uint32_t v = c - 0x10000;
      append_hex_escape(out, "\\u", 0xD800 + (v >> 10), 4);
      append_hex_escape(out, "\\u", 0xDC00 + (v & 0x3FF), 4);
    }
  }
  out += '"';
}

std::string py_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // "-d.ddde+XX"
  size_t pos = 0;
  std::string out;
  if (sci[0] == '-') {
    out = "-";
    pos = 1;
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t k = pos; k < e; ++k)
    if (sci[k] != '.') digits += sci[k];
  const int exp10 = std::stoi(sci.substr(e + 1));
  const int decpt = exp10 + 1;  // value = 0.DIGITS x 10^decpt
  const int nd = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt >= nd) {
      out += digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." +
             digits.substr(static_cast<size_t>(decpt));
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (nd > 1) out += "." + digits.substr(1);
  const int x = decpt - 1;
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  return out + eb;
}

}  // namespace glassbox::jinja
