// GGUF constants shared by the reader (gguf.cpp) and the writer (gguf_writer.cpp): the writer
// refuses whatever the reader would, so every file written here reads back.
#pragma once

#include <cstddef>
#include <cstdint>

namespace glassbox::gguf_limits {

inline constexpr uint32_t kMagic = 0x46554747;                // "GGUF" read as a little-endian u32
inline constexpr uint64_t kMaxAlignment = uint64_t{1} << 31;  // the key is a u32
inline constexpr int kMaxArrayDepth = 8;                      // arrays of arrays (real files: 1)
inline constexpr size_t kMaxDims = 4;                         // GGML_MAX_DIMS
// Each parsed value costs ~48 bytes in memory against as little as 1 byte in the file, so a cap on
// the total keeps a hostile file's footprint bounded. Real vocabularies (256K tokens plus scores,
// types and merges) stay far below it.
inline constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;

}  // namespace glassbox::gguf_limits
