// `glassbox harvest`: hook activations over a corpus into a sharded, resumable store.
#include <cstdio>

#include "cli_common.h"
#include "harvest/harvest.h"
#include "progress.h"

namespace glassbox::cli {
namespace {

struct HarvestArgs {
  ModelArgs model;
  std::string corpus, hooks, dtype = "f32";
  HarvestOptions options;
  bool stats = false;
};

int run_harvest(HarvestArgs& a) {
  HarvestOptions& o = a.options;
  o.corpus = split_list(a.corpus);
  o.hooks = split_list(a.hooks);
  o.threads = a.model.threads;
  if (a.dtype == "f32") {
    o.dtype = DType::kF32;
  } else if (a.dtype == "f16") {
    o.dtype = DType::kF16;
  } else if (a.dtype == "bf16") {
    o.dtype = DType::kBF16;
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                "--dtype '" + a.dtype + "': expected f32, f16 or bf16");
  }
  const Model model = load_model(a.model.model_path);
  const auto tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
  Progress bar("harvest", "tok");
  int64_t base = -1;
  const HarvestResult r =
      harvest(model, a.model.model_path, *tokenizer, o, [&](int64_t done, int64_t total) {
        if (base < 0) base = done - 1;  // rows present before this call's first window
        bar.update(done, total, base);
      });
  if (r.was_complete) {
    std::fprintf(stderr, "%s: already complete (%lld rows in %lld shards); nothing to do\n",
                 o.out.c_str(), static_cast<long long>(r.rows), static_cast<long long>(r.shards));
  } else {
    std::fprintf(stderr,
                 "%s: %lld rows in %lld shards%s; %lld harvested now in %.1f s (%.0f tok/s)\n",
                 o.out.c_str(), static_cast<long long>(r.rows), static_cast<long long>(r.shards),
                 r.resumed ? " (resumed)" : "", static_cast<long long>(r.new_rows), r.seconds,
                 r.seconds > 0 ? static_cast<double>(r.new_rows) / r.seconds : 0.0);
  }
  if (r.corpus_exhausted) {
    std::fprintf(stderr, "note: the corpus ran out before --tokens %lld\n",
                 static_cast<long long>(o.tokens));
  }
  if (a.stats) {
    compute_store_stats(o.out);
    std::fprintf(stderr, "%s/stats.json written\n", o.out.c_str());
  }
  return 0;
}

}  // namespace

Action register_harvest(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "harvest",
      "Run a model over a corpus in context windows (BOS first) and store hook activations in a "
      "sharded store; rerun the same command to resume after an interruption");
  auto a = std::make_shared<HarvestArgs>();
  add_model_options(*cmd, a->model);
  cmd->add_option("--corpus", a->corpus,
                  "Corpus files, comma-separated: .jsonl (field \"text\") or text split on "
                  "<|endoftext|>")
      ->required();
  cmd->add_option("--hooks", a->hooks, "Hook names, comma-separated (per-token hooks)")->required();
  cmd->add_option("--ctx", a->options.ctx, "Window length in tokens, BOS included (default 128)");
  cmd->add_option("--tokens", a->options.tokens, "Rows (tokens) to store")->required();
  cmd->add_option("--out", a->options.out, "Store directory")->required();
  cmd->add_option("--dtype", a->dtype, "Stored dtype: f32 (default), f16, bf16");
  cmd->add_flag("--zstd", a->options.zstd, "Compress shard files with zstd (.npy.zst)");
  cmd->add_option("--shard-tokens", a->options.shard_tokens,
                  "Rows per shard (whole windows; default: ~32 MiB of activations)");
  cmd->add_flag("--store-stats", a->stats,
                "Also write stats.json: per hook mean, variance per dim, mean norm (BOS rows "
                "excluded)");
  return [a] { return run_harvest(*a); };
}

}  // namespace glassbox::cli
