// libFuzzer target for the GGUF reader: parses the input from memory (no disk), then touches every
// metadata value and the first and last byte of every tensor, so that an accepted file whose
// offsets escape the buffer shows up as an ASan report; then reads its embedded vocabulary (the
// "llama" and "gpt2" tokenizer.ggml.* readers) and encodes and decodes a fixed text with it.
// glassbox::Error is the only acceptable failure; anything else (crash, sanitizer report, other
// exception, huge allocation) is a finding. Seeds: tests/fuzz/seeds/gguf_fuzz (gpt2_vocab.gguf is
// a 101-entry byte-level BPE vocabulary with the llama-bpe pre-tokenizer, written by
// `glassbox convert --vocab-only`).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

void touch_value(const glassbox::GgufValue& v, const std::string& key, size_t& sink) {
  sink += v.to_display(4).size();
  try {
    // A comparison, not a cast: converting an out-of-range float (a negative or huge value from
    // the fuzzer) to an integer is itself undefined behaviour.
    sink += v.as_float(key) > 0 ? 1 : 0;
  } catch (const glassbox::Error&) {
  }
  if (v.type == glassbox::GgufType::kArray) {
    for (const glassbox::GgufValue& item : v.as_array(key).items) touch_value(item, key, sink);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  try {
    const glassbox::GgufFile f = glassbox::GgufFile::from_bytes(bytes, "fuzz.gguf");
    size_t sink = 0;
    for (const auto& [key, value] : f.metadata()) touch_value(value, key, sink);
    for (const glassbox::GgufTensorInfo& info : f.tensor_infos()) {
      const glassbox::Tensor t = f.tensor(info.name);
      if (t.nbytes() != info.nbytes || f.find_tensor(info.name) != &info) __builtin_trap();
      if (info.nbytes > 0) {
        const auto* p = t.data<uint8_t>();
        sink += p[0] + p[info.nbytes - 1];
      }
      if (info.dtype == glassbox::DType::kF16 || info.dtype == glassbox::DType::kBF16) {
        sink += static_cast<size_t>(t.numel() > 0 && t.to_f32().floats()[0] > 0);
      }
    }
    if (f.find("tokenizer.ggml.model") != nullptr) {
      try {
        const auto tok = glassbox::load_gguf_tokenizer(f);
        const std::vector<int32_t> ids = tok->encode("Hello  world 123 \xc3\xa9\n<|end|>");
        sink += tok->decode(ids).size() + ids.size();
      } catch (const glassbox::Error&) {
      }
    }
    volatile size_t keep = sink;
    (void)keep;
  } catch (const glassbox::Error&) {
  }
  return 0;
}
