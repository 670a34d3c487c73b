#include <cmath>

#include "model/arch/arch.h"
#include "model/arch/gguf_keys.h"

namespace glassbox::arch {
int64_t gguf_vocab_rows(const GgufFile& gguf, const std::string& arch) {
  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) {
    throw Error(ErrorCode::kFormat, gguf.path() + ": missing tensor token_embd.weight");
  }
  const int64_t rows = embd->shape.empty() ? 0 : embd->shape[0];
  if (const GgufValue* v = gguf.find(arch + ".vocab_size")) {
    const int64_t declared = v->as_int(gguf.path() + ": metadata " + arch + ".vocab_size");
    if (declared != rows) {
      throw Error(ErrorCode::kFormat, gguf.path() + ": metadata " + arch + ".vocab_size is " +
                                          std::to_string(declared) + " but token_embd.weight has " +
                                          std::to_string(rows) + " rows");
    }
  }
  return rows;
}

// Llama 3.x GGUFs carry their rope scaling as the tensor rope_freqs.weight: one F32 divisor per
// frequency (llama.cpp: angle = pos * theta^(-2i/d) / factor[i]).
std::vector<double> gguf_rope_freq_factors(const GgufFile& gguf) {
  const GgufTensorInfo* info = gguf.find_tensor("rope_freqs.weight");
  if (info == nullptr) return {};
  if (info->dtype != DType::kF32 || info->shape.size() != 1) {
    throw Error(ErrorCode::kFormat,
                gguf.path() + ": tensor rope_freqs.weight must be a 1-D F32 vector");
  }
  const Tensor t = gguf.tensor("rope_freqs.weight");
  const float* f = t.data<float>();
  return std::vector<double>(f, f + t.numel());
}

ModelConfig llama_config_from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  c.architecture = "llama";
  c.source_format = "gguf";
  c.d_model = gguf_int(gguf, "llama.embedding_length");
  c.d_mlp = gguf_int(gguf, "llama.feed_forward_length");
  c.n_layers = gguf_int(gguf, "llama.block_count");
  c.n_heads = gguf_int(gguf, "llama.attention.head_count");
  c.n_kv_heads = gguf_int_or(gguf, "llama.attention.head_count_kv", c.n_heads);
  c.n_ctx = gguf_int(gguf, "llama.context_length");
  c.norm_eps = gguf_float_or(gguf, "llama.attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = gguf_float_or(gguf, "llama.rope.freq_base", 10000.0);
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.d_head = gguf_int_or(gguf, "llama.attention.key_length", c.d_head);
  c.rope_dims = gguf_int_or(gguf, "llama.rope.dimension_count", c.d_head);
  c.rope_style = RopeStyle::kInterleaved;  // llama.cpp's converters permute Q/K for this
  c.d_vocab = gguf_vocab_rows(gguf, "llama");
  c.tied_embeddings = gguf.find_tensor("output.weight") == nullptr;
  c.rope_freq_factors = gguf_rope_freq_factors(gguf);
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

}  // namespace glassbox::arch
