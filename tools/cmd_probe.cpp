// `glassbox probe train|eval`: linear probes (L2 logistic regression, cross-validated penalty) on
// pooled hook activations of a labelled JSONL dataset (src/probe/, docs/probes.md).
//   train: DIR/<hook>.probe.json per hook, DIR/metrics.json, DIR/auroc.svg, a table on stdout
//   eval:  metrics of saved probes on a dataset (JSON), or per-token scores of one --text
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/atomic_file.h"
#include "model/hooks.h"
#include "probe/probe.h"
#include "probe/probe_data.h"
#include "progress.h"
#include "svg_plot.h"

namespace glassbox::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct ProbeTrainArgs {
  ModelArgs model;
  ChatArgs chat;
  std::string data, eval, hooks = "blocks.*.hook_resid_post", out, pool = "last";
  std::string lambdas = "1e-4,1e-3,1e-2,1e-1,1";
  int folds = 5;
  uint64_t seed = 0;
  bool shuffle_labels = false;
};

struct ProbeEvalArgs {
  ModelArgs model;
  ChatArgs chat;
  std::string probe, data;
  std::optional<std::string> text, pool;
};

// NaN (one class absent) becomes null in JSON and "-" in the table.
json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
std::string cell(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", v);
  return buf;
}

std::vector<double> parse_lambdas(const std::string& text) {
  std::vector<double> out;
  for (const std::string& item : split_list(text)) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (end != item.c_str() + item.size() || !(v > 0) || !std::isfinite(v)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--lambdas: '" + item + "' is not a positive number");
    }
    out.push_back(v);
  }
  if (out.empty()) throw Error(ErrorCode::kInvalidArgument, "--lambdas: no value given");
  return out;
}

ProbeFeatures features(const Model& model, const Tokenizer& tok, const ChatFormatter* chat,
                       const std::string& path, const std::vector<std::string>& hooks,
                       ProbePool pool, int threads) {
  const std::vector<ProbeExample> ex = read_probe_dataset(path, true);  // names file:line
  try {
    Progress bar("probe " + fs::path(path).filename().string(), "texts");
    return extract_probe_features(
        model, tok, ex, hooks, pool, threads, [&](int64_t d, int64_t t) { bar.update(d, t); },
        chat);
  } catch (const Error& e) {
    throw e.with_context(path);
  }
}

