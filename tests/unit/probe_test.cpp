// Linear probes: logistic regression vs an independent torch L-BFGS fit and the optimality
// condition, AUROC with ties vs hand counts, cross-validation folds and selection, probe files,
// dataset parsing errors, hook expansion and features vs run_with_cache.
#include "probe/probe.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "expect_error.h"
#include "model/model.h"
#include "model/run.h"
#include "model/session.h"
#include "probe/logistic.h"
#include "probe/probe_data.h"
#include "test_models.h"

namespace glassbox {
namespace {

using testing::expect_error;

Matrix make_matrix(int64_t n, int64_t d, const std::function<double(int64_t, int64_t)>& f) {
  Matrix m;
  m.n = n;
  m.d = d;
  m.data.resize(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t a = 0; a < d; ++a) m.row(i)[a] = f(i, a);
  }
  return m;
}

// Gradient of J (see logistic.h) at a fit; zero at the optimum.
double max_gradient(const Matrix& x, const std::vector<int>& y, const LogisticFit& fit,
                    double lambda) {
  std::vector<double> g(static_cast<size_t>(x.d + 1), 0.0);
  const std::vector<double> z = logistic_logits(x, fit);
  for (int64_t i = 0; i < x.n; ++i) {
    const double r = 1.0 / (1.0 + std::exp(-z[i])) - y[i];
    for (int64_t a = 0; a < x.d; ++a) g[a] += r * x.row(i)[a] / x.n;
    g[x.d] += r / x.n;
  }
  double m = 0;
  for (int64_t a = 0; a < x.d; ++a) m = std::max(m, std::abs(g[a] + lambda * fit.w[a]));
  return std::max(m, std::abs(g[x.d]));
}

// The 12-row set of tests/unit: x = (sin 1.3i, cos 0.7i + 0.1i), y as listed. Expected values
// from torch.optim.LBFGS in float64 (gradient < 2e-9), an independent method.
TEST(Logistic, MatchesIndependentFit) {
  const Matrix x = make_matrix(12, 2, [](int64_t i, int64_t a) {
    return a == 0 ? std::sin(i * 1.3) : std::cos(i * 0.7) + 0.1 * i;
  });
  const std::vector<int> y = {1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 0};
  struct Case {
    double lambda, w0, w1, b;
  };
  for (const Case& c : {Case{0.1, -0.281126586890, -0.375774792702, -0.048369486582},
                        Case{0.01, -0.486487306665, -0.584118897623, 0.112489632061}}) {
    LogisticOptions o;
    o.lambda = c.lambda;
    const LogisticFit fit = fit_logistic(x, y, o);
    EXPECT_TRUE(fit.converged);
    EXPECT_NEAR(fit.w[0], c.w0, 1e-7);
    EXPECT_NEAR(fit.w[1], c.w1, 1e-7);
    EXPECT_NEAR(fit.b, c.b, 1e-7);
    EXPECT_LT(max_gradient(x, y, fit, c.lambda), 1e-10);
  }
}

TEST(Logistic, SeparableAndWideDataReachTheOptimum) {
  // Separable: label = sign of feature 0; the penalty keeps the optimum finite.
  const Matrix sep = make_matrix(40, 3, [](int64_t i, int64_t a) {
    return a == 0 ? (i % 2 ? 1.0 : -1.0) * (1 + 0.05 * i) : std::sin(i * (a + 1.7));
  });
  std::vector<int> ys;
  for (int64_t i = 0; i < 40; ++i) ys.push_back(i % 2);
  for (double lambda : {1e-4, 1e-2, 1.0}) {
    LogisticOptions o;
    o.lambda = lambda;
    const LogisticFit fit = fit_logistic(sep, ys, o);
    EXPECT_TRUE(fit.converged) << lambda;
    EXPECT_LT(max_gradient(sep, ys, fit, lambda), 1e-9) << lambda;
    EXPECT_EQ(accuracy(logistic_logits(sep, fit), ys), 1.0);
  }
  // More features than rows.
  const Matrix wide =
      make_matrix(10, 30, [](int64_t i, int64_t a) { return std::cos(i * 0.9 + a); });
  std::vector<int> yw = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0};
  LogisticOptions o;
  o.lambda = 1e-3;
  const LogisticFit fit = fit_logistic(wide, yw, o);
  EXPECT_LT(max_gradient(wide, yw, fit, o.lambda), 1e-9);
  // No features: the intercept is the log-odds of the base rate (closed form).
  Matrix none;
  none.n = 8;
  const std::vector<int> y3 = {1, 1, 1, 0, 0, 0, 0, 0};
  EXPECT_NEAR(fit_logistic(none, y3, o).b, std::log(3.0 / 5.0), 1e-12);
}

