#include "model/session.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "ops/ops.h"

namespace glassbox {
namespace {

// Queries per attention task: one sgemm's rows. Bounds the streaming path's scratch to
// kAttnChunk x n_keys per thread and gives the pool heads x chunks tasks to share.
constexpr int64_t kAttnChunk = 64;

// The first key the query at absolute position `pos` sees: pos - window + 1 under a sliding
// window (window > 0), else 0 (causal: keys [first_key, pos]).
int64_t first_key(int64_t window, int64_t pos) {
  return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
}

// A [rows, width] tensor of `dtype` whose first `kept` rows are those of `old` (undefined: none
// kept).
Tensor grow_rows(const Tensor& old, DType dtype, int64_t rows, int64_t width, int64_t kept) {
  Tensor t = Tensor::zeros(dtype, {rows, width});
  if (old.defined()) std::memcpy(t.mutable_raw(), old.raw(), dtype_bytes(dtype, kept * width));
  return t;
}

// Element `i` of a KV-cache tensor (F32, F16 or BF16: one element per block).
char* kv_at(const Tensor& cache, int64_t i) {
  return static_cast<char*>(cache.mutable_raw()) +
         static_cast<size_t>(i) * dtype_info(cache.dtype()).block_bytes;
}

}  // namespace
Session::Session(const Model& model, SessionOptions options)
    : model_(model),
      options_(options),
      pool_(options.n_threads),
      hooks_(model.config()),
      inv_freq_(rope_inv_freq(model.config())),
      inv_freq_local_(rope_inv_freq(model.config(), /*local=*/true)) {
  model_.check_computable();
  const ModelConfig& c = model_.config();
  n_ctx_ = options_.n_ctx > 0 ? options_.n_ctx : c.n_ctx;
  if (!ops::kv_dtype_supported(options_.kv_type)) {
    throw Error(ErrorCode::kInvalidArgument, std::string("KV cache type ") +
                                                 dtype_name(options_.kv_type) +
                                                 " is not supported (f32, f16 or bf16)");
  }
  if (n_ctx_ > c.n_ctx && c.position != PositionType::kRope) {
    throw Error(ErrorCode::kInvalidArgument, "context length " + std::to_string(n_ctx_) +
                                                 " exceeds the model's " + std::to_string(c.n_ctx) +
                                                 " learned positions");
  }
  // The KV cache starts empty: forward() grows it to the tokens it holds (reserve_kv).
  k_cache_.resize(static_cast<size_t>(c.n_layers));
  v_cache_.resize(static_cast<size_t>(c.n_layers));
  // All parallelism is the pool's (ops call single-threaded sgemm per slice of work): OpenBLAS's
  // own threads would spin against ours. OpenBLAS keeps one process-wide thread count.
  openblas_set_num_threads(1);
}

void Session::reserve(int64_t n) {
  if (n <= capacity_) return;
  const ModelConfig& c = model_.config();
  const auto sz = [n](int64_t width) { return static_cast<size_t>(n * width); };
  x_.resize(sz(c.d_model));
  xn_.resize(sz(c.d_model));
  scale_.resize(sz(1));
  if (c.qk_norm) qk_scale_.resize(sz(std::max(c.n_heads, c.n_kv_heads)));
  q_.resize(sz(c.q_dim()));
  k_.resize(sz(c.kv_dim()));
  v_.resize(sz(c.kv_dim()));
  z_.resize(sz(c.q_dim()));
  tmp_.resize(sz(c.d_model));
  gate_.resize(sz(c.d_mlp));
  up_.resize(sz(c.d_mlp));
  post_.resize(sz(c.d_mlp));
  capacity_ = n;
}

// Doubling keeps the rows copied over a sequence of n tokens below 2n, whatever the call sizes.
// One buffer at a time, so growth holds one new buffer beside the old cache; if an allocation
// throws, every layer still has at least kv_capacity_ rows and the sequence is intact. Only
// forward's attention reads the cache, through pointers it takes after this ran (hooks see k_/v_,
// never the cache), so no pointer into an old buffer outlives it.
void Session::reserve_kv(int64_t n_tokens) {
  n_tokens = std::min(n_tokens, n_ctx_);
  if (n_tokens <= kv_capacity_) return;
  const int64_t rows = std::min(n_ctx_, std::max({n_tokens, 2 * kv_capacity_, kMinKvRows}));
  const int64_t width = model_.config().kv_dim();
  for (size_t l = 0; l < k_cache_.size(); ++l) {
    k_cache_[l] = grow_rows(k_cache_[l], options_.kv_type, rows, width, n_past_);
    v_cache_[l] = grow_rows(v_cache_[l], options_.kv_type, rows, width, n_past_);
  }
  kv_capacity_ = rows;
}

int64_t Session::kv_bytes() const {
  int64_t bytes = 0;
  for (size_t l = 0; l < k_cache_.size(); ++l) {
    if (k_cache_[l].defined()) bytes += static_cast<int64_t>(k_cache_[l].nbytes());
    if (v_cache_[l].defined()) bytes += static_cast<int64_t>(v_cache_[l].nbytes());
  }
  return bytes;
}

void Session::fire(HookPoint point, int layer, float* data, Shape shape) {
  Tensor view = Tensor::view(DType::kF32, std::move(shape), data);
  hooks_.fire(point, layer, n_past_, view);
}

Tensor Session::forward(std::span<const int32_t> tokens, LogitsMode mode) {
  return forward_layers(tokens, mode, static_cast<int>(model_.config().n_layers));
}

void Session::forward_partial(std::span<const int32_t> tokens, int stop_at_layer) {
  const int n_layers = static_cast<int>(model_.config().n_layers);
  if (stop_at_layer < 0 || stop_at_layer > n_layers) {
    throw Error(ErrorCode::kInvalidArgument, "stop_at_layer " + std::to_string(stop_at_layer) +
                                                 " is outside 0.." + std::to_string(n_layers));
  }
  forward_layers(tokens, LogitsMode::kNone, stop_at_layer);
}

Tensor Session::forward_layers(std::span<const int32_t> tokens, LogitsMode mode, int n_layers) {
  const ModelConfig& c = model_.config();
  if (n_past_ > 0 && cache_layers_ >= 0 && n_layers > cache_layers_) {
    throw Error(ErrorCode::kInvalidArgument,
                "the cache holds only blocks 0.." + std::to_string(cache_layers_ - 1) +
                    " after a partial forward; reset() before running block " +
                    std::to_string(cache_layers_));
  }
  if (tokens.empty()) throw Error(ErrorCode::kInvalidArgument, "forward: no tokens given");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= c.d_vocab) {
      throw Error(ErrorCode::kInvalidArgument,
                  "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                      " is out of range [0, " + std::to_string(c.d_vocab) + ")");
    }
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n_past_ + n > n_ctx_) {
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(n) + " tokens after " + std::to_string(n_past_) +
                    " exceed the context length " + std::to_string(n_ctx_));
  }
  reserve(n);
  reserve_kv(n_past_ + n);
  Tensor logits = (hooks_.size() != 0 || options_.force_hook_sites)
                      ? run<true>(tokens, mode, n_layers)
                      : run<false>(tokens, mode, n_layers);
  if (n_layers < c.n_layers) {
    cache_layers_ = cache_layers_ < 0 ? n_layers : std::min(cache_layers_, n_layers);
  }
  n_past_ += n;
  return logits;
}

