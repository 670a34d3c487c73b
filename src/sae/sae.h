// Sae: a sparse autoencoder's weights, configuration and inference (encode / decode).
// Owns the one in-memory form every on-disk SAE format is read into (sae_io.h) and that training
// (a later module) fills in; it does not read files, train, or know about models or hooks beyond
// the hook-name string it carries. All weights are owned f32 tensors, row-major:
//   W_enc [d_in, d_sae]   b_enc [d_sae]   W_dec [d_sae, d_in]   b_dec [d_in]
//   threshold [d_sae]     (jumprelu; batchtopk's inference threshold, one value per latent)
// Encode rule (each library's own; docs/sae.md cites the source of each step):
//   x' = normalise(x)                        (normalize_activations; see SaeNorm)
//   x' = x' * norm_scaling_factor            (only when set: an unfolded dataset-norm factor)
//   x' = x' - b_dec                          (only when apply_b_dec_to_input)
//   pre = x' @ W_enc + b_enc                 (one OpenBLAS sgemm)
//   relu:      acts = relu(pre)                                   (SAELens "standard")
//   topk:      acts = relu(pre) on the k largest pre, 0 elsewhere (SAELens TopK, sparsify)
//   jumprelu:  acts = relu(pre) * (pre > threshold)               (SAELens, Gemma Scope)
//   batchtopk: acts = relu(pre) * (pre > threshold)   (inference form: SAELens saves batchtopk
//              SAEs as jumprelu with threshold = the learned batch threshold for every latent)
// Decode: out = acts @ W_dec + b_dec, then / norm_scaling_factor and the inverse of the
// per-row normalisation when reconstructing from the same input (reconstruct()).
// Ties in top-k are broken toward the lower latent index (torch.topk leaves them unspecified).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/tensor.h"

namespace glassbox {

enum class SaeArch : uint8_t { kRelu, kTopK, kBatchTopK, kJumpRelu };

// SAELens's normalize_activations values. kExpectedAverageOnlyIn does nothing at encode time in
// SAELens itself (the factor lives outside the files and is folded into the weights); glassbox
// applies Sae::norm_scaling_factor when one is set.
enum class SaeNorm : uint8_t { kNone, kExpectedAverageOnlyIn, kConstantNormRescale, kLayerNorm };

// "relu", "topk", "batchtopk", "jumprelu" (SAELens's "standard" is relu).
const char* sae_arch_name(SaeArch arch);
std::optional<SaeArch> parse_sae_arch(const std::string& name);
// "none", "expected_average_only_in", "constant_norm_rescale", "layer_norm".
const char* sae_norm_name(SaeNorm norm);
std::optional<SaeNorm> parse_sae_norm(const std::string& name);

struct Sae {
  SaeArch arch = SaeArch::kRelu;
  int64_t d_in = 0;
  int64_t d_sae = 0;
  // Active latents per row (topk); average active latents per row (batchtopk, training only).
  double k = 0;
  Tensor W_enc;      // [d_in, d_sae] f32
  Tensor b_enc;      // [d_sae] f32
  Tensor W_dec;      // [d_sae, d_in] f32
  Tensor b_dec;      // [d_in] f32
  Tensor threshold;  // [d_sae] f32: jumprelu, batchtopk; undefined otherwise
  bool apply_b_dec_to_input = true;
  SaeNorm normalize_activations = SaeNorm::kNone;
  std::optional<double> norm_scaling_factor;  // multiplies x before encoding when set
  std::string hook_name;  // TransformerLens hook name, e.g. blocks.3.hook_resid_post
  std::string model_name;

  // Zero-filled weights of the right shapes for `arch` (threshold only where the arch has one).
  static Sae zeros(SaeArch arch, int64_t d_in, int64_t d_sae);

  // Checks dimensions, shapes, dtypes and finiteness of every weight, k for topk (1..d_sae) and
  // the threshold's presence; throws Error(kShape / kInvalidArgument / kFormat) naming `source`
  // and the field.
  void validate(const std::string& source = "sae") const;

  // x [n, d_in] -> acts [n, d_sae] (dense). Single-threaded; memory beyond `acts` is one block
  // of rows of x.
  void encode(const float* x, int64_t n, float* acts) const;
  // acts [n, d_sae] -> out [n, d_in]: acts @ W_dec + b_dec, divided by norm_scaling_factor when
  // set. The per-row normalisations (constant_norm_rescale, layer_norm) need the input: use
  // reconstruct().
  void decode(const float* acts, int64_t n, float* out) const;
  // decode(encode(x)) with every normalisation undone, as SAELens's forward().
  void reconstruct(const float* x, int64_t n, float* out) const;

  // Folds norm_scaling_factor into the weights (W_enc *= s, W_dec /= s, b_dec /= s, as SAELens's
  // fold_activation_norm_scaling_factor) and clears it; expected_average_only_in becomes none.
  // Nothing happens when no factor is set.
  void fold_norm_scaling_factor();
};

}  // namespace glassbox