int run_probe_train(ProbeTrainArgs& a) {
  const ProbePool pool = parse_probe_pool(a.pool);
  CvOptions cv;
  cv.lambdas = parse_lambdas(a.lambdas);
  cv.folds = a.folds;
  cv.seed = a.seed;
  const Model model = load_model(a.model.model_path);
  const auto tok = load_model_tokenizer(model, a.model.tokenizer_path);
  const std::vector<std::string> hooks = resolve_probe_hooks(split_list(a.hooks), model.config());
  const std::unique_ptr<ChatFormatter> chat = make_chat_formatter(model, *tok, a.chat);
  ProbeFeatures train = features(model, *tok, chat.get(), a.data, hooks, pool, a.model.threads);
  if (a.shuffle_labels) {  // the control: same features, labels permuted (seed ^ a constant)
    const std::vector<int64_t> perm =
        seeded_permutation(static_cast<int64_t>(train.labels.size()), a.seed ^ 0x5eed5eedull);
    std::vector<int> shuffled(train.labels.size());
    for (size_t i = 0; i < perm.size(); ++i) shuffled[i] = train.labels[perm[i]];
    train.labels = shuffled;
  }
  std::optional<ProbeFeatures> held;
  if (!a.eval.empty())
    held = features(model, *tok, chat.get(), a.eval, hooks, pool, a.model.threads);
  fs::create_directories(a.out);
  const std::string stem = fs::path(a.model.model_path).stem().string();

  json layers = json::array();
  std::vector<double> xs, cv_curve, held_curve;
  std::printf("%-32s %9s %9s %9s %12s %12s\n", "hook", "lambda", "cv_auroc", "cv_acc",
              "heldout_auroc", "heldout_acc");
  int best = -1;
  double best_auroc = -1;
  for (size_t h = 0; h < hooks.size(); ++h) {
    ProbeTraining t = train_probe(hooks[h], train.x[h], train.labels, cv);
    Probe& p = t.probe;
    p.pool = probe_pool_name(pool);
    p.model = stem;
    p.shuffled_labels = a.shuffle_labels;
    if (chat && chat->uses_template()) p.chat_template = chat->template_name();
    const std::string file = hooks[h] + ".probe.json";
    save_probe(p, (fs::path(a.out) / file).string());
    const std::vector<double> zt = probe_logits(p, train.x[h]);
    json row = {{"hook", hooks[h]},
                {"layer", resolve_hook_name(hooks[h], model.config()).layer},
                {"probe", file},
                {"lambda", p.lambda},
                {"cv_auroc", num(t.cv.cv_auroc)},
                {"cv_accuracy", num(t.cv.cv_accuracy)},
                {"cv_log_loss", t.cv.mean_loss},
                {"train_auroc", num(auroc(zt, train.labels))},
                {"train_accuracy", num(accuracy(zt, train.labels))}};
    double h_auroc = NAN, h_acc = NAN;
    if (held) {
      const std::vector<double> z = probe_logits(p, held->x[h]);
      h_auroc = auroc(z, held->labels);
      h_acc = accuracy(z, held->labels);
      row["heldout_auroc"] = num(h_auroc);
      row["heldout_accuracy"] = num(h_acc);
      row["heldout_log_loss"] = num(log_loss(z, held->labels));
    }
    const double score = held ? h_auroc : t.cv.cv_auroc;
    if (std::isfinite(score) && score > best_auroc) best_auroc = score, best = static_cast<int>(h);
    layers.push_back(row);
    xs.push_back(static_cast<double>(h));
    cv_curve.push_back(t.cv.cv_auroc);
    held_curve.push_back(h_auroc);
    std::printf("%-32s %9.3g %9s %9s %12s %12s\n", hooks[h].c_str(), p.lambda,
                cell(t.cv.cv_auroc).c_str(), cell(t.cv.cv_accuracy).c_str(), cell(h_auroc).c_str(),
                cell(h_acc).c_str());
  }
  int64_t n_pos = 0;
  for (int l : train.labels) n_pos += l;
  json m = {{"model", a.model.model_path},
            {"data", a.data},
            {"eval", held ? json(a.eval) : json(nullptr)},
            {"n_train", train.labels.size()},
            {"n_train_positive", n_pos},
            {"n_eval", held ? json(held->labels.size()) : json(nullptr)},
            {"pool", probe_pool_name(pool)},
            {"folds", a.folds},
            {"seed", a.seed},
            {"lambdas", cv.lambdas},
            {"shuffle_labels", a.shuffle_labels},
            {"prompt_format", chat ? chat->describe() : "plain text"},
            {"selection", "lambda with the lowest mean validation log-loss over the folds"},
            {"best", best < 0 ? json(nullptr)
                              : json{{"hook", hooks[best]},
                                     {held ? "heldout_auroc" : "cv_auroc", best_auroc}}},
            {"layers", layers}};
  write_text(fs::path(a.out) / "metrics.json", m.dump(2) + "\n");
  std::vector<PlotSeries> series = {{"cross-validated AUROC (train data)", cv_curve, false}};
  if (held) series.insert(series.begin(), {"held-out AUROC", held_curve, false});
  const bool all_blocks = std::all_of(hooks.begin(), hooks.end(), [&](const std::string& n) {
    return resolve_hook_name(n, model.config()).layer >= 0;
  });
  if (all_blocks) {
    for (size_t h = 0; h < hooks.size(); ++h) {
      xs[h] = resolve_hook_name(hooks[h], model.config()).layer;
    }
  }
  write_text(fs::path(a.out) / "auroc.svg",
             svg_line_chart(all_blocks ? "layer" : "hook index (order of --hooks)", xs, series));
  if (best >= 0) {
    std::printf("best: %s %s AUROC %.4f\n", hooks[best].c_str(), held ? "held-out" : "cv",
                best_auroc);
  }
  return 0;
}

// A probe reads activations of texts formatted as it was trained (chat turn or plain text):
// anything else would score other positions of other prompts without a word.
void check_prompt_format(const std::vector<std::string>& files, const std::vector<Probe>& probes,
                         const ChatFormatter* chat) {
  const bool chat_now = chat != nullptr && chat->uses_template();
  for (size_t i = 0; i < probes.size(); ++i) {
    if (probes[i].chat_template.empty() == !chat_now) continue;
    throw Error(ErrorCode::kInvalidArgument,
                files[i] + (chat_now ? ": trained on plain text; evaluate without --chat"
                                     : ": trained on texts rendered with " +
                                           probes[i].chat_template + "; evaluate with --chat"));
  }
}

