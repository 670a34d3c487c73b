// libFuzzer target for the byte-level BPE encoder: arbitrary bytes are encoded as text with the
// GPT-2 and Llama 3 tokenizer.json files (found through $GLASSBOX_BPE_TOKENIZERS, a directory
// holding gpt2/ and llama3/, or by searching upwards from the binary and the working directory
// for shared/models/tokenizers; without them only the built tokenizer is fuzzed) and with a small
// tokenizer built here that exercises Split behaviours, lstrip/rstrip added tokens, prefix spaces
// and unk fusing. Checked:
//  - encode never throws; every id is in range; decode never throws;
//  - the ids' bytes concatenate to the input exactly (lossless, even for invalid UTF-8), so
//    decode(encode(x)) == x for valid UTF-8 x and x repaired as HF repairs otherwise
//    (GPT-2 and Llama 3; the built tokenizer strips and adds text by design);
//  - StreamDecoder's pushes add up to decode().
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_bytes.h"
#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::string find_tokenizers() {
  if (const char* env = std::getenv("GLASSBOX_BPE_TOKENIZERS")) return env;
  const fs::path rel = "shared/models/tokenizers";
  std::error_code ec;
  for (fs::path dir :
       {fs::read_symlink("/proc/self/exe", ec).parent_path(), fs::current_path(ec)}) {
    for (; !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / rel / "gpt2/tokenizer.json", ec)) return (dir / rel).string();
      if (dir == dir.root_path()) break;
    }
  }
  return "";
}

// A tokenizer over the byte alphabet with a few merges, and the features GPT-2 and Llama 3 do
// not use. Spellings are built from raw bytes.
std::unique_ptr<glassbox::Tokenizer> built() {
  glassbox::BpeSpec spec;
  const auto spell = [](const std::string& bytes) {
    std::string out;
    for (const char c : bytes) {
      glassbox::bpe_bytes::append_utf8(glassbox::bpe_bytes::kByteToChar[static_cast<uint8_t>(c)],
                                       &out);
    }
    return out;
  };
  int32_t next = 0;
  for (int b = 0; b < 256; ++b) {
    if (b == 'q') continue;  // an unknown byte: becomes <unk>
    spec.vocab.emplace_back(spell(std::string(1, static_cast<char>(b))), next++);
  }
  for (const char* m : {"th", "the", "e ", "  "}) spec.vocab.emplace_back(spell(m), next++);
  spec.vocab.emplace_back("<unk>", next++);
  spec.merges = {{spell("t"), spell("h")},
                 {spell("th"), spell("e")},
                 {spell("e"), spell(" ")},
                 {spell(" "), spell(" ")}};
  spec.unk_token = "<unk>";
  spec.fuse_unk = true;
  spec.added_tokens = {{next, "<x>", true, false, true, false},
                       {next + 1, "[y]", false, true, false, true},
                       {next + 2, "<x>[", true, false, false, false}};
  glassbox::BpePreTokenizerStep split;
  split.kind = glassbox::BpePreTokenizerStep::Kind::kSplit;
  split.pattern = R"(\p{N}{1,3}|(?i:'s)|x*)";  // x* matches empty strings too
  split.behavior = glassbox::SplitBehavior::kMergedWithNext;
  glassbox::BpePreTokenizerStep contiguous = split;
  contiguous.pattern = R"(\s+(?!\S))";
  contiguous.behavior = glassbox::SplitBehavior::kContiguous;
  contiguous.invert = true;
  glassbox::BpePreTokenizerStep byte_level;
  byte_level.add_prefix_space = true;
  spec.pre_tokenizer = {split, contiguous, byte_level};
  spec.ignore_merges = true;
  return glassbox::make_bpe_tokenizer(std::move(spec), "built");
}

struct Tokenizers {
  std::vector<std::unique_ptr<glassbox::Tokenizer>> lossless;
  std::unique_ptr<glassbox::Tokenizer> built;
};

const Tokenizers& tokenizers() {
  static const Tokenizers t = [] {
    Tokenizers t;
    const std::string dir = find_tokenizers();
    if (dir.empty()) {
      // Without shared/ only the built tokenizer is fuzzed (say so: coverage is smaller).
      std::fprintf(stderr,
                   "bpe_encode_fuzz: shared/models/tokenizers not found (set "
                   "GLASSBOX_BPE_TOKENIZERS); fuzzing the built tokenizer only\n");
    } else {
      for (const char* name : {"gpt2", "llama3"}) {
        t.lossless.push_back(glassbox::load_bpe_tokenizer(dir + "/" + name + "/tokenizer.json"));
      }
    }
    t.built = built();
    return t;
  }();
  return t;
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
  const Tokenizers& t = tokenizers();
  const std::string x(reinterpret_cast<const char*>(data), size);
  std::string repaired;
  glassbox::bpe_bytes::append_utf8_lossy(x, &repaired);
  for (const auto& tok : t.lossless) {
    const std::vector<int32_t> ids = encode_checked(*tok, x);
    std::string bytes;
    for (const int32_t id : ids) bytes += *tok->token_bytes(id);
    if (bytes != x) __builtin_trap();
    if (tok->decode(ids) != repaired) __builtin_trap();
  }
  encode_checked(*t.built, x);
  return 0;
}
