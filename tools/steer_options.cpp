#include "steer_options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "steer/control_vector.h"
#include "steer/interventions.h"

namespace glassbox::cli {

void add_steer_options(CLI::App& cmd, SteerArgs& a) {
  const char* group = "Interventions";
  cmd.add_option("--steer", a.steer,
                 "FILE:LAYER:ALPHA: add ALPHA * vector at blocks.LAYER.hook_resid_post (LAYER may "
                 "be a hook name; FILE .npy [w] or [n_layers, w], or a control-vector .gguf)")
      ->group(group);
  cmd.add_option("--ablate", a.ablate, "FILE:LAYER: remove the component along the vector")
      ->group(group);
  cmd.add_option("--cap", a.cap, "FILE:LAYER:MAX: limit the projection on the unit vector to MAX")
      ->group(group);
  cmd.add_option("--clamp", a.clamp,
                 "SAE:LATENT:VALUE: set an SAE latent at the SAE's hook, keeping its error term")
      ->group(group);
  cmd.add_option("--scale-latent", a.scale_latent,
                 "SAE:LATENT:FACTOR: multiply an SAE latent, keeping the SAE's error term")
      ->group(group);
  cmd.add_option("--steer-from", a.steer_from,
                 "Apply --steer/--ablate/--cap/--clamp/--scale-latent only at positions >= P "
                 "(default 0: all)")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
  cmd.add_option("--control-vector", a.control_vector,
                 "llama.cpp control vector (GGUF direction.N, added to the output of block N), "
                 "scale 1; repeatable, summed")
      ->group(group);
  cmd.add_option("--control-vector-scaled", a.control_vector_scaled,
                 "FILE SCALE: llama.cpp control vector times SCALE; repeatable, summed")
      ->group(group);
  cmd.add_option("--control-vector-layer-range", a.layer_range,
                 "START END: llama.cpp layer range (inclusive) the control vectors apply to "
                 "(default 1 .. n_layers)")
      ->group(group);
}

namespace {

float parse_scale(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) {
    throw Error(ErrorCode::kInvalidArgument,
                "--control-vector-scaled: expected FILE SCALE, got scale '" + text + "'");
  }
  return static_cast<float>(v);
}

}  // namespace

std::vector<Intervention> build_interventions(const ModelConfig& config, const SteerArgs& a) {
  std::vector<Intervention> ivs;
  std::vector<std::pair<std::string, float>> files;
  for (const auto& f : a.control_vector) files.emplace_back(f, 1.0f);
  for (const auto& [file, scale] : a.control_vector_scaled) {
    files.emplace_back(file, parse_scale(scale));
  }
  if (!a.layer_range.empty() && files.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--control-vector-layer-range: needs --control-vector or --control-vector-scaled");
  }
  if (!files.empty()) {
    int start = 0, end = 0;
    if (!a.layer_range.empty()) std::tie(start, end) = a.layer_range.back();
    ControlVector cv;
    try {
      cv = sum_control_vectors(files, config.d_model);
    } catch (const Error& e) {
      throw Error(e.code(), std::string("--control-vector: ") + e.what());
    }
    try {
      for (auto& iv : control_vector_interventions(cv, config, start, end)) {
        ivs.push_back(std::move(iv));
      }
    } catch (const Error& e) {
      throw Error(e.code(), std::string("--control-vector: ") + e.what());
    }
  }
  const auto add_all = [&](const std::vector<std::string>& specs, auto parse) {
    for (const auto& s : specs) {
      Intervention iv = parse(s, config);
      iv.pos_from = a.steer_from;
      ivs.push_back(std::move(iv));
    }
  };
  add_all(a.steer, [](auto s, auto& c) { return parse_steer_spec(s, c); });
  add_all(a.ablate, [](auto s, auto& c) { return parse_ablate_spec(s, c); });
  add_all(a.cap, [](auto s, auto& c) { return parse_cap_spec(s, c); });
  add_all(a.clamp, [](auto s, auto& c) { return parse_clamp_spec(s, c); });
  add_all(a.scale_latent, [](auto s, auto& c) { return parse_scale_latent_spec(s, c); });
  return ivs;
}

std::vector<HookHandle> install_steering(Session& session, const SteerArgs& args) {
  return add_interventions(session.hooks(), build_interventions(session.config(), args));
}

}  // namespace glassbox::cli
