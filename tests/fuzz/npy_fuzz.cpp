// libFuzzer target for the .npy reader (header dict parser and size checks), from memory.
// glassbox::Error is the only acceptable failure.
#include <cstddef>
#include <cstdint>

#include "io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const glassbox::Tensor t = glassbox::decode_npy(data, size, "fuzz.npy");
    if (t.nbytes() > size) __builtin_trap();  // data must have come from the input
  } catch (const glassbox::Error&) {
  }
  return 0;
}
