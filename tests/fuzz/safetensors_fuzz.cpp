// libFuzzer target for the safetensors reader: parses the input from memory (no disk), then, for
// every tensor glassbox can hold, takes the tensor and touches its first and last byte, so that an
// accepted file whose offsets escape the buffer shows up as an ASan report (and a misaligned one
// as a UBSan report when read as floats). glassbox::Error is the only acceptable failure; anything
// else (crash, sanitizer report, other exception, huge allocation) is a finding.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(data, data + size);
  try {
    const glassbox::SafetensorsFile f = glassbox::SafetensorsFile::from_bytes(bytes, "fuzz");
    size_t sink = f.metadata().size();
    for (const glassbox::SafetensorsTensorInfo& info : f.tensor_infos()) {
      if (f.find(info.name) != &info || info.begin > info.end) __builtin_trap();
      if (!info.dtype) continue;
      const glassbox::Tensor t = f.tensor(info.name);
      if (t.nbytes() != info.nbytes() || t.shape() != info.shape) __builtin_trap();
      if (info.nbytes() > 0) {
        const auto* p = t.data<uint8_t>();
        sink += p[0] + p[info.nbytes() - 1];
      }
      if (*info.dtype == glassbox::DType::kF32 && t.numel() > 0) {
        sink += static_cast<size_t>(t.floats()[t.numel() - 1] > 0);
      }
    }
    volatile size_t keep = sink;
    (void)keep;
  } catch (const glassbox::Error&) {
  }
  return 0;
}
