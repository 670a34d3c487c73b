// `glassbox explain`: an explanation per live feature of a feature database, from an
// OpenAI-compatible LLM (delphi-style prompt of activation-marked contexts) or, with no endpoint,
// from the offline statistical explainer. Results go into the database as they come (one
// transaction each); a rerun skips explained features; LLM replies are cached before use.
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "analysis/feature_db.h"
#include "autointerp/offline_explainer.h"
#include "autointerp/prompts.h"
#include "autointerp/subject_model.h"
#include "autointerp_options.h"
#include "cli_common.h"
#include "core/test_hooks.h"
#include "progress.h"

namespace glassbox::cli {
namespace {

struct ExplainArgs {
  std::string db;
  bool offline = false;
  LlmArgs llm;
  std::string features;
  int top = 10, per_band = 2;
  bool redo = false;
};

// Live features among `ids` that still need an explanation from `explainer`.
std::vector<int64_t> features_to_explain(const FeatureDb& db, autointerp::ExplanationStore& store,
                                         const std::vector<int64_t>& ids,
                                         const std::string& explainer, bool redo) {
  FeatureQuery q;
  q.sort = "id";
  q.descending = false;
  q.include_dead = false;
  q.limit = db.d_sae();
  std::set<int64_t> live;
  for (const FeatureSummary& f : db.list(q).features) live.insert(f.id);
  const std::set<int64_t> done = redo ? std::set<int64_t>() : store.explained(explainer);
  std::vector<int64_t> todo;
  for (int64_t id : ids)
    if (live.count(id) != 0 && done.count(id) == 0) todo.push_back(id);
  return todo;
}

std::string render_prompt(const std::vector<autointerp::ChatMessage>& messages) {
  std::string out;
  for (const autointerp::ChatMessage& m : messages)
    out += (out.empty() ? "" : "\n\n") + m.role + ": " + m.content;
  return out;
}

int explain_offline(const FeatureDb& db, autointerp::ExplanationStore& store,
                    const std::vector<int64_t>& todo) {
  const autointerp::BaseRates base = store.base_rates();
  const std::vector<VocabEntry> vocab = store.vocab();
  Progress bar("explain (offline)", "feat");
  int64_t done = 0, written = 0;
  std::vector<autointerp::Explanation> pending;  // committed in batches: they are cheap to redo
  for (int64_t id : todo) {
    const auto detail = db.detail(id);
    const auto r = detail ? autointerp::explain_offline(*detail, base, vocab) : std::nullopt;
    if (r) {
      autointerp::Explanation e;
      e.feature = id;
      e.explainer = "offline";
      e.explanation = r->text;
      e.prompt = "offline statistical explainer over " + std::to_string(detail->top.size()) +
                 " top contexts and the quantile-band samples";
      e.model = "glassbox-offline-stats";
      pending.push_back(std::move(e));
      ++written;
    }
    if (pending.size() >= 64) {
      store.put_explanations(pending);
      pending.clear();
    }
    bar.update(++done, static_cast<int64_t>(todo.size()));
  }
  store.put_explanations(pending);
  std::fprintf(stderr, "%s: %lld features explained offline (statistical explainer)\n",
               db.path().c_str(), static_cast<long long>(written));
  return 0;
}

int explain_llm(const FeatureDb& db, autointerp::ExplanationStore& store,
                const std::vector<int64_t>& todo, const ExplainArgs& a) {
  autointerp::LlmConfig config = make_llm_config(a.llm);
  std::mutex mu;  // the progress line, the failure list
  std::vector<std::string> failures;
  config.on_retry = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    std::fprintf(stderr, "\nretry: %s\n", what.c_str());
  };
  const autointerp::LlmClient client(config);
  LlmSpend spend;
  Progress bar("explain (" + a.llm.model + ")", "feat");
  std::atomic<size_t> next{0};
  int64_t done = 0;
  const auto explain_one = [&](int64_t id) {
    const auto detail = db.detail(id);
    if (!detail) return;
    const auto messages = autointerp::explainer_prompt(*detail, a.top, a.per_band);
    const autointerp::CachedReply reply = cached_reply(client, store, spend, messages);
    autointerp::Explanation e;
    e.feature = id;
    e.explainer = a.llm.model;
    e.explanation = autointerp::parse_explanation(reply.response);
    e.prompt = render_prompt(messages);
    e.model = a.llm.model;
    e.endpoint = a.llm.endpoint;
    e.prompt_tokens = reply.prompt_tokens;
    e.completion_tokens = reply.completion_tokens;
    store.put_explanation(e);
  };
  const auto worker = [&] {
    for (size_t i = next++; i < todo.size(); i = next++) {
      std::string failure;
      try {
        explain_one(todo[i]);
      } catch (const std::exception& e) {  // one feature's failure never stops the others
        failure = "feature " + std::to_string(todo[i]) + ": " + e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!failure.empty()) failures.push_back(failure);
      bar.set_note(spend.summary(a.llm));
      bar.update(++done, static_cast<int64_t>(todo.size()));
      kill_point("explain.feature", done);
    }
  };
  std::vector<std::thread> threads;
  const int n =
      std::min<int>(a.llm.concurrency, static_cast<int>(std::max<size_t>(todo.size(), 1)));
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (std::thread& t : threads) t.join();
  std::fprintf(stderr, "%s: %lld features explained by %s; %s\n", db.path().c_str(),
               static_cast<long long>(done - static_cast<int64_t>(failures.size())),
               a.llm.model.c_str(), spend.summary(a.llm).c_str());
  report_failures(failures, "features failed", "explained features are skipped");
  return 0;
}

int run_explain(ExplainArgs& a) {
  if (a.offline && !a.llm.endpoint.empty())
    throw Error(ErrorCode::kInvalidArgument, "--offline and --endpoint: give one of them");
  if (a.llm.endpoint.empty() && !a.llm.model.empty())
    throw Error(ErrorCode::kInvalidArgument, "--model: needs --endpoint (the LLM's base URL)");
  if (a.top < 1 || a.per_band < 0)
    throw Error(ErrorCode::kInvalidArgument, "--top must be >= 1 and --per-band >= 0");
  const auto db = FeatureDb::open(a.db);
  autointerp::ExplanationStore store(a.db);
  const bool offline = a.llm.endpoint.empty();
  const std::string explainer = offline ? "offline" : a.llm.model;
  const std::vector<int64_t> ids = parse_feature_range(a.features, db->d_sae());
  if (offline && !a.offline)
    std::fprintf(stderr, "note: no --endpoint: using the offline statistical explainer\n");
  const std::vector<int64_t> todo = features_to_explain(*db, store, ids, explainer, a.redo);
  if (todo.empty()) {
    std::fprintf(stderr, "%s: every live feature asked for is explained by %s; nothing to do\n",
                 a.db.c_str(), explainer.c_str());
    return 0;
  }
  return offline ? explain_offline(*db, store, todo) : explain_llm(*db, store, todo, a);
}

}  // namespace

Action register_explain(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "explain",
      "Explain each live feature of a feature database (from `glassbox analyze`) with an "
      "OpenAI-compatible LLM, from its top and quantile-sampled contexts with the activating "
      "tokens marked; without --endpoint, with the offline statistical explainer (top tokens and "
      "bigrams with their lift over the base rate). Stored in the database; reruns skip explained "
      "features and never pay twice for a prompt (docs/autointerp.md)");
  auto a = std::make_shared<ExplainArgs>();
  cmd->add_option("--db", a->db, "Feature database (glassbox analyze --out)")->required();
  cmd->add_flag("--offline", a->offline,
                "Use the offline statistical explainer (the default "
                "without --endpoint)");
  add_llm_options(*cmd, a->llm, "explainer");
  cmd->add_option("--features", a->features,
                  "Latents to explain, e.g. 0-99,120,200- (default all)");
  cmd->add_option("--top", a->top, "Top contexts shown to the LLM (default 10)");
  cmd->add_option("--per-band", a->per_band,
                  "Samples shown from each activation quantile band (default 2)");
  cmd->add_flag("--redo", a->redo, "Explain features again even when already explained");
  return [a] { return run_explain(*a); };
}

}  // namespace glassbox::cli