template <bool kHooks>
Tensor Session::run(std::span<const int32_t> tokens, LogitsMode mode, int n_layers) {
  const ModelConfig& c = model_.config();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const Tensor& embd = model_.token_embedding();
  for (int64_t i = 0; i < n; ++i) {
    ops::dequantize_rows(embd.dtype(), embd.raw(), c.d_model, tokens[i], tokens[i] + 1,
                         x_.data() + i * c.d_model);
  }
  if (c.scale_embeddings) {  // Gemma; TL folds the factor into W_E, so hook_embed sees it
    const float k = std::sqrt(static_cast<float>(c.d_model));
    for (int64_t i = 0; i < n * c.d_model; ++i) x_[static_cast<size_t>(i)] *= k;
  }
  site<kHooks>(HookPoint::kEmbed, -1, x_.data(), {n, c.d_model});
  if (c.position == PositionType::kLearned) {
    const Tensor& pos = model_.position_embedding();
    ops::dequantize_rows(pos.dtype(), pos.raw(), c.d_model, n_past_, n_past_ + n, tmp_.data());
    site<kHooks>(HookPoint::kPosEmbed, -1, tmp_.data(), {n, c.d_model});
    add_rows(x_.data(), tmp_.data(), n, c.d_model);
  }
  if (c.position == PositionType::kRope) {  // tables shared by every layer of this call
    fill_rope_tables(inv_freq_, n, rope_cos_, rope_sin_);
    if (c.rope_theta_local > 0.0)
      fill_rope_tables(inv_freq_local_, n, rope_cos_local_, rope_sin_local_);
  }
  for (int layer = 0; layer < n_layers; ++layer) {
    site<kHooks>(HookPoint::kResidPre, layer, x_.data(), {n, c.d_model});
    attention_block<kHooks>(layer, n);
    mlp_block<kHooks>(layer, n);
  }
  if (n_layers < c.n_layers) return Tensor();  // forward_partial
  norm<kHooks>(HookPoint::kLnFinalScale, HookPoint::kLnFinalNormalized, -1, n, model_.final_norm(),
               model_.final_norm_bias());
  if (mode == LogitsMode::kNone) return Tensor();
  const int64_t first = mode == LogitsMode::kLast ? n - 1 : 0;
  Tensor logits = Tensor::zeros(DType::kF32, {n - first, c.d_vocab});
  ops::matmul_wt(xn_.data() + first * c.d_model, n - first, c.d_model, model_.unembedding(),
                 logits.mutable_data<float>(), pool_);
  if (c.final_softcap > 0.0) {
    ops::softcap(logits.mutable_data<float>(), logits.numel(), static_cast<float>(c.final_softcap));
  }
  return logits;
}

