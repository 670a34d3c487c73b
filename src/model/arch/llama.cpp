#include "model/arch/llama.h"

#include <cmath>

namespace glassbox::arch {
namespace {

int64_t get_int(const GgufFile& gguf, const std::string& key) {
  return gguf.get(key).as_int(gguf.path() + ": metadata " + key);
}

int64_t get_int_or(const GgufFile& gguf, const std::string& key, int64_t fallback) {
  const GgufValue* v = gguf.find(key);
  return v ? v->as_int(gguf.path() + ": metadata " + key) : fallback;
}

double get_float_or(const GgufFile& gguf, const std::string& key, double fallback) {
  const GgufValue* v = gguf.find(key);
  return v ? v->as_float(gguf.path() + ": metadata " + key) : fallback;
}

}  // namespace

ModelConfig llama_config_from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  c.architecture = "llama";
  c.source_format = "gguf";
  c.d_model = get_int(gguf, "llama.embedding_length");
  c.d_mlp = get_int(gguf, "llama.feed_forward_length");
  c.n_layers = get_int(gguf, "llama.block_count");
  c.n_heads = get_int(gguf, "llama.attention.head_count");
  c.n_kv_heads = get_int_or(gguf, "llama.attention.head_count_kv", c.n_heads);
  c.n_ctx = get_int(gguf, "llama.context_length");
  c.norm_eps = get_float_or(gguf, "llama.attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = get_float_or(gguf, "llama.rope.freq_base", 10000.0);
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.d_head = get_int_or(gguf, "llama.attention.key_length", c.d_head);
  c.rope_dims = get_int_or(gguf, "llama.rope.dimension_count", c.d_head);
  c.rope_style = RopeStyle::kInterleaved;  // llama.cpp's converters permute Q/K for this
  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) {
    throw Error(ErrorCode::kFormat, gguf.path() + ": missing tensor token_embd.weight");
  }
  c.d_vocab = embd->shape.empty() ? 0 : embd->shape[0];
  if (const GgufValue* v = gguf.find("llama.vocab_size")) {
    const int64_t declared = v->as_int(gguf.path() + ": metadata llama.vocab_size");
    if (declared != c.d_vocab) {
      throw Error(ErrorCode::kFormat, gguf.path() + ": metadata llama.vocab_size is " +
                                          std::to_string(declared) + " but token_embd.weight has " +
                                          std::to_string(c.d_vocab) + " rows");
    }
  }
  c.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  validate_config(c, gguf.path());
  return c;
}

ModelConfig llama_config_from_llama2c(const Llama2cHeader& h) {
  ModelConfig c;
  c.architecture = "llama";
  c.source_format = "llama2c";
  c.d_model = h.dim;
  c.d_mlp = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.d_head = h.n_heads > 0 ? h.dim / h.n_heads : 0;
  c.d_vocab = h.vocab_size;
  c.n_ctx = h.seq_len;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.rope_dims = c.d_head;
  c.rope_style = RopeStyle::kInterleaved;
  c.tied_embeddings = h.shared_classifier;
  return c;
}

LlamaWeights bind_llama_weights(const ModelConfig& c, const TensorLookup& lookup,
                                const std::string& source) {
  auto need = [&](const std::string& name, const Shape& shape) {
    std::optional<Tensor> t = lookup(name);
    if (!t) throw Error(ErrorCode::kFormat, source + ": missing tensor " + name);
    if (t->shape() != shape) {
      throw Error(ErrorCode::kShape, source + ": tensor " + name + " has shape " +
                                         shape_str(t->shape()) + ", expected " + shape_str(shape));
    }
    return *t;
  };
  LlamaWeights w;
  w.tok_embd = need("token_embd.weight", {c.d_vocab, c.d_model});
  w.output_norm = need("output_norm.weight", {c.d_model});
  w.output = c.tied_embeddings ? w.tok_embd : need("output.weight", {c.d_vocab, c.d_model});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm = need(p + "attn_norm.weight", {c.d_model});
    lw.wq = need(p + "attn_q.weight", {c.q_dim(), c.d_model});
    lw.wk = need(p + "attn_k.weight", {c.kv_dim(), c.d_model});
    lw.wv = need(p + "attn_v.weight", {c.kv_dim(), c.d_model});
    lw.wo = need(p + "attn_output.weight", {c.d_model, c.q_dim()});
    lw.ffn_norm = need(p + "ffn_norm.weight", {c.d_model});
    lw.w_gate = need(p + "ffn_gate.weight", {c.d_mlp, c.d_model});
    lw.w_up = need(p + "ffn_up.weight", {c.d_mlp, c.d_model});
    lw.w_down = need(p + "ffn_down.weight", {c.d_model, c.d_mlp});
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace glassbox::arch
