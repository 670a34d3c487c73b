// ModelConfig: the hyperparameters of one loaded model, in TransformerLens names.
// Filled by the per-architecture loaders in model/arch/; read by the shared block skeleton.
#pragma once

#include <cstdint>
#include <string>

namespace glassbox {

// How RoPE pairs the dimensions of a head.
enum class RopeStyle {
  kInterleaved,  // (x[2i], x[2i+1]) — llama2.c and GGUF `llama` (llama.cpp's "norm" rope)
  kNeox,         // (x[i], x[i + rope_dims/2]) — Hugging Face / GPT-NeoX layout
};

struct ModelConfig {
  std::string architecture;   // "llama"
  std::string source_format;  // "llama2c", "gguf"
  int64_t d_model = 0;
  int64_t d_mlp = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t d_head = 0;
  int64_t d_vocab = 0;
  int64_t n_ctx = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t rope_dims = 0;  // rotated dims per head (<= d_head, even)
  RopeStyle rope_style = RopeStyle::kInterleaved;
  bool tied_embeddings = false;  // the unembedding is the token embedding

  int64_t kv_dim() const { return n_kv_heads * d_head; }
  int64_t q_dim() const { return n_heads * d_head; }
};

// Throws Error(kFormat) naming `source` when a field is out of range or inconsistent.
void validate_config(const ModelConfig& config, const std::string& source);

}  // namespace glassbox
