// GGUF byte-level BPE vocabularies (tokenizer.ggml.model == "gpt2": Llama 3, Qwen, Mistral Nemo,
// SmolLM, GPT-2, ...) -> BpeSpec, encoded by the one byte-level BPE engine (bpe.cpp) that also
// serves tokenizer.json. Only key interpretation lives here. Keys and their meaning follow
// llama.cpp's reader (src/llama-vocab.cpp, llama_vocab::impl::load, at the anchor commit):
//   tokenizer.ggml.tokens      string[n]  entries spelled in GPT-2's byte alphabet; id = index
//   tokenizer.ggml.token_type  i32[n]     optional; 3 control and 4 user-defined tokens are cut
//                                         out of the text before pre-tokenization (added tokens,
//                                         as llama.cpp does with parse_special = true and
//                                         Hugging Face always does); the others are entries
//   tokenizer.ggml.merges      string[m]  "a b" split at the first ' ' after the first byte;
//                                         rank = index
//   tokenizer.ggml.pre         string     the pre-tokenizer (table below); absent = "default",
//                                         as llama.cpp (which warns); unknown = an error
//   tokenizer.ggml.{bos,eos}_token_id     absent = 11, llama.cpp's default for "gpt2"
//   tokenizer.ggml.unknown_token_id       absent = none
//   tokenizer.ggml.add_bos_token          absent = the pre-tokenizer's default (true for the
//                                         llama3 and tekken families, else false)
#include "tokenizer/gguf_bpe.h"

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/gguf_writer.h"
#include "tokenizer/bpe_pretokenizer.h"

namespace glassbox {
namespace {

// A pre-tokenizer as llama.cpp defines it per `tokenizer.ggml.pre` value: regexes applied in
// turn, each splitting every piece of the previous one into matches and the text between them
// (Hugging Face's Split with "Isolated"), then byte-level BPE. Where llama.cpp rewrote a
// tokenizer.json regex for its own engine (case-insensitive contractions), the tokenizer.json
// original is used: PCRE2 runs it as Hugging Face does.
struct PreTokenizer {
  std::vector<std::string_view> names;  // tokenizer.ggml.pre values
  std::vector<std::string_view> regexes;
  bool gpt2_regex_last = false;  // then HF ByteLevel(use_regex = true) ends the sequence
  bool ignore_merges = false;
  bool add_bos = false;
};

// Llama 3's tokenizer.json pattern; Qwen 2 differs only in single digits.
constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM's tokenizer.json splits: Latin/Greek/Cyrillic/... letters by explicit ranges.
constexpr std::string_view kDeepseekLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-"
    "\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1"
    "\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-"
    "\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-"
    "\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4"
    "\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-"
    "\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-"
    "\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-"
    "\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-"
    "\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-"
    "\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-"
    "\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+";
constexpr std::string_view kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

const std::vector<PreTokenizer>& pre_tokenizers() {
  static const std::vector<PreTokenizer> table = {
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)",
        R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))", R"(\p{N}+)",
        "[0-9][0-9][0-9]"}},
      {{"llama-bpe", "llama3", "llama-v3"}, {kLlama3}, false, true, true},
      {{"qwen2", "deepseek-r1-qwen"}, {kQwen2}},
      {{"gpt-2", "phi-2"}, {}, true},
      {{"tekken"}, {kTekken}, false, true, true},
      {{"smollm", "starcoder", "command-r", "refact"}, {R"(\p{N})"}, true},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepseekLetters,
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", R"(\s+$)", kCjk,
        R"(\p{N}+)"}},
      {{"deepseek-coder"}, {"[\r\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kCjk, R"(\p{N})"}},
  };
  return table;
}

