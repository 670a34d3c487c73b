// libFuzzer target for the tokenizer.json reader: the input is tokenizer.json, optionally
// followed by a NUL byte and tokenizer_config.json. When it loads, a few texts are encoded and
// decoded and the invariants every byte-level BPE tokenizer keeps are checked (ids in range,
// decode never throws, the stream decoder agrees with decode). glassbox::Error is the only
// acceptable failure; anything else (another exception, a crash, a sanitizer report, a hang on a
// hostile regex) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"

namespace {

void check(const glassbox::Tokenizer& tok, const std::string& text) {
  const std::vector<int32_t> ids = tok.encode(text, true, true);
  for (const int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();
  }
  const std::string decoded = tok.decode(ids);
  glassbox::StreamDecoder stream(tok);
  std::string streamed;
  for (const int32_t id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (streamed != decoded) __builtin_trap();
  for (const int32_t id : ids) (void)tok.piece(id);
}

// Malformed UTF-8, CJK, an emoji, special-token look-alikes, digits, spaces and a NUL byte.
constexpr char kMixed[] = "\xFF\xE2\x82 \xE6\x97\xA5\xF0\x9F\x98\x80 <|endoftext|> 12345 \0z";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> kTexts = {
      "Once upon a time, Lily's dog didn't bark.",
      "  two  spaces \t\r\n\n",
      std::string(kMixed, sizeof(kMixed) - 1),
      "",
  };
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  try {
    const auto tok = glassbox::parse_bpe_tokenizer(json, config, "fuzz.json");
    for (const std::string& text : kTexts) check(*tok, text);
    check(*tok, std::string(input.substr(0, 256)));
  } catch (const glassbox::Error&) {
  }
  return 0;
}