int run_probe_eval(ProbeEvalArgs& a) {
  if (a.text.has_value() == !a.data.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "give one of --data or --text");
  }
  std::vector<Probe> probes;
  const std::vector<std::string> files = probe_files(a.probe);
  for (const std::string& f : files) probes.push_back(load_probe(f));
  const Model model = load_model(a.model.model_path);
  const auto tok = load_model_tokenizer(model, a.model.tokenizer_path);
  const std::unique_ptr<ChatFormatter> chat = make_chat_formatter(model, *tok, a.chat);
  check_prompt_format(files, probes, chat.get());
  std::vector<std::string> names;
  for (const Probe& p : probes) names.push_back(p.hook);
  const std::vector<std::string> hooks = resolve_probe_hooks(names, model.config());
  if (a.text) {  // per-token probabilities, every position (pooling does not apply)
    std::vector<int32_t> ids;
    const std::vector<Matrix> acts =
        token_activations(model, *tok, *a.text, hooks, a.model.threads, &ids, chat.get());
    json pieces = json::array(), scores = json::object();
    for (int32_t id : ids) pieces.push_back(tok->piece(id));
    for (size_t h = 0; h < hooks.size(); ++h) {
      json row = json::array();
      for (double z : probe_logits(probes[h], acts[h])) row.push_back(1.0 / (1.0 + std::exp(-z)));
      scores[hooks[h]] = row;
    }
    std::printf("%s\n", json{{"tokens", ids}, {"pieces", pieces}, {"p", scores}}.dump(2).c_str());
    return 0;
  }
  // Probes trained together share a pooling rule; --pool overrides it for all.
  const ProbePool pool = parse_probe_pool(a.pool.value_or(probes.front().pool));
  const ProbeFeatures f = features(model, *tok, chat.get(), a.data, hooks, pool, a.model.threads);
  json rows = json::array();
  for (size_t h = 0; h < hooks.size(); ++h) {
    const std::vector<double> z = probe_logits(probes[h], f.x[h]);
    rows.push_back({{"hook", hooks[h]},
                    {"auroc", num(auroc(z, f.labels))},
                    {"accuracy", num(accuracy(z, f.labels))},
                    {"log_loss", num(log_loss(z, f.labels))}});
  }
  const json out = {
      {"data", a.data}, {"n", f.labels.size()}, {"pool", probe_pool_name(pool)}, {"probes", rows}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace

Action register_probe(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "probe", "Linear probes: L2 logistic regression on hook activations (docs/probes.md)");
  cmd->require_subcommand(1);
  auto t = std::make_shared<ProbeTrainArgs>();
  auto* train = cmd->add_subcommand(
      "train",
      "Fit one probe per hook on a labelled JSONL dataset (text, label, optional span/token); "
      "writes OUT/<hook>.probe.json, OUT/metrics.json, OUT/auroc.svg and prints a table");
  add_model_options(*train, t->model);
  train->add_option("--data", t->data, "Training JSONL")->required();
  train->add_option("--eval", t->eval, "Held-out JSONL, scored with the fitted probes");
  train->add_option("--hooks", t->hooks,
                    "Comma-separated hooks; blocks.*.<name> = every layer (default "
                    "blocks.*.hook_resid_post)");
  train->add_option("--pool", t->pool,
                    "Feature of a text without span/token: last (last token) or mean");
  train->add_option("--lambdas", t->lambdas, "L2 penalties to cross-validate, comma-separated");
  train->add_option("--folds", t->folds, "Cross-validation folds (default 5)");
  train->add_option("--seed", t->seed, "Seed for folds and --shuffle-labels (default 0)");
  train->add_flag("--shuffle-labels", t->shuffle_labels,
                  "Control: permute the training labels (held-out labels stay true)");
  train->add_option("--out,-o", t->out, "Output directory")->required();
  add_chat_options(*train, t->chat, "each text");
  auto e = std::make_shared<ProbeEvalArgs>();
  auto* eval = cmd->add_subcommand(
      "eval", "Score saved probes: metrics on --data (JSON) or per-token P(label 1) on --text");
  add_model_options(*eval, e->model);
  eval->add_option("--probe", e->probe, "A .probe.json file, or a directory of them")->required();
  eval->add_option("--data", e->data, "Labelled JSONL");
  eval->add_option("--text", e->text, "One text: probability at every token");
  eval->add_option("--pool", e->pool, "Override the probes' pooling rule: last or mean");
  add_chat_options(*eval, e->chat, "each text (as the probes were trained)");
  return [cmd, train, t, e] {
    if (train->parsed()) return run_probe_train(*t);
    return run_probe_eval(*e);
  };
}

}  // namespace glassbox::cli
