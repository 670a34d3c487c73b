#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace glassbox {
namespace {

// Indexed by DType; block sizes and bytes follow ggml's layouts for the quantized types.
const DTypeInfo kDTypeInfo[] = {
    {"f32", 1, 4},      {"f16", 1, 2},      {"bf16", 1, 2},     {"f64", 1, 8},
    {"i32", 1, 4},      {"i64", 1, 8},      {"u8", 1, 1},       {"q4_0", 32, 18},
    {"q4_1", 32, 20},   {"q5_0", 32, 22},   {"q5_1", 32, 24},   {"q8_0", 32, 34},
    {"q2_k", 256, 84},  {"q3_k", 256, 110}, {"q4_k", 256, 144}, {"q5_k", 256, 176},
    {"q6_k", 256, 210},
};

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  const auto i = static_cast<size_t>(dtype);
  GLASSBOX_ASSERT(i < sizeof(kDTypeInfo) / sizeof(kDTypeInfo[0]));
  return kDTypeInfo[i];
}

size_t dtype_bytes(DType dtype, int64_t n) {
  const DTypeInfo& info = dtype_info(dtype);
  if (n < 0 || n % info.block_size != 0) {
    throw Error(ErrorCode::kShape, std::to_string(n) + " elements is not a whole number of " +
                                       info.name + " blocks of " + std::to_string(info.block_size));
  }
  return static_cast<size_t>(n / info.block_size) * info.block_bytes;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(ErrorCode::kShape, "negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > (int64_t{1} << 62) / d) {
      throw Error(ErrorCode::kShape, "shape " + shape_str(shape) + " has too many elements");
    }
    n *= d;
  }
  return n;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  t.writable_ = true;
  const size_t bytes = dtype_bytes(dtype, t.numel_);
  const size_t rounded = (bytes + 63) / 64 * 64 + 64;  // never zero, always a multiple of 64
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr) throw Error(ErrorCode::kIo, "out of memory allocating " + shape_str(t.shape_));
  std::memset(p, 0, rounded);
  t.owner_ = std::shared_ptr<void>(p, AlignedFree{});
  t.data_ = p;
  return t;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data,
                      std::shared_ptr<const void> owner) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  t.writable_ = false;
  t.owner_ = std::move(owner);
  t.data_ = const_cast<void*>(data);  // guarded by writable_ == false
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.defined_ = true;
  t.writable_ = true;
  t.data_ = data;
  return t;
}

Tensor Tensor::from_floats(Shape shape, std::span<const float> values) {
  Tensor t = zeros(DType::kF32, std::move(shape));
  if (static_cast<size_t>(t.numel()) != values.size()) {
    throw Error(ErrorCode::kShape, "shape " + shape_str(t.shape()) + " needs " +
                                       std::to_string(t.numel()) + " values, got " +
                                       std::to_string(values.size()));
  }
  std::memcpy(t.data_, values.data(), values.size() * sizeof(float));
  return t;
}

int64_t Tensor::dim(int axis) const {
  const int n = ndim();
  const int a = axis < 0 ? axis + n : axis;
  GLASSBOX_ASSERT(a >= 0 && a < n);
  return shape_[static_cast<size_t>(a)];
}

void* Tensor::mutable_raw() const {
  GLASSBOX_ASSERT(writable_);
  return data_;
}

std::span<const float> Tensor::floats() const {
  GLASSBOX_ASSERT(dtype_ == DType::kF32);
  return {static_cast<const float*>(data_), static_cast<size_t>(numel_)};
}

std::span<float> Tensor::mutable_floats() const {
  GLASSBOX_ASSERT(dtype_ == DType::kF32);
  return {static_cast<float*>(mutable_raw()), static_cast<size_t>(numel_)};
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel_) {
    throw Error(ErrorCode::kShape,
                "cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  GLASSBOX_ASSERT(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0]);
  Tensor t = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.data_ = static_cast<char*>(data_) + dtype_bytes(dtype_, row * begin);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = zeros(dtype_, shape_);
  if (nbytes() > 0) std::memcpy(t.data_, data_, nbytes());
  return t;
}

Tensor Tensor::to_f32() const {
  Tensor out = zeros(DType::kF32, shape_);
  float* dst = static_cast<float*>(out.data_);
  const size_t n = static_cast<size_t>(numel_);
  switch (dtype_) {
    case DType::kF32:
      if (n) std::memcpy(dst, data_, n * 4);
      break;
    case DType::kF16: {
      const auto* src = static_cast<const uint16_t*>(data_);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
      break;
    }
    case DType::kBF16: {
      const auto* src = static_cast<const uint16_t*>(data_);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
      break;
    }
    case DType::kF64: {
      const auto* src = static_cast<const double*>(data_);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
      break;
    }
    default:
      throw Error(ErrorCode::kUnsupported,
                  std::string("conversion from ") + dtype_name(dtype_) + " to f32");
  }
  return out;
}

}  // namespace glassbox
