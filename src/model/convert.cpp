#include "model/convert.h"

#include <cstring>
#include <map>

#include "core/half.h"
#include "model/convert_internal.h"
#include "ops/ops.h"
#include "ops/quant.h"

namespace glassbox {
namespace convert_detail {

Plan plan_for(const std::string& type) {
  static const std::map<std::string, Plan> kPlans = {
      {"f32", {DType::kF32, DType::kF32, false, 0}},
      {"f16", {DType::kF16, DType::kF16, false, 1}},
      {"bf16", {DType::kBF16, DType::kBF16, false, 32}},
      {"q8_0", {DType::kQ8_0, DType::kQ8_0, false, 7}},
      {"q4_0", {DType::kQ4_0, DType::kQ4_0, false, 2}},
      {"q4_k_m", {DType::kQ4_K, DType::kQ6_K, true, 15}},
      {"q5_k_m", {DType::kQ5_K, DType::kQ6_K, true, 17}},
      {"q6_k", {DType::kQ6_K, DType::kQ6_K, false, 18}},
  };
  const auto it = kPlans.find(type);
  if (it == kPlans.end()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--type '" + type +
                    "' is not one of f32, f16, bf16, q8_0, q4_0, q4_k_m, "
                    "q5_k_m, q6_k");
  }
  return it->second;
}

// llama.cpp's use_more_bits: in the _m mixes, attn_v and ffn_down of the first and last eighth of
// the layers and of every third layer between get more bits.
static bool more_bits_layer(int64_t l, int64_t n) {
  return l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
}

// Owned F32 copy of any tensor (dequantizing block types).
Tensor as_f32(const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  const int64_t k = t.ndim() ? t.dim(-1) : 1;
  const int64_t rows = k ? t.numel() / k : 0;
  Tensor out = Tensor::zeros(DType::kF32, t.shape());
  ops::dequantize_rows(t.dtype(), t.raw(), k, 0, rows, out.mutable_data<float>());
  return out;
}

Tensor retype(const Tensor& t, DType type, ThreadPool& pool) {
  const Tensor f = as_f32(t);
  if (type == DType::kF32) return f;
  const int64_t k = f.ndim() ? f.dim(-1) : 1;
  if (k % dtype_info(type).block_size != 0) {
    // Rows that are no whole number of blocks fall back as llama.cpp's quantizer does
    // (llama_tensor_get_type): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when the row is
    // not a whole number of 32-element blocks either (where llama.cpp refuses Q8_0 and Q4_0).
    type = type == DType::kQ4_K   ? DType::kQ5_0
           : type == DType::kQ5_K ? DType::kQ5_1
           : type == DType::kQ6_K ? DType::kQ8_0
                                  : type;
    if (k % dtype_info(type).block_size != 0) type = DType::kF16;
  }
  Tensor out = Tensor::zeros(type, f.shape());
  encode_rows(type, f.data<float>(), k ? f.numel() / k : 0, k, out.mutable_raw(), pool);
  return out;
}

// Each row is encoded from its own floats alone, so splitting the rows between threads gives the
// bytes one thread would (tests/unit/convert_threads_test.cpp checks it).
void encode_rows(DType type, const float* src, int64_t rows, int64_t k, void* dst,
                 ThreadPool& pool) {
  const size_t row_bytes = dtype_bytes(type, k);
  auto* out = static_cast<uint8_t*>(dst);
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = src + r * k;
      uint8_t* y = out + static_cast<size_t>(r) * row_bytes;
      if (type == DType::kF16 || type == DType::kBF16) {
        auto* h = reinterpret_cast<uint16_t*>(y);
        for (int64_t i = 0; i < k; ++i)
          h[i] = type == DType::kF16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
      } else {
        ops::quantize_row(type, x, y, k);
      }
    }
  });
}

Tensor transpose_f32(const Tensor& t) {
  const Tensor f = as_f32(t);
  const int64_t rows = f.dim(0), cols = f.dim(1);
  Tensor out = Tensor::zeros(DType::kF32, {cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      out.mutable_data<float>()[c * rows + r] = f.data<float>()[r * cols + c];
  return out;
}

// Q/K rows: interleaved pairs (GGUF, llama2.c) <-> rotate-half (HF). Row j of a head in
// rotate-half order is row (j < half ? 2j : 2(j - half) + 1) in interleaved order.
static Tensor permute_heads(const Tensor& w, int64_t n_heads, int64_t d_head, bool to_halves) {
  const Tensor f = as_f32(w);
  const int64_t cols = f.ndim() == 2 ? f.dim(1) : 1, half = d_head / 2;
  Tensor out = Tensor::zeros(DType::kF32, f.shape());
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t j = 0; j < d_head; ++j) {
      const int64_t inter = j < half ? 2 * j : 2 * (j - half) + 1;
      const int64_t from = h * d_head + (to_halves ? inter : j);
      const int64_t to = h * d_head + (to_halves ? j : inter);
      std::memcpy(out.mutable_data<float>() + to * cols, f.data<float>() + from * cols,
                  static_cast<size_t>(cols) * 4);
    }
  }
  return out;
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  std::vector<Tensor> f;
  int64_t rows = 0;
  for (const Tensor& p : parts) {
    f.push_back(as_f32(p));
    rows += p.dim(0);
  }
  Shape shape = f[0].shape();
  shape[0] = rows;
  Tensor out = Tensor::zeros(DType::kF32, shape);
  size_t offset = 0;
  for (const Tensor& p : f) {
    std::memcpy(static_cast<char*>(out.mutable_raw()) + offset, p.raw(), p.nbytes());
    offset += p.nbytes();
  }
  return out;
}