TEST(Logistic, RefusesBadInput) {
  const Matrix x = make_matrix(3, 1, [](int64_t i, int64_t) { return i; });
  LogisticOptions o;
  expect_error(
      [&] {
        fit_logistic(x, std::vector<int>{0, 2, 1}, o);
      },
      ErrorCode::kInvalidArgument, "not 0 or 1");
  o.lambda = 0;
  expect_error(
      [&] {
        fit_logistic(x, std::vector<int>{0, 1, 1}, o);
      },
      ErrorCode::kInvalidArgument, "lambda");
}

TEST(Metrics, AurocWithTiesMatchesHandCount) {
  // Positives {0.35, 0.8, 0.4} vs negatives {0.1, 0.4}: 1+0 + 1+1 + 1+0.5 = 4.5 of 6 pairs.
  EXPECT_DOUBLE_EQ(
      auroc(std::vector<double>{0.1, 0.4, 0.35, 0.8, 0.4}, std::vector<int>{0, 0, 1, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(auroc(std::vector<double>{2, 2, 2, 2}, std::vector<int>{0, 1, 0, 1}), 0.5);
  EXPECT_DOUBLE_EQ(auroc(std::vector<double>{1, 2, 3}, std::vector<int>{0, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(auroc(std::vector<double>{3, 2, 1}, std::vector<int>{0, 1, 1}), 0.0);
  EXPECT_TRUE(std::isnan(auroc(std::vector<double>{1, 2}, std::vector<int>{1, 1})));
  EXPECT_DOUBLE_EQ(accuracy(std::vector<double>{-1, 0, 0.5, 2}, std::vector<int>{0, 1, 1, 0}), 0.5);
  EXPECT_NEAR(log_loss(std::vector<double>{0.0}, std::vector<int>{1}), std::log(2.0), 1e-15);
}

TEST(CrossValidation, StratifiedDeterministicAndSelectsMinLoss) {
  const Matrix x = make_matrix(50, 4, [](int64_t i, int64_t a) {
    return std::sin(i * (a + 0.37)) + (a == 0 ? 2.0 * (i % 2) : 0.0);
  });
  std::vector<int> y;
  for (int64_t i = 0; i < 50; ++i) y.push_back(i % 2);
  CvOptions o;
  o.seed = 3;
  const CvResult a = cross_validate(x, y, o), b = cross_validate(x, y, o);
  EXPECT_EQ(a.fold, b.fold);
  EXPECT_EQ(a.lambda, b.lambda);
  for (int f = 0; f < o.folds; ++f) {
    int c[2] = {0, 0};
    for (int64_t i = 0; i < 50; ++i) c[y[i]] += a.fold[i] == f;
    EXPECT_EQ(c[0], 5);
    EXPECT_EQ(c[1], 5);
  }
  const size_t chosen = static_cast<size_t>(
      std::find(o.lambdas.begin(), o.lambdas.end(), a.lambda) - o.lambdas.begin());
  ASSERT_LT(chosen, o.lambdas.size());
  EXPECT_EQ(a.mean_loss[chosen], *std::min_element(a.mean_loss.begin(), a.mean_loss.end()));
  EXPECT_GT(a.cv_auroc, 0.8);
  o.folds = 30;
  expect_error([&] { cross_validate(x, y, o); }, ErrorCode::kInvalidArgument, "fewer than --folds");
}

TEST(ProbeFile, RoundTripsAndRefusesBadFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "glassbox_probe_test";
  std::filesystem::create_directories(dir);
  Probe p;
  p.hook = "blocks.1.hook_resid_post";
  p.lambda = 0.01;
  p.mean = {0.1, -1.0 / 3};
  p.scale = {1.5, 2.0 / 7};
  p.w = {std::acos(-1.0), -1e-300};
  p.b = 0.123456789012345678;
  const std::string path = (dir / "x.probe.json").string();
  save_probe(p, path);
  const Probe q = load_probe(path);
  EXPECT_EQ(q.hook, p.hook);
  EXPECT_EQ(q.mean, p.mean);
  EXPECT_EQ(q.scale, p.scale);
  EXPECT_EQ(q.w, p.w);
  EXPECT_EQ(q.b, p.b);
  EXPECT_EQ(probe_files(dir.string()), std::vector<std::string>{path});
  const auto write = [&](const std::string& text) {
    std::ofstream(path) << text;
    return path;
  };
  expect_error([&] { load_probe(write("{}")); }, ErrorCode::kFormat, "not a glassbox probe");
  expect_error([&] { load_probe(write("{\"format\":\"glassbox.probe\",\"version\":1}")); },
               ErrorCode::kFormat, "missing or mistyped");
  expect_error([&] { load_probe(write("nope")); }, ErrorCode::kFormat, "not valid JSON");
  std::filesystem::remove_all(dir);
}

std::string write_dataset(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

TEST(ProbeData, ParsesAndRefusesBadLines) {
  const std::string ok = write_dataset(
      "glassbox_probe_ok.jsonl",
      "{\"text\":\"a b\",\"label\":1}\n\n{\"text\":\"c\",\"label\":false,\"span\":[0,-1]}\n"
      "{\"text\":\"d\",\"label\":0,\"token\":-2}\n");
  const auto ex = read_probe_dataset(ok, true);
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].label, 1);
  EXPECT_EQ(ex[1].label, 0);
  EXPECT_EQ(ex[1].line, 3);
  EXPECT_EQ(*ex[1].end, -1);
  EXPECT_EQ(*ex[2].start, -2);
  EXPECT_EQ(*ex[2].end, -1);
  const auto bad = [&](const std::string& text, ErrorCode code, const std::string& part) {
    const std::string path = write_dataset("glassbox_probe_bad.jsonl", text);
    expect_error([&] { read_probe_dataset(path, true); }, code, part);
  };
  bad("{\"text\":\"a\"}\n", ErrorCode::kFormat, ":1: no \"label\"");
  bad("{\"text\":\"a\",\"label\":1}\n{\"text\":\"a\",\"label\":2}\n", ErrorCode::kFormat,
      ":2: \"label\" must be 0, 1");
  bad("{\"label\":1}\n", ErrorCode::kFormat, "no \"text\"");
  bad("{\"text\":\"a\",\"label\":1,\"span\":[1]}\n", ErrorCode::kFormat, "\"span\"");
  bad("[1]\n", ErrorCode::kFormat, "not a JSON object");
  bad("\n\n", ErrorCode::kInvalidArgument, "no examples");
  expect_error([] { read_probe_dataset("/nonexistent/x.jsonl", true); }, ErrorCode::kIo,
               "cannot open");
}

TEST(ProbeData, FeaturesAreThePooledCacheRows) {
  const Model model = load_model(testing::stories260k());
  const auto tok = load_model_tokenizer(model, std::nullopt);
  const auto hooks =
      resolve_probe_hooks({"blocks.*.hook_resid_post", "hook_embed"}, model.config());
  ASSERT_EQ(hooks.size(), 6u);
  EXPECT_EQ(hooks[4], "blocks.4.hook_resid_post");
  expect_error([&] { resolve_probe_hooks({"blocks.9.hook_resid_post"}, model.config()); },
               ErrorCode::kNotFound, "blocks.9");
  expect_error([&] { resolve_probe_hooks({"blocks.0.attn.hook_pattern"}, model.config()); },
               ErrorCode::kInvalidArgument, "per token");
  std::vector<ProbeExample> ex(3);
  ex[0].text = "Once upon a time";
  ex[1].text = "The cat sat";
  ex[1].start = 1;
  ex[1].end = 3;
  ex[2].text = "Hi";
  ex[2].start = 5;
  const std::vector<std::string> h = {"blocks.2.hook_resid_post"};
  expect_error([&] { extract_probe_features(model, *tok, ex, h, ProbePool::kLast, 1); },
               ErrorCode::kInvalidArgument, "outside the text");
  ex.pop_back();
  for (ProbePool pool : {ProbePool::kLast, ProbePool::kMean}) {
    const ProbeFeatures f = extract_probe_features(model, *tok, ex, h, pool, 1);
    Session s(model);
    for (size_t e = 0; e < 2; ++e) {
      const auto ids = tok->encode(ex[e].text, true, false);
      const Tensor a = run_with_cache(s, ids, h).cache.at(h[0]);
      const int64_t n = static_cast<int64_t>(ids.size()) - 1, d = model.config().d_model;
      int64_t lo = pool == ProbePool::kLast ? n - 1 : 0, hi = n;
      if (e == 1) lo = 1, hi = 3;
      for (int64_t k = 0; k < d; ++k) {
        double sum = 0;
        for (int64_t p = lo; p < hi; ++p) sum += a.data<float>()[(p + 1) * d + k];
        EXPECT_NEAR(f.x[0].row(e)[k], sum / (hi - lo), 1e-6);
      }
    }
  }
}

}  // namespace
}  // namespace glassbox
