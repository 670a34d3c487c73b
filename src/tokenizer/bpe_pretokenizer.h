// Pre-tokenization for byte-level BPE: PCRE2 regexes (UTF + UCP, JIT-compiled when PCRE2 has a
// JIT) and the Split / ByteLevel steps of a tokenizer.json pre_tokenizer, as Hugging Face
// `tokenizers` applies them. Works on raw bytes of valid UTF-8 text; spelling pieces in the
// GPT-2 byte alphabet is the caller's business (bpe.cpp works on bytes throughout).
//
// Patterns are written for Oniguruma (HF's regex engine) and passed to PCRE2 unchanged. For the
// constructs these patterns use the two agree: with PCRE2_UCP, \s is Unicode White_Space
// (including U+0085, excluding U+FEFF) as Oniguruma's is, \p{L}/\p{N} are general categories,
// (?i:...) folds case per Unicode simple case folding. Known differences elsewhere: Oniguruma's
// \h is a hex digit (PCRE2: horizontal space), and the Unicode version (PCRE2 10.42 has 14.0) can
// classify characters assigned later differently.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/bpe.h"

struct pcre2_real_code_8;

namespace glassbox {

// Hugging Face's ByteLevel pre-tokenizer regex (GPT-2's), built into `tokenizers` rather than
// stored in tokenizer.json, so it lives here.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class BpeRegex {
 public:
  // Throws Error(kFormat) naming `context` with PCRE2's message and the offset in the pattern.
  BpeRegex(std::string_view pattern, const std::string& context);

  // Appends [start, end) of each match in `text`, left to right, non-overlapping; empty matches
  // produce nothing. `text` must be valid UTF-8 (it is not checked again here). Throws
  // Error(kInvalidArgument) if PCRE2 gives up (match or depth limit), which is a hostile
  // pattern, not ordinary text.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>* out) const;

 private:
  struct Free {
    void operator()(pcre2_real_code_8* code) const;
  };
  std::unique_ptr<pcre2_real_code_8, Free> code_;
  std::string context_;
};

class BpePreTokenizer {
 public:
  // Compiles the Split regexes; the steps must end with the one ByteLevel step (bpe.cpp checks).
  BpePreTokenizer(const std::vector<BpePreTokenizerStep>& steps, const std::string& source);

  // Splits valid UTF-8 `text` into non-empty pieces. A piece is a view into `text` or, when a
  // ByteLevel step prepends a space, into a string kept in `storage` (a deque: stable addresses).
  void split(std::string_view text, std::vector<std::string_view>* pieces,
             std::deque<std::string>* storage) const;

 private:
  struct Step {
    const BpeRegex* regex = nullptr;  // null: no splitting (ByteLevel with use_regex false)
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
  };
  std::vector<std::unique_ptr<BpeRegex>> regexes_;
  std::vector<Step> steps_;
};

}  // namespace glassbox
