// libFuzzer target for the SentencePiece-BPE encoder: arbitrary bytes are encoded as text with
// the stories260K tok512 vocabulary (found through $GLASSBOX_TOK512 or by searching upwards from
// the binary and the working directory for models/stories260K/tok512.bin) and with vocabularies
// built here (user-defined, unused and control pieces, no byte pieces). Checked:
//  - every id is in range; decode never throws; StreamDecoder agrees with decode;
//  - with byte fallback and no whitespace collapsing, decode(encode(x)) == x for valid UTF-8 x,
//    and == x with each malformed byte replaced by U+FFFD otherwise;
//  - with collapsing, decode(encode(x)) == x with runs of spaces collapsed and trimmed;
//  - without byte pieces, no two <unk> ids are adjacent.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace {

namespace fs = std::filesystem;
using glassbox::PieceType;

std::string find_tok512() {
  if (const char* env = std::getenv("GLASSBOX_TOK512")) return env;
  const fs::path rel = "models/stories260K/tok512.bin";
  std::error_code ec;
  for (fs::path dir :
       {fs::read_symlink("/proc/self/exe", ec).parent_path(), fs::current_path(ec)}) {
    for (; !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / rel, ec)) return (dir / rel).string();
      if (dir == dir.root_path()) break;
    }
  }
  return "";
}

// A small vocabulary exercising every piece type; pieces use "_" for U+2581.
glassbox::SpmVocab built_vocab(bool bytes) {
  glassbox::SpmVocab v;
  const auto add = [&](std::string p, float score, PieceType t) {
    std::string q;
    for (const char c : p) q += c == '_' ? std::string("\xE2\x96\x81") : std::string(1, c);
    v.pieces.push_back(q);
    v.scores.push_back(score);
    v.types.push_back(t);
  };
  add("<unk>", 0, PieceType::kUnknown);
  add("<s>", 0, PieceType::kControl);
  add("</s>", 0, PieceType::kControl);
  if (bytes) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      add(name, 0, PieceType::kByte);
    }
    v.byte_fallback = true;
  }
  add("<ctl>", 0, PieceType::kControl);
  add("<sep>", 0, PieceType::kUserDefined);
  add("_", -1, PieceType::kNormal);
  const std::string chars = "abcdehilnorst.,\"'";
  for (size_t i = 0; i < chars.size(); ++i) {
    add(std::string(1, chars[i]), -2.0f - static_cast<float>(i), PieceType::kNormal);
  }
  add("th", -1, PieceType::kNormal);
  add("_th", -1, PieceType::kNormal);  // ties with th: leftmost wins
  add("he", -3, PieceType::kUnused);
  add("the", -4, PieceType::kNormal);
  add("_the", -5, PieceType::kNormal);
  add("__", -6, PieceType::kNormal);
  add("es", -7, PieceType::kNormal);
  add("_a", -8, PieceType::kNormal);
  return v;
}

struct Vocabs {
  std::unique_ptr<glassbox::Tokenizer> tok512_keep;      // byte fallback, no collapsing
  std::unique_ptr<glassbox::Tokenizer> tok512_collapse;  // as inferred from the file
  std::unique_ptr<glassbox::Tokenizer> built_bytes;
  std::unique_ptr<glassbox::Tokenizer> built_nobytes_collapse;
};

const Vocabs& vocabs() {
  static const Vocabs v = [] {
    Vocabs v;
    const std::string path = find_tok512();
    if (path.empty()) {
      std::fprintf(stderr, "tokenizer_encode_fuzz: tok512.bin not found; set GLASSBOX_TOK512\n");
      std::abort();
    }
    glassbox::Llama2cTokenizerOptions keep;
    keep.remove_extra_whitespaces = false;
    v.tok512_keep = glassbox::load_llama2c_tokenizer(path, 512, keep);
    v.tok512_collapse = glassbox::load_llama2c_tokenizer(path, 512);
    v.built_bytes = glassbox::make_spm_bpe_tokenizer(built_vocab(true), "built");
    glassbox::SpmVocab nb = built_vocab(false);
    nb.remove_extra_whitespaces = true;
    v.built_nobytes_collapse = glassbox::make_spm_bpe_tokenizer(nb, "built-nobytes");
    return v;
  }();
  return v;
}

// x with each malformed byte replaced by U+FFFD (SentencePiece's normalizer).
std::string repaired(std::string_view x) {
  std::string out;
  glassbox::utf8::append_bytes_lossy(x, &out);
  return out;
}

// A U+2581 in the input is indistinguishable from an escaped space once encoded.
std::string unescaped(std::string_view x) {
  std::string out;
  glassbox::utf8::append_unescaped(x, &out);
  return out;
}

std::string collapsed(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::vector<int32_t> encode_checked(const glassbox::Tokenizer& tok, const std::string& x) {
  const std::vector<int32_t> ids = tok.encode(x);
  for (const int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
  const std::string text = tok.decode(ids);
  glassbox::StreamDecoder stream(tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed != text) __builtin_trap();
  return ids;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;  // long inputs add time, not coverage
  const Vocabs& v = vocabs();
  const std::string x(reinterpret_cast<const char*>(data), size);
  const std::string fixed = repaired(x);
  const std::string expect = unescaped(fixed);

  // Byte fallback, no collapsing: lossless up to U+FFFD repair.
  for (const auto* tok : {v.tok512_keep.get(), v.built_bytes.get()}) {
    const auto ids = encode_checked(*tok, x);
    if (tok->decode(ids) != expect) __builtin_trap();
  }
  // Collapsing: only spaces change (collapsing sees ' ', not U+2581, so skip inputs with it).
  {
    const auto ids = encode_checked(*v.tok512_collapse, x);
    if (expect == fixed && v.tok512_collapse->decode(ids) != collapsed(fixed)) __builtin_trap();
  }
  // No byte pieces: unknown runs are single <unk> ids.
  {
    const auto& tok = *v.built_nobytes_collapse;
    const auto ids = encode_checked(tok, x);
    for (size_t i = 1; i < ids.size(); ++i) {
      if (ids[i] == 0 && ids[i - 1] == 0) __builtin_trap();
    }
  }
  return 0;
}
