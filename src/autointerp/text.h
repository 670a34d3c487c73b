// Small ASCII text helpers shared by the prompt builders, the scorers and the offline explainer.
#pragma once

#include <string>
#include <string_view>

namespace glassbox::autointerp {

// The C locale's whitespace (isspace), without depending on the locale.
inline constexpr const char* kSpace = " \t\n\r\f\v";

inline std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(kSpace);
  return std::string(s.substr(b, e - b + 1));
}

inline char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string ascii_lower(std::string s) {
  for (char& c : s) c = ascii_lower(c);
  return s;
}

}  // namespace glassbox::autointerp
