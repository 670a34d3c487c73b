// `glassbox eval-sae`: reconstruction and spliced-in loss of an SAE on a model, one JSON object.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/npy.h"
#include "sae/eval.h"
#include "sae/sae_io.h"

namespace glassbox::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  std::string sae, corpus;
  SaeEvalOptions options;
};

int run_eval(EvalArgs& a) {
  SaeEvalOptions& o = a.options;
  o.corpus = split_list(a.corpus);
  o.threads = a.model.threads;
  const Model model = load_model(a.model.model_path);
  const auto tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
  const Sae sae = load_sae(a.sae);
  // Names are loose (a file stem, an HF id), so a mismatch warns rather than fails; a width
  // mismatch with the hook is an error in evaluate_sae.
  const std::string stem = std::filesystem::path(a.model.model_path).stem().string();
  if (!sae.model_name.empty() && sae.model_name != stem) {
    std::fprintf(stderr, "warning: the SAE names model '%s'; evaluating it on '%s'\n",
                 sae.model_name.c_str(), stem.c_str());
  }
  // train-sae stores the hook's mean over the training tokens beside the SAE.
  const std::filesystem::path mean_path = std::filesystem::path(a.sae) / "activation_mean.npy";
  if (std::filesystem::is_directory(a.sae) && std::filesystem::exists(mean_path)) {
    const Tensor mean = read_npy(mean_path.string()).to_f32();
    o.mean.assign(mean.data<float>(), mean.data<float>() + mean.numel());
  }
  const SaeEvalResult r = evaluate_sae(model, *tokenizer, sae, o);
  const nlohmann::json j = {{"hook", r.hook},
                            {"tokens", r.tokens},
                            {"rows", r.rows},
                            {"predictions", r.predictions},
                            {"mse", r.mse},
                            {"fvu", r.fvu},
                            {"l0", r.l0},
                            {"dead_frac", r.dead_frac},
                            {"ce_clean", r.ce_clean},
                            {"ce_spliced", r.ce_spliced},
                            {"ce_zero_ablated", r.ce_zero_ablated},
                            {"ce_mean_ablated", r.ce_mean_ablated},
                            {"ce_recovered_zero", r.ce_recovered_zero},
                            {"ce_recovered_mean", r.ce_recovered_mean},
                            {"mean_source", r.mean_source}};
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace

Action register_eval_sae(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval-sae",
      "Evaluate an SAE on a model: mse, fvu, l0, dead_frac and cross-entropy clean / spliced / "
      "zero- and mean-ablated with CE recovered (JSON). Windows of --ctx tokens start with BOS; "
      "BOS positions are excluded from every metric and left clean; CE is over the next-token "
      "predictions of the other positions");
  auto a = std::make_shared<EvalArgs>();
  add_model_options(*cmd, a->model);
  cmd->add_option("--sae", a->sae, "SAE: SAELens or sparsify directory, Gemma Scope params.npz")
      ->required();
  cmd->add_option("--corpus", a->corpus, "Corpus files, comma-separated (.jsonl or text)")
      ->required();
  cmd->add_option("--tokens", a->options.tokens, "Window tokens to evaluate (BOS included)")
      ->required();
  cmd->add_option("--ctx", a->options.ctx, "Window length, BOS included (default 128)");
  cmd->add_option("--hook", a->options.hook, "Hook to splice at (default: the SAE's hook_name)");
  return [a] { return run_eval(*a); };
}

}  // namespace glassbox::cli
