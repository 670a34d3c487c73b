// `glassbox analyze`: runs a model over corpus windows, encodes the SAE's hook with the SAE and
// writes per-latent statistics, top and quantile-sampled examples, histograms and logit effects
// into a feature database (feature_db.h; schema and definitions in docs/analysis.md).
// Windows are harvest's (windows.h); --tokens counts window tokens with the BOS, as harvest does,
// but BOS positions are excluded from every statistic.
// Resumable: the accumulators are checkpointed into the database every few windows in one
// transaction; rerunning the same command continues and gives the same database as an
// uninterrupted run. Other settings on an existing database are refused, naming each difference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "analysis/feature_stats.h"
#include "model/model.h"
#include "sae/sae.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

struct AnalyzeOptions {
  std::string model_path, sae_path;  // for the settings recorded in meta
  std::vector<std::string> corpus;
  int64_t tokens = 0;  // window tokens (BOS included) to run
  int64_t ctx = 128;
  StatsOptions stats;
  int64_t logits = 10;  // logit effects kept per sign
  int threads = 0;
  int64_t checkpoint_every = 256;  // windows
  bool overwrite = false;
  std::string out;
};

struct AnalyzeResult {
  bool was_complete = false;  // the database was already finished: nothing done
  bool resumed = false;
  int64_t tokens = 0;  // non-BOS tokens analysed
  int64_t windows = 0;
  int64_t processed = 0;  // window tokens run by this call, both passes together
  int64_t alive = 0;      // latents that fired at least once
  double seconds = 0;
  std::string logit_note;  // why logit effects were skipped ("" when computed)
  std::string note;        // a warning for the user ("" if none)
};

// progress(pass (1 or 2), window tokens done, window tokens in the pass) after every window.
using AnalyzeProgressFn = std::function<void(int, int64_t, int64_t)>;

// Throws Error naming the option, file or database field at fault.
AnalyzeResult analyze(const Model& model, const Tokenizer& tokenizer, const Sae& sae,
                      const AnalyzeOptions& options, const AnalyzeProgressFn& progress = nullptr);

// SHA-256 of an SAE on disk: of the file, or for a directory of its regular files' names and
// contents in name order.
std::string sae_sha256(const std::string& path);

}  // namespace glassbox
