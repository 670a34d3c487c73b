// libFuzzer target for the llama2.c vocabulary reader and the vocabulary check: the input is a
// tok*.bin file image, parsed from memory. When it loads, a few short texts are encoded and
// decoded and the invariants that hold for every vocabulary are checked (ids in range, the
// stream decoder agrees with decode, a run of unknown characters is one <unk>).
// glassbox::Error is the only acceptable failure; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"

namespace {

void check(const glassbox::Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text, true, true);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= tok.vocab_size()) __builtin_trap();
  }
  const std::string decoded = tok.decode(ids);
  glassbox::StreamDecoder stream(tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed != decoded) __builtin_trap();
  for (const int32_t id : ids) (void)tok.piece(id);
}

}  // namespace

// Malformed UTF-8, CJK, an emoji, special-looking literals and a NUL byte.
constexpr char kMixed[] = "\xFF\xE2\x82 \xE6\x97\xA5\xF0\x9F\x98\x80 <s> <0x41>\0z";

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kTexts = {
      "Once upon a time, Lily saw a big dog.",
      "  two  spaces \t\n",
      std::string(kMixed, sizeof(kMixed) - 1),
      "",
  };
  const std::span<const uint8_t> bytes(data, size);
  // The whole file, and a prefix of it as a model header would ask for.
  for (const int32_t vocab_size : {0, 5}) {
    try {
      glassbox::SpmVocab vocab = glassbox::parse_llama2c_vocab(bytes, vocab_size, "fuzz.bin");
      const auto tok = glassbox::make_spm_bpe_tokenizer(std::move(vocab), "fuzz.bin");
      for (const std::string& text : kTexts) check(*tok, text);
    } catch (const glassbox::Error&) {
    }
  }
  return 0;
}
