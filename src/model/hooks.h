// Hook points with TransformerLens names and shapes, and the registry that runs callbacks on them.
// Names are parsed and printed only here; the forward pass works with (HookPoint, layer) pairs.
// Every hook point is emitted by the shared block skeleton (model/session.cpp); architectures
// never add their own. A hook receives a writable view of the activation, valid only during the
// call, and may read it or overwrite it in place. Shapes are TL's without the batch axis; `pos`
// is the number of tokens processed by that forward call (one during incremental decode).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace glassbox {

enum class HookPoint : uint8_t {
  kEmbed,                // hook_embed                     [pos, d_model]
  kPosEmbed,             // hook_pos_embed                 [pos, d_model] (learned positions)
  kResidPre,             // blocks.L.hook_resid_pre        [pos, d_model]
  kLn1Scale,             // blocks.L.ln1.hook_scale        [pos, 1]
  kLn1Normalized,        // blocks.L.ln1.hook_normalized   [pos, d_model] (see docs/hooks.md)
  kAttnQ,                // blocks.L.attn.hook_q           [pos, n_heads, d_head]
  kAttnK,                // blocks.L.attn.hook_k           [pos, n_kv_heads, d_head]
  kAttnV,                // blocks.L.attn.hook_v           [pos, n_kv_heads, d_head]
  kAttnQNormScale,       // blocks.L.attn.q_norm.hook_scale       [pos, n_heads, 1]    (qk_norm)
  kAttnQNormNormalized,  // blocks.L.attn.q_norm.hook_normalized [pos, n_heads, d_head]
  kAttnKNormScale,       // blocks.L.attn.k_norm.hook_scale       [pos, n_kv_heads, 1]
  kAttnKNormNormalized,  // blocks.L.attn.k_norm.hook_normalized [pos, n_kv_heads, d_head]
  kAttnRotQ,             // blocks.L.attn.hook_rot_q       [pos, n_heads, d_head] (RoPE)
  kAttnRotK,             // blocks.L.attn.hook_rot_k       [pos, n_kv_heads, d_head] (RoPE)
  kAttnScores,           // blocks.L.attn.hook_attn_scores [n_heads, pos, n_keys] (masked = -inf)
  kAttnPattern,          // blocks.L.attn.hook_pattern     [n_heads, pos, n_keys]
  kAttnZ,                // blocks.L.attn.hook_z           [pos, n_heads, d_head]
  kLn1PostScale,         // blocks.L.ln1_post.hook_scale   [pos, 1]  (post_norms: Gemma 2/3)
  kLn1PostNormalized,    // blocks.L.ln1_post.hook_normalized [pos, d_model]
  kAttnOut,              // blocks.L.hook_attn_out         [pos, d_model]
  kResidMid,             // blocks.L.hook_resid_mid        [pos, d_model]
  kLn2Scale,             // blocks.L.ln2.hook_scale        [pos, 1]
  kLn2Normalized,        // blocks.L.ln2.hook_normalized   [pos, d_model]
  kMlpPre,               // blocks.L.mlp.hook_pre          [pos, d_mlp] (pre-activation)
  kMlpPreLinear,         // blocks.L.mlp.hook_pre_linear   [pos, d_mlp] (up projection; gated MLP)
  kMlpPost,              // blocks.L.mlp.hook_post         [pos, d_mlp] (activation output)
  kLn2PostScale,         // blocks.L.ln2_post.hook_scale   [pos, 1]  (post_norms)
  kLn2PostNormalized,    // blocks.L.ln2_post.hook_normalized [pos, d_model]
  kMlpOut,               // blocks.L.hook_mlp_out          [pos, d_model]
  kResidPost,            // blocks.L.hook_resid_post       [pos, d_model]
  kLnFinalScale,         // ln_final.hook_scale            [pos, 1]
  kLnFinalNormalized,    // ln_final.hook_normalized       [pos, d_model]
  kCount,
};

// Whether the point exists once per block (blocks.L.*) or once per model.
bool is_block_hook(HookPoint point);
// Whether the architecture described by `config` has this point (e.g. no hook_rot_q without
// RoPE, no hook_pos_embed without learned positions, no mlp.hook_pre_linear without a gate).
bool hook_exists(HookPoint point, const ModelConfig& config);

