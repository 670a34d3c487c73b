#include "model/model.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/arch/llama.h"
#include "ops/ops.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

bool has_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace

Model load_model(const std::string& path) {
  Model m;
  m.path_ = path;
  try {
    if (has_gguf_magic(path)) {
      auto gguf = std::make_shared<GgufFile>(GgufFile::open(path));
      const std::string arch =
          gguf->get("general.architecture").as_string(path + ": general.architecture");
      if (arch != "llama") {
        throw Error(ErrorCode::kUnsupported,
                    path + ": architecture '" + arch + "' is not supported (supported: llama)");
      }
      m.config_ = arch::llama_config_from_gguf(*gguf);
      for (const GgufTensorInfo& info : gguf->tensor_infos()) {
        m.tensors_.emplace_back(info.name, gguf->tensor(info.name));
      }
      m.gguf_ = gguf;
    } else {
      const Llama2cCheckpoint ckpt = Llama2cCheckpoint::open(path);
      m.config_ = arch::llama_config_from_llama2c(ckpt.header());
      validate_config(m.config_, path);
      for (const auto& [name, tensor] : ckpt.tensors()) m.tensors_.emplace_back(name, tensor);
    }
  } catch (const Error& e) {
    if (std::string(e.what()).find(path) != std::string::npos) throw;
    throw e.with_context(path);
  }
  const auto lookup = [&m](const std::string& name) -> std::optional<Tensor> {
    for (const auto& [n, t] : m.tensors_)
      if (n == name) return t;
    return std::nullopt;
  };
  arch::LlamaWeights w = arch::bind_llama_weights(m.config_, lookup, path);
  m.tok_embd_ = w.tok_embd;
  m.output_norm_ = w.output_norm;
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
  for (const auto& [name, t] : tensors_) {
    if (!ops::weight_dtype_supported(t.dtype())) {
      throw Error(ErrorCode::kUnsupported,
                  path_ + ": tensor " + name + " has dtype " + dtype_name(t.dtype()) +
                      "; this build computes with f32, f16 and bf16 weights only");
    }
  }
  for (const Tensor* t : {&output_norm_}) {
    if (t->dtype() != DType::kF32) {
      throw Error(ErrorCode::kUnsupported, path_ + ": norm weights must be f32");
    }
  }
  for (const LayerWeights& l : layers_) {
    if (l.attn_norm.dtype() != DType::kF32 || l.ffn_norm.dtype() != DType::kF32) {
      throw Error(ErrorCode::kUnsupported, path_ + ": norm weights must be f32");
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
  const fs::path dir = fs::path(model.path()).parent_path();
  const std::string vocab = std::to_string(model.config().d_vocab);
  std::vector<fs::path> candidates = {dir / "tokenizer.model", dir / ("tok" + vocab + ".bin"),
                                      dir / "tokenizer.bin"};
  for (const fs::path& p : candidates) {
    if (!fs::is_regular_file(p)) continue;
    if (p.extension() == ".bin") {
      return load_llama2c_tokenizer(p.string(), static_cast<int32_t>(model.config().d_vocab));
    }
    return load_tokenizer(p.string());
  }
  std::string searched;
  for (const fs::path& p : candidates) searched += " " + p.string();
  throw Error(ErrorCode::kNotFound, model.path() +
                                        ": no tokenizer given (--tokenizer) and none found; "
                                        "searched the GGUF vocabulary and" +
                                        searched);
}

}  // namespace glassbox
