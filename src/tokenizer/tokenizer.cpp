// The format-independent parts of the Tokenizer interface: BOS/EOS framing, loading a file by its
// content, and StreamDecoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_bytes.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/utf8.h"

namespace glassbox {

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool add_eos) const {
  std::vector<int32_t> body = encode(text);
  const std::optional<int32_t> bos = bos_id();
  const std::optional<int32_t> eos = eos_id();
  const bool with_bos = add_bos && bos.has_value();
  const bool with_eos = add_eos && eos.has_value();
  if (!with_bos && !with_eos) return body;
  std::vector<int32_t> ids;
  ids.reserve(body.size() + 2);
  if (with_bos) ids.push_back(bos.value());
  ids.insert(ids.end(), body.begin(), body.end());
  if (with_eos) ids.push_back(eos.value());
  return ids;
}

std::vector<int32_t> encode_special(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<std::pair<std::string, int32_t>> specials = tokenizer.control_tokens();
  std::erase_if(specials, [](const auto& s) { return s.first.empty(); });
  if (specials.empty()) return tokenizer.encode(text);
  // By first byte, longest first, so each position costs only the tokens that could start there.
  std::vector<std::vector<const std::pair<std::string, int32_t>*>> by_byte(256);
  std::sort(specials.begin(), specials.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& s : specials) by_byte[static_cast<uint8_t>(s.first[0])].push_back(&s);
  std::vector<int32_t> ids;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    for (const auto* s : by_byte[static_cast<uint8_t>(text[i])]) {
      if (text.compare(i, s->first.size(), s->first) != 0) continue;
      if (i > start) {
        const std::vector<int32_t> part = tokenizer.encode(text.substr(start, i - start));
        ids.insert(ids.end(), part.begin(), part.end());
      }
      ids.push_back(s->second);
      start = i + s->first.size();
      i = start - 1;
      break;
    }
  }
  if (start < text.size()) {
    const std::vector<int32_t> part = tokenizer.encode(text.substr(start));
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return load_bpe_tokenizer((std::filesystem::path(path) / "tokenizer.json").string());
  }
  // A GGUF file (a model or a vocabulary-only file): its embedded vocabulary; no weights are read.
  if (is_gguf_file(path)) return load_gguf_tokenizer(GgufFile::open(path));
  const auto file = MappedFile::open(path);
  const std::span<const uint8_t> bytes(file->data(), file->size());
  // tokenizer.json is a JSON object; neither binary format starts with '{' after whitespace
  // except a llama2.c file whose max_token_length happens to be 123, hence the fallback below.
  const auto first = std::find_if(bytes.begin(), bytes.end(), [](uint8_t c) {
    return c != ' ' && c != '\t' && c != '\n' && c != '\r';
  });
  std::string json_error;
  if (first != bytes.end() && *first == '{') {
    // A syntax check without building the document: only JSON goes to the BPE reader, whose
    // errors then stand (a broken tokenizer.json should not be reported as a broken .bin).
    if (nlohmann::json::accept(bytes.begin(), bytes.end())) return load_bpe_tokenizer(path);
    json_error = "not valid JSON";
  }
  // A llama2.c vocabulary must parse to exactly the end of the file, which a protobuf will not
  // do by accident, so it is tried first; whatever fails that goes to libsentencepiece.
  std::string llama2c_error;
  try {
    return make_spm_bpe_tokenizer(parse_llama2c_vocab(bytes, 0, path), path);
  } catch (const Error& e) {
    llama2c_error = e.what();
  }
  try {
    return load_sentencepiece_model(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
  } catch (const Error& e) {
    throw Error(ErrorCode::kFormat,
                path + ": neither a llama2.c vocabulary nor a SentencePiece model (" +
                    (json_error.empty() ? "" : "as tokenizer.json: " + json_error + "; ") +
                    "as llama2.c: " + llama2c_error + "; as SentencePiece: " + e.what() + ")");
  }
}