void Session::fill_rope_tables(const std::vector<double>& inv_freq, int64_t n,
                               std::vector<float>& cos_t, std::vector<float>& sin_t) {
  const auto n_freq = static_cast<int64_t>(inv_freq.size());
  cos_t.resize(static_cast<size_t>(n * n_freq));
  sin_t.resize(static_cast<size_t>(n * n_freq));
  for_rows(n, [&](int64_t r0, int64_t r1) {
    ops::rope_table(inv_freq.data(), n_freq, n_past_ + r0, r1 - r0, cos_t.data() + r0 * n_freq,
                    sin_t.data() + r0 * n_freq);
  });
}

// TL's hook semantics differ by norm: RMSNorm's hook_normalized is x / scale before the weight,
// LayerNorm's is the full output (x - mean) / scale * w + b.
template <bool kHooks>
void Session::norm(HookPoint scale_point, HookPoint normalized_point, int layer, int64_t n,
                   const Tensor& weight, const Tensor& bias) {
  const ModelConfig& c = model_.config();
  const int64_t d = c.d_model;
  float* x = x_.data();
  float* xn = xn_.data();
  float* scale = scale_.data();
  if (c.norm == NormType::kRms) {
    rms_rows<kHooks>(scale_point, normalized_point, layer, x, xn, n, 0, d, weight, scale);
    return;
  }
  for_rows(n, [&](int64_t r0, int64_t r1) {
    ops::center_rows(x + r0 * d, r1 - r0, d, xn + r0 * d);
    ops::rms_scale(xn + r0 * d, r1 - r0, d, c.norm_eps, scale + r0);
  });
  site<kHooks>(scale_point, layer, scale, {n, 1});
  for_rows(n, [&](int64_t r0, int64_t r1) {
    ops::divide_rows(xn + r0 * d, r1 - r0, d, scale + r0, xn + r0 * d);
    ops::mul_columns(xn + r0 * d, r1 - r0, d, weight.data<float>());
    ops::add_columns(xn + r0 * d, r1 - r0, d, bias.data<float>());
  });
  site<kHooks>(normalized_point, layer, xn, {n, d});
}

