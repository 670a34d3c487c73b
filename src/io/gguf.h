// GGUF reader (versions 2 and 3), memory-mapped. Owns parsing of the container only: metadata,
// tensor infos and tensor data views. It knows nothing about architectures or tokenizers; the
// model loader and tokenizer/ interpret the keys.
//
// Format (all little-endian), as specified in ggml's docs/gguf.md:
//   u32 magic "GGUF" (0x46554747) | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
//   n_kv times:      gguf_string key | u32 value_type | value
//   n_tensors times: gguf_string name | u32 n_dims (1..4) | u64 dims[n_dims] (ne0 = fastest axis)
//                    | u32 ggml_type | u64 offset (relative to the data section)
//   padding to `general.alignment` (u32 metadata, default 32) | tensor data section
//   gguf_string = u64 length + bytes (no terminator).
//   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte), 8 string,
//                9 array (u32 elem_type, u64 count, elems), 10 u64, 11 i64, 12 f64.
//   Each tensor offset must be a multiple of the alignment; data must lie inside the file.
// Tensor shapes are returned row-major, i.e. dims reversed: ne = [in, out] becomes [out, in].
// Validation rules and error behaviour are summarised in docs/formats.md. Nothing here trusts a
// count or length from the file before checking that the remaining bytes could hold it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace glassbox {

// clang-format off
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
// clang-format on
const char* gguf_type_name(GgufType type);

struct GgufValue;
// An array keeps its element type (also when empty) and its elements.
struct GgufArray {
  GgufType elem_type = GgufType::kU8;
  std::vector<GgufValue> items;
};

struct GgufValue {
  GgufType type = GgufType::kU8;
  // Integers of every width are held as int64/uint64, floats as double, so callers need not
  // care which width a writer chose. kU64 values above INT64_MAX stay in `u`.
  std::variant<int64_t, uint64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  bool is_integer() const;
  bool is_float() const { return type == GgufType::kF32 || type == GgufType::kF64; }
  // Conversions throw Error(kFormat) when the stored type does not fit (naming `what`).
  int64_t as_int(const std::string& what) const;
  double as_float(const std::string& what) const;  // accepts integers too
  bool as_bool(const std::string& what) const;
  const std::string& as_string(const std::string& what) const;
  const GgufArray& as_array(const std::string& what) const;
  std::string to_display(size_t max_items = 8) const;  // for `glassbox info`
};

struct GgufTensorInfo {
  std::string name;
  Shape shape;             // row-major (dims reversed from the file's ne order)
  uint32_t ggml_type = 0;  // raw type id from the file
  DType dtype = DType::kF32;
  uint64_t offset = 0;  // relative to the data section
  size_t nbytes = 0;
};

// Whether the file starts with the GGUF magic (a model or a vocabulary-only file). Throws
// Error(kIo) naming the path when it cannot be opened.
bool is_gguf_file(const std::string& path);

class GgufFile {
 public:
  // Parses and validates the whole header; throws Error(kFormat/kIo/kUnsupported) naming the
  // file and the field/tensor at fault. Unknown ggml tensor types are kUnsupported.
  static GgufFile open(const std::string& path);
  // Same, over an in-memory image (fuzzing, tests); `name` stands in for the path in messages and
  // path(). Tensors borrow from `bytes`, which they keep alive.
  static GgufFile from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes, std::string name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  // Keys in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  // Throws Error(kNotFound) "FILE: missing metadata key KEY" when absent.
  const GgufValue& get(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensor_infos() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  // Borrowed, read-only view of the tensor's bytes (keeps the mapping alive).
  // Throws Error(kNotFound) naming the file when absent.
  Tensor tensor(const std::string& name) const;

 private:
  static GgufFile parse(const uint8_t* data, size_t size, std::string name,
                        std::shared_ptr<const void> owner);
  void parse_metadata(ByteReader& r, uint64_t n_kv);
  void parse_tensor_infos(ByteReader& r, uint64_t n_tensors);
  void validate_tensors();

  std::shared_ptr<const void> owner_;  // keeps data_ alive: the MappedFile or the byte vector
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// ggml type id -> DType; nullopt for ids glassbox cannot represent.
// Besides the float and quantized types, ggml's I32 (26), I64 (27) and F64 (28) are mapped.
std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type);

}  // namespace glassbox
