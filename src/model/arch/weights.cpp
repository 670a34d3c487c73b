// bind_weights: the one place where named tensors become LayerWeights, for every architecture.
#include <optional>

#include "model/arch/arch.h"

namespace glassbox::arch {

BoundWeights bind_weights(const ModelConfig& c, const TensorMap& tensors,
                          const std::string& source) {
  auto need = [&](const std::string& name, const Shape& shape) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw Error(ErrorCode::kFormat, source + ": missing tensor " + name);
    if (it->second.shape() != shape) {
      throw Error(ErrorCode::kShape, source + ": tensor " + name + " has shape " +
                                         shape_str(it->second.shape()) + ", expected " +
                                         shape_str(shape));
    }
    return it->second;
  };
  auto maybe = [&](bool wanted, const std::string& name, const Shape& shape) {
    return wanted ? need(name, shape) : Tensor();
  };
  // Norm weights and biases are read as plain floats by the forward pass; they are small, so
  // other float types are converted once here.
  auto vec = [&](bool wanted, const std::string& name, int64_t n) {
    const Tensor t = maybe(wanted, name, {n});
    return !wanted || t.dtype() == DType::kF32 ? t : t.to_f32();
  };
  const bool layer_norm = c.norm == NormType::kLayer;
  BoundWeights w;
  w.tok_embd = need("token_embd.weight", {c.d_vocab, c.d_model});
  w.pos_embd =
      maybe(c.position == PositionType::kLearned, "position_embd.weight", {c.n_ctx, c.d_model});
  w.output_norm = vec(true, "output_norm.weight", c.d_model);
  w.output_norm_b = vec(layer_norm, "output_norm.bias", c.d_model);
  w.output = c.tied_embeddings ? w.tok_embd : need("output.weight", {c.d_vocab, c.d_model});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = vec(true, p + "attn_norm.weight", c.d_model);
    lw.attn_norm_b = vec(layer_norm, p + "attn_norm.bias", c.d_model);
    lw.wq = need(p + "attn_q.weight", {c.q_dim(), c.d_model});
    lw.wk = need(p + "attn_k.weight", {c.kv_dim(), c.d_model});
    lw.wv = need(p + "attn_v.weight", {c.kv_dim(), c.d_model});
    lw.bq = vec(c.qkv_bias, p + "attn_q.bias", c.q_dim());
    lw.bk = vec(c.qkv_bias, p + "attn_k.bias", c.kv_dim());
    lw.bv = vec(c.qkv_bias, p + "attn_v.bias", c.kv_dim());
    lw.q_norm = vec(c.qk_norm, p + "attn_q_norm.weight", c.d_head);
    lw.k_norm = vec(c.qk_norm, p + "attn_k_norm.weight", c.d_head);
    lw.wo = need(p + "attn_output.weight", {c.d_model, c.q_dim()});
    lw.bo = vec(c.out_bias, p + "attn_output.bias", c.d_model);
    lw.attn_post_norm = vec(c.post_norms, p + "post_attention_norm.weight", c.d_model);
    lw.ffn_norm = vec(true, p + "ffn_norm.weight", c.d_model);
    lw.ffn_norm_b = vec(layer_norm, p + "ffn_norm.bias", c.d_model);
    lw.w_gate = maybe(c.gated_mlp(), p + "ffn_gate.weight", {c.d_mlp, c.d_model});
    lw.w_up = need(p + "ffn_up.weight", {c.d_mlp, c.d_model});
    lw.b_up = vec(c.mlp_bias, p + "ffn_up.bias", c.d_mlp);
    lw.w_down = need(p + "ffn_down.weight", {c.d_model, c.d_mlp});
    lw.b_down = vec(c.mlp_bias, p + "ffn_down.bias", c.d_model);
    lw.ffn_post_norm = vec(c.post_norms, p + "post_ffw_norm.weight", c.d_model);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace glassbox::arch
