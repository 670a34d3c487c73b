// llama2.c checkpoint reader (legacy "version 0" format), memory-mapped.
//
// Format (little-endian): 7 x int32 header
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
// (vocab_size < 0 means the classifier is stored separately, not shared with the embedding),
// then float32 tensors in this order:
//   token_embedding [vocab, dim]; rms_att_weight [L, dim]; wq [L, dim, dim];
//   wk [L, kv_dim, dim]; wv [L, kv_dim, dim]; wo [L, dim, dim]; rms_ffn_weight [L, dim];
//   w1 [L, hidden, dim]; w2 [L, dim, hidden]; w3 [L, hidden, dim]; rms_final_weight [dim];
//   freq_cis_real, freq_cis_imag [seq_len, head_dim/2] (legacy, skipped);
//   wcls [vocab, dim] only when vocab_size < 0.
// kv_dim = dim * n_kv_heads / n_heads. The file size must equal exactly what the header implies.
// Tensors are exposed under GGUF names (token_embd.weight, blk.N.attn_q.weight, ...) so that the
// model loader has one naming scheme for every format. Validation rules and error behaviour are
// summarised in docs/formats.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace glassbox {

struct Llama2cHeader {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // absolute value
  int32_t seq_len = 0;
  bool shared_classifier = true;
};

class Llama2cCheckpoint {
 public:
  // Validates the header (positive dims, dim % n_heads == 0, n_heads % n_kv_heads == 0, even
  // head_dim, upper bounds) and the exact file size; throws Error(kFormat) naming the file and
  // field (kUnsupported for the newer "ak42" export versions).
  static Llama2cCheckpoint open(const std::string& path);
  // Same, over an in-memory image (fuzzing, tests); `name` stands in for the path in messages and
  // path(). Tensors borrow from `bytes`, which they keep alive.
  static Llama2cCheckpoint from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes,
                                      std::string name);
  // The file size implied by a header (which must satisfy the checks above).
  static uint64_t expected_size(const Llama2cHeader& header);

  const std::string& path() const { return path_; }
  const Llama2cHeader& header() const { return header_; }
  // GGUF-named, row-major F32 borrowed tensors. `output.weight` is present only when the
  // classifier is not shared (otherwise the embedding serves as classifier).
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }

 private:
  static Llama2cCheckpoint parse(const uint8_t* data, size_t size, std::string name,
                                 std::shared_ptr<const void> owner);

  std::string path_;
  Llama2cHeader header_;
  std::map<std::string, Tensor> tensors_;
};

}  // namespace glassbox
