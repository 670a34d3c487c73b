// SAE evaluation on a model: reconstruction metrics and the downstream loss when the SAE's
// reconstruction replaces the hook's activation ("splicing"), as SAELens's evals report them.
//
// Conventions: windows of ctx tokens, BOS first (harvest/windows.h); the BOS positions are
// excluded from every metric and left clean when splicing or ablating; cross-entropy is over the
// next-token predictions made at the other positions (position p predicts token p + 1, so a
// window of n tokens gives n - 2 predictions). `tokens` counts window tokens, BOS included.
//   mse        mean over rows and dims of (x - x_hat)^2
//   fvu        sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (mean over the evaluated rows)
//   l0         mean number of active latents per row;  dead_frac: latents never active
//   ce_clean / ce_spliced / ce_zero_ablated / ce_mean_ablated: mean CE with the hook's rows left,
//              replaced by x_hat, by 0, by the hook's mean over the training tokens
//   ce_recovered_zero = (zero - spliced) / (zero - clean), ce_recovered_mean likewise
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "sae/sae.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

struct SaeEvalOptions {
  std::vector<std::string> corpus;
  std::string hook;  // default: the SAE's hook_name
  int64_t ctx = 128;
  int64_t tokens = 0;
  int threads = 0;
  // The hook's mean over the training tokens [d_in]; empty: the mean over the evaluated rows
  // (reported as mean_source "eval").
  std::vector<float> mean;
};

struct SaeEvalResult {
  int64_t tokens = 0, rows = 0, predictions = 0;
  double mse = 0, fvu = 0, l0 = 0, dead_frac = 0;
  double ce_clean = 0, ce_spliced = 0, ce_zero_ablated = 0, ce_mean_ablated = 0;
  double ce_recovered_zero = 0, ce_recovered_mean = 0;
  std::string hook, mean_source;
};

// Throws Error(kShape) when the hook's width is not the SAE's d_in, naming both.
SaeEvalResult evaluate_sae(const Model& model, const Tokenizer& tokenizer, const Sae& sae,
                           const SaeEvalOptions& options);

}  // namespace glassbox
