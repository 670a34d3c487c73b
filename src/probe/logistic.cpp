#include "probe/logistic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"

namespace glassbox {
namespace {

// log(1 + exp(z)) without overflow.
double softplus(double z) { return z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

void check_labels(std::span<const int> y, int64_t n) {
  if (static_cast<int64_t>(y.size()) != n) {
    throw Error(ErrorCode::kShape, "logistic regression: " + std::to_string(y.size()) +
                                       " labels for " + std::to_string(n) + " rows");
  }
  for (int v : y) {
    if (v != 0 && v != 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "logistic regression: label " + std::to_string(v) + " is not 0 or 1");
    }
  }
}

double objective(const Matrix& x, std::span<const int> y, const std::vector<double>& w, double b,
                 double lambda) {
  double loss = 0.0;
  for (int64_t i = 0; i < x.n; ++i) {
    const double z = std::inner_product(w.begin(), w.end(), x.row(i), b);
    loss += softplus(z) - y[i] * z;
  }
  return loss / static_cast<double>(x.n) +
         0.5 * lambda * std::inner_product(w.begin(), w.end(), w.begin(), 0.0);
}

// Solves A s = g for symmetric positive definite A [m, m] (destroyed) by Cholesky. Returns false
// when A is not numerically positive definite.
bool cholesky_solve(std::vector<double>& a, std::vector<double>& s, int64_t m) {
  for (int64_t j = 0; j < m; ++j) {
    double diag = a[j * m + j];
    for (int64_t k = 0; k < j; ++k) diag -= a[j * m + k] * a[j * m + k];
    if (!(diag > 0)) return false;
    const double l = std::sqrt(diag);
    a[j * m + j] = l;
    for (int64_t i = j + 1; i < m; ++i) {
      double v = a[i * m + j];
      for (int64_t k = 0; k < j; ++k) v -= a[i * m + k] * a[j * m + k];
      a[i * m + j] = v / l;
    }
  }
  for (int64_t i = 0; i < m; ++i) {  // L u = s
    double v = s[i];
    for (int64_t k = 0; k < i; ++k) v -= a[i * m + k] * s[k];
    s[i] = v / a[i * m + i];
  }
  for (int64_t i = m - 1; i >= 0; --i) {  // L^T s = u
    double v = s[i];
    for (int64_t k = i + 1; k < m; ++k) v -= a[k * m + i] * s[k];
    s[i] = v / a[i * m + i];
  }
  return true;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void shuffle(std::vector<int64_t>& v, uint64_t& state) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(splitmix64(state) % i);
    std::swap(v[i - 1], v[j]);
  }
}

Matrix take_rows(const Matrix& x, const std::vector<int64_t>& rows) {
  Matrix out;
  out.n = static_cast<int64_t>(rows.size());
  out.d = x.d;
  out.data.resize(static_cast<size_t>(out.n * out.d));
  for (int64_t i = 0; i < out.n; ++i) std::copy(x.row(rows[i]), x.row(rows[i]) + x.d, out.row(i));
  return out;
}

}  // namespace

