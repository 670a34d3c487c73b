// Model conversion between llama2.c checkpoints, HF safetensors directories and GGUF, with
// optional re-typing of the weight matrices (f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k).
// Reads a loaded Model (any supported source) and writes a new file; never modifies the source.
// RoPE layouts are translated: GGUF and llama2.c hold Q/K rows in interleaved-pair order, HF
// Llama in rotate-half order, so Q/K rows are permuted when crossing between the two.
#pragma once

#include <string>

#include "model/model.h"

namespace glassbox {

struct ConvertOptions {
  std::string type = "f32";  // f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m | q5_k_m | q6_k
  int n_threads = 0;         // re-typing threads; 0 = all cores (the output does not depend on it)
};

// Writes `model` to `out_path`: a `.gguf` file, a llama2.c `.bin` (llama, f32 only), or an HF
// directory (config.json + model.safetensors; float types only). Every weight is dequantized to
// f32 and re-typed (so a quantized source is requantized). The _m mixes and the fallback for rows
// that are not whole blocks of the chosen type (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then
// F16) follow llama.cpp's llama_tensor_get_type; 1-D tensors stay f32. `vocab_path` (optional) is
// embedded into a GGUF: a tokenizer.json (byte-level BPE, tokenizer.ggml.model "gpt2") or a
// llama2.c tok*.bin; a GGUF source's tokenizer.ggml.* metadata is copied as is. Throws
// Error(kInvalidArgument/kUnsupported) for a combination that cannot be written, naming it.
void convert_model(const Model& model, const std::string& out_path, const ConvertOptions& options,
                   const std::string& vocab_path = "");

// A vocabulary-only GGUF (no tensors, as llama.cpp ships for its tokenizer tests): the
// tokenizer.ggml.* keys of `vocab_path` (a tokenizer.json or a llama2.c tok*.bin) and
// general.architecture "llama". Throws Error naming the file and field that cannot be written.
void convert_vocab(const std::string& vocab_path, const std::string& out_path);

}  // namespace glassbox