// RMSNorm of n positions x `heads` rows of width d, src -> dst (may alias). heads == 0: one row
// per position (hooks [n, 1] and [n, d]); else per-head q/k norms (hooks [n, heads, 1] and
// [n, heads, d]). hook_normalized is before the weight, as TL's.
template <bool kHooks>
void Session::rms_rows(HookPoint scale_point, HookPoint normalized_point, int layer,
                       const float* src, float* dst, int64_t n, int64_t heads, int64_t d,
                       const Tensor& weight, float* scale) {
  const double eps = model_.config().norm_eps;
  const int64_t rows = n * std::max<int64_t>(heads, 1);
  // A hook may rewrite the scale, so it fires before the division that uses it.
  for_rows(rows, [&](int64_t r0, int64_t r1) {
    ops::rms_scale(src + r0 * d, r1 - r0, d, eps, scale + r0);
  });
  if (heads == 0) {
    site<kHooks>(scale_point, layer, scale, {n, 1});
  } else {
    site<kHooks>(scale_point, layer, scale, {n, heads, 1});
  }
  for_rows(rows, [&](int64_t r0, int64_t r1) {
    ops::divide_rows(src + r0 * d, r1 - r0, d, scale + r0, dst + r0 * d);
  });
  if (heads == 0) {
    site<kHooks>(normalized_point, layer, dst, {n, d});
  } else {
    site<kHooks>(normalized_point, layer, dst, {n, heads, d});
  }
  for_rows(rows, [&](int64_t r0, int64_t r1) {
    ops::mul_columns(dst + r0 * d, r1 - r0, d, weight.data<float>());
  });
}

void Session::for_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  constexpr int64_t kParallelRows = 32;
  if (n < kParallelRows) {
    fn(0, n);
  } else {
    pool_.parallel_for(n, fn);
  }
}

void Session::add_rows(float* y, const float* x, int64_t n, int64_t d) {
  for_rows(
      n, [&](int64_t r0, int64_t r1) { ops::add_inplace(y + r0 * d, x + r0 * d, (r1 - r0) * d); });
}

// y[n, m] = x @ w^T (+ b when the model has that bias).
void Session::linear(const float* x, int64_t n, int64_t k, const Tensor& w, const Tensor& b,
                     float* y) {
  ops::matmul_wt(x, n, k, w, y, pool_);
  if (b.defined()) ops::add_columns(y, n, w.dim(0), b.data<float>());
}

