// FeatureStats: the per-latent accumulators of `glassbox analyze` (docs/analysis.md), fed one
// context window of SAE activations at a time, in two passes over the same windows:
//   pass 1: firing count, activation sum and max, a log-scale histogram (for the quantile band
//           edges) and the top-k max-activating examples (at most one per window: the window's
//           maximum for that latent, first position on ties; ranked by act desc, doc asc, pos asc);
//   pass 2: the display histogram over (0, max] and, per quantile band, the `per_quantile`
//           firing tokens with the smallest hash key (a seeded, order-free reservoir sample).
// Every update is a pure function of the windows, so the state serialises and resumes exactly.
// BOS positions are never passed in. Knows nothing of models, tokenizers or SQLite.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "analysis/feature_db.h"
#include "core/thread_pool.h"

namespace glassbox {

struct StatsOptions {
  int64_t top_k = 20;        // top examples kept per latent
  int64_t context = 10;      // tokens kept each side of an example's centre (clipped to window)
  int64_t quantiles = 10;    // activation quantile bands
  int64_t per_quantile = 5;  // samples kept per band
  int64_t bins = 32;         // display histogram bins over (0, max]
  uint64_t seed = 0;         // of the band sampling hash
};

// splitmix64 finaliser; the band sampling key of a firing token is
// mix(seed ^ mix(feature ^ mix(doc ^ mix(pos)))) (documented so tests can recompute it).
uint64_t stats_mix(uint64_t x);
uint64_t sample_key(uint64_t seed, int64_t feature, int64_t doc, int64_t pos);

class FeatureStats {
 public:
  FeatureStats(int64_t d_sae, const StatsOptions& options);

  // One window. ids: the window's tokens, BOS first (n + 1 of them); acts: [n, d_sae] for
  // window positions 1..n; doc_offset: document token index of ids[1]. Work is split over latents
  // on `pool` (each latent is updated in window order, so the result does not depend on threads).
  void add_window(int pass, std::span<const int32_t> ids, const float* acts, int64_t doc,
                  int64_t doc_offset, ThreadPool& pool);
  // After pass 1: fixes the quantile band edges from the log-scale histogram.
  void finish_pass1();

  std::vector<uint8_t> serialize() const;
  // Error(kFormat) "resume state: ..." when the blob is corrupt or of other dimensions.
  void deserialize(const std::vector<uint8_t>& blob);

  // Summary (without max_token), histogram, top examples and bands of latent f (no text/pieces).
  FeatureDetail detail(int64_t f, int64_t tokens) const;
  int64_t d_sae() const { return d_sae_; }

 private:
  struct Example {
    float act = 0;
    int64_t doc = 0, pos = 0;
    uint64_t key = 0;  // band samples: sampling key
    int32_t center = 0;
    std::vector<int32_t> ids;
    std::vector<float> acts;
  };
  Example make_example(std::span<const int32_t> ids, const float* acts, int64_t f, int64_t row,
                       float act, int64_t doc, int64_t doc_offset) const;
  void pass1(int64_t f0, int64_t f1, std::span<const int32_t> ids, const float* acts, int64_t doc,
             int64_t doc_offset);
  void pass2(int64_t f0, int64_t f1, std::span<const int32_t> ids, const float* acts, int64_t doc,
             int64_t doc_offset);
  int band_of(int64_t f, float a) const;
  static FeatureExample to_public(const Example& e);

  int64_t d_sae_;
  StatsOptions o_;
  std::vector<int64_t> count_;
  std::vector<double> sum_;
  std::vector<float> max_;
  std::vector<int32_t> loghist_;               // [d_sae, kLogBins]
  std::vector<double> edges_;                  // [d_sae, quantiles + 1] band edges (after pass 1)
  std::vector<int64_t> hist_;                  // [d_sae, bins] (pass 2)
  std::vector<std::vector<Example>> top_;      // [d_sae] heap, worst first
  std::vector<std::vector<Example>> samples_;  // [d_sae * quantiles] heap, largest key first
};

}  // namespace glassbox
