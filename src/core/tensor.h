// Tensor: the one n-dimensional array type of glassbox — a cheap-to-copy handle to shared storage
// plus a dtype and a row-major shape (last axis contiguous, no strides).
// Storage is either owned (allocated here, zero-filled) or borrowed (e.g. a memory-mapped weight),
// in which case an `owner` keeps the mapping alive and the tensor is read-only. A tensor made with
// Tensor::view() borrows memory without keeping it alive: valid only while the caller says so
// (hooks receive such views). This module knows nothing of files or models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"

namespace glassbox {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kF64,
  kI32,
  kI64,
  kU8,
  // Block-quantized GGML layouts (read by io/gguf, computed on by ops/ in a later issue).
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ8_0,
  kQ2_K,
  kQ3_K,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};

struct DTypeInfo {
  const char* name;    // "f32", "q8_0", ...
  int64_t block_size;  // elements per block (1 for plain types)
  size_t block_bytes;  // bytes per block
};

const DTypeInfo& dtype_info(DType dtype);
inline const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }
// Bytes taken by `n` consecutive elements; throws kShape if n is not a whole number of blocks.
size_t dtype_bytes(DType dtype, int64_t n);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& shape);  // "[2, 3]"
// Product of dims; throws kShape on a negative dim or an overflow past 2^62.
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Owned, zero-filled storage, 64-byte aligned.
  static Tensor zeros(DType dtype, Shape shape);
  // Borrowed, read-only storage kept alive by `owner` (e.g. a mapped file).
  static Tensor borrow(DType dtype, Shape shape, const void* data,
                       std::shared_ptr<const void> owner);
  // Non-owning mutable view; the caller guarantees `data` outlives every use.
  static Tensor view(DType dtype, Shape shape, void* data);
  // Owned copy of `values` with the given shape (numel must match).
  static Tensor from_floats(Shape shape, std::span<const float> values);

  // False only for a default-constructed tensor.
  bool defined() const { return defined_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const;  // negative axis counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return dtype_bytes(dtype_, numel_); }
  bool writable() const { return writable_; }

  const void* raw() const { return data_; }
  void* mutable_raw() const;
  template <class T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  template <class T>
  T* mutable_data() const {
    return static_cast<T*>(mutable_raw());
  }
  // Typed spans over all elements (F32 only; asserts the dtype).
  std::span<const float> floats() const;
  std::span<float> mutable_floats() const;

  // Same storage, new shape with equal numel.
  Tensor reshape(Shape shape) const;
  // Rows [begin, end) along axis 0, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Deep copy into owned storage.
  Tensor clone() const;
  // Element-wise conversion of a plain float type (F32/F16/BF16/F64) to owned F32.
  Tensor to_f32() const;

 private:
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::kF32;
  bool writable_ = false;
  bool defined_ = false;
};

}  // namespace glassbox
