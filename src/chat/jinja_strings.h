// Python's str operations over UTF-8 bytes, for the Jinja evaluator: a character is a code point,
// and a byte that is not part of valid UTF-8 counts as one character of its own and is kept byte
// for byte (as Python's surrogateescape), so slicing never changes bytes. Case mapping covers
// ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (one character to one character, plus
// German sharp s to "SS" in upper(), as Python); other characters have no case here. No
// allocation limits here: callers check sizes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace glassbox::jinja {

// One character: its code point (0xDC80..0xDCFF for an invalid byte) and its bytes.
struct Utf8Char {
  uint32_t cp;
  std::string_view bytes;
};
// The character starting at byte `pos` of `s` (pos < s.size()).
Utf8Char utf8_char_at(std::string_view s, size_t pos);
std::vector<Utf8Char> utf8_chars(std::string_view s);
size_t utf8_length(std::string_view s);
void append_code_point(std::string& out, uint32_t cp);

// str.isspace() for one character.
bool py_is_space(uint32_t cp);

// str.strip/lstrip/rstrip(chars): chars = nullopt strips whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                     bool right);
// str.split(sep, maxsplit) / str.rsplit: sep = nullopt splits on runs of whitespace. An empty
// sep throws Error(kInvalidArgument) ("empty separator").
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep,
                                   int64_t maxsplit);
// str.splitlines() (without keepends).
std::vector<std::string> py_splitlines(std::string_view s);
// str.replace(old, new, count): count < 0 = all; an empty `old` inserts between characters.
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl,
                       int64_t count);
// str.find / str.count (code-point index; -1 when absent).
int64_t py_find(std::string_view s, std::string_view sub, bool reverse);
int64_t py_count(std::string_view s, std::string_view sub);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);  // str.title()
// Jinja2's title filter (not str.title): each run of characters between whitespace or any of
// -({[< gets its first character upper-cased and the rest lower-cased.
std::string jinja_title(std::string_view s);
std::string py_capitalize(std::string_view s);  // str.capitalize()
// str.isupper()/islower(): some cased character and none of the other case.
bool py_is_upper(std::string_view s);
bool py_is_lower(std::string_view s);

// repr(str): single quotes unless the text holds ' and no ", Python's escapes.
void append_py_repr(std::string& out, std::string_view s);
// A JSON string literal as json.dumps writes it (\uXXXX for other control characters; with
// ensure_ascii every non-ASCII character as \uXXXX, surrogate pairs beyond the BMP).
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);
// repr(float): shortest round-trip digits, exponent when the decimal point falls beyond 16 digits
// or before 4 zeros, always a '.0' on integral values; 'nan', 'inf'.
std::string py_float_repr(double v);

}  // namespace glassbox::jinja
