// `glassbox analyze`: per-latent statistics, top and quantile-sampled examples, histograms and
// logit effects of an SAE over a corpus, into a resumable SQLite feature database.
#include <cstdio>
#include <filesystem>

#include "analysis/analyze.h"
#include "cli_common.h"
#include "progress.h"
#include "sae/sae_io.h"

namespace glassbox::cli {
namespace {

struct AnalyzeArgs {
  ModelArgs model;
  std::string corpus;
  std::string hook;
  AnalyzeOptions options;
};

int run_analyze(AnalyzeArgs& a) {
  AnalyzeOptions& o = a.options;
  o.corpus = split_list(a.corpus);
  o.threads = a.model.threads;
  o.model_path = a.model.model_path;
  if (!std::filesystem::exists(o.sae_path)) {
    throw Error(ErrorCode::kIo, "--sae " + o.sae_path + ": no such file or directory");
  }
  if (o.tokens <= 0) throw Error(ErrorCode::kInvalidArgument, "--tokens must be positive");
  for (const std::string& p : o.corpus) {
    if (!std::filesystem::is_regular_file(p)) {
      throw Error(ErrorCode::kIo, "--corpus: " + p + ": no such file");
    }
  }
  const Model model = load_model(a.model.model_path);
  const auto tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
  Sae sae;
  try {
    sae = load_sae(o.sae_path);
  } catch (const Error& e) {
    throw e.with_context("--sae " + o.sae_path);
  }
  if (!a.hook.empty()) sae.hook_name = a.hook;
  Progress bars[2] = {Progress("analyze pass 1/2", "tok"), Progress("analyze pass 2/2", "tok")};
  int64_t base[2] = {-1, -1};
  const AnalyzeResult r =
      analyze(model, *tokenizer, sae, o, [&](int pass, int64_t done, int64_t total) {
        const int i = pass - 1;
        if (base[i] < 0) base[i] = done - 1;  // tokens done before this call's first window
        bars[i].update(done, total, base[i]);
      });
  if (!r.note.empty()) std::fprintf(stderr, "warning: %s\n", r.note.c_str());
  if (r.was_complete) {
    std::fprintf(stderr, "%s: already complete (%lld tokens, %lld latents alive); nothing to do\n",
                 o.out.c_str(), static_cast<long long>(r.tokens), static_cast<long long>(r.alive));
    return 0;
  }
  if (!r.logit_note.empty()) {
    std::fprintf(stderr, "note: logit effects skipped: %s\n", r.logit_note.c_str());
  }
  std::fprintf(stderr,
               "%s: %lld tokens in %lld windows, %lld of %lld latents alive%s; %.1f s (%.0f window "
               "tok/s, both passes)\n",
               o.out.c_str(), static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
               static_cast<long long>(r.alive), static_cast<long long>(sae.d_sae),
               r.resumed ? " (resumed)" : "", r.seconds,
               r.seconds > 0 ? static_cast<double>(r.processed) / r.seconds : 0.0);
  return 0;
}

}  // namespace

Action register_analyze(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "analyze",
      "Analyse every SAE latent over a corpus: firing frequency, mean and max activation, "
      "histogram, top-k max-activating contexts, samples per activation quantile band and logit "
      "effects, into a SQLite feature database (docs/analysis.md). Two passes over the same "
      "windows (BOS first, BOS positions excluded); rerun the same command to resume");
  auto a = std::make_shared<AnalyzeArgs>();
  AnalyzeOptions& o = a->options;
  add_model_options(*cmd, a->model);
  cmd->add_option("--sae", o.sae_path, "SAE: SAELens or sparsify directory, Gemma Scope params.npz")
      ->required();
  cmd->add_option("--hook", a->hook,
                  "Hook the SAE reads (default: the SAE's hook_name; Gemma Scope files name none)");
  cmd->add_option("--corpus", a->corpus,
                  "Corpus files, comma-separated: .jsonl (field \"text\") or text split on "
                  "<|endoftext|>")
      ->required();
  cmd->add_option("--tokens", o.tokens, "Window tokens to run, BOS included (as harvest)")
      ->required();
  cmd->add_option("--out", o.out, "Feature database file (SQLite)")->required();
  cmd->add_option("--ctx", o.ctx, "Window length in tokens, BOS included (default 128)");
  cmd->add_option("--top-k", o.stats.top_k, "Top examples per latent (default 20)");
  cmd->add_option("--context", o.stats.context,
                  "Tokens kept each side of an example's centre (default 10)");
  cmd->add_option("--quantiles", o.stats.quantiles, "Activation quantile bands (default 10)");
  cmd->add_option("--per-quantile", o.stats.per_quantile, "Samples per band (default 5)");
  cmd->add_option("--bins", o.stats.bins, "Histogram bins over (0, max] (default 32)");
  cmd->add_option("--logits", o.logits, "Logit effects kept per sign (default 10)");
  cmd->add_option("--seed", o.stats.seed, "Seed of the quantile-band sampling (default 0)");
  cmd->add_option("--checkpoint-every", o.checkpoint_every,
                  "Windows between checkpoints into the database (default 256)");
  cmd->add_flag("--overwrite", o.overwrite,
                "Replace an existing feature database at --out instead of resuming it");
  return [a] { return run_analyze(*a); };
}

}  // namespace glassbox::cli
