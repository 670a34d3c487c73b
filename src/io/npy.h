// NumPy .npy reader and writer for single tensors (activation dumps, reference data, SAE weights).
// Owns only the .npy container; .npz archives are built on these entry points elsewhere.
//
// Format (numpy's format.py, NEP 1):
//   "\x93NUMPY" | u8 major | u8 minor | header length (u16 LE for 1.0, u32 LE for 2.0 and 3.0)
//   | header: an ASCII (3.0: UTF-8) Python dict literal
//       {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//     padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes
//   | raw element data, C order (last axis fastest), numel * itemsize bytes, nothing after.
// Written: version 1.0 (2.0 only when the header would not fit in a u16), little-endian,
// C order. dtypes both ways: f32 '<f4', f64 '<f8', f16 '<f2', i32 '<i4', i64 '<i8', u8 '|u1',
// bf16 '<V2' (as numpy saves ml_dtypes.bfloat16 arrays).
// Read: any of those (also with '=' byte order); fortran_order True, big-endian ('>') and other
// or structured descrs are rejected with Error(kFormat) naming the file and field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace glassbox {

// The complete preamble (magic, version, length, padded dict) for a C-order little-endian array;
// its size is a multiple of 64. Throws Error(kUnsupported) for dtypes .npy cannot express
// (block-quantized).
std::string npy_header(DType dtype, const Shape& shape);

// Writes `tensor` to PATH.tmp and renames it over `path`, so readers never see a partial file.
// Throws Error(kIo) naming the path when the file cannot be written or renamed, and
// Error(kUnsupported) for dtypes .npy cannot express.
void write_npy(const std::string& path, const Tensor& tensor);

// Reads a .npy file into an owned tensor of the stored dtype and shape (a 0-d array becomes
// shape {}). Throws Error(kIo) when the file cannot be opened, Error(kFormat) for malformed or
// unsupported content, naming the file and field.
Tensor read_npy(const std::string& path);

// Same over bytes in memory (an .npz member, a fuzz input); `name` is used in messages.
Tensor decode_npy(const uint8_t* data, size_t size, const std::string& name);

}  // namespace glassbox
