// Interventions: edits of the forward pass expressed as hooks (model/hooks.h), combinable and
// per request. Owns the intervention spec, the parsing of the CLI spec strings, and turning a
// spec into a HookFn; it does not own vector or SAE files (steer/control_vector.h, sae/sae_io.h)
// nor any flag handling (tools/steer_options.h). Docs: docs/interventions.md.
//
// Every intervention acts on the rows (token positions) of one hook's activation, each row a
// vector of the hook's per-token width w (d_model for the residual stream), and only on rows
// whose absolute position is >= pos_from:
//   add       x <- x + alpha * v
//   ablate    x <- x - (x . u) u                      u = v / |v|
//   cap       x <- x - max(0, x . u - c) u            (the projection on u is limited to <= c)
//   clamp     SAE latent j set to a value, keeping the SAE error term:
//             acts = encode(x); x <- decode(acts') + (x - decode(acts)), computed as
//             x <- x + s(x) * (a'_j - a_j) * W_dec[j] / norm_scaling_factor
//             where s(x) undoes the SAE's per-row input normalisation (1, ||x||/sqrt(d_in), or
//             std(x)); so setting a latent to its own value leaves x bit-identical.
//   scale     as clamp with a'_j = factor * a_j
// Control vectors follow llama.cpp (src/llama-adapter.cpp): direction.N is added at every
// position to the output of block N (blocks.N.hook_resid_post), only for
// layer_start <= N <= layer_end, never for N = 0 or N >= n_layers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"
#include "model/hooks.h"
#include "sae/sae.h"
#include "steer/control_vector.h"

namespace glassbox {

enum class InterventionKind : uint8_t { kAdd, kAblate, kCap, kClampLatent, kScaleLatent };

struct Intervention {
  InterventionKind kind = InterventionKind::kAdd;
  HookName hook;
  std::vector<float> vector;       // [w]: add, ablate, cap
  float value = 0.0f;              // add: alpha; cap: max projection; clamp: value; scale: factor
  std::shared_ptr<const Sae> sae;  // clamp, scale
  int64_t latent = 0;              // clamp, scale
  int64_t pos_from = 0;            // rows at absolute positions < pos_from are left alone
};

// The HookFn doing `iv`. Throws Error(kInvalidArgument / kShape) for a zero vector (ablate, cap),
// a non-finite value, a latent out of range or a missing SAE. The returned hook throws kShape
// when the activation's per-token width differs from the vector's (or the SAE's d_in).
HookFn make_intervention_hook(const Intervention& iv);

// Registers every intervention on `hooks` in order; the handles remove them.
std::vector<HookHandle> add_interventions(HookRegistry& hooks,
                                          const std::vector<Intervention>& ivs);

// llama.cpp's control vector as interventions: one kAdd (alpha 1) at blocks.N.hook_resid_post
// for each direction N with max(1, layer_start) <= N <= layer_end and N < config.n_layers.
// layer_start <= 0 means 1 and layer_end <= 0 means n_layers (llama.cpp's defaults). Throws
// kShape when cv.d_model != config.d_model.
std::vector<Intervention> control_vector_interventions(const ControlVector& cv,
                                                       const ModelConfig& config,
                                                       int layer_start = 0, int layer_end = 0);

// CLI specs. `flag` names the option in errors ("--steer: expected FILE:LAYER:ALPHA, got ...").
// LAYER is a block index (hook blocks.LAYER.hook_resid_post) or a full hook name. FILE is a .npy
// ([w] or [n_layers, w]: the row of the hook's layer) or a control vector (.gguf/.safetensors:
// direction.LAYER). Fields are split from the right, so FILE may contain ':'.
//   --steer  FILE:LAYER:ALPHA      --ablate FILE:LAYER      --cap FILE:LAYER:MAX
//   --clamp  SAE:LATENT:VALUE      --scale-latent SAE:LATENT:FACTOR   (SAE: any load_sae path)
Intervention parse_steer_spec(std::string_view spec, const ModelConfig& config,
                              const std::string& flag = "--steer");
Intervention parse_ablate_spec(std::string_view spec, const ModelConfig& config,
                               const std::string& flag = "--ablate");
Intervention parse_cap_spec(std::string_view spec, const ModelConfig& config,
                            const std::string& flag = "--cap");
Intervention parse_clamp_spec(std::string_view spec, const ModelConfig& config,
                              const std::string& flag = "--clamp");
Intervention parse_scale_latent_spec(std::string_view spec, const ModelConfig& config,
                                     const std::string& flag = "--scale-latent");

}  // namespace glassbox