template <bool kHooks>
void Session::attention_block(int layer, int64_t n) {
  const ModelConfig& c = model_.config();
  const LayerWeights& w = model_.layers()[static_cast<size_t>(layer)];
  norm<kHooks>(HookPoint::kLn1Scale, HookPoint::kLn1Normalized, layer, n, w.attn_norm,
               w.attn_norm_b);
  linear(xn_.data(), n, c.d_model, w.wq, w.bq, q_.data());
  linear(xn_.data(), n, c.d_model, w.wk, w.bk, k_.data());
  linear(xn_.data(), n, c.d_model, w.wv, w.bv, v_.data());
  site<kHooks>(HookPoint::kAttnQ, layer, q_.data(), {n, c.n_heads, c.d_head});
  site<kHooks>(HookPoint::kAttnK, layer, k_.data(), {n, c.n_kv_heads, c.d_head});
  site<kHooks>(HookPoint::kAttnV, layer, v_.data(), {n, c.n_kv_heads, c.d_head});
  if (c.qk_norm) {
    rms_rows<kHooks>(HookPoint::kAttnQNormScale, HookPoint::kAttnQNormNormalized, layer, q_.data(),
                     q_.data(), n, c.n_heads, c.d_head, w.q_norm, qk_scale_.data());
    rms_rows<kHooks>(HookPoint::kAttnKNormScale, HookPoint::kAttnKNormNormalized, layer, k_.data(),
                     k_.data(), n, c.n_kv_heads, c.d_head, w.k_norm, qk_scale_.data());
  }
  if (c.position == PositionType::kRope) {
    const bool interleaved = c.rope_style == RopeStyle::kInterleaved;
    const auto n_freq = static_cast<int64_t>(inv_freq_.size());
    const bool own_table = c.rope_theta_local > 0.0 && c.is_local(layer);
    const std::vector<float>& cos_t = own_table ? rope_cos_local_ : rope_cos_;
    const std::vector<float>& sin_t = own_table ? rope_sin_local_ : rope_sin_;
    for_rows(n, [&](int64_t r0, int64_t r1) {
      const float* cs = cos_t.data() + r0 * n_freq;
      const float* sn = sin_t.data() + r0 * n_freq;
      ops::rope(q_.data() + r0 * c.q_dim(), r1 - r0, c.n_heads, c.d_head, cs, sn, n_freq,
                interleaved);
      ops::rope(k_.data() + r0 * c.kv_dim(), r1 - r0, c.n_kv_heads, c.d_head, cs, sn, n_freq,
                interleaved);
    });
    site<kHooks>(HookPoint::kAttnRotQ, layer, q_.data(), {n, c.n_heads, c.d_head});
    site<kHooks>(HookPoint::kAttnRotK, layer, k_.data(), {n, c.n_kv_heads, c.d_head});
  }
  // Append this call's keys and values to the cache, rounded to its type.
  const int64_t kv_row = c.kv_dim();
  const Tensor& kc = k_cache_[static_cast<size_t>(layer)];
  const Tensor& vc = v_cache_[static_cast<size_t>(layer)];
  for_rows(n, [&](int64_t r0, int64_t r1) {
    const int64_t at = (n_past_ + r0) * kv_row;
    ops::kv_store(options_.kv_type, k_.data() + r0 * kv_row, (r1 - r0) * kv_row, kv_at(kc, at));
    ops::kv_store(options_.kv_type, v_.data() + r0 * kv_row, (r1 - r0) * kv_row, kv_at(vc, at));
  });

  bool materialize = false;
  if constexpr (kHooks) {
    materialize = hooks_.active(HookPoint::kAttnScores, layer) ||
                  hooks_.active(HookPoint::kAttnPattern, layer);
  }
  if (materialize) {
    attend_materialized<kHooks>(layer, n);
  } else {
    attend_streaming(layer, n);
  }
  site<kHooks>(HookPoint::kAttnZ, layer, z_.data(), {n, c.n_heads, c.d_head});
  linear(z_.data(), n, c.q_dim(), w.wo, w.bo, tmp_.data());
  if (c.post_norms) {
    rms_rows<kHooks>(HookPoint::kLn1PostScale, HookPoint::kLn1PostNormalized, layer, tmp_.data(),
                     tmp_.data(), n, 0, c.d_model, w.attn_post_norm, scale_.data());
  }
  site<kHooks>(HookPoint::kAttnOut, layer, tmp_.data(), {n, c.d_model});
  add_rows(x_.data(), tmp_.data(), n, c.d_model);
  site<kHooks>(HookPoint::kResidMid, layer, x_.data(), {n, c.d_model});
}