std::string supported_pre_names() {
  std::string out;
  for (const PreTokenizer& p : pre_tokenizers()) {
    for (std::string_view n : p.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  }
  return out;
}

const PreTokenizer& find_pre(const std::string& name, const std::string& path) {
  for (const PreTokenizer& p : pre_tokenizers()) {
    for (std::string_view n : p.names) {
      if (n == name) return p;
    }
  }
  throw Error(ErrorCode::kUnsupported, path + ": " + std::string(kGgufTokenizerPrefix) + "pre = '" + name +
                                           "' is not a supported pre-tokenizer (supported: " +
                                           supported_pre_names() + ")");
}

std::vector<BpePreTokenizerStep> pre_steps(const PreTokenizer& pre, const std::string& name) {
  std::vector<BpePreTokenizerStep> steps;
  const std::string field = std::string(kGgufTokenizerPrefix) + "pre '" + name + "'";
  for (size_t i = 0; i < pre.regexes.size(); ++i) {
    BpePreTokenizerStep s;
    s.kind = BpePreTokenizerStep::Kind::kSplit;
    s.pattern = std::string(pre.regexes[i]);
    s.behavior = SplitBehavior::kIsolated;
    s.field = field + " regex " + std::to_string(i);
    steps.push_back(std::move(s));
  }
  BpePreTokenizerStep byte_level;
  byte_level.kind = BpePreTokenizerStep::Kind::kByteLevel;
  byte_level.use_regex = pre.gpt2_regex_last;
  byte_level.field = field;
  steps.push_back(std::move(byte_level));
  return steps;
}

bool same_steps(const std::vector<BpePreTokenizerStep>& a,
                const std::vector<BpePreTokenizerStep>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const BpePreTokenizerStep &x = a[i], &y = b[i];
    if (x.kind != y.kind) return false;
    if (x.kind == BpePreTokenizerStep::Kind::kSplit &&
        (x.pattern != y.pattern || x.behavior != y.behavior || x.invert != y.invert))
      return false;
    if (x.kind == BpePreTokenizerStep::Kind::kByteLevel &&
        (x.use_regex != y.use_regex || x.add_prefix_space != y.add_prefix_space))
      return false;
  }
  return true;
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> gguf_bpe_metadata(const BpeSpec& spec,
                                                                 const std::string& source) {
  // The pre-tokenizer name whose steps are exactly the file's (the family's first name is the
  // one llama.cpp's converter writes).
  std::string pre_name;
  for (const PreTokenizer& p : pre_tokenizers()) {
    if (p.ignore_merges == spec.ignore_merges &&
        same_steps(pre_steps(p, std::string(p.names[0])), spec.pre_tokenizer)) {
      pre_name = std::string(p.names[0]);
      break;
    }
  }
  if (pre_name.empty()) {
    throw Error(ErrorCode::kUnsupported,
                source + ": pre_tokenizer: matches none of the GGUF pre-tokenizers (" +
                    supported_pre_names() + "), so GGUF cannot hold this vocabulary");
  }
  const auto tok = make_bpe_tokenizer(spec, source);  // validates; resolves BOS/EOS/unk, add_bos
  const int32_t n = tok->vocab_size();
  std::vector<std::string> text(static_cast<size_t>(n));
  std::vector<int32_t> type(static_cast<size_t>(n), 5);  // ids nobody uses: unused
  for (const auto& [spelling, id] : spec.vocab) {
    text[static_cast<size_t>(id)] = spelling;
    type[static_cast<size_t>(id)] = 1;
  }
  for (const BpeAddedToken& t : spec.added_tokens) {
    if (t.lstrip || t.rstrip) {
      throw Error(ErrorCode::kUnsupported,
                  source + ": added token '" + t.content +
                      "' has lstrip/rstrip, which GGUF vocabularies cannot express");
    }
    text[static_cast<size_t>(t.id)] = t.content;
    type[static_cast<size_t>(t.id)] = t.special ? 3 : 4;
  }
  std::vector<GgufValue> tokens, types, merges;
  tokens.reserve(text.size());
  for (int32_t i = 0; i < n; ++i) {
    const auto u = static_cast<size_t>(i);
    tokens.push_back(gguf_string(type[u] == 5 ? "[PAD" + std::to_string(i) + "]" : text[u]));
    types.push_back(gguf_int(GgufType::kI32, type[u]));
  }
  merges.reserve(spec.merges.size());
  for (const auto& [a, b] : spec.merges) merges.push_back(gguf_string(a + " " + b));
  const auto id = [](std::optional<int32_t> v) {
    return gguf_int(GgufType::kU32, v ? *v : 0xFFFFFFFFll);  // absent would mean llama.cpp's 11
  };
  std::vector<std::pair<std::string, GgufValue>> meta;
  meta.emplace_back("tokenizer.ggml.model", gguf_string("gpt2"));
  meta.emplace_back("tokenizer.ggml.pre", gguf_string(pre_name));
  meta.emplace_back("tokenizer.ggml.tokens", gguf_array(GgufType::kString, std::move(tokens)));
  meta.emplace_back("tokenizer.ggml.token_type", gguf_array(GgufType::kI32, std::move(types)));
  meta.emplace_back("tokenizer.ggml.merges", gguf_array(GgufType::kString, std::move(merges)));
  meta.emplace_back("tokenizer.ggml.bos_token_id", id(tok->bos_id()));
  meta.emplace_back("tokenizer.ggml.eos_token_id", id(tok->eos_id()));
  if (tok->unk_id()) meta.emplace_back("tokenizer.ggml.unknown_token_id", id(tok->unk_id()));
  meta.emplace_back("tokenizer.ggml.add_bos_token", gguf_bool(tok->add_bos_by_default()));
  return meta;
}

BpeSpec gguf_bpe_spec(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  const auto key = [](std::string_view name) { return std::string(kGgufTokenizerPrefix) + std::string(name); };
  const auto what = [&](const std::string& k) { return path + ": " + k; };
  const auto fail = [&](const std::string& msg) {
    throw Error(ErrorCode::kFormat, path + ": " + msg);
  };

  const GgufArray& tokens = gguf.get(key("tokens")).as_array(what(key("tokens")));
  const size_t n = tokens.items.size();
  if (n == 0) fail(key("tokens") + " is empty");
  if (n > static_cast<size_t>(kMaxBpeId) + 1) fail(key("tokens") + " has too many entries");
  const GgufArray* types = nullptr;
  if (const GgufValue* v = gguf.find(key("token_type")))
    types = &v->as_array(what(key("token_type")));
  if (types != nullptr && types->items.size() != n) {
    fail(key("token_type") + " has " + std::to_string(types->items.size()) + " entries for " +
         std::to_string(n) + " tokens");
  }
  const GgufValue* merges_value = gguf.find(key("merges"));
  if (merges_value == nullptr) {
    throw Error(ErrorCode::kNotFound, path + ": missing " + key("merges") +
                                          " (a byte-level BPE vocabulary needs its merges)");
  }
  const GgufArray& merges = merges_value->as_array(what(key("merges")));

  BpeSpec spec;
  std::vector<std::string> text(n);
  for (size_t i = 0; i < n; ++i) {
    std::string index = "[";  // appended, not operator+, which trips a g++ 12 -Wrestrict bug
    index += std::to_string(i);
    index += ']';
    text[i] = tokens.items[i].as_string(what(key("tokens") + index));
    int64_t type = 1;
    if (types != nullptr) {
      type = types->items[i].as_int(what(key("token_type") + index));
      if (type < 0 || type > 6)
        fail(key("token_type") + index + " = " + std::to_string(type) + " is not 0..6");
    }
    const auto id = static_cast<int32_t>(i);
    if (type == 3 || type == 4) {  // control, user-defined: matched in the raw text
      BpeAddedToken t;
      t.id = id;
      t.content = text[i];
      t.special = type == 3;
      spec.added_tokens.push_back(std::move(t));
    } else {
      spec.vocab.emplace_back(text[i], id);
    }
  }
  spec.merges.reserve(merges.items.size());
  for (size_t i = 0; i < merges.items.size(); ++i) {
    const std::string field = key("merges") + "[" + std::to_string(i) + "]";
    const std::string& m = merges.items[i].as_string(what(field));
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) fail(field + " = '" + m + "' is not of the form 'a b'");
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }

  const GgufValue* pre_value = gguf.find(key("pre"));
  const std::string pre_name = pre_value ? pre_value->as_string(what(key("pre"))) : "default";
  const PreTokenizer& pre = find_pre(pre_name, path);
  spec.pre_tokenizer = pre_steps(pre, pre_name);
  spec.ignore_merges = pre.ignore_merges;

  // An id key: absent -> `fallback`; -1 / 0xFFFFFFFF -> none; out of range is an error.
  const auto id_key = [&](std::string_view name,
                          std::optional<int64_t> fallback) -> std::optional<std::string> {
    const GgufValue* value = gguf.find(key(name));
    const std::optional<int64_t> id =
        value != nullptr ? std::optional<int64_t>(value->as_int(what(key(name)))) : fallback;
    if (!id || *id == -1 || *id == 0xFFFFFFFFll) return std::nullopt;
    if (*id < 0 || *id >= static_cast<int64_t>(n)) {
      if (value == nullptr) return std::nullopt;  // llama.cpp's default id past a tiny vocab
      fail(key(name) + " = " + std::to_string(*id) + " is out of range for " + std::to_string(n) +
           " tokens");
    }
    return text[static_cast<size_t>(*id)];
  };
  spec.bos_token = id_key("bos_token_id", 11);
  spec.eos_token = id_key("eos_token_id", 11);
  spec.unk_token = id_key("unknown_token_id", std::nullopt);
  const GgufValue* add_bos = gguf.find(key("add_bos_token"));
  spec.add_bos = add_bos ? add_bos->as_bool(what(key("add_bos_token"))) : pre.add_bos;
  return spec;
}

}  // namespace glassbox
