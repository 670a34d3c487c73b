// `glassbox score`: how well each stored explanation predicts its feature — detection and fuzzing
// (delphi's protocols) and the intervention score (clamp the latent high while generating from
// neutral prompts: do the generations express the explanation more than unsteered ones?) — with
// the offline deterministic judge or an OpenAI-compatible LLM. Scores go into the feature DB as
// they come; a rerun skips (feature, explainer, method, judge) rows already there. Prints a
// summary table with a histogram per method, and optionally an SVG of the histograms.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "analysis/feature_db.h"
#include "autointerp/prompts.h"
#include "autointerp/scoring.h"
#include "autointerp/subject_model.h"
#include "autointerp_options.h"
#include "cli_common.h"
#include "progress.h"
#include "sae/sae_io.h"

namespace glassbox::cli {
namespace {

using autointerp::ScoringSample;

struct ScoreArgs {
  std::string db;
  std::string explainer;  // "" = every explainer with an explanation
  LlmArgs llm;            // judge; no --endpoint = the offline judge
  std::string methods = "detection,fuzzing,intervention";
  std::string features;
  uint64_t seed = 0;
  int threads = 0;
  std::string kv_type = "f32";
  bool redo = false;
  int64_t positives = 40;
  int64_t contexts = 600;
  double clamp_scale = 2.0;
  autointerp::SteerOptions steer;
  std::string subject_model, sae, corpus, tokenizer;  // override the DB's meta paths
  std::string plot;
  ChatArgs chat;  // intervention prompts as chat turns
};

// What the scorer needs of the analysed model, loaded only when a method needs it.
struct Subject {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::shared_ptr<const Sae> sae;
};

// The path (comma list for the corpus) recorded in the database's meta under `key`, or the
// option overriding it; each must exist here.
std::string meta_path(const std::map<std::string, std::string>& meta, const std::string& key,
                      const std::string& override_value, const std::string& flag) {
  if (!override_value.empty()) {
    for (const std::string& p : split_list(override_value))
      if (!std::filesystem::exists(p)) throw Error(ErrorCode::kIo, flag + " " + p + ": not found");
    return override_value;
  }
  const std::string path = meta.count(key) != 0 ? meta.at(key) : std::string();
  const std::vector<std::string> paths = split_list(path);
  if (paths.empty() || !std::all_of(paths.begin(), paths.end(), [](const std::string& p) {
        return std::filesystem::exists(p);
      }))
    throw Error(ErrorCode::kIo, "the database's " + key + " '" + path +
                                    "' does not exist here: give it with " + flag);
  return path;
}

std::unique_ptr<Subject> load_subject(const std::map<std::string, std::string>& meta,
                                      const ScoreArgs& a) {
  auto s = std::make_unique<Subject>(Subject{
      load_model(meta_path(meta, "model", a.subject_model, "--subject-model")), nullptr, nullptr});
  s->tokenizer = load_model_tokenizer(
      s->model, a.tokenizer.empty() ? std::nullopt : std::optional<std::string>(a.tokenizer));
  const std::string sae_path = meta_path(meta, "sae", a.sae, "--sae");
  try {
    s->sae = std::make_shared<const Sae>(load_sae(sae_path));
  } catch (const Error& e) {
    throw e.with_context("--sae " + sae_path);
  }
  if (meta.count("hook") && s->sae->hook_name != meta.at("hook"))
    throw Error(ErrorCode::kInvalidArgument, "--sae " + sae_path + ": reads " + s->sae->hook_name +
                                                 ", the database analysed " + meta.at("hook"));
  return s;
}

// Positives: the first top examples and the quantile-band samples (several quantiles), at most
// `n`, spread evenly over that list (tokens as display text, as the database holds them).
std::vector<ScoringSample> positives(const FeatureDetail& d, int64_t n) {
  std::vector<const FeatureExample*> all;
  for (size_t i = 0; i < d.top.size() && i < 10; ++i) all.push_back(&d.top[i]);
  for (const QuantileBand& b : d.quantiles)
    for (const FeatureExample& e : b.examples) all.push_back(&e);
  std::vector<ScoringSample> out;
  const size_t k = std::min(all.size(), static_cast<size_t>(n));
  for (size_t i = 0; i < k; ++i) {
    const FeatureExample& e = *all[i * all.size() / k];
    out.push_back(ScoringSample{e.tokens, e.acts});
  }
  return out;
}

autointerp::ScoreRecord binary_record(const autointerp::MethodResult& r) {
  autointerp::ScoreRecord s;
  s.accuracy = r.score.accuracy;
  s.balanced_accuracy = r.score.balanced_accuracy;
  s.auroc = r.score.auroc;
  s.value = r.score.balanced_accuracy;
  s.n = static_cast<int64_t>(r.truth.size());
  s.details = autointerp::details_json(r);
  return s;
}

// One (feature, explainer) pair still to score with some methods.
struct Job {
  int64_t feature;
  std::string explainer, explanation;
  std::vector<std::string> methods;
};

class Scorer {
 public:
  Scorer(const ScoreArgs& a, const FeatureDb& db, Subject* subject,
         const autointerp::ContextPool* pool, const std::vector<std::string>* unsteered)
      : a_(a), db_(db), subject_(subject), pool_(pool), unsteered_(unsteered) {}