std::pair<const float*, const float*> Session::kv_f32(int layer, int64_t rows, int64_t col,
                                                      int64_t width, int64_t* ld) {
  const Tensor& kc = k_cache_[static_cast<size_t>(layer)];
  const Tensor& vc = v_cache_[static_cast<size_t>(layer)];
  const int64_t kv_dim = model_.config().kv_dim();
  if (options_.kv_type == DType::kF32) {
    *ld = kv_dim;
    return {kc.data<float>() + col, vc.data<float>() + col};
  }
  *ld = width;
  kv_k_.resize(static_cast<size_t>(rows * width));
  kv_v_.resize(static_cast<size_t>(rows * width));
  for_rows(rows, [&](int64_t r0, int64_t r1) {
    const int64_t at = r0 * kv_dim + col;
    ops::kv_load_rows(options_.kv_type, kv_at(kc, at), kv_dim, r1 - r0, width,
                      kv_k_.data() + r0 * width);
    ops::kv_load_rows(options_.kv_type, kv_at(vc, at), kv_dim, r1 - r0, width,
                      kv_v_.data() + r0 * width);
  });
  return {kv_k_.data(), kv_v_.data()};
}

// Causal attention without materializing the pattern for the hooks. Queries go in chunks of
// kAttnChunk per head; a chunk's scores against every key it may see are one sgemm, (soft-capped,)
// masked and softmaxed in place, then multiplied with the values by a second sgemm straight into
// z_ (the head's columns of it). Keys past a chunk's last query, or before its first query's
// sliding window, are never computed, and the scratch is kAttnChunk x n_keys per thread whatever
// the prompt length. A 16-bit cache is read by the same code: decode widens each row inside
// group_scores / group_values; a prefill first widens the layer's rows [0, n_past + n) into f32
// (kv_k_ / kv_v_, each row once per call rather than once per query chunk and head). Widening one
// KV head at a time would hold less scratch, but a pool loop per KV head made each call's
// per-task scratch allocations and pool rounds several times as many: 3x slower prefill on
// stories260K.
void Session::attend_streaming(int layer, int64_t n) {
  const ModelConfig& c = model_.config();
  const int64_t d = c.d_head, group = c.n_heads / c.n_kv_heads, kv_dim = c.kv_dim();
  const int64_t q_dim = c.q_dim();
  const auto scale = static_cast<float>(c.query_scale());
  const auto cap = static_cast<float>(c.attn_softcap);
  const int64_t window = c.is_local(layer) ? c.sliding_window : 0;
  const DType kv_type = options_.kv_type;
  const Tensor& kc = k_cache_[static_cast<size_t>(layer)];
  const Tensor& vc = v_cache_[static_cast<size_t>(layer)];
  const int64_t pos0 = n_past_, n_chunks = (n + kAttnChunk - 1) / kAttnChunk;
  if (n == 1) {  // decode: each KV head's query group in one pass over its keys and values
    const int64_t lo = first_key(window, pos0), n_keys = pos0 + 1 - lo;
    pool_.parallel_for(c.n_kv_heads, [&](int64_t begin, int64_t end) {
      std::vector<float> s(static_cast<size_t>(group * n_keys));
      for (int64_t kvh = begin; kvh < end; ++kvh) {
        ops::group_scores(q_.data() + kvh * group * d, group, d, kv_type,
                          kv_at(kc, lo * kv_dim + kvh * d), kv_dim, n_keys, scale, s.data());
        for (int64_t h = 0; h < group; ++h) {
          float* row = s.data() + h * n_keys;
          if (cap > 0.0f) ops::softcap(row, n_keys, cap);
          ops::softmax_row(row, n_keys);
        }
        ops::group_values(s.data(), group, n_keys, kv_type, kv_at(vc, lo * kv_dim + kvh * d),
                          kv_dim, d, z_.data() + kvh * group * d);
      }
    });
    return;
  }
  // The cache itself when F32; else every KV head's rows [0, pos0 + n) widened once into f32.
  int64_t ld = 0;
  const auto cols = kv_f32(layer, pos0 + n, 0, kv_dim, &ld);
  const float* kc32 = cols.first;
  const float* vc32 = cols.second;
  pool_.parallel_for(c.n_heads * n_chunks, [&](int64_t begin, int64_t end) {
    std::vector<float> s;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task / n_chunks, i0 = task % n_chunks * kAttnChunk;
      const int64_t rows = std::min(kAttnChunk, n - i0);
      const int64_t lo = first_key(window, pos0 + i0), n_keys = pos0 + i0 + rows - lo;
      const float* q = q_.data() + i0 * q_dim + h * d;
      const float* k = kc32 + lo * ld + h / group * d;
      const float* v = vc32 + lo * ld + h / group * d;
      float* z = z_.data() + i0 * q_dim + h * d;
      s.resize(static_cast<size_t>(rows * n_keys));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(n_keys), static_cast<int>(d), scale, q, static_cast<int>(q_dim),
                  k, static_cast<int>(ld), 0.0f, s.data(), static_cast<int>(n_keys));
      for (int64_t r = 0; r < rows; ++r) {  // query a = pos0 + i0 + r
        float* row = s.data() + r * n_keys;
        const int64_t a = pos0 + i0 + r, from = first_key(window, a) - lo, seen = a + 1 - lo;
        std::fill(row, row + from, 0.0f);
        if (cap > 0.0f) ops::softcap(row + from, seen - from, cap);
        ops::softmax_row(row + from, seen - from);
        std::fill(row + seen, row + n_keys, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                  static_cast<int>(d), static_cast<int>(n_keys), 1.0f, s.data(),
                  static_cast<int>(n_keys), v, static_cast<int>(ld), 0.0f, z,
                  static_cast<int>(q_dim));
    }
  });
}

