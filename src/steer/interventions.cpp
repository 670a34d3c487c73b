#include "steer/interventions.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <utility>

#include "core/error.h"
#include "io/npy.h"
#include "sae/sae_io.h"

namespace glassbox {
namespace {

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

// Unit vector of v, in float64 for the projections; throws for a zero or non-finite v.
std::vector<double> unit(const std::vector<float>& v) {
  double n2 = 0;
  for (float x : v) n2 += double(x) * x;
  if (!(n2 > 0) || !std::isfinite(n2)) {
    fail(ErrorCode::kInvalidArgument, "direction must be finite and nonzero");
  }
  const double inv = 1.0 / std::sqrt(n2);
  std::vector<double> u(v.size());
  for (size_t i = 0; i < v.size(); ++i) u[i] = v[i] * inv;
  return u;
}

// Rows and per-token width of an activation; throws kShape when the width is not `want`.
std::pair<int64_t, int64_t> rows_of(const Tensor& act, int64_t want, const char* what) {
  const int64_t rows = act.ndim() > 0 ? act.dim(0) : 0;
  const int64_t width = rows > 0 ? act.numel() / rows : 0;
  if (rows > 0 && width != want) {
    fail(ErrorCode::kShape, std::string(what) + ": activation rows have width " +
                                std::to_string(width) + ", expected " + std::to_string(want));
  }
  return {rows, width};
}

// The factor s(x) that maps a change of the SAE's decoder output to a change of x (Sae's
// per-row normalisation, undone as in Sae::reconstruct).
double row_scale(const Sae& sae, const float* x) {
  const int64_t d = sae.d_in;
  if (sae.normalize_activations == SaeNorm::kConstantNormRescale) {
    return std::sqrt(dot(x, x, d)) / std::sqrt(double(d));
  }
  if (sae.normalize_activations == SaeNorm::kLayerNorm) {
    double mean = 0;
    for (int64_t i = 0; i < d; ++i) mean += x[i];
    mean /= double(d);
    double var = 0;
    for (int64_t i = 0; i < d; ++i) var += (x[i] - mean) * (x[i] - mean);
    return d > 1 ? std::sqrt(var / double(d - 1)) : 0.0;
  }
  return 1.0;
}

HookFn latent_hook(const Intervention& iv) {
  if (!iv.sae) fail(ErrorCode::kInvalidArgument, "latent intervention without an SAE");
  if (iv.latent < 0 || iv.latent >= iv.sae->d_sae) {
    fail(ErrorCode::kInvalidArgument, "latent " + std::to_string(iv.latent) +
                                          " out of range (d_sae " + std::to_string(iv.sae->d_sae) +
                                          ")");
  }
  const bool clamp = iv.kind == InterventionKind::kClampLatent;
  return [sae = iv.sae, j = iv.latent, value = iv.value, clamp, from = iv.pos_from](
             const HookEvent& ev, Tensor& act) {
    const auto [rows, d] = rows_of(act, sae->d_in, "SAE latent intervention");
    float* x = act.mutable_data<float>();
    const float* w_dec = sae->W_dec.data<float>() + j * d;  // row j of W_dec [d_sae, d_in]
    const double inv_nsf = sae->norm_scaling_factor ? 1.0 / *sae->norm_scaling_factor : 1.0;
    std::vector<float> acts(static_cast<size_t>(sae->d_sae));
    for (int64_t r = 0; r < rows; ++r) {
      if (ev.pos_start + r < from) continue;
      float* row = x + r * d;
      sae->encode(row, 1, acts.data());
      const double a = acts[static_cast<size_t>(j)];
      const double target = clamp ? double(value) : double(value) * a;
      const double delta = target - a;
      if (delta == 0.0) continue;  // x = decode(acts) + err exactly
      const double coeff = delta * inv_nsf * row_scale(*sae, row);
      for (int64_t i = 0; i < d; ++i) row[i] = float(row[i] + coeff * w_dec[i]);
    }
  };
}

std::optional<double> parse_number(std::string_view text) {
  const std::string s(text);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_int(std::string_view text) {
  const std::optional<double> v = parse_number(text);
  if (!v || *v != std::floor(*v) || text.find_first_of(".eE") != std::string_view::npos) {
    return std::nullopt;
  }
  return static_cast<int64_t>(*v);
}

// Splits `spec` into exactly `n` fields at its last n-1 ':' (the first field may hold ':').
std::optional<std::vector<std::string>> split_right(std::string_view spec, size_t n) {
  std::vector<std::string> parts(n);
  std::string_view rest = spec;
  for (size_t i = n - 1; i > 0; --i) {
    const size_t c = rest.rfind(':');
    if (c == std::string_view::npos) return std::nullopt;
    parts[i] = std::string(rest.substr(c + 1));
    rest = rest.substr(0, c);
  }
  parts[0] = std::string(rest);
  for (const auto& p : parts) {
    if (p.empty()) return std::nullopt;
  }
  return parts;
}

[[noreturn]] void bad_spec(const std::string& flag, const char* expected, std::string_view spec,
                           const std::string& why = "") {
  fail(ErrorCode::kInvalidArgument, flag + ": expected " + expected + ", got '" +
                                        std::string(spec) + "'" + (why.empty() ? "" : ": " + why));
}

// LAYER as a block index (-> blocks.LAYER.hook_resid_post) or a full hook name.
HookName parse_layer_field(const std::string& field, const ModelConfig& config,
                           const std::string& flag) {
  if (const auto layer = parse_int(field)) {
    if (*layer < 0 || *layer >= config.n_layers) {
      fail(ErrorCode::kInvalidArgument, flag + ": layer " + field +
                                            " out of range: layers are 0.." +
                                            std::to_string(config.n_layers - 1));
    }
    return HookName{HookPoint::kResidPost, static_cast<int>(*layer)};
  }
  try {
    const HookName name = resolve_hook_name(field, config);
    if (!hook_token_shape(name.point, config)) {
      fail(ErrorCode::kInvalidArgument, "hook has no per-token rows");
    }
    return name;
  } catch (const Error& e) {
    fail(ErrorCode::kInvalidArgument,
         flag + ": LAYER must be a block index or a hook name: " + e.what());
  }
}

int64_t token_width(HookName hook, const ModelConfig& config) {
  const std::optional<Shape> shape = hook_token_shape(hook.point, config);
  if (!shape) {
    throw Error(ErrorCode::kInvalidArgument,
                hook_name_string(hook) + ": attention scores and patterns cannot be steered");
  }
  int64_t w = 1;
  for (int64_t d : *shape) w *= d;
  return w;
}

// The vector FILE supplies for `hook` (see parse_steer_spec), checked against the hook's width.
std::vector<float> load_vector(const std::string& path, HookName hook, const ModelConfig& config,
                               const std::string& flag) {
  const int64_t want = token_width(hook, config);
  std::vector<float> v;
  const std::string ext = std::filesystem::path(path).extension().string();
  try {
    if (ext == ".npy") {
      const Tensor t = read_npy(path).to_f32();
      const auto f = t.floats();
      if (t.ndim() == 1) {
        v.assign(f.begin(), f.end());
      } else if (t.ndim() == 2) {
        if (hook.layer < 0 || hook.layer >= t.dim(0)) {
          fail(ErrorCode::kShape, "shape " + shape_str(t.shape()) + " has no row for layer " +
                                      std::to_string(hook.layer));
        }
        const int64_t w = t.dim(1);
        v.assign(f.begin() + hook.layer * w, f.begin() + (hook.layer + 1) * w);
      } else {
        fail(ErrorCode::kShape, "expected shape [w] or [n_layers, w], got " + shape_str(t.shape()));
      }
    } else {
      const ControlVector cv = load_control_vector(path);
      const auto it = cv.directions.find(hook.layer);
      if (it == cv.directions.end()) {
        fail(ErrorCode::kNotFound, "no direction." + std::to_string(hook.layer));
      }
      v = it->second;
    }
  } catch (const Error& e) {
    const std::string msg = e.what();
    // Loader messages already name the file; ours do not.
    fail(e.code(), flag + ": " + (msg.find(path) == std::string::npos ? path + ": " : "") + msg);
  }
  if (static_cast<int64_t>(v.size()) != want) {
    fail(ErrorCode::kShape, flag + ": " + path + ": vector width " + std::to_string(v.size()) +
                                " does not match " + hook_name_string(hook) + " (width " +
                                std::to_string(want) + ")");
  }
  for (float x : v) {
    if (!std::isfinite(x)) fail(ErrorCode::kFormat, flag + ": " + path + ": non-finite value");
  }
  return v;
}

Intervention parse_vector_spec(std::string_view spec, const ModelConfig& config,
                               const std::string& flag, InterventionKind kind, size_t n_fields,
                               const char* expected) {
  const auto parts = split_right(spec, n_fields);
  if (!parts) bad_spec(flag, expected, spec);
  Intervention iv;
  iv.kind = kind;
  iv.hook = parse_layer_field((*parts)[1], config, flag);
  if (n_fields == 3) {
    const auto v = parse_number((*parts)[2]);
    if (!v) bad_spec(flag, expected, spec, "'" + (*parts)[2] + "' is not a finite number");
    iv.value = static_cast<float>(*v);
  }
  iv.vector = load_vector((*parts)[0], iv.hook, config, flag);
  if (kind != InterventionKind::kAdd) {
    try {
      unit(iv.vector);
    } catch (const Error& e) {
      fail(ErrorCode::kInvalidArgument, flag + ": " + (*parts)[0] + ": " + e.what());
    }
  }
  return iv;
}

Intervention parse_latent_spec(std::string_view spec, const ModelConfig& config,
                               const std::string& flag, InterventionKind kind,
                               const char* expected) {
  const auto parts = split_right(spec, 3);
  if (!parts) bad_spec(flag, expected, spec);
  const auto latent = parse_int((*parts)[1]);
  if (!latent) bad_spec(flag, expected, spec, "'" + (*parts)[1] + "' is not a latent index");
  const auto value = parse_number((*parts)[2]);
  if (!value) bad_spec(flag, expected, spec, "'" + (*parts)[2] + "' is not a finite number");
  const std::string& path = (*parts)[0];
  auto sae = std::make_shared<Sae>();
  try {
    *sae = load_sae(path);
  } catch (const Error& e) {
    fail(e.code(), flag + ": " + e.what());
  }
  Intervention iv;
  iv.kind = kind;
  try {
    iv.hook = resolve_hook_name(sae->hook_name, config);
  } catch (const Error& e) {
    fail(ErrorCode::kInvalidArgument, flag + ": " + path + ": SAE hook: " + e.what());
  }
  if (!hook_token_shape(iv.hook.point, config) || token_width(iv.hook, config) != sae->d_in) {
    fail(ErrorCode::kShape, flag + ": " + path + ": SAE d_in " + std::to_string(sae->d_in) +
                                " does not match the width of " + sae->hook_name);
  }
  if (*latent < 0 || *latent >= sae->d_sae) {
    fail(ErrorCode::kInvalidArgument, flag + ": latent " + (*parts)[1] +
                                          " out of range: the SAE has d_sae " +
                                          std::to_string(sae->d_sae));
  }
  iv.sae = std::move(sae);
  iv.latent = *latent;
  iv.value = static_cast<float>(*value);
  return iv;
}

}  // namespace

HookFn make_intervention_hook(const Intervention& iv) {
  if (!std::isfinite(iv.value)) fail(ErrorCode::kInvalidArgument, "intervention value not finite");
  const int64_t from = iv.pos_from;
  switch (iv.kind) {
    case InterventionKind::kAdd: {
      if (iv.vector.empty()) fail(ErrorCode::kInvalidArgument, "empty steering vector");
      return [v = iv.vector, alpha = iv.value, from](const HookEvent& ev, Tensor& act) {
        const int64_t w = static_cast<int64_t>(v.size());
        const auto [rows, d] = rows_of(act, w, "steering vector");
        float* x = act.mutable_data<float>();
        for (int64_t r = 0; r < rows; ++r) {
          if (ev.pos_start + r < from) continue;
          for (int64_t i = 0; i < d; ++i) x[r * d + i] += alpha * v[static_cast<size_t>(i)];
        }
      };
    }
    case InterventionKind::kAblate:
    case InterventionKind::kCap: {
      const bool cap = iv.kind == InterventionKind::kCap;
      return
          [u = unit(iv.vector), c = double(iv.value), cap, from](const HookEvent& ev, Tensor& act) {
            const int64_t w = static_cast<int64_t>(u.size());
            const auto [rows, d] = rows_of(act, w, cap ? "projection cap" : "directional ablation");
            float* x = act.mutable_data<float>();
            for (int64_t r = 0; r < rows; ++r) {
              if (ev.pos_start + r < from) continue;
              float* row = x + r * d;
              double proj = 0;
              for (int64_t i = 0; i < d; ++i) proj += row[i] * u[static_cast<size_t>(i)];
              const double remove = cap ? std::max(0.0, proj - c) : proj;
              if (remove == 0.0) continue;
              for (int64_t i = 0; i < d; ++i) {
                row[i] = float(row[i] - remove * u[static_cast<size_t>(i)]);
              }
            }
          };
    }
    case InterventionKind::kClampLatent:
    case InterventionKind::kScaleLatent:
      return latent_hook(iv);
  }
  fail(ErrorCode::kInvalidArgument, "unknown intervention kind");
}

std::vector<HookHandle> add_interventions(HookRegistry& hooks,
                                          const std::vector<Intervention>& ivs) {
  std::vector<HookFn> fns;  // build every hook first: a bad one registers nothing
  fns.reserve(ivs.size());
  for (const auto& iv : ivs) fns.push_back(make_intervention_hook(iv));
  std::vector<HookHandle> handles;
  handles.reserve(ivs.size());
  for (size_t i = 0; i < ivs.size(); ++i) handles.push_back(hooks.add(ivs[i].hook, fns[i]));
  return handles;
}

std::vector<Intervention> control_vector_interventions(const ControlVector& cv,
                                                       const ModelConfig& config, int layer_start,
                                                       int layer_end) {
  if (cv.d_model != config.d_model) {
    fail(ErrorCode::kShape, "control vector n_embd " + std::to_string(cv.d_model) +
                                " does not match the model's d_model " +
                                std::to_string(config.d_model));
  }
  // common.cpp: start <= 0 -> 1, end <= 0 -> n_layer; llama-adapter.cpp: no tensor for layer 0
  // nor past the last layer.
  const int start = std::max(1, layer_start);
  const int end = layer_end <= 0 ? static_cast<int>(config.n_layers) : layer_end;
  std::vector<Intervention> out;
  for (const auto& [layer, dir] : cv.directions) {
    if (layer < start || layer > end || layer >= config.n_layers) continue;
    if (static_cast<int64_t>(dir.size()) != config.d_model) {
      fail(ErrorCode::kShape, "control vector direction." + std::to_string(layer) + " has width " +
                                  std::to_string(dir.size()));
    }
    Intervention iv;
    iv.kind = InterventionKind::kAdd;
    iv.hook = HookName{HookPoint::kResidPost, layer};
    iv.vector = dir;
    iv.value = 1.0f;
    out.push_back(std::move(iv));
  }
  return out;
}

Intervention parse_steer_spec(std::string_view spec, const ModelConfig& config,
                              const std::string& flag) {
  return parse_vector_spec(spec, config, flag, InterventionKind::kAdd, 3, "FILE:LAYER:ALPHA");
}
Intervention parse_ablate_spec(std::string_view spec, const ModelConfig& config,
                               const std::string& flag) {
  return parse_vector_spec(spec, config, flag, InterventionKind::kAblate, 2, "FILE:LAYER");
}
Intervention parse_cap_spec(std::string_view spec, const ModelConfig& config,
                            const std::string& flag) {
  return parse_vector_spec(spec, config, flag, InterventionKind::kCap, 3, "FILE:LAYER:MAX");
}
Intervention parse_clamp_spec(std::string_view spec, const ModelConfig& config,
                              const std::string& flag) {
  return parse_latent_spec(spec, config, flag, InterventionKind::kClampLatent, "SAE:LATENT:VALUE");
}
Intervention parse_scale_latent_spec(std::string_view spec, const ModelConfig& config,
                                     const std::string& flag) {
  return parse_latent_spec(spec, config, flag, InterventionKind::kScaleLatent, "SAE:LATENT:FACTOR");
}

}  // namespace glassbox
