// Byte-level BPE from Hugging Face tokenizer.json files (GPT-2, Llama 3, and others of that
// shape), behind the Tokenizer interface. bpe_json.cpp reads tokenizer.json (+ the optional
// tokenizer_config.json) into a BpeSpec and does nothing else; bpe_pretokenizer.cpp splits text
// (PCRE2 regexes); bpe.cpp is the one encoder/decoder over a BpeSpec. Encoding follows Hugging
// Face `tokenizers` (Rust, 0.22) id for id, checked against it and against tokenizers.js in
// tests/unit/bpe_reference_test.cpp. No I/O here except load_bpe_tokenizer (tokenizer.h).
//
// Encoding text (tokenizer.encode(text, add_special_tokens=False) in HF terms):
//  1. Added tokens are cut out of the raw text first (leftmost-longest; tokens with
//     normalized = false first, then the others), honouring lstrip/rstrip. They become their id.
//  2. Each remaining segment is pre-tokenized (Split regex, ByteLevel with its built-in GPT-2
//     regex, add_prefix_space), and each piece's bytes are spelled in the GPT-2 byte alphabet.
//  3. Each piece is merged: with ignore_merges a piece that is itself a vocabulary entry is one
//     id; otherwise start from one symbol per byte and apply the merge of lowest rank, ties to
//     the leftmost, until none applies (a heap: O(n log n) in the piece length).
// Invalid UTF-8 (which HF cannot even receive) is handled losslessly: each maximal run of
// malformed bytes is a piece of its own, and text between such runs is pre-tokenized on its
// own. decode() concatenates token bytes and repairs UTF-8 as HF does (bpe_bytes.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace glassbox {

// What a Split pre-tokenizer does with the pieces its pattern matches (HF
// SplitDelimiterBehavior): drop them, keep them as pieces of their own, glue them to the piece
// before or after, or merge consecutive matches into one piece.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct BpePreTokenizerStep {
  enum class Kind { kSplit, kByteLevel };
  Kind kind = Kind::kByteLevel;
  // kSplit: a PCRE2 pattern (a tokenizer.json "String" pattern arrives escaped as a regex).
  std::string pattern;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  // kByteLevel: prepend ' ' to every piece not starting with one; split with GPT-2's regex.
  bool add_prefix_space = false;
  bool use_regex = true;
  // Where the step came from, e.g. "pre_tokenizer.pretokenizers[0]" (for error messages).
  std::string field;
};

struct BpeAddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched after normalization (we support no normalizer: same text)
  bool lstrip = false;      // the match swallows whitespace before it
  bool rstrip = false;      // ... and after it
};

struct BpeSpec {
  // Vocabulary entries as spelled in tokenizer.json (GPT-2 byte alphabet), with their ids.
  std::vector<std::pair<std::string, int32_t>> vocab;
  // Merges in rank order (rank = index), as the two entries' spellings.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<BpeAddedToken> added_tokens;
  std::vector<BpePreTokenizerStep> pre_tokenizer;
  std::optional<std::string> unk_token;  // model.unk_token
  bool fuse_unk = false;
  bool ignore_merges = false;
  // From tokenizer_config.json, else from a TemplateProcessing post-processor.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // tokenizer_config.json add_bos_token, else whether TemplateProcessing puts a special token
  // first; nullopt = not stated (see make_bpe_tokenizer).
  std::optional<bool> add_bos;
};

// Largest id accepted in a vocabulary (ids index dense tables; a hostile file must not make us
// allocate gigabytes). Real vocabularies stay far below (Llama 3: 128,256).
inline constexpr int32_t kMaxBpeId = (1 << 24) - 1;

// Reads tokenizer.json text and the optional tokenizer_config.json text (empty = absent).
// Throws Error naming `source` and the JSON field: kFormat for malformed JSON or wrong types,
// kUnsupported for valid files using what we do not implement (model types other than BPE such
// as "Unigram" or "WordPiece", normalizers, other pre-tokenizers or decoders, dropout, ...).
BpeSpec parse_bpe_spec(std::string_view tokenizer_json, std::string_view config_json,
                       const std::string& source);

// Validates and builds the tokenizer: ids in [0, kMaxBpeId] and used once (an added token that
// is also a vocabulary entry must carry the entry's id), merges referring to entries (and to
// their concatenation) in the vocabulary, pre-tokenizer regexes compiling under PCRE2 (UTF +
// UCP), exactly one ByteLevel step and it last, unk/BOS/EOS tokens that exist. Throws
// Error(kFormat / kUnsupported) naming `source`. A byte without a vocabulary entry is not an
// error: it encodes to unk_token, or to nothing without one, as in HF.
// bos_id/eos_id come from the BOS/EOS token strings (an added token or vocabulary entry).
// add_bos_by_default(): add_bos when stated, else true exactly when BOS exists and differs from
// EOS (GPT-2's <|endoftext|> is both and is never prepended; Llama 3 is trained with BOS).
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec, const std::string& source);

// parse_bpe_spec of the file `path` (a tokenizer.json) and of the tokenizer_config.json beside it
// when present. Throws Error(kIo) naming a file that cannot be read.
BpeSpec load_bpe_spec(const std::string& path);

// parse_bpe_spec + make_bpe_tokenizer.
std::unique_ptr<Tokenizer> parse_bpe_tokenizer(std::string_view tokenizer_json,
                                               std::string_view config_json,
                                               const std::string& source);

}  // namespace glassbox