template <bool kHooks>
void Session::attend_materialized(int layer, int64_t n) {
  const ModelConfig& c = model_.config();
  const int64_t d = c.d_head, group = c.n_heads / c.n_kv_heads, kv_dim = c.kv_dim();
  const int64_t q_dim = c.q_dim(), pos0 = n_past_, n_keys = pos0 + n;
  const int64_t n_chunks = (n + kAttnChunk - 1) / kAttnChunk;
  const auto scale = static_cast<float>(c.query_scale());
  const auto cap = static_cast<float>(c.attn_softcap);
  const int64_t window = c.is_local(layer) ? c.sliding_window : 0;
  int64_t ld = 0;  // kv_dim: every KV head's columns, as f32 (a widened copy of a 16-bit cache)
  const auto cols = kv_f32(layer, n_keys, 0, kv_dim, &ld);
  const float* kc = cols.first;
  const float* vc = cols.second;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  scores_.assign(static_cast<size_t>(c.n_heads * n * n_keys), kNegInf);
  // Scores [head, query, key] per (head, chunk of queries) as one sgemm over the keys the chunk
  // may see, soft-capped; the entries it wrote past each query's own position (and before its
  // sliding window) go back to -inf.
  pool_.parallel_for(c.n_heads * n_chunks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task / n_chunks, i0 = task % n_chunks * kAttnChunk;
      const int64_t rows = std::min(kAttnChunk, n - i0), seen_max = pos0 + i0 + rows;
      float* s = scores_.data() + (h * n + i0) * n_keys;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows),
                  static_cast<int>(seen_max), static_cast<int>(d), scale,
                  q_.data() + i0 * q_dim + h * d, static_cast<int>(q_dim), kc + h / group * d,
                  static_cast<int>(ld), 0.0f, s, static_cast<int>(n_keys));
      for (int64_t r = 0; r < rows; ++r) {
        float* row = s + r * n_keys;
        const int64_t a = pos0 + i0 + r;
        if (cap > 0.0f) ops::softcap(row, a + 1, cap);
        std::fill(row + a + 1, row + seen_max, kNegInf);
        std::fill(row, row + first_key(window, a), kNegInf);
      }
    }
  });
  site<kHooks>(HookPoint::kAttnScores, layer, scores_.data(), {c.n_heads, n, n_keys});
  pool_.parallel_for(c.n_heads * n, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task)
      ops::softmax_row(scores_.data() + task * n_keys, n_keys);
  });
  site<kHooks>(HookPoint::kAttnPattern, layer, scores_.data(), {c.n_heads, n, n_keys});
  // z = pattern @ v over every key, as TL does (a hook may have unmasked entries).
  pool_.parallel_for(c.n_heads * n_chunks, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task / n_chunks, i0 = task % n_chunks * kAttnChunk;
      const int64_t rows = std::min(kAttnChunk, n - i0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                  static_cast<int>(d), static_cast<int>(n_keys), 1.0f,
                  scores_.data() + (h * n + i0) * n_keys, static_cast<int>(n_keys),
                  vc + h / group * d, static_cast<int>(ld), 0.0f, z_.data() + i0 * q_dim + h * d,
                  static_cast<int>(q_dim));
    }
  });
}

