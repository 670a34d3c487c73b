// Per-architecture knowledge: how each source format describes a model's hyperparameters and
// names its tensors. Every loader ends with tensors under GGUF names (token_embd.weight,
// blk.N.attn_q.weight, ...) in a TensorMap, which bind_weights() turns into LayerWeights with
// shape checks. The forward pass (model/session.cpp) never sees architecture code.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/config.h"
#include "model/model.h"

namespace glassbox::arch {

using TensorMap = std::map<std::string, Tensor>;

struct BoundWeights {
  Tensor tok_embd, pos_embd, output_norm, output_norm_b, output;
  std::vector<LayerWeights> layers;
};
// Binds and shape-checks every tensor the config calls for; throws Error "SOURCE: missing tensor
// NAME" or "SOURCE: tensor NAME has shape [..], expected [..]". Ties output to tok_embd when the
// config says so.
BoundWeights bind_weights(const ModelConfig& config, const TensorMap& tensors,
                          const std::string& source);

// The GGUF architectures of the llama family, run by the same block with config flags.
inline const std::vector<std::string>& llama_family_archs() {
  static const std::vector<std::string> kArchs = {"llama", "qwen2",  "qwen3",
                                                  "phi3",  "gemma2", "gemma3"};
  return kArchs;
}
// llama family (model/arch/llama.cpp): `arch` is general.architecture, one of the above.
ModelConfig llama_family_config_from_gguf(const GgufFile& gguf, const std::string& arch);
// The flags that follow from the architecture alone, whatever the source format: per-head q/k
// norms (qwen3, gemma3); Gemma's GELU-tanh gate, post-norms and embedding scale. Reads
// config.architecture.
void set_family_flags(ModelConfig& config);
// Gemma's query_pre_attn_scalar as GGUF readers infer it (GGUF has no key): llama.cpp, after
// gemma_pytorch, uses d_model / n_heads for the 27B shapes (46 layers for gemma2, 62 for
// gemma3), else d_head.
int64_t gguf_query_pre_attn_scalar(const ModelConfig& config);
ModelConfig llama_config_from_gguf(const GgufFile& gguf);
ModelConfig llama_config_from_llama2c(const Llama2cHeader& header);

// gpt2 (model/arch/gpt2.cpp)
ModelConfig gpt2_config_from_gguf(const GgufFile& gguf);
// GGUF gpt2 stores q, k, v fused as blk.N.attn_qkv.{weight,bias}; adds the three parts as
// attn_q/attn_k/attn_v views (rows of the fused tensor, no copy).
void split_fused_qkv(TensorMap& tensors, const ModelConfig& config, const std::string& source);
// Phi-3 stores the gated MLP's gate and up fused as blk.N.ffn_up.weight [2 * d_mlp, d_model]
// (gate rows first) and no ffn_gate; adds the halves as ffn_gate/ffn_up views.
void split_fused_gate_up(TensorMap& tensors, const ModelConfig& config, const std::string& source);

// Hugging Face checkpoints: config.json + safetensors (model/arch/hf.cpp).
struct HfCheckpoint {
  ModelConfig config;
  TensorMap tensors;                                         // GGUF names
  std::vector<std::pair<std::string, Tensor>> file_tensors;  // as stored, for `info`
};
// `path` is the model directory, its config.json, or a .safetensors / index file inside it.
HfCheckpoint load_hf_checkpoint(const std::string& path);
// Whether `path` looks like a Hugging Face checkpoint (any directory, since no other format is
// one -- load_hf_checkpoint then reports a missing config.json --, a config.json, or a
// .safetensors / .safetensors.index.json file).
bool is_hf_checkpoint(const std::string& path);

}  // namespace glassbox::arch
