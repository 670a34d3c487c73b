// GGUF-embedded vocabularies (tokenizer.ggml.*). "llama" (SentencePiece BPE) -> SpmVocab here,
// encoded by spm_bpe.cpp; "gpt2" (byte-level BPE) -> gguf_bpe.cpp. Only key interpretation lives
// here. Keys follow llama.cpp's writer (gguf-py constants):
//   tokenizer.ggml.model          string, "llama" = SentencePiece BPE, "gpt2" = byte-level BPE
//   tokenizer.ggml.tokens         string[n]   pieces, U+2581 for spaces
//   tokenizer.ggml.scores         f32[n]      optional, 0 when absent
//   tokenizer.ggml.token_type     i32[n]      optional: 1 normal, 2 unknown, 3 control,
//                                             4 user-defined, 5 unused, 6 byte (0 = undefined,
//                                             read as normal)
//   tokenizer.ggml.{bos,eos,unknown}_token_id   u32, optional; -1 / 0xFFFFFFFF = none
//   tokenizer.ggml.add_bos_token, add_space_prefix, remove_extra_whitespaces   bool, optional
#include <string_view>

#include "core/error.h"
#include "io/gguf.h"
#include "tokenizer/gguf_bpe.h"
#include "tokenizer/spm_bpe.h"

namespace glassbox {
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  const auto key = [](std::string_view name) { return std::string(kGgufTokenizerPrefix) + std::string(name); };
  const auto what = [&](const std::string& k) { return path + ": " + k; };
  const auto fail = [&](const std::string& msg) {
    throw Error(ErrorCode::kFormat, path + ": " + msg);
  };

  const GgufValue* model = gguf.find(key("model"));
  if (model == nullptr) {
    throw Error(ErrorCode::kNotFound,
                path + ": no embedded vocabulary (missing " + key("model") + ")");
  }
  const std::string& model_name = model->as_string(what(key("model")));
  if (model_name == "gpt2") return make_bpe_tokenizer(gguf_bpe_spec(gguf), path);
  if (model_name != "llama") {
    throw Error(ErrorCode::kUnsupported,
                path + ": " + key("model") + " = '" + model_name +
                    "' is not supported (supported: 'llama' = SentencePiece BPE, 'gpt2' = "
                    "byte-level BPE)");
  }

  const GgufArray& tokens = gguf.get(key("tokens")).as_array(what(key("tokens")));
  const size_t n = tokens.items.size();
  if (n == 0) fail(key("tokens") + " is empty");
  if (n > static_cast<size_t>(INT32_MAX)) fail(key("tokens") + " has too many entries");

  const GgufArray* scores = nullptr;
  if (const GgufValue* v = gguf.find(key("scores"))) scores = &v->as_array(what(key("scores")));
  const GgufArray* types = nullptr;
  if (const GgufValue* v = gguf.find(key("token_type")))
    types = &v->as_array(what(key("token_type")));
  if (scores != nullptr && scores->items.size() != n) {
    fail(key("scores") + " has " + std::to_string(scores->items.size()) + " entries for " +
         std::to_string(n) + " tokens");
  }
  if (types != nullptr && types->items.size() != n) {
    fail(key("token_type") + " has " + std::to_string(types->items.size()) + " entries for " +
         std::to_string(n) + " tokens");
  }

  SpmVocab v;
  v.pieces.reserve(n);
  v.scores.reserve(n);
  v.types.reserve(n);
  std::optional<int32_t> first_unknown;
  for (size_t i = 0; i < n; ++i) {
    std::string index = "[";  // appended, not operator+, which trips a g++ 12 -Wrestrict bug
    index += std::to_string(i);
    index += ']';
    v.pieces.push_back(tokens.items[i].as_string(what(key("tokens") + index)));
    v.scores.push_back(scores != nullptr ? static_cast<float>(scores->items[i].as_float(
                                               what(key("scores") + index)))
                                         : 0.0f);
    PieceType type = PieceType::kNormal;
    if (types != nullptr) {
      const int64_t t = types->items[i].as_int(what(key("token_type") + index));
      if (t < 0 || t > 6)
        fail(key("token_type") + index + " = " + std::to_string(t) + " is not 0..6");
      if (t != 0) type = static_cast<PieceType>(t);
    } else if (is_byte_piece(v.pieces.back())) {
      type = PieceType::kByte;  // without types, spot byte pieces by their spelling
    }
    if (type == PieceType::kUnknown && !first_unknown) first_unknown = static_cast<int32_t>(i);
    if (type == PieceType::kByte) v.byte_fallback = true;
    v.types.push_back(type);
  }

  // An id key: nullopt when absent or "none" (-1 / 0xFFFFFFFF); out of range is an error.
  const auto id_key = [&](std::string_view name) -> std::optional<int32_t> {
    const GgufValue* value = gguf.find(key(name));
    if (value == nullptr) return std::nullopt;
    const int64_t id = value->as_int(what(key(name)));
    if (id == -1 || id == 0xFFFFFFFFll) return std::nullopt;
    if (id < 0 || id >= static_cast<int64_t>(n)) {
      fail(key(name) + " = " + std::to_string(id) + " is out of range for " + std::to_string(n) +
           " tokens");
    }
    return static_cast<int32_t>(id);
  };
  const auto flag = [&](std::string_view name, bool fallback) {
    const GgufValue* value = gguf.find(key(name));
    return value != nullptr ? value->as_bool(what(key(name))) : fallback;
  };
  // llama.cpp's defaults for a "llama" vocabulary when the keys are absent.
  v.unk_id = id_key("unknown_token_id").value_or(first_unknown.value_or(0));
  v.bos_id = gguf.find(key("bos_token_id")) ? id_key("bos_token_id") : std::optional<int32_t>(1);
  v.eos_id = gguf.find(key("eos_token_id")) ? id_key("eos_token_id") : std::optional<int32_t>(2);
  if (v.bos_id && *v.bos_id >= static_cast<int32_t>(n)) v.bos_id.reset();
  if (v.eos_id && *v.eos_id >= static_cast<int32_t>(n)) v.eos_id.reset();
  v.add_bos = flag("add_bos_token", true);
  v.add_dummy_prefix = flag("add_space_prefix", true);
  // llama.cpp's SentencePiece tokenizer never collapses whitespace unless told to.
  v.remove_extra_whitespaces = flag("remove_extra_whitespaces", false);
  return make_spm_bpe_tokenizer(std::move(v), path);
}

}  // namespace glassbox
