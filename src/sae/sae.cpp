#include "sae/sae.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace glassbox {
namespace {

// Rows of x encoded per sgemm: bounds the scratch copy of x to kRowBlock * d_in floats.
constexpr int64_t kRowBlock = 256;


// Per-row normalisation of SAELens's run_time_activation_norm_fn_in; returns what undoes it
// (scale, shift) so that x = x' * scale + shift.
struct RowNorm {
  double scale = 1.0;
  double shift = 0.0;
};

RowNorm normalise_row(SaeNorm norm, int64_t d_in, float* row) {
  RowNorm r;
  if (norm == SaeNorm::kConstantNormRescale) {
    // x * sqrt(d_in) / ||x||
    double ss = 0;
    for (int64_t i = 0; i < d_in; ++i) ss += double(row[i]) * row[i];
    const double coeff = std::sqrt(double(d_in)) / std::sqrt(ss);
    for (int64_t i = 0; i < d_in; ++i) row[i] = float(row[i] * coeff);
    r.scale = 1.0 / coeff;
  } else if (norm == SaeNorm::kLayerNorm) {
    // (x - mean) / (std + 1e-5), std with Bessel's correction (torch's default).
    double mean = 0;
    for (int64_t i = 0; i < d_in; ++i) mean += row[i];
    mean /= double(d_in);
    double var = 0;
    for (int64_t i = 0; i < d_in; ++i) var += (row[i] - mean) * (row[i] - mean);
    const double std = d_in > 1 ? std::sqrt(var / double(d_in - 1)) : 0.0;
    for (int64_t i = 0; i < d_in; ++i) row[i] = float((row[i] - mean) / (std + 1e-5));
    r.scale = std;  // SAELens undoes it as x * std + mu (no eps)
    r.shift = mean;
  }
  return r;
}

void check_weight(const Tensor& t, const Shape& shape, const std::string& source,
                  const char* name) {
  if (!t.defined()) fail(ErrorCode::kInvalidArgument, source + ": missing weight " + name);
  if (t.dtype() != DType::kF32) {
    fail(ErrorCode::kInvalidArgument,
         source + ": " + name + " must be f32, got " + dtype_name(t.dtype()));
  }
  if (t.shape() != shape) {
    fail(ErrorCode::kShape, source + ": " + name + " has shape " + shape_str(t.shape()) +
                                ", expected " + shape_str(shape));
  }
  const float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(p[i])) {
      fail(ErrorCode::kFormat, source + ": " + name + " has a non-finite value (" +
                                   std::to_string(p[i]) + ") at flat index " + std::to_string(i));
    }
  }
}

}  // namespace

const char* sae_arch_name(SaeArch arch) {
  switch (arch) {
    case SaeArch::kRelu:
      return "relu";
    case SaeArch::kTopK:
      return "topk";
    case SaeArch::kBatchTopK:
      return "batchtopk";
    case SaeArch::kJumpRelu:
      return "jumprelu";
  }
  return "?";
}

std::optional<SaeArch> parse_sae_arch(const std::string& name) {
  if (name == "relu" || name == "standard") return SaeArch::kRelu;
  if (name == "topk") return SaeArch::kTopK;
  if (name == "batchtopk") return SaeArch::kBatchTopK;
  if (name == "jumprelu") return SaeArch::kJumpRelu;
  return std::nullopt;
}

const char* sae_norm_name(SaeNorm norm) {
  switch (norm) {
    case SaeNorm::kNone:
      return "none";
    case SaeNorm::kExpectedAverageOnlyIn:
      return "expected_average_only_in";
    case SaeNorm::kConstantNormRescale:
      return "constant_norm_rescale";
    case SaeNorm::kLayerNorm:
      return "layer_norm";
  }
  return "?";
}