  // Scores `job` with `judge`; `session` (may be null) runs the steered generations.
  std::vector<autointerp::ScoreRecord> run(const Job& job, autointerp::Judge& judge,
                                           Session* session) {
    std::vector<autointerp::ScoreRecord> out;
    const auto detail = db_.detail(job.feature);
    if (!detail) return out;
    const std::vector<ScoringSample> pos = positives(*detail, a_.positives);
    for (const std::string& method : job.methods) {
      autointerp::ScoreRecord s;
      if (method == "detection") {
        const auto neg = pool_->negatives(job.feature, pos.size(), a_.seed);
        s = binary_record(autointerp::run_detection(judge, job.explanation, pos, neg, a_.seed + 1));
      } else if (method == "fuzzing") {
        s = binary_record(autointerp::run_fuzzing(judge, job.explanation, pos, a_.seed + 2));
      } else {
        const float value = static_cast<float>(a_.clamp_scale * detail->summary.max_act);
        const auto steered = autointerp::generate_texts(
            *session, *subject_->tokenizer, subject_->sae, job.feature, value, a_.steer);
        const auto r = autointerp::intervention_score(judge, job.explanation, steered, *unsteered_);
        s.value = r.value;
        s.n = r.n;
        s.details = autointerp::details_json(r);
      }
      s.feature = job.feature;
      s.explainer = job.explainer;
      s.method = method;
      s.judge = judge.name();
      out.push_back(std::move(s));
    }
    return out;
  }

