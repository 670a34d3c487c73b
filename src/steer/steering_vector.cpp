#include "steer/steering_vector.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "model/run.h"

namespace glassbox {
namespace {

using RowsMatrix = std::vector<double>;  // row-major

// Rows of a float32 [n, d] tensor as doubles.
RowsMatrix to_double(const Tensor& t, const char* what, int64_t* n, int64_t* d) {
  if (t.dtype() != DType::kF32 || t.ndim() != 2) {
    throw Error(ErrorCode::kShape, std::string(what) +
                                       " activations must be float32 [n, d_model], got " +
                                       dtype_name(t.dtype()) + " " + shape_str(t.shape()));
  }
  *n = t.dim(0);
  *d = t.dim(1);
  const std::span<const float> f = t.floats();
  return RowsMatrix(f.begin(), f.end());
}

std::vector<double> mean_rows(const RowsMatrix& m, int64_t n, int64_t d) {
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) mean[j] += m[i * d + j];
  }
  for (double& x : mean) x /= static_cast<double>(n);
  return mean;
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

// Eigenvector of the largest eigenvalue of the symmetric m x m matrix `a` (cyclic Jacobi).
std::vector<double> top_eigenvector_jacobi(RowsMatrix a, int64_t m) {
  RowsMatrix v(static_cast<size_t>(m * m), 0.0);
  for (int64_t i = 0; i < m; ++i) v[i * m + i] = 1.0;
  double total = 0;
  for (double x : a) total += x * x;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int64_t p = 0; p < m; ++p) {
      for (int64_t q = p + 1; q < m; ++q) off += a[p * m + q] * a[p * m + q];
    }
    if (off <= 1e-30 * total) break;
    for (int64_t p = 0; p < m; ++p) {
      for (int64_t q = p + 1; q < m; ++q) {
        const double apq = a[p * m + q];
        if (apq == 0.0) continue;
        const double theta = (a[q * m + q] - a[p * m + p]) / (2.0 * apq);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1.0 / std::sqrt(t * t + 1), s = t * c;
        for (int64_t k = 0; k < m; ++k) {  // A <- A J
          const double akp = a[k * m + p], akq = a[k * m + q];
          a[k * m + p] = c * akp - s * akq;
          a[k * m + q] = s * akp + c * akq;
        }
        for (int64_t k = 0; k < m; ++k) {  // A <- J^T A
          const double apk = a[p * m + k], aqk = a[q * m + k];
          a[p * m + k] = c * apk - s * aqk;
          a[q * m + k] = s * apk + c * aqk;
        }
        for (int64_t k = 0; k < m; ++k) {  // V <- V J
          const double vkp = v[k * m + p], vkq = v[k * m + q];
          v[k * m + p] = c * vkp - s * vkq;
          v[k * m + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  int64_t best = 0;
  for (int64_t i = 1; i < m; ++i) {
    if (a[i * m + i] > a[best * m + best]) best = i;
  }
  std::vector<double> out(static_cast<size_t>(m));
  for (int64_t k = 0; k < m; ++k) out[k] = v[k * m + best];
  return out;
}

// First principal direction (unit) of the centred rows x [n, d]: the top right singular vector.
std::vector<double> first_component(const RowsMatrix& x, int64_t n, int64_t d) {
  constexpr int64_t kJacobiMax = 512;
  std::vector<double> dir(static_cast<size_t>(d), 0.0);
  if (n <= d && n <= kJacobiMax) {  // Gram matrix x x^T [n, n]; dir = x^T u
    RowsMatrix g(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = i; j < n; ++j) {
        double s = 0;
        for (int64_t k = 0; k < d; ++k) s += x[i * d + k] * x[j * d + k];
        g[i * n + j] = g[j * n + i] = s;
      }
    }
    const std::vector<double> u = top_eigenvector_jacobi(std::move(g), n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < d; ++k) dir[k] += u[i] * x[i * d + k];
    }
  } else if (d <= kJacobiMax) {  // covariance x^T x [d, d]
    RowsMatrix c(static_cast<size_t>(d * d), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < d; ++j) {
        for (int64_t k = j; k < d; ++k) c[j * d + k] += x[i * d + j] * x[i * d + k];
      }
    }
    for (int64_t j = 0; j < d; ++j) {
      for (int64_t k = 0; k < j; ++k) c[j * d + k] = c[k * d + j];
    }
    dir = top_eigenvector_jacobi(std::move(c), d);
  } else {  // power iteration on x^T x, never forming it
    for (int64_t k = 0; k < d; ++k)
      dir[k] = 1.0 / std::sqrt(static_cast<double>(d)) + 1e-3 * (k % 7);
    std::vector<double> xv(static_cast<size_t>(n));
    for (int it = 0; it < 10000; ++it) {
      for (int64_t i = 0; i < n; ++i) {
        double s = 0;
        for (int64_t k = 0; k < d; ++k) s += x[i * d + k] * dir[k];
        xv[i] = s;
      }
      std::vector<double> next(static_cast<size_t>(d), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < d; ++k) next[k] += xv[i] * x[i * d + k];
      }
      const double len = norm(next);
      if (len == 0) break;
      double change = 0;
      for (int64_t k = 0; k < d; ++k) {
        next[k] /= len;
        change = std::max(change, std::fabs(next[k] - dir[k]));
      }
      dir = std::move(next);
      if (change < 1e-13) break;
    }
  }
  const double len = norm(dir);
  if (len > 0) {
    for (double& v : dir) v /= len;
  }
  return dir;
}

}  // namespace

