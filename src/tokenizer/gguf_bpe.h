// GGUF byte-level BPE vocabularies (tokenizer.ggml.model == "gpt2"): reading one into the BpeSpec
// that bpe.h's engine encodes (load_gguf_tokenizer dispatches here), and writing a BpeSpec (from
// a tokenizer.json) as GGUF metadata. Keys, defaults and the tokenizer.ggml.pre table:
// gguf_bpe.cpp and docs/tokenizers.md.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/bpe.h"

namespace glassbox {

// Every GGUF vocabulary key starts with it.
inline constexpr std::string_view kGgufTokenizerPrefix = "tokenizer.ggml.";

// Throws Error naming the file and the key: kFormat (wrong types, sizes, ids, merges),
// kNotFound (no tokens or merges), kUnsupported (an unknown tokenizer.ggml.pre, with the list).
BpeSpec gguf_bpe_spec(const GgufFile& gguf);

// tokenizer.ggml.* for `spec`, read back by gguf_bpe_spec (and llama.cpp) as the same tokenizer:
// tokens by id (added tokens at their ids: 3 control when special, else 4 user-defined; ids no
// token uses as "[PAD<id>]", 5 unused), merges, the tokenizer.ggml.pre whose steps equal the
// spec's pre-tokenizer, BOS/EOS (0xFFFFFFFF = none), unk, add_bos_token. Throws
// Error(kUnsupported) naming `source` when no tokenizer.ggml.pre matches or an added token uses
// lstrip/rstrip (GGUF cannot express either); kFormat as make_bpe_tokenizer does.
std::vector<std::pair<std::string, GgufValue>> gguf_bpe_metadata(const BpeSpec& spec,
                                                                 const std::string& source);

}  // namespace glassbox
