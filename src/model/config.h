// ModelConfig: the hyperparameters of one loaded model, in TransformerLens names.
// Filled by the per-architecture loaders in model/arch/; read by the shared block skeleton.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace glassbox {

// How positions enter the model.
enum class PositionType {
  kRope,     // rotary embedding on q and k
  kLearned,  // a learned [n_ctx, d_model] table added to the token embedding (GPT-2)
};

// How RoPE pairs the dimensions of a head.
enum class RopeStyle {
  kInterleaved,  // (x[2i], x[2i+1]) — llama2.c and GGUF `llama` (llama.cpp's "norm" rope)
  kNeox,         // (x[i], x[i + rope_dims/2]) — Hugging Face / GPT-NeoX layout
};

// Llama 3 frequency-dependent RoPE scaling (rope_scaling.rope_type == "llama3"); factor 0 = off.
struct RopeScaling {
  double factor = 0.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_n_ctx = 0;
};

enum class NormType {
  kRms,    // x / sqrt(mean(x^2) + eps) * w
  kLayer,  // (x - mean) / sqrt(var + eps) * w + b
};

enum class MlpType {
  kGatedSilu,  // down(silu(gate(x)) * up(x))  — Llama
  kGelu,       // down(gelu_tanh(up(x) + b) ) + b — GPT-2 ("gelu_new")
};

struct ModelConfig {
  std::string architecture;   // "llama", "gpt2"
  std::string source_format;  // "llama2c", "gguf", "safetensors"
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
  RopeScaling rope_scaling;
  // Per-frequency divisors of the inverse frequencies, as llama.cpp stores Llama 3 scaling in GGUF
  // (tensor rope_freqs.weight, rope_dims / 2 values); empty = none. Exclusive with rope_scaling.
  std::vector<double> rope_freq_factors;
  PositionType position = PositionType::kRope;
  NormType norm = NormType::kRms;
  MlpType mlp = MlpType::kGatedSilu;
  bool attn_bias = false;        // q, k, v and output projections carry biases (GPT-2)
  bool mlp_bias = false;         // up and down projections carry biases (GPT-2)
  bool tied_embeddings = false;  // the unembedding is the token embedding

  int64_t kv_dim() const { return n_kv_heads * d_head; }
  int64_t q_dim() const { return n_heads * d_head; }
};

// Throws Error(kFormat) naming `source` when a field is out of range or inconsistent.
void validate_config(const ModelConfig& config, const std::string& source);

// RoPE inverse frequencies, rope_dims / 2 of them: theta^(-2i / rope_dims), with Llama 3
// scaling applied when configured. Empty for learned positions.
std::vector<double> rope_inv_freq(const ModelConfig& config);

}  // namespace glassbox
