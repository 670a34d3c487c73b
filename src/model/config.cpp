#include "model/config.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace glassbox {

void validate_config(const ModelConfig& c, const std::string& source) {
  auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::kFormat, source + ": " + what);
  };
  auto positive = [&](int64_t v, const char* name, int64_t max) {
    if (v <= 0 || v > max) {
      fail(std::string(name) + " is " + std::to_string(v) + ", expected 1.." + std::to_string(max));
    }
  };
  positive(c.d_model, "d_model", 1 << 17);
  positive(c.d_mlp, "d_mlp", 1 << 20);
  positive(c.n_layers, "n_layers", 1024);
  positive(c.n_heads, "n_heads", 1024);
  positive(c.n_kv_heads, "n_kv_heads", 1024);
  positive(c.d_head, "d_head", 4096);
  positive(c.d_vocab, "d_vocab", 1 << 24);
  positive(c.n_ctx, "n_ctx", 1 << 24);
  if (c.n_heads % c.n_kv_heads != 0) {
    fail("n_heads " + std::to_string(c.n_heads) + " is not a multiple of n_kv_heads " +
         std::to_string(c.n_kv_heads));
  }
  if (c.position == PositionType::kRope &&
      (c.rope_dims < 0 || c.rope_dims > c.d_head || c.rope_dims % 2 != 0)) {
    fail("rope dims " + std::to_string(c.rope_dims) + " must be even and at most d_head " +
         std::to_string(c.d_head));
  }
  if (!(c.norm_eps > 0.0 && c.norm_eps < 1.0)) fail("norm epsilon out of range (0, 1)");
  if (!(c.rope_theta > 0.0)) fail("rope theta must be positive");
  if (!c.rope_freq_factors.empty()) {
    if (static_cast<int64_t>(c.rope_freq_factors.size()) != c.rope_dims / 2) {
      fail("rope_freqs has " + std::to_string(c.rope_freq_factors.size()) +
           " factors, expected rope dims / 2 = " + std::to_string(c.rope_dims / 2));
    }
    for (double f : c.rope_freq_factors) {
      if (!(f > 0.0) || !std::isfinite(f)) fail("rope_freqs factors must be positive and finite");
    }
    if (c.rope_scaling.factor != 0.0) fail("both rope_freqs and rope scaling parameters given");
  }
  if (!(c.rope_linear_factor >= 1.0) || !std::isfinite(c.rope_linear_factor)) {
    fail("linear rope scaling factor must be >= 1");
  }
  if (c.rope_theta_local < 0.0 || !std::isfinite(c.rope_theta_local)) {
    fail("local rope theta must be positive");
  }
  if (c.rope_linear_factor != 1.0 &&
      (c.rope_scaling.factor != 0.0 || !c.rope_freq_factors.empty())) {
    fail("both linear rope scaling and Llama 3 rope scaling given");
  }
  if (c.sliding_window < 0) fail("sliding window must be >= 0");
  if (!c.local_layers.empty() && static_cast<int64_t>(c.local_layers.size()) != c.n_layers) {
    fail("the sliding-window layer pattern has " + std::to_string(c.local_layers.size()) +
         " entries for " + std::to_string(c.n_layers) + " layers");
  }
  for (double v : {c.attn_scale, c.attn_softcap, c.final_softcap}) {
    if (v < 0.0 || !std::isfinite(v)) fail("attention scale and soft-caps must be >= 0 and finite");
  }
  if (c.qk_norm && c.position != PositionType::kRope) fail("q/k norms need rotary positions");
  if (c.rope_scaling.factor != 0.0 &&
      !(c.rope_scaling.factor >= 1.0 && c.rope_scaling.original_n_ctx > 0 &&
        c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor &&
        c.rope_scaling.low_freq_factor > 0.0)) {
    fail(
        "rope scaling needs factor >= 1, original context > 0 and high_freq_factor > "
        "low_freq_factor > 0");
  }
}

std::vector<double> rope_inv_freq(const ModelConfig& c, bool local) {
  std::vector<double> inv;
  if (c.position != PositionType::kRope) return inv;
  const int64_t half = c.rope_dims / 2;
  const bool own_base = local && c.rope_theta_local > 0.0;  // Gemma 3: no scaling there
  const double theta = own_base ? c.rope_theta_local : c.rope_theta;
  for (int64_t i = 0; i < half; ++i) {
    inv.push_back(std::pow(theta, -2.0 * static_cast<double>(i) / c.rope_dims));
  }
  if (own_base) return inv;
  if (c.rope_linear_factor != 1.0) {
    for (double& f : inv) f /= c.rope_linear_factor;
  }
  if (!c.rope_freq_factors.empty()) {
    for (size_t i = 0; i < inv.size(); ++i) inv[i] /= c.rope_freq_factors[i];
    return inv;
  }
  const RopeScaling& s = c.rope_scaling;
  if (s.factor == 0.0) return inv;
  // Llama 3: wavelengths longer than the original context / low_freq_factor are slowed by
  // `factor`, shorter than original / high_freq_factor kept, and blended in between.
  const double n = static_cast<double>(s.original_n_ctx);
  const double low_wavelen = n / s.low_freq_factor, high_wavelen = n / s.high_freq_factor;
  for (double& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      f /= s.factor;
      continue;
    }
    const double smooth =
        (n / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    f = (1.0 - smooth) * f / s.factor + smooth * f;
  }
  return inv;
}

}  // namespace glassbox
