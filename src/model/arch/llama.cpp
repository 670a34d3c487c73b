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

namespace {

// Which layers use the sliding window, as llama.cpp decides: the key
// <arch>.attention.sliding_window_pattern as a bool array (one per layer) or as a period p
// (layer l is local iff l % p < p - 1), else the architecture's default period.
std::vector<uint8_t> gguf_local_layers(const GgufFile& gguf, const std::string& a, int64_t n_layers,
                                       int64_t default_period) {
  const std::string key = a + ".attention.sliding_window_pattern";
  const std::string what = gguf.path() + ": metadata " + key;
  std::vector<uint8_t> local(static_cast<size_t>(n_layers), 1);
  const GgufValue* v = gguf.find(key);
  if (v != nullptr && v->type == GgufType::kArray) {
    const GgufArray& arr = v->as_array(what);
    if (static_cast<int64_t>(arr.items.size()) != n_layers) {
      throw Error(ErrorCode::kFormat, what + " has " + std::to_string(arr.items.size()) +
                                          " entries, expected one per layer (" +
                                          std::to_string(n_layers) + ")");
    }
    for (size_t l = 0; l < arr.items.size(); ++l) local[l] = arr.items[l].as_bool(what) ? 1 : 0;
    return local;
  }
  const int64_t period = v != nullptr ? v->as_int(what) : default_period;
  if (period < 0) throw Error(ErrorCode::kFormat, what + " must be >= 0");
  for (int64_t l = 0; l < n_layers; ++l) {
    local[static_cast<size_t>(l)] = period == 0 || l % period < period - 1 ? 1 : 0;
  }
  return local;
}

// <arch>.rope.scaling.type / .factor: "none" or "linear" (positions divided by the factor); other
// types change the frequencies in ways not implemented here, so they are refused by name.
void gguf_rope_scaling(const GgufFile& gguf, const std::string& a, ModelConfig& c) {
  const std::string type_key = a + ".rope.scaling.type";
  const GgufValue* type = gguf.find(type_key);
  const std::string t =
      type != nullptr ? type->as_string(gguf.path() + ": metadata " + type_key) : "linear";
  double factor = gguf_float_or(gguf, a + ".rope.scaling.factor", 0.0);
  if (factor == 0.0) factor = gguf_float_or(gguf, a + ".rope.scale_linear", 0.0);
  if (t == "none" || factor == 0.0 || factor == 1.0) return;
  if (t != "linear") {
    throw Error(ErrorCode::kUnsupported, gguf.path() + ": metadata " + type_key + " '" + t +
                                             "' is not supported (supported: none, linear)");
  }
  c.rope_linear_factor = factor;
}

bool has_tensor(const GgufFile& gguf, const std::string& name) {
  return gguf.find_tensor(name) != nullptr;
}

}  // namespace

// The llama family in GGUF (llama.cpp's keys and tensor names): llama (also Mistral), qwen2,
// qwen3, phi3, gemma2, gemma3 differ only in the flags set here.
ModelConfig llama_family_config_from_gguf(const GgufFile& gguf, const std::string& a) {
  ModelConfig c;
  c.architecture = a;
  c.source_format = "gguf";
  c.d_model = gguf_int(gguf, a + ".embedding_length");
  c.d_mlp = gguf_int(gguf, a + ".feed_forward_length");
  c.n_layers = gguf_int(gguf, a + ".block_count");
  c.n_heads = gguf_int(gguf, a + ".attention.head_count");
  c.n_kv_heads = gguf_int_or(gguf, a + ".attention.head_count_kv", c.n_heads);
  c.n_ctx = gguf_int(gguf, a + ".context_length");
  c.norm_eps = gguf_float_or(gguf, a + ".attention.layer_norm_rms_epsilon", 1e-5);
  c.rope_theta = gguf_float_or(gguf, a + ".rope.freq_base", 10000.0);
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  c.d_head = gguf_int_or(gguf, a + ".attention.key_length", c.d_head);
  c.rope_dims = gguf_int_or(gguf, a + ".rope.dimension_count", c.d_head);
  // llama.cpp's converters permute Q/K rows to adjacent pairs for llama only; the others keep
  // the Hugging Face (NeoX) halves.
  c.rope_style = a == "llama" ? RopeStyle::kInterleaved : RopeStyle::kNeox;
  c.d_vocab = gguf_vocab_rows(gguf, a);
  c.tied_embeddings = !has_tensor(gguf, "output.weight");
  c.rope_freq_factors = gguf_rope_freq_factors(gguf);
  gguf_rope_scaling(gguf, a, c);
  // Biases are optional per tensor in llama.cpp; a file has them for every layer or none.
  c.qkv_bias = has_tensor(gguf, "blk.0.attn_q.bias");
  c.out_bias = has_tensor(gguf, "blk.0.attn_output.bias");
  // Mistral (llama) and Phi-3 state a window that llama.cpp's llama and phi3 graphs do not apply;
  // glassbox applies it on every layer, as Hugging Face does (see docs/formats.md).
  c.sliding_window = gguf_int_or(gguf, a + ".attention.sliding_window", 0);
  set_family_flags(c);
  if (a == "gemma2" || a == "gemma3") {
    const int64_t q_pre = gguf_query_pre_attn_scalar(c);
    c.attn_scale = q_pre > 0 ? 1.0 / std::sqrt(static_cast<double>(q_pre)) : 0.0;
  }
  if (a == "gemma2") {  // llama.cpp's defaults when the keys are absent
    c.attn_softcap = gguf_float_or(gguf, a + ".attn_logit_softcapping", 50.0);
    c.final_softcap = gguf_float_or(gguf, a + ".final_logit_softcapping", 30.0);
    c.sliding_window = gguf_int_or(gguf, a + ".attention.sliding_window", 4096);
    c.local_layers = gguf_local_layers(gguf, a, c.n_layers, 2);
    c.rope_theta_local = gguf_float_or(gguf, a + ".rope.freq_base_swa", 0.0);
  }
  if (a == "gemma3") {
    c.final_softcap = gguf_float_or(gguf, a + ".final_logit_softcapping", 0.0);
    if (c.sliding_window > 0) {
      c.local_layers = gguf_local_layers(gguf, a, c.n_layers, 6);
      c.rope_theta_local = gguf_float_or(gguf, a + ".rope.freq_base_swa", 10000.0);
    }
  }
  validate_config(c, gguf.path());
  return c;
}

void set_family_flags(ModelConfig& c) {
  const std::string& a = c.architecture;
  if (a == "qwen3" || a == "gemma3") c.qk_norm = true;
  if (a == "gemma2" || a == "gemma3") {
    c.mlp = MlpType::kGatedGelu;
    c.post_norms = true;
    c.scale_embeddings = true;
  }
}

int64_t gguf_query_pre_attn_scalar(const ModelConfig& c) {
  const bool big = c.n_layers == (c.architecture == "gemma2" ? 46 : 62);
  return big && c.n_heads > 0 ? c.d_model / c.n_heads : c.d_head;
}

ModelConfig llama_config_from_gguf(const GgufFile& gguf) {
  return llama_family_config_from_gguf(gguf, "llama");
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