std::optional<SaeNorm> parse_sae_norm(const std::string& name) {
  if (name == "none") return SaeNorm::kNone;
  if (name == "expected_average_only_in") return SaeNorm::kExpectedAverageOnlyIn;
  if (name == "constant_norm_rescale") return SaeNorm::kConstantNormRescale;
  if (name == "layer_norm") return SaeNorm::kLayerNorm;
  return std::nullopt;
}

Sae Sae::zeros(SaeArch arch, int64_t d_in, int64_t d_sae) {
  Sae s;
  s.arch = arch;
  s.d_in = d_in;
  s.d_sae = d_sae;
  s.W_enc = Tensor::zeros(DType::kF32, {d_in, d_sae});
  s.b_enc = Tensor::zeros(DType::kF32, {d_sae});
  s.W_dec = Tensor::zeros(DType::kF32, {d_sae, d_in});
  s.b_dec = Tensor::zeros(DType::kF32, {d_in});
  if (arch == SaeArch::kJumpRelu || arch == SaeArch::kBatchTopK) {
    s.threshold = Tensor::zeros(DType::kF32, {d_sae});
  }
  return s;
}

void Sae::validate(const std::string& source) const {
  if (d_in <= 0 || d_sae <= 0) {
    fail(ErrorCode::kInvalidArgument, source + ": d_in (" + std::to_string(d_in) + ") and d_sae (" +
                                          std::to_string(d_sae) + ") must be positive");
  }
  check_weight(W_enc, {d_in, d_sae}, source, "W_enc");
  check_weight(b_enc, {d_sae}, source, "b_enc");
  check_weight(W_dec, {d_sae, d_in}, source, "W_dec");
  check_weight(b_dec, {d_in}, source, "b_dec");
  if (arch == SaeArch::kJumpRelu || arch == SaeArch::kBatchTopK) {
    check_weight(threshold, {d_sae}, source, "threshold");
  } else if (threshold.defined()) {
    fail(ErrorCode::kInvalidArgument,
         source + ": a " + sae_arch_name(arch) + " SAE has no threshold");
  }
  if (arch == SaeArch::kTopK && (k < 1 || k > double(d_sae) || k != std::floor(k))) {
    fail(ErrorCode::kInvalidArgument, source + ": k must be an integer in 1..d_sae (" +
                                          std::to_string(d_sae) + "), got " + std::to_string(k));
  }
  if (norm_scaling_factor && !(std::isfinite(*norm_scaling_factor) && *norm_scaling_factor > 0)) {
    fail(ErrorCode::kInvalidArgument, source + ": norm_scaling_factor must be finite and > 0");
  }
}

