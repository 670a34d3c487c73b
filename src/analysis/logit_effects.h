// Direct logit effects of SAE latents: effect[f, v] = (W_dec[f] * g) . W_U[v], where g is the
// final norm's weight (TransformerLens fold_ln convention; the norm's bias and LayerNorm's
// centring are ignored). Only meaningful for hooks that write into the residual stream.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "model/model.h"
#include "sae/sae.h"

namespace glassbox {

struct LatentEffects {
  std::vector<LogitEffect> positive, negative;  // token pieces left empty
};

// Why effects are not computed for this SAE's hook (nullopt when they are): hooks whose width is
// not d_model or that are not residual-stream writes (resid_pre/mid/post, attn_out, mlp_out,
// hook_embed).
std::optional<std::string> logit_effects_skip_reason(const Model& model, const Sae& sae);

// For every latent, the n most positive and n most negative effects (ties: lower token id
// first). Works through the vocabulary in blocks (W_U dequantized block by block).
std::vector<LatentEffects> logit_effects(const Model& model, const Sae& sae, int64_t n,
                                         int threads);

}  // namespace glassbox