const Tensor& find_named(const Named& named, const std::string& name) {
  for (const auto& [n, t] : named)
    if (n == name) return t;
  GLASSBOX_ASSERT(false);
}

Named canonical(const Model& m, RopeStyle want) {
  const ModelConfig& c = m.config();
  const bool permute = c.position == PositionType::kRope && c.rope_style != want;
  const bool to_halves = want == RopeStyle::kNeox;
  Named out;
  auto put = [&](const std::string& name, const Tensor& t) {
    if (t.defined() && t.numel() > 0) out.emplace_back(name, t);
  };
  put("token_embd.weight", m.token_embedding());
  if (c.position == PositionType::kLearned) put("position_embd.weight", m.position_embedding());
  put("output_norm.weight", m.final_norm());
  if (c.norm == NormType::kLayer) put("output_norm.bias", m.final_norm_bias());
  if (!c.tied_embeddings) put("output.weight", m.unembedding());
  for (size_t l = 0; l < m.layers().size(); ++l) {
    const LayerWeights& w = m.layers()[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    const auto qk = [&](const Tensor& t, int64_t heads) {
      return permute && t.defined() ? permute_heads(t, heads, c.d_head, to_halves) : t;
    };
    put(p + "attn_norm.weight", w.attn_norm);
    put(p + "attn_norm.bias", w.attn_norm_b);
    put(p + "attn_q.weight", qk(w.wq, c.n_heads));
    put(p + "attn_q.bias", qk(w.bq, c.n_heads));
    put(p + "attn_k.weight", qk(w.wk, c.n_kv_heads));
    put(p + "attn_k.bias", qk(w.bk, c.n_kv_heads));
    put(p + "attn_v.weight", w.wv);
    put(p + "attn_v.bias", w.bv);
    put(p + "attn_q_norm.weight", w.q_norm);
    put(p + "attn_k_norm.weight", w.k_norm);
    put(p + "attn_output.weight", w.wo);
    put(p + "attn_output.bias", w.bo);
    put(p + "post_attention_norm.weight", w.attn_post_norm);
    put(p + "ffn_norm.weight", w.ffn_norm);
    put(p + "ffn_norm.bias", w.ffn_norm_b);
    put(p + "ffn_gate.weight", w.w_gate);
    put(p + "ffn_up.weight", w.w_up);
    put(p + "ffn_up.bias", w.b_up);
    put(p + "ffn_down.weight", w.w_down);
    put(p + "ffn_down.bias", w.b_down);
    put(p + "post_ffw_norm.weight", w.ffn_post_norm);
  }
  return out;
}

DType dtype_for(const std::string& name, const Tensor& t, const Plan& plan, int64_t n_layers,
                bool has_output) {
  if (t.ndim() < 2) return DType::kF32;  // norms and biases stay exact
  const DType base = plan.base;
  if (base == DType::kF32 || base == DType::kF16 || base == DType::kBF16) return base;
  // llama.cpp's llama_tensor_get_type for the quantized file types:
  if (name == "position_embd.weight") return DType::kF32;  // never quantized
  if (name == "output.weight" || (!has_output && name == "token_embd.weight")) {
    // The classifier (the tied embedding when there is none) gets Q6_K, Q8_0 stays Q8_0, and
    // Q8_0 when its rows are no whole number of the base type's blocks.
    if (base == DType::kQ8_0 || t.dim(-1) % dtype_info(base).block_size != 0) return DType::kQ8_0;
    return DType::kQ6_K;
  }
  if (!plan.mixed) return base;
  if (name.ends_with("attn_qkv.weight")) {  // fused q/k/v (gpt2): one step up
    return base == DType::kQ4_K ? DType::kQ5_K : DType::kQ6_K;
  }
  if (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight")) {
    const int64_t layer = std::stoll(name.substr(4, name.find('.', 4) - 4));
    if (more_bits_layer(layer, n_layers)) return plan.more_bits;
  }
  return base;
}

}  // namespace convert_detail

void convert_model(const Model& model, const std::string& out_path, const ConvertOptions& options,
                   const std::string& vocab_path) {
  using namespace convert_detail;
  const Plan plan = plan_for(options.type);
  model.check_computable();  // every weight must dequantize (a Q2_K file cannot be converted)
  ThreadPool pool(options.n_threads);
  if (out_path.ends_with(".gguf")) {
    write_gguf_model(model, out_path, plan, vocab_path, pool);
  } else if (out_path.ends_with(".bin")) {
    write_llama2c_model(model, out_path, plan);
  } else {
    write_hf_model(model, out_path, plan, pool);
  }
}

void convert_vocab(const std::string& vocab_path, const std::string& out_path) {
  if (!out_path.ends_with(".gguf")) {
    throw Error(ErrorCode::kInvalidArgument,
                out_path + ": a vocabulary-only file is GGUF (name it *.gguf)");
  }
  convert_detail::write_gguf_vocab(vocab_path, out_path);
}

}  // namespace glassbox