template <bool kHooks>
void Session::mlp_block(int layer, int64_t n) {
  const ModelConfig& c = model_.config();
  const LayerWeights& w = model_.layers()[static_cast<size_t>(layer)];
  norm<kHooks>(HookPoint::kLn2Scale, HookPoint::kLn2Normalized, layer, n, w.ffn_norm, w.ffn_norm_b);
  if (c.gated_mlp()) {
    linear(xn_.data(), n, c.d_model, w.w_gate, Tensor(), gate_.data());
    linear(xn_.data(), n, c.d_model, w.w_up, w.b_up, up_.data());
    site<kHooks>(HookPoint::kMlpPre, layer, gate_.data(), {n, c.d_mlp});
    site<kHooks>(HookPoint::kMlpPreLinear, layer, up_.data(), {n, c.d_mlp});
    const int64_t f = c.d_mlp;
    const bool gelu = c.mlp == MlpType::kGatedGelu;
    for_rows(n, [&](int64_t r0, int64_t r1) {
      const float* g = gate_.data() + r0 * f;
      const float* u = up_.data() + r0 * f;
      float* out = post_.data() + r0 * f;
      if (gelu) {
        ops::gelu_tanh_mul(g, u, (r1 - r0) * f, out);
      } else {
        ops::silu_mul(g, u, (r1 - r0) * f, out);
      }
    });
  } else {
    linear(xn_.data(), n, c.d_model, w.w_up, w.b_up, gate_.data());
    site<kHooks>(HookPoint::kMlpPre, layer, gate_.data(), {n, c.d_mlp});
    const int64_t f = c.d_mlp;
    for_rows(n, [&](int64_t r0, int64_t r1) {
      ops::gelu_tanh(gate_.data() + r0 * f, (r1 - r0) * f, post_.data() + r0 * f);
    });
  }
  site<kHooks>(HookPoint::kMlpPost, layer, post_.data(), {n, c.d_mlp});
  linear(post_.data(), n, c.d_mlp, w.w_down, w.b_down, tmp_.data());
  if (c.post_norms) {
    rms_rows<kHooks>(HookPoint::kLn2PostScale, HookPoint::kLn2PostNormalized, layer, tmp_.data(),
                     tmp_.data(), n, 0, c.d_model, w.ffn_post_norm, scale_.data());
  }
  site<kHooks>(HookPoint::kMlpOut, layer, tmp_.data(), {n, c.d_model});
  add_rows(x_.data(), tmp_.data(), n, c.d_model);
  site<kHooks>(HookPoint::kResidPost, layer, x_.data(), {n, c.d_model});
}

}  // namespace glassbox