LogisticFit fit_logistic(const Matrix& x, std::span<const int> y, const LogisticOptions& o) {
  if (x.n <= 0) throw Error(ErrorCode::kInvalidArgument, "logistic regression: no rows");
  if (!(o.lambda > 0)) {
    throw Error(ErrorCode::kInvalidArgument, "logistic regression: lambda must be > 0");
  }
  check_labels(y, x.n);
  const int64_t d = x.d, m = d + 1, n = x.n;
  LogisticFit fit;
  fit.w.assign(static_cast<size_t>(d), 0.0);
  double f = objective(x, y, fit.w, fit.b, o.lambda);
  std::vector<double> h(static_cast<size_t>(m * m)), g(static_cast<size_t>(m));
  for (fit.iterations = 0; fit.iterations < o.max_iter; ++fit.iterations) {
    // Gradient and Hessian over the augmented parameter (w, b); the intercept is index d.
    std::fill(h.begin(), h.end(), 0.0);
    std::fill(g.begin(), g.end(), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const double* xi = x.row(i);
      const double p = sigmoid(std::inner_product(fit.w.begin(), fit.w.end(), xi, fit.b));
      const double r = p - y[i], c = p * (1 - p);
      for (int64_t a = 0; a < d; ++a) {
        g[a] += r * xi[a];
        const double cxa = c * xi[a];
        double* ha = h.data() + a * m;
        for (int64_t k = 0; k <= a; ++k) ha[k] += cxa * xi[k];
        ha[d] += cxa;
      }
      g[d] += r;
      h[d * m + d] += c;
    }
    const double inv_n = 1.0 / static_cast<double>(n);
    for (int64_t a = 0; a < d; ++a) {
      for (int64_t k = 0; k <= a; ++k) h[a * m + k] *= inv_n;
      h[a * m + d] *= inv_n;
    }
    h[d * m + d] *= inv_n;
    for (double& v : g) v *= inv_n;
    for (int64_t a = 0; a < d; ++a) {
      g[a] += o.lambda * fit.w[a];
      h[a * m + a] += o.lambda;
      h[d * m + a] = h[a * m + d];  // mirror the intercept column into the last row
      for (int64_t k = 0; k < a; ++k) h[k * m + a] = h[a * m + k];
    }
    // A saturated fit can make the intercept's curvature vanish; a tiny ridge keeps the solve
    // well-posed without moving the optimum measurably.
    h[d * m + d] += 1e-12;
    std::vector<double> step = g;
    std::vector<double> hc = h;
    if (!cholesky_solve(hc, step, m)) break;
    const double decrement = std::inner_product(g.begin(), g.end(), step.begin(), 0.0);
    if (decrement / 2 < o.tol) {  // close enough for the quadratic model: one last full step
      for (int64_t a = 0; a < d; ++a) fit.w[a] -= step[a];
      fit.b -= step[d];
      fit.converged = true;
      break;
    }
    double t = 1.0, f_new = f;
    std::vector<double> w_new(static_cast<size_t>(d));
    double b_new = fit.b;
    for (int ls = 0; ls < 60; ++ls, t *= 0.5) {
      for (int64_t a = 0; a < d; ++a) w_new[a] = fit.w[a] - t * step[a];
      b_new = fit.b - t * step[d];
      f_new = objective(x, y, w_new, b_new, o.lambda);
      if (f_new <= f - 0.25 * t * decrement) break;
    }
    if (!(f_new < f)) {  // no progress possible in float64: at the optimum to rounding
      fit.converged = true;
      break;
    }
    fit.w = w_new;
    fit.b = b_new;
    f = f_new;
  }
  return fit;
}

std::vector<double> logistic_logits(const Matrix& x, const LogisticFit& fit) {
  GLASSBOX_ASSERT(static_cast<int64_t>(fit.w.size()) == x.d);
  std::vector<double> z(static_cast<size_t>(x.n));
  for (int64_t i = 0; i < x.n; ++i) {
    z[i] = std::inner_product(fit.w.begin(), fit.w.end(), x.row(i), fit.b);
  }
  return z;
}

double auroc(std::span<const double> scores, std::span<const int> labels) {
  GLASSBOX_ASSERT(scores.size() == labels.size());
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0.0;
  int64_t n_pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] == 1) {
        rank_sum += avg_rank;
        ++n_pos;
      }
    }
    i = j;
  }
  const int64_t n_neg = static_cast<int64_t>(n) - n_pos;
  if (n_pos == 0 || n_neg == 0) return std::numeric_limits<double>::quiet_NaN();
  const double np = static_cast<double>(n_pos);
  return (rank_sum - np * (np + 1) / 2) / (np * static_cast<double>(n_neg));
}

double accuracy(std::span<const double> logits, std::span<const int> labels) {
  GLASSBOX_ASSERT(logits.size() == labels.size());
  if (logits.empty()) return std::numeric_limits<double>::quiet_NaN();
  int64_t right = 0;
  for (size_t i = 0; i < logits.size(); ++i) right += (logits[i] > 0) == (labels[i] == 1);
  return static_cast<double>(right) / static_cast<double>(logits.size());
}

double log_loss(std::span<const double> logits, std::span<const int> labels) {
  GLASSBOX_ASSERT(logits.size() == labels.size());
  if (logits.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) s += softplus(logits[i]) - labels[i] * logits[i];
  return s / static_cast<double>(logits.size());
}

