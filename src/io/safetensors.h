// Hugging Face safetensors: a memory-mapped reader (single files and sharded checkpoints) and a
// writer. Owns the container only: names, dtypes, shapes and byte ranges. It knows nothing about
// model architectures; the model loader maps HF tensor names and config.json onto glassbox.
//
// Format (huggingface/safetensors, all little-endian):
//   u64 N | N bytes of UTF-8 JSON (the header) | byte buffer
//   header = {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
//             "__metadata__": {"KEY": "VALUE", ...}}          (__metadata__ optional, strings only)
//   BEGIN/END are relative to the start of the byte buffer (file offset 8 + N); tensor data is
//   C order (last axis fastest), END - BEGIN = numel * itemsize, a 0-d tensor has shape [].
//   Writers pad the header with spaces so the buffer starts at a multiple of 8.
// Checks (as the reference Rust implementation, each failure one Error naming the file and the
// field or tensor): N <= 100,000,000 and 8 + N <= file size; the header is one JSON object
// (UTF-8, no NUL byte, no duplicate keys, nesting <= 16 deep, <= 64 dims per shape); every entry
// has a string dtype, a shape of non-negative integers and two integer offsets; the dtype is one
// the format defines (else kUnsupported naming the dtype); numel * itemsize == END - BEGIN without
// overflow; and the tensors, sorted by offset, tile the buffer exactly: no overlap, no gap, the
// last one ending at the end of the file.
// Dtypes the format defines but glassbox cannot hold (BOOL, I8, U16, F8_*, ...) are listed by
// tensor_infos() with dtype == nullopt; tensor() on them throws kUnsupported naming the dtype.
//
// Sharded checkpoints (transformers' save_pretrained): model.safetensors.index.json =
//   {"metadata": {...}, "weight_map": {"TENSOR": "model-00001-of-00002.safetensors", ...}}
// next to the shards. ShardedSafetensors checks that every shard opens, that each tensor lives in
// exactly the shard the index names, and that no shard holds a tensor the index does not list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace glassbox {

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype_name;      // as in the file: "F32", "BF16", "I8", ...
  std::optional<DType> dtype;  // nullopt for dtypes glassbox cannot represent
  Shape shape;                 // row-major, as stored
  uint64_t begin = 0;          // byte range [begin, end) relative to the data buffer
  uint64_t end = 0;
  size_t nbytes() const { return static_cast<size_t>(end - begin); }
};

class SafetensorsFile {
 public:
  // Parses and validates the header; throws Error(kIo) when the file cannot be opened,
  // Error(kFormat) or Error(kUnsupported) naming the file and the field/tensor at fault.
  static SafetensorsFile open(const std::string& path);
  // Same over an in-memory image (fuzzing, tests); `name` stands in for the path. Tensors borrow
  // from `bytes`, which they keep alive.
  static SafetensorsFile from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes,
                                    std::string name);

  const std::string& path() const { return path_; }
  uint64_t data_offset() const { return data_offset_; }  // 8 + N: absolute start of the buffer
  // In header order.
  const std::vector<SafetensorsTensorInfo>& tensor_infos() const { return tensors_; }
  const SafetensorsTensorInfo* find(const std::string& name) const;  // nullptr when absent
  // Read-only tensor of the stored dtype and shape. A view borrowed from the mapping (kept alive
  // by the tensor) when the data is aligned for its element type, which is the case for every
  // file written the HF way; otherwise an owned copy, so kernels never see a misaligned pointer.
  // Throws Error(kNotFound) when absent, Error(kUnsupported) for dtypes glassbox cannot hold.
  Tensor tensor(const std::string& name) const;
  // The "__metadata__" object (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  static SafetensorsFile parse(const uint8_t* data, size_t size, std::string name,
                               std::shared_ptr<const void> owner);
  void validate_layout(uint64_t buffer_size);

  std::shared_ptr<const void> owner_;  // keeps data_ alive: the MappedFile or the byte vector
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One name -> tensor view over a single safetensors file or the shards of an index.
class ShardedSafetensors {
 public:
  // `path` is a directory (model.safetensors is preferred, as transformers does, else
  // model.safetensors.index.json), an index file (*.index.json) or a single .safetensors file.
  // Throws Error(kNotFound) when a directory holds neither, Error(kIo) naming the shard and the
  // index when a shard cannot be opened, Error(kFormat) for a malformed index or when the index
  // and the shards disagree (tensor missing from its shard, in two shards, or not listed).
  static ShardedSafetensors open(const std::string& path);

  const std::string& path() const { return path_; }  // the index, or the single file
  bool is_sharded() const { return sharded_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // Sorted by name.
  std::vector<std::string> tensor_names() const;
  const SafetensorsTensorInfo* find(const std::string& name) const;  // nullptr when absent
  // As SafetensorsFile::tensor; kNotFound names the index (or file).
  Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> index_;  // tensor name -> index into shards_
};

// The safetensors dtype string for a glassbox dtype ("F32", "BF16", ...); nullopt for the
// block-quantized types, which safetensors cannot express.
std::optional<std::string> safetensors_dtype_name(DType dtype);

// Writes the tensors and `metadata` (the "__metadata__" object, omitted when empty) to PATH.tmp
// and renames it over `path`. The header is compact JSON padded with spaces to a multiple of
// 8 bytes; tensors are stored, stably, in order of decreasing element size (as HF's writer does)
// so that each one is aligned for its type. Throws Error(kInvalidArgument) for an empty,
// duplicate or reserved name or one that is not UTF-8, Error(kUnsupported) for a quantized dtype,
// and Error(kIo) naming the path when writing or renaming fails (the .tmp file is removed).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace glassbox
