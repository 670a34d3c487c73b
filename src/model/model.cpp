#include "model/model.h"

#include <algorithm>
#include <filesystem>

#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/arch/arch.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

Model load_model(const std::string& path) {
  Model m;
  m.path_ = path;
  arch::TensorMap named;
  try {
    if (arch::is_hf_checkpoint(path)) {
      arch::HfCheckpoint ck = arch::load_hf_checkpoint(path);
      m.config_ = ck.config;
      named = std::move(ck.tensors);
      m.tensors_ = std::move(ck.file_tensors);
    } else if (is_gguf_file(path)) {
      auto gguf = std::make_shared<GgufFile>(GgufFile::open(path));
      const std::string arch =
          gguf->get("general.architecture").as_string(path + ": general.architecture");
      const auto& family = arch::llama_family_archs();
      if (std::find(family.begin(), family.end(), arch) != family.end()) {
        m.config_ = arch::llama_family_config_from_gguf(*gguf, arch);
      } else if (arch == "gpt2") {
        m.config_ = arch::gpt2_config_from_gguf(*gguf);
      } else {
        std::string supported;
        for (const std::string& a : family) supported += a + ", ";
        throw Error(ErrorCode::kUnsupported, path + ": architecture '" + arch +
                                                 "' is not supported (supported: " + supported +
                                                 "gpt2)");
      }
      for (const GgufTensorInfo& info : gguf->tensor_infos()) {
        m.tensors_.emplace_back(info.name, gguf->tensor(info.name));
        named[info.name] = m.tensors_.back().second;
      }
      // gpt2 and phi3 fuse q/k/v (phi3 also gate/up); views of the fused rows, no copies.
      arch::split_fused_qkv(named, m.config_, path);
      arch::split_fused_gate_up(named, m.config_, path);
      m.gguf_ = gguf;
    } else {
      const Llama2cCheckpoint ckpt = Llama2cCheckpoint::open(path);
      m.config_ = arch::llama_config_from_llama2c(ckpt.header());
      validate_config(m.config_, path);
      for (const auto& [name, tensor] : ckpt.tensors()) m.tensors_.emplace_back(name, tensor);
      named = arch::TensorMap(ckpt.tensors().begin(), ckpt.tensors().end());
    }
  } catch (const Error& e) {
    if (std::string(e.what()).find(path) != std::string::npos) throw;
    throw e.with_context(path);
  }
  arch::BoundWeights w = arch::bind_weights(m.config_, named, path);
  m.tok_embd_ = w.tok_embd;
  m.pos_embd_ = w.pos_embd;
  m.output_norm_ = w.output_norm;
  m.output_norm_b_ = w.output_norm_b;
  m.output_ = w.output;
  m.layers_ = std::move(w.layers);
  return m;
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& [name, t] : tensors_) n += t.numel();
  return n;
}

void Model::check_computable() const {
  // Weight matrices under their GGUF names (for GPT-2, q/k/v are rows of blk.N.attn_qkv).
  std::vector<std::pair<std::string, const Tensor*>> matrices = {
      {"token_embd.weight", &tok_embd_},
      {config_.tied_embeddings ? "token_embd.weight" : "output.weight", &output_}};
  if (pos_embd_.defined()) matrices.push_back({"position_embd.weight", &pos_embd_});
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerWeights& w = layers_[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    for (const auto& [name, t] : {std::pair{"attn_q", &w.wq},
                                  {"attn_k", &w.wk},
                                  {"attn_v", &w.wv},
                                  {"attn_output", &w.wo},
                                  {"ffn_gate", &w.w_gate},
                                  {"ffn_up", &w.w_up},
                                  {"ffn_down", &w.w_down}}) {
      if (t->numel() > 0) matrices.push_back({p + name + ".weight", t});
    }
  }
  for (const auto& [name, t] : matrices) {
    if (!ops::weight_dtype_supported(t->dtype())) {
      throw Error(ErrorCode::kUnsupported,
                  path_ + ": tensor " + name + " has dtype " + dtype_name(t->dtype()) +
                      ", which glassbox cannot compute with or convert (supported: f32, f16, "
                      "bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k)");
    }
  }
}

std::unique_ptr<Tokenizer> load_model_tokenizer(const Model& model,
                                                const std::optional<std::string>& explicit_path) {
  if (explicit_path) return load_tokenizer(*explicit_path);
  if (model.gguf() != nullptr && model.gguf()->find("tokenizer.ggml.tokens") != nullptr) {
    return load_gguf_tokenizer(*model.gguf());
  }
  namespace fs = std::filesystem;
  // An HF checkpoint is its directory ("dir" or "dir/"); a file's tokenizer sits beside it.
  const fs::path dir = fs::is_directory(model.path()) ? fs::path(model.path())
                                                      : fs::path(model.path()).parent_path();
  const std::string vocab = std::to_string(model.config().d_vocab);
  std::vector<fs::path> candidates = {dir / "tokenizer.json", dir / "tokenizer.model",
                                      dir / ("tok" + vocab + ".bin"), dir / "tokenizer.bin"};
  for (const fs::path& p : candidates) {
    if (!fs::is_regular_file(p)) continue;
    if (p.extension() == ".bin") {
      return load_llama2c_tokenizer(p.string(), static_cast<int32_t>(model.config().d_vocab));
    }
    try {
      return load_tokenizer(p.string());
    } catch (const Error& e) {
      // SentencePiece models (Llama 2, Mistral v0.1, Gemma) ship their tokenizer.json beside
      // tokenizer.model, the SentencePiece file it was converted from (what transformers' slow
      // tokenizer and llama.cpp's converter read); a tokenizer.json form glassbox does not
      // implement defers to it.
      const bool spm_beside =
          p.filename() == "tokenizer.json" && fs::is_regular_file(dir / "tokenizer.model");
      if (e.code() != ErrorCode::kUnsupported || !spm_beside) throw;
    }
  }
  std::string searched;
  for (const fs::path& p : candidates) searched += " " + p.string();
  throw Error(ErrorCode::kNotFound, model.path() +
                                        ": no tokenizer given (--tokenizer) and none found; "
                                        "searched the GGUF vocabulary and" +
                                        searched);
}

}  // namespace glassbox
