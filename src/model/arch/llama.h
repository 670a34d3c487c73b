// The `llama` architecture: hyperparameters from GGUF metadata or a llama2.c header, and the
// binding of named tensors to LayerWeights with shape checks. Only what differs per
// architecture lives here; the forward pass is the shared skeleton in model/session.cpp.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/tensor.h"
#include "io/gguf.h"
#include "io/llama2c.h"
#include "model/config.h"
#include "model/model.h"

namespace glassbox::arch {

ModelConfig llama_config_from_gguf(const GgufFile& gguf);
ModelConfig llama_config_from_llama2c(const Llama2cHeader& header);

// Looks a tensor up by GGUF name; nullopt when absent.
using TensorLookup = std::function<std::optional<Tensor>(const std::string& name)>;

struct LlamaWeights {
  Tensor tok_embd, output_norm, output;
  std::vector<LayerWeights> layers;
};
// Binds and shape-checks every tensor; throws Error(kFormat) "SOURCE: tensor NAME has shape
// [..], expected [..]" or "SOURCE: missing tensor NAME". Ties output to tok_embd when absent.
LlamaWeights bind_llama_weights(const ModelConfig& config, const TensorLookup& lookup,
                                const std::string& source);

}  // namespace glassbox::arch