 private:
  const ScoreArgs& a_;
  const FeatureDb& db_;
  Subject* subject_;
  const autointerp::ContextPool* pool_;
  const std::vector<std::string>* unsteered_;
};

std::vector<std::string> parse_methods(const std::string& spec) {
  std::vector<std::string> out;
  for (const std::string& m : split_list(spec)) {
    if (m != "detection" && m != "fuzzing" && m != "intervention")
      throw Error(ErrorCode::kInvalidArgument,
                  "--methods: '" + m + "': expected detection, fuzzing or intervention");
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  if (out.empty()) throw Error(ErrorCode::kInvalidArgument, "--methods: no method given");
  return out;
}

std::vector<Job> make_jobs(const FeatureDb& db, autointerp::ExplanationStore& store,
                           const ScoreArgs& a, const std::string& judge,
                           const std::vector<std::string>& methods) {
  std::vector<Job> jobs;
  for (int64_t id : parse_feature_range(a.features, db.d_sae())) {
    for (const autointerp::Explanation& e : store.explanations(id)) {
      if (!a.explainer.empty() && e.explainer != a.explainer) continue;
      Job job{id, e.explainer, e.explanation, {}};
      for (const std::string& m : methods)
        if (a.redo || !store.score(id, e.explainer, m, judge)) job.methods.push_back(m);
      if (!job.methods.empty()) jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

// One panel of 10 bars per method: the distribution of score values across features.
std::string autointerp_histogram_svg(const std::map<std::string, std::vector<double>>& values,
                                     const std::vector<std::string>& methods) {
  const int w = 320, h = 180, pad = 30;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                    std::to_string(w * static_cast<int>(methods.size())) + "\" height=\"" +
                    std::to_string(h) + "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  for (size_t p = 0; p < methods.size(); ++p) {
    const std::string& m = methods[p];
    const auto it = values.find(m);
    const std::vector<double> v = it == values.end() ? std::vector<double>() : it->second;
    const double lo = m == "intervention" ? -1.0 : 0.0;
    std::vector<int64_t> bins(10, 0);
    for (double x : v) ++bins[std::clamp(static_cast<int>((x - lo) / (1.0 - lo) * 10), 0, 9)];
    const int64_t top = std::max<int64_t>(1, *std::max_element(bins.begin(), bins.end()));
    const int x0 = static_cast<int>(p) * w + pad, bw = (w - 2 * pad) / 10;
    svg += "<text x=\"" + std::to_string(x0) + "\" y=\"14\">" + m + " (n " +
           std::to_string(v.size()) + ")</text>\n";
    for (int b = 0; b < 10; ++b) {
      const int bh = static_cast<int>(static_cast<double>(bins[b]) / top * (h - 2 * pad));
      svg += "<rect x=\"" + std::to_string(x0 + b * bw) + "\" y=\"" + std::to_string(h - pad - bh) +
             "\" width=\"" + std::to_string(bw - 2) + "\" height=\"" + std::to_string(bh) +
             "\" fill=\"#e67e00\"><title>" + std::to_string(bins[b]) + "</title></rect>\n";
    }
    char lo_label[16], hi_label[16];
    std::snprintf(lo_label, sizeof(lo_label), "%g", lo);
    std::snprintf(hi_label, sizeof(hi_label), "%g", 1.0);
    svg += "<text x=\"" + std::to_string(x0) + "\" y=\"" + std::to_string(h - 12) + "\">" +
           lo_label + "</text><text x=\"" + std::to_string(x0 + 10 * bw - 10) + "\" y=\"" +
           std::to_string(h - 12) + "\">" + hi_label + "</text>\n";
  }
  return svg + "</svg>\n";
}

// The summary table: per method, count, mean, median and a 10-bin histogram of the values.
void print_summary(autointerp::ExplanationStore& store, const FeatureDb& db, const ScoreArgs& a,
                   const std::string& judge, const std::vector<std::string>& methods) {
  std::map<std::string, std::vector<double>> values;
  int64_t opposed = 0;
  for (int64_t id : parse_feature_range(a.features, db.d_sae())) {
    for (const autointerp::ScoreRecord& s : store.scores(id)) {
      if (s.judge != judge || (!a.explainer.empty() && s.explainer != a.explainer)) continue;
      if (std::find(methods.begin(), methods.end(), s.method) == methods.end()) continue;
      values[s.method].push_back(s.value);
      opposed += s.method == "intervention" && s.value < 0;
    }
  }
  std::printf("%-13s %6s %7s %7s   histogram (10 bins over %s)\n", "method", "n", "mean", "median",
              "[0,1]; intervention [-1,1]");
  for (const std::string& m : methods) {
    std::vector<double>& v = values[m];
    std::sort(v.begin(), v.end());
    double mean = 0;
    for (double x : v) mean += x / static_cast<double>(v.size());
    const double lo = m == "intervention" ? -1.0 : 0.0;
    std::vector<int64_t> bins(10, 0);
    for (double x : v) ++bins[std::clamp(static_cast<int>((x - lo) / (1.0 - lo) * 10), 0, 9)];
    std::string hist;
    for (int64_t b : bins) hist += std::to_string(b) + " ";
    std::printf("%-13s %6zu %7.3f %7.3f   %s\n", m.c_str(), v.size(), v.empty() ? 0.0 : mean,
                v.empty() ? 0.0 : v[v.size() / 2], hist.c_str());
  }
  if (opposed > 0)
    std::printf(
        "%lld explanations have a negative intervention score (amplifying the feature "
        "moves generations away from them)\n",
        static_cast<long long>(opposed));
  if (!a.plot.empty()) {
    std::ofstream out(a.plot);
    out << autointerp_histogram_svg(values, methods);
    if (!out) throw Error(ErrorCode::kIo, "--plot " + a.plot + ": cannot write");
  }
}

int run_score(ScoreArgs& a) {
  const std::vector<std::string> methods = parse_methods(a.methods);
  const auto db = FeatureDb::open(a.db);
  autointerp::ExplanationStore store(a.db);
  const auto meta = db->meta();
  LlmSpend spend;
  std::unique_ptr<autointerp::LlmClient> client;
  if (!a.llm.endpoint.empty())
    client = std::make_unique<autointerp::LlmClient>(make_llm_config(a.llm));
  const std::string judge_name = client ? a.llm.model : "offline";
  const std::vector<Job> jobs = make_jobs(*db, store, a, judge_name, methods);
  if (jobs.empty()) {
    std::fprintf(stderr, "%s: nothing to score (no explanations, or all scored by %s)\n",
                 a.db.c_str(), judge_name.c_str());
    print_summary(store, *db, a, judge_name, methods);
    return 0;
  }
  const auto needs = [&](const char* m) {
    return std::any_of(jobs.begin(), jobs.end(), [&](const Job& j) {
      return std::find(j.methods.begin(), j.methods.end(), m) != j.methods.end();
    });
  };
  std::unique_ptr<Subject> subject;
  std::unique_ptr<autointerp::ContextPool> pool;
  std::vector<std::string> unsteered;
  if (needs("detection") || needs("intervention")) subject = load_subject(meta, a);
  if (needs("detection")) {
    std::vector<std::string> vocab_text;
    for (const VocabEntry& v : store.vocab()) vocab_text.push_back(v.display);
    autointerp::ContextOptions co;
    co.corpus = split_list(meta_path(meta, "corpus", a.corpus, "--corpus"));
    co.ctx = std::stoll(meta.at("ctx"));
    co.length = 2 * std::stoll(meta.at("context")) + 1;
    co.n_contexts = a.contexts;
    co.seed = a.seed;
    co.threads = a.threads;
    std::fprintf(stderr, "cutting %lld random contexts from the corpus for negatives...\n",
                 static_cast<long long>(a.contexts));
    pool = std::make_unique<autointerp::ContextPool>(subject->model, *subject->tokenizer,
                                                     *subject->sae, co, vocab_text);
  }
  a.steer.seed = a.seed;
  SessionOptions so;
  so.n_threads = a.threads;
  so.kv_type = parse_kv_type(a.kv_type);
  if (needs("intervention")) {
    a.steer.chat = make_chat_formatter(subject->model, *subject->tokenizer, a.chat);
    Session session(subject->model, so);
    unsteered =
        autointerp::generate_texts(session, *subject->tokenizer, subject->sae, -1, 0, a.steer);
  }
  Scorer scorer(a, *db, subject.get(), pool.get(), &unsteered);
  std::mutex mu;
  std::vector<std::string> failures;
  Progress bar("score (" + judge_name + ")", "expl");
  std::atomic<size_t> next{0};
  int64_t done = 0;
  const auto worker = [&] {
    std::unique_ptr<autointerp::Judge> judge;
    if (client)
      judge =
          std::make_unique<autointerp::LlmJudge>(cached_chat(*client, store, spend), a.llm.model);
    else
      judge = std::make_unique<autointerp::OfflineJudge>();
    std::unique_ptr<Session> session;
    if (subject) session = std::make_unique<Session>(subject->model, so);
    // An LLM judge's scores are committed one job at a time (each cost money); offline ones in
    // batches (a commit costs more than scoring).
    const size_t flush_every = client ? 1 : 32;
    std::vector<autointerp::ScoreRecord> pending;
    for (size_t i = next++; i < jobs.size(); i = next++) {
      std::string failure;
      try {
        for (auto& s : scorer.run(jobs[i], *judge, session.get())) pending.push_back(std::move(s));
        if (pending.size() >= flush_every) {
          store.put_scores(pending);
          pending.clear();
        }
      } catch (const std::exception& e) {  // one feature's failure never stops the others
        failure = "feature " + std::to_string(jobs[i].feature) + " (" + jobs[i].explainer +
                  "): " + e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!failure.empty()) failures.push_back(failure);
      if (client) bar.set_note(spend.summary(a.llm));
      bar.update(++done, static_cast<int64_t>(jobs.size()));
    }
    try {
      store.put_scores(pending);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      failures.push_back(std::string("writing scores: ") + e.what());
    }
  };
  std::vector<std::thread> threads;
  const int n = client ? std::min<int>(a.llm.concurrency, static_cast<int>(jobs.size())) : 1;
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  print_summary(store, *db, a, judge_name, methods);
  if (client) std::fprintf(stderr, "judge: %s\n", spend.summary(a.llm).c_str());
  report_failures(failures, "explanations failed to score", "scored ones are skipped");
  return 0;
}

}  // namespace

Action register_score(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "score",
      "Score the stored explanations of a feature database: detection (does the judge, given the "
      "explanation, tell activating contexts from random non-activating ones?), fuzzing (are the "
      "marked tokens the activating ones?) and intervention (does clamping the latent high make "
      "generations express the explanation?). Judge: an OpenAI-compatible LLM (--endpoint, "
      "--model) or, by default, the offline deterministic judge (docs/autointerp.md)");
  auto a = std::make_shared<ScoreArgs>();
  cmd->add_option("--db", a->db, "Feature database with explanations (glassbox explain)")
      ->required();
  cmd->add_option("--explainer", a->explainer,
                  "Score only this explainer's explanations ('offline' or an LLM name; default "
                  "every explanation)");
  add_llm_options(*cmd, a->llm, "judge");
  cmd->add_option("--methods", a->methods,
                  "Comma list of detection, fuzzing, intervention (default all three)");
  cmd->add_option("--features", a->features, "Latents to score, e.g. 0-99,120 (default all)");
  cmd->add_option("--seed", a->seed, "Seed of the samples, markings and generations (default 0)");
  cmd->add_option("--positives", a->positives,
                  "Activating contexts per feature (top + quantile samples; default 40)")
      ->check(CLI::Range(2, 100000));
  cmd->add_option("--contexts", a->contexts,
                  "Random corpus contexts cut for detection negatives (default 600)")
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--clamp-scale", a->clamp_scale,
                  "Intervention: clamp value = this x the feature's max activation (default 2)");
  cmd->add_option("--steer-prompts", a->steer.prompts,
                  "Intervention: neutral prompts (repeatable; default 4 story openings)");
  cmd->add_option("--steer-samples", a->steer.per_prompt,
                  "Intervention: generations per prompt, steered and not (default 4)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--steer-tokens", a->steer.max_tokens,
                  "Intervention: tokens per generation (default 32)")
      ->check(CLI::Range(1, 100000));
  add_chat_options(*cmd, a->chat, "each intervention prompt");
  cmd->add_option("--subject-model", a->subject_model,
                  "The analysed model (default: the path in the database's meta)");
  cmd->add_option("--sae", a->sae, "The analysed SAE (default: the path in meta)");
  cmd->add_option("--corpus", a->corpus, "The analysed corpus (default: the paths in meta)");
  cmd->add_option("--tokenizer", a->tokenizer, "Tokenizer of the subject model (default: found)");
  cmd->add_option("--threads,-t", a->threads, "Threads per model session (default: all cores)");
  add_kv_type_option(*cmd, a->kv_type);
  cmd->add_option("--plot", a->plot, "Write the score histograms as an SVG file");
  cmd->add_flag("--redo", a->redo, "Score again rows that are already scored");
  return [a] { return run_score(*a); };
}

}  // namespace glassbox::cli