SteerMethod parse_steer_method(const std::string& text) {
  if (text == "pca") return SteerMethod::kPca;
  if (text == "mean_diff") return SteerMethod::kMeanDiff;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown steering method '" + text + "' (expected pca or mean_diff)");
}

SteerReduce parse_steer_reduce(const std::string& text) {
  if (text == "last") return SteerReduce::kLast;
  if (text == "mean") return SteerReduce::kMean;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown token reduction '" + text + "' (expected last or mean)");
}

std::vector<float> steering_direction(const Tensor& positive, const Tensor& negative,
                                      SteerMethod method, bool normalize) {
  int64_t n_pos = 0, n_neg = 0, d = 0, d_neg = 0;
  const RowsMatrix p = to_double(positive, "positive", &n_pos, &d);
  const RowsMatrix q = to_double(negative, "negative", &n_neg, &d_neg);
  if (d != d_neg) {
    throw Error(ErrorCode::kShape, "positive activations have width " + std::to_string(d) +
                                       " but negative ones " + std::to_string(d_neg));
  }
  if (n_pos == 0 || n_neg == 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "a steering vector needs at least one positive and "
                "one negative text");
  }
  std::vector<double> dir;
  if (method == SteerMethod::kMeanDiff) {
    dir = mean_rows(p, n_pos, d);
    const std::vector<double> mn = mean_rows(q, n_neg, d);
    for (int64_t k = 0; k < d; ++k) dir[k] -= mn[k];
    if (normalize) {
      const double len = norm(dir);
      if (len == 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    "the positive and negative means are equal: no direction to normalise");
      }
      for (double& v : dir) v /= len;
    }
  } else {
    if (n_pos != n_neg) {
      throw Error(ErrorCode::kShape,
                  "pca pairs positives with negatives row by row, but there are " +
                      std::to_string(n_pos) + " positives and " + std::to_string(n_neg) +
                      " negatives");
    }
    if (n_pos < 2) {
      throw Error(ErrorCode::kInvalidArgument,
                  "pca needs at least 2 pairs (use mean_diff for one)");
    }
    RowsMatrix diff(p.size());
    for (size_t i = 0; i < p.size(); ++i) diff[i] = p[i] - q[i];
    const std::vector<double> mean = mean_rows(diff, n_pos, d);
    double var = 0;
    for (int64_t i = 0; i < n_pos; ++i) {
      for (int64_t k = 0; k < d; ++k) {
        diff[i * d + k] -= mean[k];
        var += diff[i * d + k] * diff[i * d + k];
      }
    }
    if (!(var > 0)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the paired differences have no variance: pca is undefined (use mean_diff)");
    }
    dir = first_component(diff, n_pos, d);
    // repeng's sign rule: a vote over the pairs, ties broken by the mean projection.
    int64_t pos_higher = 0, pos_lower = 0;
    double mean_gap = 0;
    for (int64_t i = 0; i < n_pos; ++i) {
      double pp = 0, qq = 0;
      for (int64_t k = 0; k < d; ++k) {
        pp += p[i * d + k] * dir[k];
        qq += q[i * d + k] * dir[k];
      }
      pos_higher += pp > qq;
      pos_lower += pp < qq;
      mean_gap += pp - qq;
    }
    if (pos_lower > pos_higher || (pos_lower == pos_higher && mean_gap < 0)) {
      for (double& v : dir) v = -v;
    }
  }
  return std::vector<float>(dir.begin(), dir.end());
}

