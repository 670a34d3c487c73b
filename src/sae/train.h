// SaeTrainer: one optimisation step at a time for the four SAE architectures, with everything a
// bit-identical resume needs in its state. Owns the training math (forward, losses, gradients,
// Adam, constraints, schedules, dead-latent tracking); it does not read stores, shuffle, log or
// write files other than its own state (the `train-sae` command does that).
//
// Recipes (defaults follow each paper; docs/sae.md cites them):
//   relu      Anthropic, April 2024 update: loss = ||x - x_hat||^2 + l1 * sum_i f_i ||W_dec_i||,
//             unconstrained decoder, l1 warm-up over the first l1_warmup_frac of steps.
//   topk      OpenAI (Gao et al. 2024): keep the k largest pre-activations (relu'd); unit-norm
//             decoder rows (renormalised after each step, gradient's parallel part removed);
//             AuxK loss (aux_k latents among the dead ones reconstruct the residual, coefficient
//             aux_coeff); W_enc initialised as W_dec^T.
//   batchtopk Bussmann et al. 2024: top k * batch activations over the whole batch; the
//             inference threshold is a running average of the smallest kept activation.
//   jumprelu  Rajamanoharan et al. 2024: acts = pre * H(pre - theta), theta = exp(log_theta);
//             loss = mse + l0_coeff * sum H(pre - theta), straight-through pseudo-derivatives with
//             a rectangle kernel of width `bandwidth`.
// The objective and its gradients (exact definitions, which latents each arch selects, AuxK
// normalisation, the jumprelu pseudo-derivatives) are in sae/train_grad.h, a free function that
// tests/reference/sae_train checks against PyTorch autograd. Which arch subtracts b_dec before
// encoding: topk, batchtopk, jumprelu (OpenAI, Bussmann, SAELens's trainer); relu does not
// (Anthropic). Unit-norm decoder rows: topk, batchtopk, jumprelu. Initialisation: decoder rows are
// random directions (norm 1; relu 0.1), W_enc = W_dec^T, b_enc = 0, log_theta = log
// init_threshold; b_dec = mean or geometric median of the scaled sample (init_from_data).
// The l1 / l0 coefficient warms up linearly over l1_warmup_frac * total_steps (relu and
// jumprelu). Dead latents: none fired for dead_tokens tokens (counted before each step, used by
// AuxK; aux_k 0 means d_in / 2: Gao et al. use a power of two near d_model / 2). The batchtopk
// threshold is a bias-corrected 0.99 running average of each batch's smallest kept activation.
// Learning rate: linear warm-up over lr_warmup_steps, constant, then linear decay to 0 over the
// last lr_decay_frac of total_steps. Adam (beta1 0.9, beta2 0.999, eps 1e-8). Inputs are scaled
// by one factor so that E||x||^2 = d_in (SAELens "expected_average_only_in"), estimated in init()
// and folded into the weights of the exported Sae.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "sae/sae.h"

namespace glassbox {

struct SaeTrainConfig {
  SaeArch arch = SaeArch::kTopK;
  int64_t d_in = 0, d_sae = 0;
  int64_t k = 32;  // topk, batchtopk
  int64_t batch_size = 4096;
  int64_t total_steps = 0;  // for the schedules
  double lr = 2e-4;
  int64_t lr_warmup_steps = 0;
  double lr_decay_frac = 0.2;
  double l1_coeff = 5.0;  // relu
  double l1_warmup_frac = 0.05;
  // Clip the global gradient norm to this before Adam; < 0 = the arch's default (relu: 1, as
  // Anthropic's April 2024 recipe; others: off), 0 = off.
  double grad_clip = -1;
  double l0_coeff = 1e-3;        // jumprelu
  double bandwidth = 1e-3;       // jumprelu
  double init_threshold = 1e-3;  // jumprelu
  int64_t aux_k = 0;             // topk/batchtopk AuxK latents (0: d_in / 2)
  double aux_coeff = 1.0 / 32;
  int64_t dead_tokens = 10'000'000;  // a latent is dead after this many tokens without firing
  bool normalize_inputs = true;      // scale to E||x||^2 = d_in
  bool b_dec_init_median = false;    // b_dec from the (geometric) median rather than the mean
  uint64_t seed = 0;
};

struct SaeStepStats {
  double loss = 0, mse = 0, fvu = 0, l0 = 0, aux_loss = 0, sparsity_loss = 0, lr = 0;
  double dead_frac = 0;   // latents not fired in the last dead_tokens tokens
  double dense_frac = 0;  // latents firing on more than 10% of this batch's rows
};

class SaeTrainer {
 public:
  // Random initialisation from config.seed (deterministic for a given seed).
  SaeTrainer(const SaeTrainConfig& config, ThreadPool& pool);
  // Data-dependent initialisation from a sample [n, d_in] (raw activations): input scale and
  // b_dec. Call once before the first step.
  void init_from_data(const float* x, int64_t n);
  // One step on a batch [n, d_in] of raw activations (n = batch_size except maybe the last).
  // Deterministic for a given state, batch and pool size.
  SaeStepStats step(const float* x, int64_t n);
  int64_t steps_done() const;
  // Inspection (tests, logging): the input scale found by init_from_data (1 before it), the
  // batchtopk inference threshold in training scale (0 before the first step; other archs 0),
  // and the tokens since each latent last fired [d_sae] (dead: >= dead_tokens).
  double input_scale() const;
  double batch_threshold() const;
  std::vector<int64_t> tokens_since_fired() const;
  // The trained SAE in inference form (input scale folded into the weights; batchtopk with its
  // threshold), with hook_name / model_name left to the caller.
  Sae export_sae() const;
  // The complete state (weights, Adam moments, step, RNG, dead-latent counters, thresholds,
  // scale) as one binary file written atomically; load_state restores it exactly. Throws
  // Error naming the file on a mismatch with this trainer's config.
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace glassbox
