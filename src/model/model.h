// Model: a loaded checkpoint — its config and its weights, memory-mapped and read-only.
// load_model() detects the file format by content (GGUF magic, else llama2.c) and hands
// architecture-specific interpretation to model/arch/. Inference state lives in Session, never
// here, so one Model can serve many sessions.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace glassbox {

class GgufFile;
class Tokenizer;

// Row-major weight shapes ([out, in] for matrices), GGUF names in comments. Biases, the gate and
// the extra norms are undefined (default-constructed) when the architecture has none. Norm
// weights are the multipliers actually applied (Gemma's HF "w" is stored here as 1 + w, as GGUF
// stores it).
struct LayerWeights {
  Tensor attn_norm;       // blk.L.attn_norm.weight    [d_model]
  Tensor attn_norm_b;     // blk.L.attn_norm.bias      [d_model]      (LayerNorm)
  Tensor wq;              // blk.L.attn_q.weight       [n_heads * d_head, d_model]
  Tensor wk;              // blk.L.attn_k.weight       [n_kv_heads * d_head, d_model]
  Tensor wv;              // blk.L.attn_v.weight       [n_kv_heads * d_head, d_model]
  Tensor bq, bk, bv;      // blk.L.attn_{q,k,v}.bias   (qkv_bias)
  Tensor q_norm;          // blk.L.attn_q_norm.weight  [d_head]       (qk_norm)
  Tensor k_norm;          // blk.L.attn_k_norm.weight  [d_head]       (qk_norm)
  Tensor wo;              // blk.L.attn_output.weight  [d_model, n_heads * d_head]
  Tensor bo;              // blk.L.attn_output.bias    [d_model]      (out_bias)
  Tensor attn_post_norm;  // blk.L.post_attention_norm.weight [d_model] (post_norms)
  Tensor ffn_norm;        // blk.L.ffn_norm.weight     [d_model]
  Tensor ffn_norm_b;      // blk.L.ffn_norm.bias       [d_model]      (LayerNorm)
  Tensor w_gate;          // blk.L.ffn_gate.weight     [d_mlp, d_model] (gated MLP)
  Tensor w_up;            // blk.L.ffn_up.weight       [d_mlp, d_model]
  Tensor b_up;            // blk.L.ffn_up.bias         [d_mlp]        (mlp_bias)
  Tensor w_down;          // blk.L.ffn_down.weight     [d_model, d_mlp]
  Tensor b_down;          // blk.L.ffn_down.bias       [d_model]      (mlp_bias)
  Tensor ffn_post_norm;   // blk.L.post_ffw_norm.weight [d_model]   (post_norms)
};

class Model {
 public:
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const Tensor& token_embedding() const { return tok_embd_; }       // [d_vocab, d_model]
  const Tensor& position_embedding() const { return pos_embd_; }    // [n_ctx, d_model] (learned)
  const Tensor& final_norm() const { return output_norm_; }         // [d_model]
  const Tensor& final_norm_bias() const { return output_norm_b_; }  // [d_model] (LayerNorm)
  const Tensor& unembedding() const { return output_; }             // [d_vocab, d_model]
  const std::vector<LayerWeights>& layers() const { return layers_; }
  // Every tensor of the checkpoint by its (GGUF) name, in file order, for `info`.
  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return tensors_; }
  int64_t n_params() const;
  // The parsed GGUF container when the model came from one (metadata, embedded vocabulary).
  const GgufFile* gguf() const { return gguf_.get(); }
  // Throws Error(kUnsupported) naming the first weight whose dtype the forward pass cannot use.
  void check_computable() const;

 private:
  friend Model load_model(const std::string& path);
  std::string path_;
  ModelConfig config_;
  Tensor tok_embd_, pos_embd_, output_norm_, output_norm_b_, output_;
  std::vector<LayerWeights> layers_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
  std::shared_ptr<const GgufFile> gguf_;
};

// Loads a llama2.c checkpoint or a GGUF file; throws Error naming the file and what is wrong.
Model load_model(const std::string& path);

// The tokenizer for a model: `explicit_path` when given; else the GGUF-embedded vocabulary;
// else a tokenizer file beside the model, the first of tokenizer.json, tokenizer.model,
// tok<vocab>.bin, tokenizer.bin (a tokenizer.json in a form glassbox does not implement, such as
// the SentencePiece-style files of Llama 2 and Gemma, gives way to tokenizer.model beside it).
// Throws Error(kNotFound) listing the places searched.
std::unique_ptr<Tokenizer> load_model_tokenizer(const Model& model,
                                                const std::optional<std::string>& explicit_path);

}  // namespace glassbox
