// Session: the inference state of one sequence over a Model — KV cache, activation buffers,
// thread pool and hook registry — and the shared transformer block skeleton that every
// architecture runs through. All hook points are emitted here and nowhere else.
//
// Buffers (row-major, n = tokens in this forward call, T = n_past + n keys):
//   x_      [n, d_model]   residual stream          xn_    [n, d_model]  normalized input
//   scale_  [n]            RMSNorm scale            q_     [n, n_heads * d_head]
//   qk_scale_ [n, max(n_heads, n_kv_heads)] per-head q/k norm scales (qk_norm)
//   k_, v_  [n, kv_dim]    new keys / values        z_     [n, n_heads * d_head]
//   tmp_    [n, d_model]   pos_embed / attn_out / mlp_out
//   gate_, up_, post_ [n, d_mlp] (a GELU MLP keeps its pre-activation in gate_)
//   scores_ [n_heads, n, T] only when a scores/pattern hook is active on that layer
//   k_cache_[L], v_cache_[L]: [kv_capacity, kv_dim] of options.kv_type; rows [0, n_past) hold
//                             the sequence
//   kv_k_, kv_v_ [n_past + n, kv_dim]: f32 copies of one layer's cache rows that a prefill reads,
//                only when kv_type is not F32 (1/n_layers of what an f32 cache would hold)
// The KV cache follows use: it grows (doubling, from kMinKvRows) as tokens are appended and never
// past n_ctx, so a model whose metadata states a 128K context costs memory for the tokens held,
// not for the context it could hold. Attention takes its cache pointers per call, after growth.
// The cache stores kv_type (F32, or F16 / BF16 at half the bytes): new keys and values are
// rounded to it (nearest even) as they are written, and attention widens them as it reads; hooks
// (hook_k, hook_v, ...) see the unrounded f32 values of the call.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/hooks.h"
#include "model/model.h"

namespace glassbox {

struct SessionOptions {
  int n_threads = 0;  // 0 = all cores
  // KV-cache length; 0 = the model's context length. Rotary models may ask for more than they were
  // trained on (as llama.cpp allows; quality past it is the user's affair); learned positions
  // cannot go past their table.
  int64_t n_ctx = 0;
  // Benchmarks only: run the hook-checking forward even when no hook is registered, to measure
  // what the checks cost.
  bool force_hook_sites = false;
  // Element type of the KV cache: F32 (exact), F16 or BF16 (half the memory; each key and value
  // rounded once, to nearest even). Other types throw Error(kInvalidArgument).
  DType kv_type = DType::kF32;
};

enum class LogitsMode { kAll, kLast, kNone };

class Session {
 public:
  // The KV cache's first allocation, in positions; later ones double it.
  static constexpr int64_t kMinKvRows = 64;

  // Throws Error(kUnsupported) when the model's weights cannot be computed on.
  explicit Session(const Model& model, SessionOptions options = {});

  const Model& model() const { return model_; }
  const ModelConfig& config() const { return model_.config(); }
  HookRegistry& hooks() { return hooks_; }
  ThreadPool& pool() { return pool_; }
  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  // Positions the KV cache has room for now (per layer): at least n_past, at most n_ctx.
  int64_t kv_capacity() const { return kv_capacity_; }
  DType kv_type() const { return options_.kv_type; }
  // Bytes held by the KV cache (keys and values of every layer, in kv_type).
  int64_t kv_bytes() const;
  // Makes room for n_tokens positions now (clamped to n_ctx), e.g. to allocate a known prompt +
  // generation length once. forward() calls it itself; the results do not depend on it.
  void reserve_kv(int64_t n_tokens);
  // Forgets the sequence (the cache keeps its capacity and is overwritten by the next call).
  void reset() {
    n_past_ = 0;
    cache_layers_ = -1;
  }