std::vector<int32_t> end_of_generation_ids(const Tokenizer& tokenizer) {
  // llama.cpp's list (src/llama-vocab.cpp, special_eog_ids) without the entries that only serve
  // architectures glassbox does not run (gpt-oss, Kimi, minimax).
  static const std::set<std::string, std::less<>> kEndTexts = {
      "<|eot_id|>",    "<|eom_id|>",         "<|im_end|>",           "<|end|>",
      "<end_of_turn>", "<|endoftext|>",      "<|end_of_text|>",      "<EOT>",
      "_<EOT>",        "<end_of_utterance>", "<｜end▁of▁sentence｜>" /* DeepSeek */};
  std::set<int32_t> ids;
  for (const std::optional<int32_t> id : {tokenizer.eos_id(), tokenizer.bos_id()})
    if (id) ids.insert(*id);
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (tokenizer.byte_value(id)) continue;
    if (kEndTexts.count(tokenizer.piece(id)) != 0) ids.insert(id);
  }
  return {ids.begin(), ids.end()};
}

std::string token_display_text(const Tokenizer& tokenizer, int32_t id) {
  std::string raw;
  if (const std::optional<std::string_view> bytes = tokenizer.token_bytes(id)) {
    raw = *bytes;
  } else if (const std::optional<uint8_t> byte = tokenizer.byte_value(id)) {
    raw = std::string(1, static_cast<char>(*byte));
  } else {
    utf8::append_unescaped(tokenizer.piece(id), &raw);  // piece() throws when out of range
  }
  std::string out;
  bpe_bytes::append_utf8_lossy(raw, &out);
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  if (id < 0 || id >= tokenizer_.vocab_size()) {
    throw Error(ErrorCode::kInvalidArgument,
                "token id " + std::to_string(id) + " is out of range for a vocabulary of " +
                    std::to_string(tokenizer_.vocab_size()) + " pieces");
  }
  // Byte-level vocabularies: decode is context-free bytes + UTF-8 repair, so return the repaired
  // bytes up to a trailing incomplete character and keep only that (it cannot merge with
  // anything before it under the repair, bpe_bytes.h).
  if (const std::optional<std::string_view> bytes = tokenizer_.token_bytes(id)) {
    pending_.append(*bytes);
    const size_t ready = pending_.size() - bpe_bytes::incomplete_tail(pending_);
    std::string out;
    bpe_bytes::append_utf8_lossy(std::string_view(pending_).substr(0, ready), &out);
    pending_.erase(0, ready);
    return out;
  }
  ids_.push_back(id);
  const std::string text = tokenizer_.decode(ids_);

  // Bytes at the end that may still become one character are decoded as one U+FFFD each for
  // now; hold those back. `unit` is where the last settled character (or malformed byte) of the
  // trailing byte run starts, as an index into ids_.
  size_t hold = 0;
  size_t unit = ids_.size() - 1;
  if (tokenizer_.byte_value(id)) {
    size_t start = ids_.size();
    while (start > 0 && tokenizer_.byte_value(ids_[start - 1])) --start;
    std::string run;
    for (size_t k = start; k < ids_.size(); ++k) {
      run.push_back(static_cast<char>(*tokenizer_.byte_value(ids_[k])));
    }
    const std::string_view bytes(run);
    for (size_t off = 0; off < bytes.size();) {
      const size_t n = utf8::valid_char_len(bytes.substr(off));
      if (n == 0 && utf8::is_incomplete_prefix(bytes.substr(off))) {
        hold = (bytes.size() - off) * utf8::kReplacement.size();
        break;
      }
      unit = start + off;
      off += n > 0 ? n : 1;
    }
  }
  const size_t settled = text.size() - std::min(hold, text.size());
  std::string out;
  if (settled > emitted_) out = text.substr(emitted_, settled - emitted_);
  emitted_ = std::max(emitted_, settled);

  // Once the stream is settled, keep only its last unit as the primer (a piece, or the byte
  // pieces of one character): what follows decodes the same after it as after the whole
  // history, provided the primer has text of its own (so no dummy-prefix space is stripped).
  if (hold == 0 && emitted_ == text.size() && unit > 0) {
    const std::vector<int32_t> primer(ids_.begin() + static_cast<std::ptrdiff_t>(unit), ids_.end());
    const std::string own = tokenizer_.decode(primer);
    if (!own.empty()) {
      ids_ = primer;
      emitted_ = own.size();
    }
  }
  return out;
}

std::string StreamDecoder::flush() {
  const std::string text = tokenizer_.decode(ids_);
  std::string out = emitted_ < text.size() ? text.substr(emitted_) : std::string();
  bpe_bytes::append_utf8_lossy(pending_, &out);
  ids_.clear();
  emitted_ = 0;
  pending_.clear();
  return out;
}

}  // namespace glassbox