void Sae::encode(const float* x, int64_t n, float* acts) const {
  GLASSBOX_ASSERT(W_enc.defined() && n >= 0);
  const float* w = W_enc.data<float>();
  const float* be = b_enc.data<float>();
  const float* bd = b_dec.data<float>();
  const float* th = threshold.defined() ? threshold.data<float>() : nullptr;
  const int64_t kk = static_cast<int64_t>(k);
  std::vector<float> xin(static_cast<size_t>(std::min<int64_t>(n, kRowBlock) * d_in));
  std::vector<int32_t> order;
  if (arch == SaeArch::kTopK) order.resize(static_cast<size_t>(d_sae));
  for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, n - r0);
    // x' [rows, d_in]
    for (int64_t r = 0; r < rows; ++r) {
      float* row = xin.data() + r * d_in;
      std::copy(x + (r0 + r) * d_in, x + (r0 + r + 1) * d_in, row);
      normalise_row(normalize_activations, d_in, row);
      if (norm_scaling_factor) {
        const float s = static_cast<float>(*norm_scaling_factor);
        for (int64_t i = 0; i < d_in; ++i) row[i] *= s;
      }
      if (apply_b_dec_to_input) {
        for (int64_t i = 0; i < d_in; ++i) row[i] -= bd[i];
      }
    }
    // pre [rows, d_sae] = b_enc (broadcast) + x' @ W_enc, written straight into acts.
    float* pre = acts + r0 * d_sae;
    for (int64_t r = 0; r < rows; ++r) std::copy(be, be + d_sae, pre + r * d_sae);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                static_cast<int>(d_sae), static_cast<int>(d_in), 1.0f, xin.data(),
                static_cast<int>(d_in), w, static_cast<int>(d_sae), 1.0f, pre,
                static_cast<int>(d_sae));
    for (int64_t r = 0; r < rows; ++r) {
      float* p = pre + r * d_sae;
      switch (arch) {
        case SaeArch::kRelu:
          for (int64_t j = 0; j < d_sae; ++j) p[j] = p[j] > 0.0f ? p[j] : 0.0f;
          break;
        case SaeArch::kJumpRelu:
        case SaeArch::kBatchTopK:
          for (int64_t j = 0; j < d_sae; ++j) p[j] = (p[j] > th[j] && p[j] > 0.0f) ? p[j] : 0.0f;
          break;
        case SaeArch::kTopK: {
          // The k largest pre-activations (ties: lower index first), then relu on those.
          std::iota(order.begin(), order.end(), 0);
          const auto greater = [p](int32_t a, int32_t b) {
            return p[a] > p[b] || (p[a] == p[b] && a < b);
          };
          if (kk < d_sae) std::nth_element(order.begin(), order.begin() + kk, order.end(), greater);
          for (int64_t j = kk; j < d_sae; ++j) p[order[j]] = 0.0f;
          for (int64_t j = 0; j < kk; ++j) p[order[j]] = p[order[j]] > 0.0f ? p[order[j]] : 0.0f;
          break;
        }
      }
    }
  }
}

void Sae::decode(const float* acts, int64_t n, float* out) const {
  GLASSBOX_ASSERT(W_dec.defined() && n >= 0);
  const float* bd = b_dec.data<float>();
  for (int64_t r = 0; r < n; ++r) std::copy(bd, bd + d_in, out + r * d_in);
  if (n > 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
                static_cast<int>(d_in), static_cast<int>(d_sae), 1.0f, acts,
                static_cast<int>(d_sae), W_dec.data<float>(), static_cast<int>(d_in), 1.0f, out,
                static_cast<int>(d_in));
  }
  if (norm_scaling_factor) {
    const float inv = static_cast<float>(1.0 / *norm_scaling_factor);
    for (int64_t i = 0; i < n * d_in; ++i) out[i] *= inv;
  }
}

void Sae::reconstruct(const float* x, int64_t n, float* out) const {
  std::vector<float> acts(static_cast<size_t>(n * d_sae));
  encode(x, n, acts.data());
  decode(acts.data(), n, out);
  if (normalize_activations == SaeNorm::kConstantNormRescale ||
      normalize_activations == SaeNorm::kLayerNorm) {
    std::vector<float> row(static_cast<size_t>(d_in));
    for (int64_t r = 0; r < n; ++r) {
      std::copy(x + r * d_in, x + (r + 1) * d_in, row.begin());
      const RowNorm rn = normalise_row(normalize_activations, d_in, row.data());
      float* o = out + r * d_in;
      for (int64_t i = 0; i < d_in; ++i) o[i] = float(o[i] * rn.scale + rn.shift);
    }
  }
}

void Sae::fold_norm_scaling_factor() {
  if (norm_scaling_factor) {
    const float s = static_cast<float>(*norm_scaling_factor);
    W_enc = W_enc.clone();
    W_dec = W_dec.clone();
    b_dec = b_dec.clone();
    for (float& v : W_enc.mutable_floats()) v *= s;
    for (float& v : W_dec.mutable_floats()) v /= s;
    for (float& v : b_dec.mutable_floats()) v /= s;
    norm_scaling_factor.reset();
    if (normalize_activations == SaeNorm::kExpectedAverageOnlyIn) {
      normalize_activations = SaeNorm::kNone;
    }
  }
}

}  // namespace glassbox
