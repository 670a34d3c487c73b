// A linear probe: one hook, a standardization and a logistic-regression direction, fitted with a
// cross-validated L2 penalty (logistic.h) on pooled activations (probe_data.h), and its file.
// Owns the probe's math and its on-disk format; extracting activations lives in probe_data.h.
//
// File format: one JSON object per probe (conventionally "<hook>.probe.json"):
//   "format": "glassbox.probe", "version": 1,
//   "hook": TL hook name, "d": feature width, "pool": "last" | "mean" (the default pooling of
//   the texts it was trained on), "lambda": the L2 penalty used (see logistic.h),
//   "mean", "scale": [d] standardization, "w": [d] weights on standardized features, "b": bias,
//   "model": the model file's stem, "n_train", "cv_auroc", "cv_accuracy", "seed", "folds",
//   "shuffled_labels": metadata; "chat_template": the template the training texts were rendered
//   with as user messages (probe train --chat; its name), null for plain text.
//   Score of a feature vector x: logit = b + sum_a w[a] (x[a] - mean[a]) / scale[a],
//   P(label 1) = sigmoid(logit). Numbers are written with round-trip precision (float64).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "probe/logistic.h"

namespace glassbox {

struct Probe {
  std::string hook;
  std::string pool = "last";
  double lambda = 0.0;
  std::vector<double> mean, scale, w;
  double b = 0.0;
  // Metadata.
  std::string model;
  int64_t n_train = 0;
  double cv_auroc = 0.0, cv_accuracy = 0.0;
  uint64_t seed = 0;
  int folds = 0;
  bool shuffled_labels = false;
  std::string chat_template;  // empty: trained on plain text

  int64_t d() const { return static_cast<int64_t>(w.size()); }
};

struct ProbeTraining {
  Probe probe;
  CvResult cv;
};

// Cross-validates over options.lambdas, then standardizes all of `x` and refits with the chosen
// lambda. `x` holds raw (unstandardized) features.
ProbeTraining train_probe(const std::string& hook, const Matrix& x, std::span<const int> y,
                          const CvOptions& options);

// Logits of raw feature rows. Throws Error(kShape) when the width differs from the probe's.
std::vector<double> probe_logits(const Probe& probe, const Matrix& x);

// Throws Error(kIo) when the file cannot be written.
void save_probe(const Probe& probe, const std::string& path);
// Throws Error(kIo) / Error(kFormat) naming the file and the field at fault.
Probe load_probe(const std::string& path);

// A probe file, or every "*.probe.json" in a directory (sorted by layer, then name). Throws
// Error(kNotFound) when a directory holds none.
std::vector<std::string> probe_files(const std::string& path);

}  // namespace glassbox
