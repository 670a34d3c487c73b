#include "analysis/logit_effects.h"

#include <algorithm>

#include "core/thread_pool.h"
#include "model/hooks.h"
#include "ops/ops.h"

namespace glassbox {

std::optional<std::string> logit_effects_skip_reason(const Model& model, const Sae& sae) {
  const ModelConfig& c = model.config();
  const std::optional<HookName> hn = parse_hook_name(sae.hook_name);
  if (!hn) return "the SAE names no hook";
  switch (hn->point) {
    case HookPoint::kEmbed:
    case HookPoint::kResidPre:
    case HookPoint::kResidMid:
    case HookPoint::kResidPost:
    case HookPoint::kAttnOut:
    case HookPoint::kMlpOut:
      break;
    default:
      return "hook " + sae.hook_name + " is not a residual-stream write";
  }
  if (sae.d_in != c.d_model) return "the SAE's d_in is not d_model";
  if (!ops::weight_dtype_supported(model.unembedding().dtype())) {
    return std::string("unembedding dtype ") + dtype_name(model.unembedding().dtype()) +
           " cannot be read";
  }
  return std::nullopt;
}

std::vector<LatentEffects> logit_effects(const Model& model, const Sae& sae, int64_t n,
                                         int threads) {
  const ModelConfig& c = model.config();
  const int64_t d = c.d_model, m = sae.d_sae, vocab = model.unembedding().dim(0);
  n = std::min(n, vocab);
  ThreadPool pool(threads);
  // x [m, d] = W_dec * g
  std::vector<float> x(static_cast<size_t>(m * d));
  const float* wd = sae.W_dec.data<float>();
  const Tensor g = model.final_norm().defined() ? model.final_norm().to_f32() : Tensor();
  for (int64_t f = 0; f < m; ++f) {
    for (int64_t j = 0; j < d; ++j) {
      x[f * d + j] = wd[f * d + j] * (g.defined() ? g.data<float>()[j] : 1.0f);
    }
  }
  // Per latent, candidates kept as (value, id); merged block by block.
  std::vector<std::vector<std::pair<float, int32_t>>> pos(static_cast<size_t>(m)),
      neg(static_cast<size_t>(m));
  constexpr int64_t kVocabBlock = 2048;
  const Tensor& wu = model.unembedding();
  std::vector<float> wblock, y;
  for (int64_t v0 = 0; v0 < vocab; v0 += kVocabBlock) {
    const int64_t nv = std::min(kVocabBlock, vocab - v0);
    wblock.resize(static_cast<size_t>(nv * d));
    ops::dequantize_rows(wu.dtype(), wu.raw(), d, v0, v0 + nv, wblock.data());
    const Tensor w = Tensor::view(DType::kF32, {nv, d}, wblock.data());
    y.resize(static_cast<size_t>(m * nv));
    ops::matmul_wt(x.data(), m, d, w, y.data(), pool);
    pool.parallel_for(m, [&](int64_t f0, int64_t f1) {
      std::vector<std::pair<float, int32_t>> cand;
      for (int64_t f = f0; f < f1; ++f) {
        for (int sign = 0; sign < 2; ++sign) {
          auto& keep = sign == 0 ? pos[f] : neg[f];
          cand = keep;
          for (int64_t v = 0; v < nv; ++v) {
            const float val = y[f * nv + v];
            cand.emplace_back(sign == 0 ? val : -val, static_cast<int32_t>(v0 + v));
          }
          const auto by = [](const std::pair<float, int32_t>& a,
                             const std::pair<float, int32_t>& b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
          };
          const auto keep_n = std::min<size_t>(static_cast<size_t>(n), cand.size());
          std::partial_sort(cand.begin(), cand.begin() + static_cast<int64_t>(keep_n), cand.end(),
                            by);
          keep.assign(cand.begin(), cand.begin() + static_cast<int64_t>(keep_n));
        }
      }
    });
  }
  std::vector<LatentEffects> out(static_cast<size_t>(m));
  for (int64_t f = 0; f < m; ++f) {
    for (const auto& [val, id] : pos[f]) out[f].positive.push_back({id, "", val});
    for (const auto& [val, id] : neg[f]) out[f].negative.push_back({id, "", -val});
  }
  return out;
}

}  // namespace glassbox
