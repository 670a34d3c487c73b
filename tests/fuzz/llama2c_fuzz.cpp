// libFuzzer target for the llama2.c checkpoint reader: parses the input from memory and touches
// the first and last float of every tensor (ASan catches views escaping the buffer).
// glassbox::Error is the only acceptable failure.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  try {
    const glassbox::Llama2cCheckpoint ck =
        glassbox::Llama2cCheckpoint::from_bytes(bytes, "fuzz.bin");
    if (glassbox::Llama2cCheckpoint::expected_size(ck.header()) != size) __builtin_trap();
    float sink = 0;
    for (const auto& [name, t] : ck.tensors()) {
      const auto values = t.floats();
      if (!values.empty()) sink += values.front() + values.back();
    }
    volatile float keep = sink;
    (void)keep;
  } catch (const glassbox::Error&) {
  }
  return 0;
}