struct HookName {
  HookPoint point = HookPoint::kEmbed;
  int layer = -1;  // -1 for model-level points
  bool operator==(const HookName&) const = default;
};

std::string hook_name_string(HookName name);
// Parses a TL name; nullopt when the text is not a hook name (layer range not checked).
std::optional<HookName> parse_hook_name(std::string_view text);
// Parses and checks the layer against the config; throws Error(kNotFound) naming the hook and
// listing what exists ("unknown hook 'blocks.9.hook_resid_pre': layers are 0..4").
HookName resolve_hook_name(std::string_view text, const ModelConfig& config);
// All hook names of a model, in forward-execution order.
std::vector<std::string> available_hooks(const ModelConfig& config);
// TL shape (without batch) of a hook's activation for `n_pos` new tokens and `n_keys` keys.
Shape hook_shape(HookPoint point, const ModelConfig& config, int64_t n_pos, int64_t n_keys);
// The shape of one position's activation (hook_shape without its position axis), for hooks that
// have one row per token; nullopt for attention scores and patterns ([heads, query, key]).
std::optional<Shape> hook_token_shape(HookPoint point, const ModelConfig& config);

// Passed to every callback.
struct HookEvent {
  HookName name;
  int64_t pos_start = 0;  // absolute position of the first row (the KV-cache length before)
};
// `activation` is a writable F32 view of the live buffer with the hook's TL shape.
using HookFn = std::function<void(const HookEvent& event, Tensor& activation)>;

class HookRegistry;

// Removes its hook from the registry when destroyed (scope exit). Movable, not copyable.
class [[nodiscard]] HookHandle {
 public:
  HookHandle() = default;
  HookHandle(HookRegistry* registry, uint64_t id) : registry_(registry), id_(id) {}
  HookHandle(HookHandle&& other) noexcept { *this = std::move(other); }
  HookHandle& operator=(HookHandle&& other) noexcept;
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() { remove(); }
  void remove();

 private:
  HookRegistry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class HookRegistry {
 public:
  explicit HookRegistry(const ModelConfig& config);

  // Callbacks on one point run in the order they were added.
  HookHandle add(HookName name, HookFn fn);
  HookHandle add(std::string_view name, HookFn fn) {
    return add(resolve_hook_name(name, config_), std::move(fn));
  }
  void remove(uint64_t id);
  size_t size() const { return n_hooks_; }

  // The per-site check of the forward pass: one load and compare when no hook is registered.
  bool active(HookPoint point, int layer) const {
    return n_hooks_ != 0 && !slots_[slot_index(point, layer)].empty();
  }
  // Runs the callbacks of (point, layer) on `activation`.
  void fire(HookPoint point, int layer, int64_t pos_start, Tensor& activation) const;

 private:
  size_t slot_index(HookPoint point, int layer) const {
    return static_cast<size_t>(point) * static_cast<size_t>(config_.n_layers + 1) +
           static_cast<size_t>(layer + 1);
  }
  struct Entry {
    uint64_t id;
    HookFn fn;
  };
  ModelConfig config_;
  std::vector<std::vector<Entry>> slots_;
  size_t n_hooks_ = 0;
  uint64_t next_id_ = 1;
};

// Activations recorded by run_with_cache, keyed by TL name.
using ActivationCache = std::map<std::string, Tensor>;

// Ready-made interventions (TransformerLens habits).
// Adds coeff * vector ([last dim] or the full activation shape) to every row.
HookFn add_vector_hook(Tensor vector, float coeff = 1.0f);
// Sets the activation to zero.
HookFn zero_ablate_hook();
// Replaces every row by `mean` ([last dim] or full shape); with an undefined tensor, by the
// mean over the positions of this very call.
HookFn mean_ablate_hook(Tensor mean = Tensor());
// Replaces the activation by rows [pos_start, pos_start + pos) of `source`, an activation of
// the same hook recorded on another run (e.g. from run_with_cache). Throws kShape on mismatch.
HookFn patch_hook(Tensor source);

}  // namespace glassbox
