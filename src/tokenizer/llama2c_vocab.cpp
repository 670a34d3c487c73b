// llama2.c tokenizer files (tok*.bin, tokenizer.bin) -> SpmVocab. Only parsing and type
// inference live here; encoding is spm_bpe.cpp's.
#include <algorithm>
#include <cstring>
#include <string_view>

#include "core/error.h"
#include "io/mapped_file.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/utf8.h"

namespace glassbox {
namespace {

// Far above any real vocabulary (SentencePiece caps pieces at 16 characters by default; Llama 2's
// longest is 27 bytes) yet small enough that a corrupt header is caught before any allocation.
constexpr int32_t kMaxTokenLength = 1 << 16;

std::string escape_spaces(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 8);
  for (const char c : p) {
    if (c == ' ') {
      out.append(utf8::kSpaceSymbol);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

SpmVocab parse_llama2c_vocab(std::span<const uint8_t> bytes, int32_t vocab_size,
                             const std::string& source, const Llama2cTokenizerOptions& options) {
  if (vocab_size < 0) {
    throw Error(ErrorCode::kInvalidArgument,
                source + ": vocab_size " + std::to_string(vocab_size) + " is negative");
  }
  ByteReader r(bytes.data(), bytes.size(), source);
  const auto max_len = r.read<int32_t>("max_token_length");
  if (max_len < 1 || max_len > kMaxTokenLength) {
    r.fail("max_token_length " + std::to_string(max_len) + " is outside [1, " +
           std::to_string(kMaxTokenLength) + "]");
  }
  SpmVocab v;
  // Every piece takes at least 8 bytes, which bounds what a corrupt vocab_size can reserve.
  const size_t expect = vocab_size > 0 ? static_cast<size_t>(vocab_size) : r.remaining() / 8;
  const size_t reserve = std::min(expect, r.remaining() / 8);
  v.pieces.reserve(reserve);
  v.scores.reserve(reserve);
  v.types.reserve(reserve);
  bool any_byte = false;
  bool any_double_space = false;
  for (size_t i = 0; vocab_size > 0 ? i < static_cast<size_t>(vocab_size) : r.remaining() > 0;
       ++i) {
    const std::string id = std::to_string(i);
    const auto score = r.read<float>("score of piece " + id);
    const auto len = r.read<int32_t>("length of piece " + id);
    if (len < 0 || len > max_len) {
      r.fail("length " + std::to_string(len) + " of piece " + id + " at byte " +
             std::to_string(r.pos() - 4) + " is outside [0, max_token_length " +
             std::to_string(max_len) + "]");
    }
    std::string raw = r.read_string(static_cast<size_t>(len), "piece " + id);
    PieceType type = PieceType::kNormal;
    if (i == 0) {
      type = PieceType::kUnknown;
    } else if (i == 1 || i == 2) {
      // llama2.c's exporter wraps BOS/EOS in newlines; give them SentencePiece's spelling.
      type = PieceType::kControl;
      if (raw == "\n<s>\n") raw = "<s>";
      if (raw == "\n</s>\n") raw = "</s>";
    } else if (is_byte_piece(raw)) {
      type = PieceType::kByte;
      any_byte = true;
    }
    if (type == PieceType::kNormal) {
      if (raw.find("  ") != std::string::npos) any_double_space = true;
      raw = escape_spaces(raw);
    }
    v.pieces.push_back(std::move(raw));
    v.scores.push_back(score);
    v.types.push_back(type);
  }
  if (v.pieces.size() < 3) {
    r.fail("has " + std::to_string(v.pieces.size()) +
           " pieces; a llama2.c vocabulary needs at least <unk>, BOS and EOS");
  }
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.byte_fallback = any_byte;
  v.add_dummy_prefix = options.add_dummy_prefix;
  // The file does not record the normalizer. A vocabulary trained with whitespace collapsing
  // never saw two spaces in a row, so it cannot hold a piece containing them; the trainer's
  // default is to collapse. See docs/tokenizers.md.
  v.remove_extra_whitespaces = options.remove_extra_whitespaces.value_or(!any_double_space);
  return v;
}

std::vector<uint8_t> write_llama2c_vocab(const SpmVocab& vocab) {
  std::vector<std::string> out_pieces;
  out_pieces.reserve(vocab.pieces.size());
  int32_t max_len = 1;
  for (size_t i = 0; i < vocab.pieces.size(); ++i) {
    std::string p;
    if (i == 1 && vocab.pieces[i] == "<s>") {
      p = "\n<s>\n";
    } else if (i == 2 && vocab.pieces[i] == "</s>") {
      p = "\n</s>\n";
    } else {
      utf8::append_unescaped(vocab.pieces[i], &p);
    }
    max_len = std::max(max_len, static_cast<int32_t>(p.size()));
    out_pieces.push_back(std::move(p));
  }
  size_t total = 4;
  for (const std::string& p : out_pieces) total += 8 + p.size();
  std::vector<uint8_t> out(total);
  size_t pos = 0;
  const auto put = [&](const void* data, size_t n) {
    if (n > 0) std::memcpy(out.data() + pos, data, n);
    pos += n;
  };
  put(&max_len, 4);
  for (size_t i = 0; i < out_pieces.size(); ++i) {
    const float score = i < vocab.scores.size() ? vocab.scores[i] : 0.0f;
    const auto len = static_cast<int32_t>(out_pieces[i].size());
    put(&score, 4);
    put(&len, 4);
    put(out_pieces[i].data(), out_pieces[i].size());
  }
  return out;
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size,
                                                  const Llama2cTokenizerOptions& options) {
  const auto file = MappedFile::open(path);
  SpmVocab vocab = parse_llama2c_vocab({file->data(), file->size()}, vocab_size, path, options);
  return make_spm_bpe_tokenizer(std::move(vocab), path);
}

}  // namespace glassbox
