// The SAE training objective and its gradients, for the four architectures: the math SaeTrainer
// (train.h) steps with, exposed on its own so a test can evaluate it on given weights and a
// given batch (tests/reference/sae_train compares it with an independent float64 PyTorch
// autograd implementation). It owns no state between calls beyond reusable scratch memory; it
// does not update weights, track dead latents, schedule coefficients or normalise inputs.
//
// Layout (row-major, f32). W_enc is kept transposed so that a latent's encoder weights are one
// contiguous row, as its decoder weights are:
//   W_encT [d_sae, d_in]   b_enc [d_sae]   W_dec [d_sae, d_in]   b_dec [d_in]
//   log_threshold [d_sae]  (jumprelu only; empty otherwise)
//
// Objective on a batch x [n, d_in] (already in training scale), with row means:
//   sae_in = x - b_dec (topk, batchtopk, jumprelu) | x (relu)
//   pre    = sae_in @ W_encT^T + b_enc                                     [n, d_sae]
//   relu:      a = relu(pre)
//   topk:      a = relu(pre) on the k largest pre of each row (ties: lower latent index)
//   batchtopk: a = relu(pre) on the k*n largest relu(pre) of the batch (ties: lower flat index)
//   jumprelu:  a = pre * H(pre - theta), theta = exp(log_threshold)
//   x_hat = a @ W_dec + b_dec;  mse = (1/n) sum_r ||x_r - x_hat_r||^2
//   relu:      sparsity = (coeff/n) sum_r sum_i a_ri ||W_dec_i||              (Anthropic 2024)
//   jumprelu:  sparsity = (coeff/n) sum_r #{i : a_ri != 0}                   (L0)
//   topk, batchtopk, when `dead` marks latents: AuxK (Gao et al. 2024) with
//     e = x - x_hat (treated as a constant), aux latents = the aux_k largest pre among dead
//     latents per row (relu'd; min(aux_k, #dead) of them), e_hat = aux_acts @ W_dec + b_dec,
//     target = e + b_dec (constant), aux = aux_coeff * mean_r ||e_hat - target||^2 /
//     mean_r ||e_r - mean(e)||^2   (OpenAI's normalized_mse; its b_dec terms cancel in value but
//     give b_dec a gradient, as in their code)
//   loss = mse + sparsity + aux
// Gradients are the exact derivatives of that loss where it is differentiable; jumprelu uses
// the straight-through pseudo-derivatives of Rajamanoharan et al. 2024 with the rectangle
// kernel K(u) = 1[-1/2 < u < 1/2] of width `bandwidth`:
//   d a_ri / d theta_i   = -(theta_i / bandwidth) K((pre_ri - theta_i) / bandwidth)
//   d H_ri / d theta_i   = -(1 / bandwidth) K((pre_ri - theta_i) / bandwidth)
//   d a_ri / d pre_ri    = H(pre_ri - theta_i),   d H_ri / d pre_ri = 0
// and d/d log_threshold = theta * d/d theta. The decoder-norm gradient projection of the
// unit-norm architectures is the trainer's, not part of these gradients.
//
// Every reduction has a fixed order that depends only on n (rows are processed in fixed blocks
// of kRowBlock; per-latent sums run over rows in increasing order), so results are bit-identical
// for any pool size.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/thread_pool.h"
#include "sae/sae.h"

namespace glassbox::sae_train {

// Rows per encoder sgemm: fewer, larger calls pack W_enc less often (256 rows: 4.7 MB of pre).
constexpr int64_t kRowBlock = 256;

struct Params {
  std::vector<float> W_encT;         // [d_sae, d_in]
  std::vector<float> b_enc;          // [d_sae]
  std::vector<float> W_dec;          // [d_sae, d_in]
  std::vector<float> b_dec;          // [d_in]
  std::vector<float> log_threshold;  // [d_sae] jumprelu; empty otherwise

  // Zeros of the right sizes for `arch`.
  static Params zeros(SaeArch arch, int64_t d_in, int64_t d_sae);
  // The tensors in a fixed order (Adam, state files): W_encT, b_enc, W_dec, b_dec, log_threshold.
  std::vector<std::vector<float>*> all();
  std::vector<const std::vector<float>*> all() const;
};

struct LossOptions {
  SaeArch arch = SaeArch::kTopK;
  int64_t d_in = 0, d_sae = 0;
  int64_t k = 32;     // topk, batchtopk
  int64_t aux_k = 0;  // AuxK latents per row (topk, batchtopk)
  double aux_coeff = 1.0 / 32;
  double sparsity_coeff = 0;      // relu's l1, jumprelu's l0 (after any warm-up)
  double bandwidth = 1e-3;        // jumprelu
  const uint8_t* dead = nullptr;  // [d_sae] 1 = dead (AuxK candidates); null = none
};

// Whether the architecture subtracts b_dec from the input before encoding (sae.h's
// apply_b_dec_to_input): OpenAI, Bussmann et al. and SAELens's jumprelu trainer (its default
// apply_b_dec_to_input = True) do; Anthropic's April 2024 recipe does not. (Gemma Scope's
// released SAEs do not either, but on inputs with a large mean that made most jumprelu latents
// die in the first steps of our tests: sae_train_test.cpp LossDecreasesOnSparseData.)
bool applies_b_dec_to_input(SaeArch arch);
// Whether the architecture keeps unit-norm decoder rows (topk, batchtopk, jumprelu).
bool unit_norm_decoder(SaeArch arch);

struct LossResult {
  double loss = 0, mse = 0, aux = 0, sparsity = 0;
  double fvu = 0;  // sum ||x - x_hat||^2 / sum ||x - mean(x)||^2
  double l0 = 0;   // mean active latents per row
  // batchtopk: the smallest kept activation (for the inference threshold); < 0 when none.
  double min_kept = -1;
  // Per latent: rows of this batch where it was active (a > 0). [d_sae]
  std::vector<int64_t> fired;
};

// Scratch memory reused across calls (grows to the largest batch seen).
class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Loss and gradients at `p` on x [n, d_in]; `grads` is resized and overwritten. Validates only
// with GLASSBOX_ASSERT (callers check shapes).
LossResult loss_and_grads(const LossOptions& opt, const Params& p, const float* x, int64_t n,
                          Workspace& ws, Params& grads, ThreadPool& pool);

// pre = (x - b_dec?) @ W_encT^T + b_enc for rows [0, n) into out [n, d_sae] (the dense encoder,
// the same per-block sgemms as loss_and_grads; for benchmarks and checks).
void encoder_pre(SaeArch arch, const Params& p, int64_t d_in, int64_t d_sae, const float* x,
                 int64_t n, float* out, ThreadPool& pool);

}  // namespace glassbox::sae_train