std::vector<Tensor> collect_resid_post(Session& session,
                                       const std::vector<std::vector<int32_t>>& texts,
                                       const std::vector<int>& layers, SteerReduce reduce,
                                       const std::vector<int64_t>& mean_from) {
  GLASSBOX_ASSERT(mean_from.empty() ||
                  (reduce == SteerReduce::kMean && mean_from.size() == texts.size()));
  const ModelConfig& config = session.config();
  const int64_t d_model = config.d_model;
  std::vector<std::string> names;
  for (int layer : layers) {
    if (layer < 0 || layer >= config.n_layers) {
      throw Error(ErrorCode::kInvalidArgument, "layer " + std::to_string(layer) +
                                                   " is out of range: the model has " +
                                                   std::to_string(config.n_layers) + " blocks");
    }
    names.push_back("blocks." + std::to_string(layer) + ".hook_resid_post");
  }
  std::vector<Tensor> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    out.push_back(Tensor::zeros(DType::kF32, {static_cast<int64_t>(texts.size()), d_model}));
  }
  for (size_t t = 0; t < texts.size(); ++t) {
    if (texts[t].empty()) {
      throw Error(ErrorCode::kInvalidArgument, "text " + std::to_string(t) + " has no tokens");
    }
    const CacheRun run = run_with_cache(session, texts[t], names);
    for (size_t i = 0; i < layers.size(); ++i) {
      const Tensor& act = run.cache.at(names[i]);  // [n_tokens, d_model]
      const std::span<const float> a = act.floats();
      const int64_t n = act.dim(0);
      float* row = out[i].mutable_floats().data() + t * d_model;
      if (reduce == SteerReduce::kLast) {
        std::copy(a.begin() + (n - 1) * d_model, a.begin() + n * d_model, row);
      } else {
        const int64_t start = mean_from.empty() ? 0 : mean_from[t];
        for (int64_t k = 0; k < d_model; ++k) {
          double s = 0;
          for (int64_t j = start; j < n; ++j) s += a[j * d_model + k];
          row[k] = static_cast<float>(s / static_cast<double>(n - start));
        }
      }
    }
  }
  return out;
}

ControlVector compute_steering_vector(Session& session,
                                      const std::vector<std::vector<int32_t>>& positive,
                                      const std::vector<std::vector<int32_t>>& negative,
                                      const SteeringOptions& options) {
  std::vector<int> layers = options.layers;
  if (layers.empty()) {
    for (int l = 1; l < session.config().n_layers; ++l) layers.push_back(l);
  }
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  const std::vector<Tensor> pos = collect_resid_post(session, positive, layers, options.reduce);
  const std::vector<Tensor> neg = collect_resid_post(session, negative, layers, options.reduce);
  ControlVector cv;
  cv.d_model = session.config().d_model;
  for (size_t i = 0; i < layers.size(); ++i) {
    try {
      cv.directions[layers[i]] =
          steering_direction(pos[i], neg[i], options.method, options.normalize);
    } catch (const Error& e) {
      throw e.with_context("layer " + std::to_string(layers[i]));
    }
  }
  return cv;
}

}  // namespace glassbox
