// GGUF v3 writer. Owns serialising a metadata list and a tensor list into the container that
// io/gguf.h reads (format specified there); it chooses no keys and quantizes nothing: a tensor
// whose DType is block-quantized already holds ggml's block bytes, which are copied as they are.
//
// Layout written (little-endian), in the caller's order throughout:
//   "GGUF" | u32 3 | u64 n_tensors | u64 n_kv
//   n_kv ×      string key | u32 value type | value (each value keeps its own GgufType)
//   n_tensors × string name | u32 n_dims | u64 ne[n_dims] (row-major shape reversed) | u32 ggml
//               type | u64 offset
//   zeros to the alignment | tensor data, each tensor followed by zeros to the alignment
// The alignment is `general.alignment` when present (an integer, a power of two, 8..2^31: at least
// 8 so every element type is aligned), else 32. Offsets are cumulative padded sizes, as ggml's
// gguf writer lays them out, so re-writing a file read with GgufFile reproduces its bytes.
// Everything is validated before the first byte is written; the file goes to PATH.tmp and is
// renamed over PATH, so a failure never leaves a partial file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/gguf.h"

namespace glassbox {

// Writes GGUF v3. Throws Error(kInvalidArgument) naming the path and the key or tensor for an
// empty or duplicate key or name, a tensor name of 64+ bytes (ggml's GGML_MAX_NAME), a value whose
// variant does not match its type or whose integer does not fit it, array items of another type
// than the array's, arrays nested deeper than 8 or holding more than 2^24 elements in total (what
// GgufFile accepts), a bad general.alignment, or an undefined tensor; Error(kUnsupported) for a
// dtype GGUF lacks (u8) or a shape outside 1..4 dims; Error(kShape) when a quantized tensor's rows
// are not whole blocks; Error(kIo) naming the path when writing or renaming fails.
void write_gguf(const std::string& path,
                const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<std::pair<std::string, Tensor>>& tensors);

// The inverse of dtype_from_ggml_type; nullopt for dtypes ggml has no type for (u8).
std::optional<uint32_t> ggml_type_from_dtype(DType dtype);

// Value builders, holding values the way GgufFile returns them.
// An integer of one of the integer types (u8 .. i64, u64); throws kInvalidArgument if out of range.
GgufValue gguf_int(GgufType type, int64_t v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_float(GgufType type, double v);  // kF32 or kF64
GgufValue gguf_bool(bool v);
GgufValue gguf_string(std::string v);
GgufValue gguf_array(GgufType elem_type, std::vector<GgufValue> items);

}  // namespace glassbox
