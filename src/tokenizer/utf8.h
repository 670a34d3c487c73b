// UTF-8 helpers for the tokenizers, with SentencePiece's exact validity rules (so that our
// encoder treats malformed input byte for byte as libsentencepiece does). Header-only; no
// allocation except in the append helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace glassbox::utf8 {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's visible space.
inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
// U+FFFD REPLACEMENT CHARACTER, what a malformed byte turns into.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

inline bool is_trail(uint8_t c) { return (c & 0xC0) == 0x80; }

// Length of the valid UTF-8 character at the start of `s` (1..4), or 0 when `s` does not start
// with one (overlong forms, surrogates, code points above U+10FFFF and truncated sequences are
// invalid). Mirrors sentencepiece::string_util::DecodeUTF8 / IsValidDecodeUTF8. `s` non-empty.
inline size_t valid_char_len(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t c = b(0);
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    if (s.size() < 2 || !is_trail(b(1))) return 0;
    const uint32_t cp = (uint32_t{c & 0x1Fu} << 6) | (b(1) & 0x3F);
    return cp >= 0x80 ? 2 : 0;
  }
  if ((c & 0xF0) == 0xE0) {
    if (s.size() < 3 || !is_trail(b(1)) || !is_trail(b(2))) return 0;
    const uint32_t cp = (uint32_t{c & 0x0Fu} << 12) | (uint32_t{b(1) & 0x3Fu} << 6) | (b(2) & 0x3F);
    return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
  }
  if ((c & 0xF8) == 0xF0) {
    if (s.size() < 4 || !is_trail(b(1)) || !is_trail(b(2)) || !is_trail(b(3))) return 0;
    const uint32_t cp = (uint32_t{c & 0x07u} << 18) | (uint32_t{b(1) & 0x3Fu} << 12) |
                        (uint32_t{b(2) & 0x3Fu} << 6) | (b(3) & 0x3F);
    return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
  }
  return 0;
}

// True when `s` (1..3 bytes) is a proper prefix of some valid UTF-8 character, i.e. more bytes
// could still complete it. Used by StreamDecoder to hold back a character split across pieces.
inline bool is_incomplete_prefix(std::string_view s) {
  if (s.empty() || s.size() > 3) return false;
  const uint8_t c = static_cast<uint8_t>(s[0]);
  size_t need = 0;
  if ((c & 0xE0) == 0xC0) {
    need = 2;
    if (c < 0xC2) return false;  // overlong whatever follows
  } else if ((c & 0xF0) == 0xE0) {
    need = 3;
  } else if ((c & 0xF8) == 0xF0) {
    need = 4;
    if (c > 0xF4) return false;  // above U+10FFFF whatever follows
  } else {
    return false;
  }
  if (s.size() >= need) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (!is_trail(static_cast<uint8_t>(s[i]))) return false;
  }
  if (s.size() >= 2) {  // the second byte decides overlong/surrogate/range for 3- and 4-byte forms
    const uint8_t d = static_cast<uint8_t>(s[1]);
    if (c == 0xE0 && d < 0xA0) return false;
    if (c == 0xED && d > 0x9F) return false;
    if (c == 0xF0 && d < 0x90) return false;
    if (c == 0xF4 && d > 0x8F) return false;
  }
  return true;
}

// SentencePiece's "one character" length used to split normalized text into initial symbols:
// from the lead byte alone, clipped to the remaining length.
inline size_t one_char_len(std::string_view s) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  const size_t n = kLen[static_cast<uint8_t>(s[0]) >> 4];
  return n < s.size() ? n : s.size();
}

// Appends `bytes` to `out`, replacing every byte that does not start a valid character (and is
// not inside one) with U+FFFD, as SentencePiece does when it decodes byte pieces.
inline void append_bytes_lossy(std::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    const size_t n = valid_char_len(bytes);
    if (n == 0) {
      out->append(kReplacement);
      bytes.remove_prefix(1);
    } else {
      out->append(bytes.substr(0, n));
      bytes.remove_prefix(n);
    }
  }
}

// Replaces every U+2581 with a plain space.
inline void append_unescaped(std::string_view piece, std::string* out) {
  size_t pos = 0;
  while (true) {
    const size_t hit = piece.find(kSpaceSymbol, pos);
    if (hit == std::string_view::npos) break;
    out->append(piece.substr(pos, hit - pos));
    out->push_back(' ');
    pos = hit + kSpaceSymbol.size();
  }
  out->append(piece.substr(pos));
}

}  // namespace glassbox::utf8
