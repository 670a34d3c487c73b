// Steering vectors from contrastive texts: per layer, one residual-stream direction along which
// "positive" texts differ from "negative" ones. Owns collecting the per-text activations (one
// forward pass per text through a Session, capturing blocks.L.hook_resid_post) and the two
// reductions to a direction (mean difference; PCA of paired differences, repeng's pca_diff).
// It knows nothing of files: the result is a ControlVector, saved by control_vector.h.
//
// Methods (activations per layer: P = positives [n_pos, d_model], N = negatives [n_neg, d_model],
// one row per text; all arithmetic in double):
//   kMeanDiff  v = mean_rows(P) - mean_rows(N); unit norm unless normalize is false.
//   kPca       D = P - N (paired row by row, so n_pos == n_neg >= 2), centred (D -= mean_rows(D),
//              as sklearn's PCA in repeng does); v = the first principal component (the top right
//              singular vector of the centred D), unit norm. Its sign is fixed as repeng fixes it:
//              v is flipped when more pairs have pos.v < neg.v than pos.v > neg.v; a tie is broken
//              by the mean projection, mean(P.v) >= mean(N.v). normalize has no effect (a principal
//              component has no scale of its own).
// Reductions of a text's [n_tokens, d_model] activation to one row: kLast (the last token, as
// repeng reads it) or kMean (the mean over every position, BOS included when the text has one).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/session.h"
#include "steer/control_vector.h"

namespace glassbox {

enum class SteerMethod { kMeanDiff, kPca };
enum class SteerReduce { kLast, kMean };

struct SteeringOptions {
  SteerMethod method = SteerMethod::kPca;
  SteerReduce reduce = SteerReduce::kLast;
  bool normalize = true;
  std::vector<int> layers;  // block indices; empty = 1 .. n_layers - 1 (what llama.cpp steers)
};

// "pca" / "mean_diff"; "last" / "mean". Throw Error(kInvalidArgument) naming the value.
SteerMethod parse_steer_method(const std::string& text);
SteerReduce parse_steer_reduce(const std::string& text);

// One direction [d_model] from float32 rows P [n_pos, d_model] and N [n_neg, d_model].
// Throws Error(kShape) for mismatched widths or (kPca) counts, Error(kInvalidArgument) for an
// empty set, fewer than 2 pairs for kPca, or differences with no variance (PCA undefined).
std::vector<float> steering_direction(const Tensor& positive, const Tensor& negative,
                                      SteerMethod method, bool normalize);

// Activations of each tokenized text at blocks.L.hook_resid_post for every L in `layers`,
// reduced to one row: result[i] = [n_texts, d_model] for layers[i]. One forward per text.
// With `mean_from` (one start per text, kMean only) the mean runs over positions
// [mean_from[t], n) instead of all of them (persona vectors: the response tokens).
std::vector<Tensor> collect_resid_post(Session& session,
                                       const std::vector<std::vector<int32_t>>& texts,
                                       const std::vector<int>& layers, SteerReduce reduce,
                                       const std::vector<int64_t>& mean_from = {});

// collect_resid_post on both sets, then steering_direction per layer. Throws
// Error(kInvalidArgument) for a layer outside 0 .. n_layers - 1 and the errors above, with the
// layer as context.
ControlVector compute_steering_vector(Session& session,
                                      const std::vector<std::vector<int32_t>>& positive,
                                      const std::vector<std::vector<int32_t>>& negative,
                                      const SteeringOptions& options);

}  // namespace glassbox