  // Processes `tokens` at positions [n_past, n_past + n) and appends them to the cache.
  // Returns float32 logits [n, d_vocab] (kAll), [1, d_vocab] (kLast) or an empty tensor.
  // Throws Error(kInvalidArgument) for no tokens, an id out of range or a full context; after an
  // exception (also one thrown by a hook) n_past is unchanged.
  Tensor forward(std::span<const int32_t> tokens, LogitsMode mode = LogitsMode::kAll);
  // Runs only blocks 0 .. stop_at_layer - 1 (TransformerLens's stop_at_layer): what hooks of
  // those blocks need, without the rest; no final norm, no logits. The later blocks' cache rows
  // for these positions stay unwritten, so until reset() only calls stopping at or before the
  // same layer are allowed (others throw Error(kInvalidArgument)).
  void forward_partial(std::span<const int32_t> tokens, int stop_at_layer);

 private:
  template <bool kHooks>
  Tensor run(std::span<const int32_t> tokens, LogitsMode mode, int n_layers);
  Tensor forward_layers(std::span<const int32_t> tokens, LogitsMode mode, int n_layers);
  template <bool kHooks>
  void attention_block(int layer, int64_t n);
  template <bool kHooks>
  void mlp_block(int layer, int64_t n);
  template <bool kHooks>
  void norm(HookPoint scale_point, HookPoint normalized_point, int layer, int64_t n,
            const Tensor& weight, const Tensor& bias);
  template <bool kHooks>
  void rms_rows(HookPoint scale_point, HookPoint normalized_point, int layer, const float* src,
                float* dst, int64_t n, int64_t heads, int64_t d, const Tensor& weight,
                float* scale);
  // cos/sin [n, n_freq] for this call's positions n_past .. n_past + n - 1.
  void fill_rope_tables(const std::vector<double>& inv_freq, int64_t n, std::vector<float>& cos_t,
                        std::vector<float>& sin_t);
  void linear(const float* x, int64_t n, int64_t k, const Tensor& w, const Tensor& b, float* y);
  // fn(r0, r1) over the rows [0, n) of an element-wise step: on the pool for long prompts, inline
  // for the few rows of a decode step (where waking threads costs more than the work).
  void for_rows(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  // y[n, d] += x[n, d]
  void add_rows(float* y, const float* x, int64_t n, int64_t d);
  // Causal attention for queries rows [0, n) over keys [0, n_past + n); z_ gets the result.
  void attend_streaming(int layer, int64_t n);
  // The cache rows [0, rows) of columns [col, col + width) of `layer` as f32 (row stride *ld):
  // the cache itself when it is F32, else a widened copy in kv_k_ / kv_v_.
  std::pair<const float*, const float*> kv_f32(int layer, int64_t rows, int64_t col, int64_t width,
                                               int64_t* ld);
  template <bool kHooks>
  void attend_materialized(int layer, int64_t n);
  // A hook site: runs the callbacks registered on (point, layer) over `data`, viewed with the
  // hook's TL shape. Compiled away in the kHooks = false instantiation.
  template <bool kHooks>
  void site(HookPoint point, int layer, float* data, std::initializer_list<int64_t> shape) {
    if constexpr (kHooks) {
      if (hooks_.active(point, layer)) fire(point, layer, data, Shape(shape));
    }
  }
  void fire(HookPoint point, int layer, float* data, Shape shape);
  void reserve(int64_t n);

  const Model& model_;
  SessionOptions options_;
  ThreadPool pool_;
  HookRegistry hooks_;
  std::vector<double> inv_freq_;            // RoPE inverse frequencies (empty without RoPE)
  std::vector<double> inv_freq_local_;      // those of local layers (used if rope_theta_local)
  std::vector<float> rope_cos_, rope_sin_;  // [n, n_freq] for this call's positions
  std::vector<float> rope_cos_local_, rope_sin_local_;
  int64_t n_ctx_ = 0;
  int cache_layers_ = -1;  // blocks whose cache covers every past position; -1: all
  int64_t n_past_ = 0;
  int64_t capacity_ = 0;     // rows of the activation buffers
  int64_t kv_capacity_ = 0;  // rows of each k_cache_ / v_cache_ tensor
  std::vector<float> x_, xn_, scale_, qk_scale_, q_, k_, v_, z_, tmp_, gate_, up_, post_, scores_;
  std::vector<Tensor> k_cache_, v_cache_;
  std::vector<float> kv_k_, kv_v_;
};

}  // namespace glassbox
