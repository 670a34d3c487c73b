// Byte-level helpers for byte-level BPE (GPT-2 style tokenizer.json vocabularies): the GPT-2
// byte <-> printable-character alphabet that vocabularies and merges are spelled in, and the
// UTF-8 repair byte-level decoding uses. Header-only, no state; used by bpe.cpp and by
// StreamDecoder (tokenizer.cpp), which must repair exactly as decode() does.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tokenizer/utf8.h"

namespace glassbox::bpe_bytes {

// GPT-2's bytes_to_unicode(): bytes that are printable Latin-1 ('!'..'~', U+00A1..U+00AC,
// U+00AE..U+00FF) stand for themselves; the other 68 bytes, in increasing order, take the code
// points U+0100, U+0101, ... So a space (0x20) is U+0120 'Ġ' and '\n' (0x0A) is U+010A 'Ċ'.
inline constexpr std::array<char32_t, 256> kByteToChar = [] {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    table[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}();

// The byte a character of the alphabet stands for, or -1 for any other code point.
inline int char_to_byte(char32_t c) {
  if (c < 0x100) {
    const bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
    return printable ? static_cast<int>(c) : -1;
  }
  if (c >= 0x100 + 68) return -1;
  for (int b = 0; b < 256; ++b) {
    if (kByteToChar[static_cast<size_t>(b)] == c) return b;
  }
  return -1;
}

// Appends the UTF-8 encoding of a code point (< 0x110000, not a surrogate).
inline void append_utf8(char32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

// Decodes the valid UTF-8 character of length n (from utf8::valid_char_len) at the start of s.
inline char32_t decode_char(std::string_view s, size_t n) {
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<uint8_t>(s[i])); };
  switch (n) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

// Appends `bytes` as valid UTF-8, replacing each maximal ill-formed subsequence (the longest
// prefix of some valid character, or a single byte that starts none) with one U+FFFD. This is
// the Unicode / WHATWG "maximal subpart" practice that Rust's String::from_utf8_lossy and
// JavaScript's TextDecoder follow, hence what Hugging Face tokenizers' ByteLevel decoder gives.
// (Our SentencePiece path instead replaces every malformed byte, as SentencePiece does.)
inline void append_utf8_lossy(std::string_view bytes, std::string* out) {
  while (!bytes.empty()) {
    const size_t n = utf8::valid_char_len(bytes);
    if (n > 0) {
      out->append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      continue;
    }
    size_t skip = 1;
    for (size_t k = 3; k >= 2; --k) {
      if (k <= bytes.size() && utf8::is_incomplete_prefix(bytes.substr(0, k))) {
        skip = k;
        break;
      }
    }
    out->append(utf8::kReplacement);
    bytes.remove_prefix(skip);
  }
}

// Length of the trailing bytes of `bytes` that are a proper prefix of a valid character (0..3):
// more bytes may complete it, so a streaming decoder holds them back. The maximal-subpart scan
// above never consumes such a tail into an earlier unit: its lead byte is no continuation byte.
inline size_t incomplete_tail(std::string_view bytes) {
  for (size_t k = 1; k <= 3 && k <= bytes.size(); ++k) {
    const auto c = static_cast<uint8_t>(bytes[bytes.size() - k]);
    if (!utf8::is_trail(c)) {
      return utf8::is_incomplete_prefix(bytes.substr(bytes.size() - k)) ? k : 0;
    }
  }
  return 0;
}

}  // namespace glassbox::bpe_bytes
