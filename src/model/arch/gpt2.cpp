// GPT-2: LayerNorm with biases, learned positions, fused q/k/v, GELU (tanh) MLP with biases,
// unembedding tied to the token embedding unless output.weight exists.
#include "model/arch/arch.h"
#include "model/arch/gguf_keys.h"

namespace glassbox::arch {

ModelConfig gpt2_config_from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  c.architecture = "gpt2";
  c.source_format = "gguf";
  c.d_model = gguf_int(gguf, "gpt2.embedding_length");
  c.d_mlp = gguf_int_or(gguf, "gpt2.feed_forward_length", 4 * c.d_model);
  c.n_layers = gguf_int(gguf, "gpt2.block_count");
  c.n_heads = gguf_int(gguf, "gpt2.attention.head_count");
  c.n_kv_heads = c.n_heads;
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.n_ctx = gguf_int(gguf, "gpt2.context_length");
  c.norm_eps = gguf_float_or(gguf, "gpt2.attention.layer_norm_epsilon", 1e-5);
  c.position = PositionType::kLearned;
  c.norm = NormType::kLayer;
  c.mlp = MlpType::kGelu;
  c.qkv_bias = true;
  c.out_bias = true;
  c.mlp_bias = true;
  c.d_vocab = gguf_vocab_rows(gguf, "gpt2");
  c.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  validate_config(c, gguf.path());
  return c;
}

void split_fused_qkv(TensorMap& tensors, const ModelConfig& c, const std::string& source) {
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const char* kind : {"weight", "bias"}) {
      const auto it = tensors.find(p + "attn_qkv." + kind);
      if (it == tensors.end()) continue;  // bind_weights reports what is missing
      const Tensor fused = it->second;
      if (fused.ndim() < 1 || fused.dim(0) != c.q_dim() + 2 * c.kv_dim()) {
        throw Error(ErrorCode::kShape, source + ": tensor " + it->first + " has shape " +
                                           shape_str(fused.shape()) + ", expected " +
                                           std::to_string(c.q_dim() + 2 * c.kv_dim()) +
                                           " rows (q, k, v)");
      }
      const int64_t q = c.q_dim(), kv = c.kv_dim();
      tensors[p + "attn_q." + kind] = fused.slice_rows(0, q);
      tensors[p + "attn_k." + kind] = fused.slice_rows(q, q + kv);
      tensors[p + "attn_v." + kind] = fused.slice_rows(q + kv, q + 2 * kv);
    }
  }
}

void split_fused_gate_up(TensorMap& tensors, const ModelConfig& c, const std::string& source) {
  if (!c.gated_mlp()) return;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    if (tensors.count(p + "ffn_gate.weight") != 0) continue;
    const auto it = tensors.find(p + "ffn_up.weight");
    if (it == tensors.end() || it->second.ndim() < 1 || it->second.dim(0) != 2 * c.d_mlp) {
      continue;  // bind_weights reports what is missing or misshapen
    }
    const Tensor fused = it->second;
    tensors[p + "ffn_gate.weight"] = fused.slice_rows(0, c.d_mlp);
    tensors[p + "ffn_up.weight"] = fused.slice_rows(c.d_mlp, 2 * c.d_mlp);
  }
}

}  // namespace glassbox::arch
