#include "probe/probe.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/hooks.h"

namespace glassbox {

ProbeTraining train_probe(const std::string& hook, const Matrix& x, std::span<const int> y,
                          const CvOptions& options) {
  ProbeTraining t;
  t.cv = cross_validate(x, y, options);
  Matrix xs = x;
  const Standardizer s = fit_standardizer(xs);
  standardize(xs, s);
  LogisticOptions lo;
  lo.lambda = t.cv.lambda;
  const LogisticFit fit = fit_logistic(xs, y, lo);
  Probe& p = t.probe;
  p.hook = hook;
  p.lambda = t.cv.lambda;
  p.mean = s.mean;
  p.scale = s.scale;
  p.w = fit.w;
  p.b = fit.b;
  p.n_train = x.n;
  p.cv_auroc = t.cv.cv_auroc;
  p.cv_accuracy = t.cv.cv_accuracy;
  p.seed = options.seed;
  p.folds = options.folds;
  return t;
}

std::vector<double> probe_logits(const Probe& p, const Matrix& x) {
  if (x.d != p.d()) {
    throw Error(ErrorCode::kShape, "probe for " + p.hook + " expects width " +
                                       std::to_string(p.d()) + ", got " + std::to_string(x.d));
  }
  std::vector<double> z(static_cast<size_t>(x.n), p.b);
  for (int64_t i = 0; i < x.n; ++i) {
    const double* r = x.row(i);
    for (int64_t a = 0; a < x.d; ++a) z[i] += p.w[a] * (r[a] - p.mean[a]) / p.scale[a];
  }
  return z;
}

void save_probe(const Probe& p, const std::string& path) {
  const nlohmann::json j = {
      {"format", "glassbox.probe"},
      {"version", 1},
      {"hook", p.hook},
      {"d", p.d()},
      {"pool", p.pool},
      {"lambda", p.lambda},
      {"b", p.b},
      {"model", p.model},
      {"n_train", p.n_train},
      {"cv_auroc", p.cv_auroc},
      {"cv_accuracy", p.cv_accuracy},
      {"seed", p.seed},
      {"folds", p.folds},
      {"shuffled_labels", p.shuffled_labels},
      {"chat_template",
       p.chat_template.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.chat_template)},
      {"mean", p.mean},
      {"scale", p.scale},
      {"w", p.w}};
  const std::string text = j.dump(1) + "\n";
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

Probe load_probe(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open probe " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kFormat, path + ": not valid JSON");
  }
  const auto bad = [&](const std::string& what) {
    return Error(ErrorCode::kFormat, path + ": " + what);
  };
  if (!j.is_object() || j.value("format", "") != "glassbox.probe") {
    throw bad("not a glassbox probe (\"format\" is not \"glassbox.probe\")");
  }
  if (j.value("version", 0) != 1) throw bad("unsupported \"version\"");
  Probe p;
  try {
    p.hook = j.at("hook").get<std::string>();
    p.pool = j.at("pool").get<std::string>();
    p.lambda = j.at("lambda").get<double>();
    p.b = j.at("b").get<double>();
    p.mean = j.at("mean").get<std::vector<double>>();
    p.scale = j.at("scale").get<std::vector<double>>();
    p.w = j.at("w").get<std::vector<double>>();
    const int64_t d = j.at("d").get<int64_t>();
    if (static_cast<int64_t>(p.w.size()) != d || p.mean.size() != p.w.size() ||
        p.scale.size() != p.w.size()) {
      throw bad("\"w\", \"mean\" and \"scale\" must each have \"d\" = " + std::to_string(d) +
                " values");
    }
    p.model = j.value("model", "");
    p.n_train = j.value("n_train", int64_t{0});
    p.cv_auroc = j.value("cv_auroc", 0.0);
    p.cv_accuracy = j.value("cv_accuracy", 0.0);
    p.seed = j.value("seed", uint64_t{0});
    p.folds = j.value("folds", 0);
    p.shuffled_labels = j.value("shuffled_labels", false);
    if (j.contains("chat_template") && !j["chat_template"].is_null())
      p.chat_template = j["chat_template"].get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw bad(std::string("missing or mistyped field (") + e.what() + ")");
  }
  if (p.pool != "last" && p.pool != "mean") throw bad("\"pool\" must be \"last\" or \"mean\"");
  if (!parse_hook_name(p.hook)) throw bad("\"hook\" '" + p.hook + "' is not a hook name");
  for (double v : p.scale) {
    if (!(v > 0) || !std::isfinite(v)) throw bad("\"scale\" values must be finite and > 0");
  }
  for (const auto* vec : {&p.mean, &p.w}) {
    for (double v : *vec) {
      if (!std::isfinite(v)) throw bad("non-finite value in \"mean\" or \"w\"");
    }
  }
  if (!std::isfinite(p.b)) throw bad("non-finite \"b\"");
  return p;
}

std::vector<std::string> probe_files(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(path)) return {path};
  std::vector<std::pair<std::pair<int, std::string>, std::string>> found;
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    const std::string suffix = ".probe.json";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    const auto h = parse_hook_name(name.substr(0, name.size() - suffix.size()));
    found.push_back({{h ? h->layer : -2, name}, e.path().string()});
  }
  if (found.empty()) throw Error(ErrorCode::kNotFound, "no *.probe.json in " + path);
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace glassbox
