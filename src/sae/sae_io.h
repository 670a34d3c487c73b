// Reading and writing SAEs in the on-disk formats of the libraries that publish them, into and
// from the one in-memory Sae (sae.h). Owns only the file layouts and the mapping of each
// library's config fields; encoding lives in sae.h. docs/sae.md has the full field tables.
//
// SAELens directory (sae_lens SAE.save_model / save_inference_model):
//   cfg.json                 {"architecture": "standard"|"topk"|"jumprelu", "d_in", "d_sae",
//                             "dtype", "apply_b_dec_to_input", "normalize_activations", "k" (topk),
//                             "metadata": {"model_name", "hook_name", "sae_lens_version", ...}}
//                            (pre-6.0 configs: top-level model_name / hook_name / hook_point,
//                             "activation_fn_str": "topk" + "activation_fn_kwargs": {"k"}; both
//                             read)
//   sae_weights.safetensors  W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in],
//                            threshold [d_sae] (jumprelu); F32, F16 or BF16
// sparsify directory (EleutherAI sparsify SparseCoder.save_to_disk):
//   cfg.json                 {"activation": "topk", "expansion_factor", "normalize_decoder",
//                             "num_latents" (0 = d_in * expansion_factor), "k", "multi_topk",
//                             "skip_connection", "transcode", "d_in"}
//   sae.safetensors          encoder.weight [d_sae, d_in], encoder.bias [d_sae],
//                            W_dec [d_sae, d_in], b_dec [d_in]
// Gemma Scope (google/gemma-scope-*): params.npz = np.savez of W_enc [d_in, d_sae],
//   W_dec [d_sae, d_in], b_enc [d_sae], b_dec [d_in], threshold [d_sae]; JumpReLU with no b_dec
//   subtraction. Read only.
// Every reader checks each tensor's presence, dtype and shape against the config (naming the file,
// the tensor, expected and actual shape), rejects tensors it does not understand, non-finite
// weights, and config values it cannot honour (kUnsupported naming the field and value).
// Writers check everything first, then write each file through PATH.tmp + rename, weights before
// cfg.json, so a failed write leaves any previous files untouched.
#pragma once

#include <optional>
#include <string>

#include "sae/sae.h"

namespace glassbox {

enum class SaeFormat : uint8_t { kSaeLens, kSparsify, kGemmaScope };

const char* sae_format_name(SaeFormat format);  // "saelens", "sparsify", "gemmascope"
std::optional<SaeFormat> parse_sae_format(const std::string& name);

// The format of a directory or of a file inside one (cfg.json, the weights file, params.npz).
// Throws Error(kIo) when the path does not exist, Error(kNotFound) when it holds no known SAE.
SaeFormat detect_sae_format(const std::string& path);

// Auto-detects and reads; the result has passed Sae::validate.
Sae load_sae(const std::string& path);
Sae read_saelens(const std::string& dir);
Sae read_sparsify(const std::string& dir);
Sae read_gemma_scope(const std::string& path);  // a directory holding params.npz, or the file

// Why `sae` cannot be written as `format` without changing what it computes, or nullopt when it
// can. sparsify holds only TopK SAEs that subtract b_dec and do no input normalisation; Gemma
// Scope is not written.
std::optional<std::string> sae_write_refusal(const Sae& sae, SaeFormat format);

// Writes `sae` as a directory of `format` (created if needed). A set norm_scaling_factor is folded
// into the weights first (as SAELens does). Throws Error(kUnsupported) with the refusal above,
// Error(kIo) naming the file on a failed write.
void save_sae(const Sae& sae, const std::string& dir, SaeFormat format);

}  // namespace glassbox
