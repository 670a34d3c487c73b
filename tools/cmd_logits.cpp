// `glassbox logits` and `glassbox cache`: one forward pass, saved as .npy.
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "io/npy.h"
#include "model/hooks.h"
#include "model/run.h"
#include "model/session.h"
#include "steer_options.h"

namespace glassbox::cli {
namespace {

struct ForwardArgs {
  ModelArgs model;
  TokenArgs input;
  std::string out;
  std::string hooks;
  SteerArgs steer;  // logits only
};

int run_logits(const ForwardArgs& a) {
  const Model model = load_model(a.model.model_path);
  const std::vector<int32_t> ids = input_ids(model, a.model, a.input);
  Session session(model, session_options(a.model));
  const std::vector<HookHandle> steering = install_steering(session, a.steer);
  const Tensor logits = session.forward(ids, LogitsMode::kAll);
  write_npy(a.out, logits);
  std::fprintf(stderr, "glassbox: wrote logits %s to %s\n", shape_str(logits.shape()).c_str(),
               a.out.c_str());
  return 0;
}

std::vector<std::string> split_hooks(const std::string& list, const ModelConfig& config) {
  if (list == "all") return available_hooks(config);
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    const std::string name = list.substr(start, end - start);
    resolve_hook_name(name, config);  // fail before any work on a bad name
    names.push_back(name);
    start = end + 1;
  }
  return names;
}

int run_cache(const ForwardArgs& a) {
  const Model model = load_model(a.model.model_path);
  const std::vector<std::string> names = split_hooks(a.hooks, model.config());
  const std::vector<int32_t> ids = input_ids(model, a.model, a.input);
  Session session(model, session_options(a.model));
  const CacheRun run = run_with_cache(session, ids, names);
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) throw Error(ErrorCode::kIo, a.out + ": cannot create directory: " + ec.message());
  for (const auto& [name, tensor] : run.cache) {
    write_npy((std::filesystem::path(a.out) / (name + ".npy")).string(), tensor);
  }
  std::fprintf(stderr, "glassbox: wrote %zu activations for %zu tokens to %s/\n", run.cache.size(),
               ids.size(), a.out.c_str());
  return 0;
}

}  // namespace

Action register_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Save the logits of every position as float32 .npy");
  auto a = std::make_shared<ForwardArgs>();
  add_model_options(*cmd, a->model);
  add_kv_type_option(*cmd, a->model.kv_type);
  add_token_options(*cmd, a->input);
  cmd->add_option("--out,-o", a->out, "Output .npy: float32 [n_tokens, d_vocab]")->required();
  add_steer_options(*cmd, a->steer);
  return [a] { return run_logits(*a); };
}

Action register_cache(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "cache", "Save hook activations (TransformerLens names and shapes, no batch axis) as .npy");
  auto a = std::make_shared<ForwardArgs>();
  add_model_options(*cmd, a->model);
  add_kv_type_option(*cmd, a->model.kv_type);
  add_token_options(*cmd, a->input);
  cmd->add_option("--hooks", a->hooks, "Comma-separated hook names (see `glassbox info`), or 'all'")
      ->required();
  cmd->add_option("--out,-o", a->out, "Output directory: one <hook name>.npy per hook")->required();
  return [a] { return run_cache(*a); };
}

}  // namespace glassbox::cli
