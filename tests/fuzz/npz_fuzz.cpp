// libFuzzer target for the .npz (zip) reader behind Gemma Scope params.npz, from memory: end
// record search, zip64 fields, central/local headers, inflate, crc32, then each .npy member.
// glassbox::Error is the only acceptable failure.
#include <cstddef>
#include <cstdint>

#include "io/npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    size_t total = 0;
    for (const auto& [name, t] : glassbox::decode_npz(data, size, "fuzz.npz")) total += t.nbytes();
    // Stored members cannot hold more than the input; deflated ones at most 1032x.
    if (total > 1032 * size + 1032) __builtin_trap();
  } catch (const glassbox::Error&) {
  }
  return 0;
}
