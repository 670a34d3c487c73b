// Binary logistic regression with an L2 penalty, k-fold cross-validation over a grid of
// penalties, and the metrics probes are judged by (AUROC, accuracy, log-loss). Pure numerics on
// float64 row-major matrices: knows nothing of models, hooks or files.
//
// Objective (features already standardized by the caller, intercept b unpenalized):
//   J(w, b) = (1/n) sum_i [log(1 + exp(z_i)) - y_i z_i] + (lambda / 2) ||w||^2,  z_i = x_i.w + b
// (sklearn's C corresponds to lambda = 1 / (C n)). Fitted by Newton's method with a Cholesky
// solve of the (d+1)x(d+1) Hessian and a backtracking line search: deterministic, and exact to
// ~1e-10 in a few iterations for lambda > 0 (J is then strongly convex in w; separable data
// still have a unique finite optimum). Cost O(n d^2 + d^3) per iteration: meant for d up to a
// few thousand.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace glassbox {

// Row-major [n, d] float64 matrix.
struct Matrix {
  int64_t n = 0, d = 0;
  std::vector<double> data;
  const double* row(int64_t i) const { return data.data() + i * d; }
  double* row(int64_t i) { return data.data() + i * d; }
};

struct LogisticFit {
  std::vector<double> w;  // [d]
  double b = 0.0;
  int iterations = 0;
  bool converged = false;
};

struct LogisticOptions {
  double lambda = 1e-2;
  int max_iter = 100;
  // Stop (after one last full Newton step) when the Newton decrement^2 / 2, the predicted
  // decrease of J, falls below this.
  double tol = 1e-12;
};

// Throws Error(kInvalidArgument) for lambda <= 0, labels other than 0/1, or no rows.
LogisticFit fit_logistic(const Matrix& x, std::span<const int> y, const LogisticOptions& options);

// Logits z = x.w + b, one per row.
std::vector<double> logistic_logits(const Matrix& x, const LogisticFit& fit);

// Area under the ROC curve of `scores` for `labels` (0/1): the Mann-Whitney statistic with tied
// scores given their average rank (a tie between a positive and a negative counts 1/2). NaN when
// either class is absent.
double auroc(std::span<const double> scores, std::span<const int> labels);
// Fraction of rows where (logit > 0) == label.
double accuracy(std::span<const double> logits, std::span<const int> labels);
// Mean negative log-likelihood of the labels under sigmoid(logit) (natural log).
double log_loss(std::span<const double> logits, std::span<const int> labels);

// Per-column mean and standard deviation (population, ddof 0) of `x`; a constant column gets
// scale 1 so it maps to 0. standardize() applies (x - mean) / scale in place.
struct Standardizer {
  std::vector<double> mean, scale;
};
Standardizer fit_standardizer(const Matrix& x);
void standardize(Matrix& x, const Standardizer& s);

struct CvOptions {
  std::vector<double> lambdas = {1e-4, 1e-3, 1e-2, 1e-1, 1.0};
  int folds = 5;
  uint64_t seed = 0;
};

struct CvResult {
  double lambda = 0.0;            // the grid value with the lowest mean validation log-loss
  std::vector<double> mean_loss;  // per grid value
  double cv_auroc = 0.0;          // mean over folds of the validation AUROC at `lambda`
  double cv_accuracy = 0.0;       // likewise
  std::vector<int> fold;          // fold of each row
};

// Stratified k-fold cross-validation: each class's rows are shuffled (seeded splitmix64 +
// Fisher-Yates, identical on every platform) and dealt round-robin to the folds. Each fold is
// standardized with its own training rows' statistics. Ties in mean loss go to the larger lambda.
// Throws Error(kInvalidArgument) when a class has fewer rows than folds or folds < 2.
CvResult cross_validate(const Matrix& x, std::span<const int> y, const CvOptions& options);

// A seeded permutation of [0, n) (the same generator as the folds); used for label shuffling.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace glassbox
