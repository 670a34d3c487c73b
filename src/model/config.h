// ModelConfig: the hyperparameters of one loaded model, in TransformerLens names.
// Filled by the per-architecture loaders in model/arch/; read by the shared block skeleton.
#pragma once

#include <cmath>
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
  kGatedSilu,  // down(silu(gate(x)) * up(x))  — Llama, Qwen, Mistral, Phi-3
  kGatedGelu,  // down(gelu_tanh(gate(x)) * up(x))  — Gemma ("gelu_pytorch_tanh")
  kGelu,       // down(gelu_tanh(up(x) + b) ) + b — GPT-2 ("gelu_new")
};

struct ModelConfig {
  std::string architecture;   // "llama", "gpt2", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"
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
  bool qkv_bias = false;          // q, k and v projections carry biases (GPT-2, Qwen2)
  bool out_bias = false;          // the attention output projection carries a bias (GPT-2)
  bool mlp_bias = false;          // up and down projections carry biases (GPT-2)
  bool tied_embeddings = false;   // the unembedding is the token embedding
  bool qk_norm = false;           // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
  bool post_norms = false;        // RMSNorm of the attention and MLP outputs before the residual
                                  // add (Gemma 2/3: post_attention_norm, post_ffw_norm)
  bool scale_embeddings = false;  // token embeddings times sqrt(d_model) (Gemma)
  double attn_scale = 0.0;        // multiplier of q.k; 0 = 1/sqrt(d_head)
  double attn_softcap = 0.0;      // scores = cap * tanh(scores / cap) before the mask; 0 = off
  double final_softcap = 0.0;     // the same on the logits (Gemma 2); 0 = off
  // Sliding-window attention: a query at position i of a local layer sees keys i - window < j <= i.
  // 0 = none. local_layers[l] != 0 marks the local layers; empty = every layer is local.
  int64_t sliding_window = 0;
  std::vector<uint8_t> local_layers;
  // RoPE base of the local layers, which then use no scaling (Gemma 3); 0 = as the global layers.
  double rope_theta_local = 0.0;
  // Linear RoPE scaling of the global layers (HF rope_type "linear", GGUF rope.scaling.type
  // "linear"): positions divided by this factor. 1 = off.
  double rope_linear_factor = 1.0;

  int64_t kv_dim() const { return n_kv_heads * d_head; }
  int64_t q_dim() const { return n_heads * d_head; }
  bool gated_mlp() const { return mlp != MlpType::kGelu; }
  bool is_local(int64_t layer) const {
    return sliding_window > 0 &&
           (local_layers.empty() || local_layers[static_cast<size_t>(layer)] != 0);
  }
  // The q.k multiplier actually used.
  double query_scale() const {
    return attn_scale > 0.0 ? attn_scale : 1.0 / std::sqrt(static_cast<double>(d_head));
  }
};

// Throws Error(kFormat) naming `source` when a field is out of range or inconsistent.
void validate_config(const ModelConfig& config, const std::string& source);

// RoPE inverse frequencies, rope_dims / 2 of them: theta^(-2i / rope_dims), with Llama 3 or
// linear scaling applied when configured. Empty for learned positions. `local`: the frequencies
// of the local (sliding-window) layers, which differ only when rope_theta_local is set.
std::vector<double> rope_inv_freq(const ModelConfig& config, bool local = false);

}  // namespace glassbox