Standardizer fit_standardizer(const Matrix& x) {
  Standardizer s;
  s.mean.assign(static_cast<size_t>(x.d), 0.0);
  s.scale.assign(static_cast<size_t>(x.d), 0.0);
  for (int64_t i = 0; i < x.n; ++i) {
    for (int64_t a = 0; a < x.d; ++a) s.mean[a] += x.row(i)[a];
  }
  for (double& m : s.mean) m /= static_cast<double>(std::max<int64_t>(x.n, 1));
  for (int64_t i = 0; i < x.n; ++i) {
    for (int64_t a = 0; a < x.d; ++a) {
      const double c = x.row(i)[a] - s.mean[a];
      s.scale[a] += c * c;
    }
  }
  for (double& v : s.scale) {
    v = std::sqrt(v / static_cast<double>(std::max<int64_t>(x.n, 1)));
    if (!(v > 1e-12)) v = 1.0;
  }
  return s;
}

void standardize(Matrix& x, const Standardizer& s) {
  GLASSBOX_ASSERT(static_cast<int64_t>(s.mean.size()) == x.d);
  for (int64_t i = 0; i < x.n; ++i) {
    double* r = x.row(i);
    for (int64_t a = 0; a < x.d; ++a) r[a] = (r[a] - s.mean[a]) / s.scale[a];
  }
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  uint64_t state = seed;
  shuffle(p, state);
  return p;
}

CvResult cross_validate(const Matrix& x, std::span<const int> y, const CvOptions& o) {
  check_labels(y, x.n);
  if (o.folds < 2) throw Error(ErrorCode::kInvalidArgument, "--folds must be at least 2");
  if (o.lambdas.empty()) throw Error(ErrorCode::kInvalidArgument, "no lambda to try");
  std::vector<int64_t> cls[2];
  for (int64_t i = 0; i < x.n; ++i) cls[y[i]].push_back(i);
  for (int c = 0; c < 2; ++c) {
    if (static_cast<int64_t>(cls[c].size()) < o.folds) {
      throw Error(ErrorCode::kInvalidArgument,
                  "cross-validation: " + std::to_string(cls[c].size()) + " rows with label " +
                      std::to_string(c) + ", fewer than --folds " + std::to_string(o.folds));
    }
  }
  CvResult r;
  r.fold.assign(static_cast<size_t>(x.n), 0);
  uint64_t state = o.seed;
  for (int c = 0; c < 2; ++c) {
    shuffle(cls[c], state);
    for (size_t k = 0; k < cls[c].size(); ++k) r.fold[cls[c][k]] = static_cast<int>(k % o.folds);
  }
  const size_t n_l = o.lambdas.size();
  r.mean_loss.assign(n_l, 0.0);
  std::vector<double> fold_auroc(n_l, 0.0), fold_acc(n_l, 0.0);
  for (int f = 0; f < o.folds; ++f) {
    std::vector<int64_t> tr, va;
    for (int64_t i = 0; i < x.n; ++i) (r.fold[i] == f ? va : tr).push_back(i);
    Matrix xt = take_rows(x, tr), xv = take_rows(x, va);
    const Standardizer s = fit_standardizer(xt);
    standardize(xt, s);
    standardize(xv, s);
    std::vector<int> yt, yv;
    for (int64_t i : tr) yt.push_back(y[i]);
    for (int64_t i : va) yv.push_back(y[i]);
    for (size_t l = 0; l < n_l; ++l) {
      LogisticOptions lo;
      lo.lambda = o.lambdas[l];
      const std::vector<double> z = logistic_logits(xv, fit_logistic(xt, yt, lo));
      r.mean_loss[l] += log_loss(z, yv) / o.folds;
      fold_auroc[l] += auroc(z, yv) / o.folds;
      fold_acc[l] += accuracy(z, yv) / o.folds;
    }
  }
  size_t best = 0;
  for (size_t l = 1; l < n_l; ++l) {
    const bool better = r.mean_loss[l] < r.mean_loss[best] ||
                        (r.mean_loss[l] == r.mean_loss[best] && o.lambdas[l] > o.lambdas[best]);
    if (better) best = l;
  }
  r.lambda = o.lambdas[best];
  r.cv_auroc = fold_auroc[best];
  r.cv_accuracy = fold_acc[best];
  return r;
}

}  // namespace glassbox
