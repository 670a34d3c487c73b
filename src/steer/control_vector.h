// ControlVector: per-layer steering directions in the residual stream, and their files:
// llama.cpp control-vector GGUF (general.architecture "controlvector", controlvector.model_hint,
// controlvector.layer_count, F32 tensors "direction.N" [d_model]), .npy [n_layers, d_model] and
// safetensors ("direction.N" tensors). Owns the data and the formats; applying a vector to a
// forward pass lives in interventions.h (hooks).
//
// Layer indexing is llama.cpp's: direction.N (N >= 1) is added to the output of block N, i.e.
// TransformerLens blocks.N.hook_resid_post (0-based N); llama.cpp never steers block 0's output
// (direction.0 is invalid there, and refused here). In a .npy [n_layers, d_model] row L is
// blocks.L.hook_resid_post and row 0 must be zero to be written as GGUF.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace glassbox {

struct ControlVector {
  int64_t d_model = 0;
  std::map<int, std::vector<float>> directions;  // block index N -> [d_model]
  std::string model_hint;                        // GGUF controlvector.model_hint ("llama")
};

// By extension: .gguf, .npy, .safetensors. Throws Error(kFormat/kShape/kIo) naming the file and
// the key or tensor at fault (wrong width, a tensor name that is not direction.N, N out of
// range, non-F32 data, non-finite values, missing metadata).
ControlVector load_control_vector(const std::string& path);
void save_control_vector(const ControlVector& cv, const std::string& path);

// llama.cpp's --control-vector / --control-vector-scaled: the scaled sum of several files
// (each checked against d_model), as common_control_vector_load does.
ControlVector sum_control_vectors(const std::vector<std::pair<std::string, float>>& files,
                                  int64_t d_model);

}  // namespace glassbox
