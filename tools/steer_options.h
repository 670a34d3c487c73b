// Intervention flags shared by `glassbox generate` and `glassbox logits` (docs/interventions.md):
// --steer, --ablate, --cap, --clamp, --scale-latent, --steer-from, and llama.cpp's
// --control-vector, --control-vector-scaled, --control-vector-layer-range with llama.cpp's
// semantics and layer numbering. Parsing only; the math lives in steer/interventions.h.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/hooks.h"
#include "model/session.h"
#include "steer/interventions.h"

namespace glassbox::cli {

struct SteerArgs {
  std::vector<std::string> steer, ablate, cap, clamp, scale_latent;
  std::vector<std::string> control_vector;
  std::vector<std::pair<std::string, std::string>> control_vector_scaled;  // FILE SCALE
  std::vector<std::pair<int, int>> layer_range;  // START END; the last one given wins
  int64_t steer_from = 0;
};

void add_steer_options(CLI::App& cmd, SteerArgs& args);

// Parses every spec (loading files) into interventions for a model with `config`: control vectors
// first (summed, as llama.cpp does), then --steer, --ablate, --cap, --clamp, --scale-latent in
// command line order within each flag. Throws Error naming the flag on a bad spec.
std::vector<Intervention> build_interventions(const ModelConfig& config, const SteerArgs& args);

// build_interventions registered on `session`; registers nothing when a spec is bad.
std::vector<HookHandle> install_steering(Session& session, const SteerArgs& args);

}  // namespace glassbox::cli
