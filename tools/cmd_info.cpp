// `glassbox info`: config, parameter count, dtype and shape per tensor, GGUF metadata, hooks.
#include <cstdio>

#include "cli_common.h"
#include "io/gguf.h"
#include "model/hooks.h"

namespace glassbox::cli {
namespace {

// A hook's TL shape with symbolic axes: "pos" for new tokens, "keys" for attended positions.
std::string symbolic_shape(HookPoint point, const ModelConfig& c) {
  constexpr int64_t kPos = -1, kKeys = -2;
  const Shape s = hook_shape(point, c, kPos, kKeys);
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += s[i] == kPos ? "pos" : s[i] == kKeys ? "keys" : std::to_string(s[i]);
  }
  return out + "]";
}

int run_info(const ModelArgs& args, bool show_hooks, bool show_metadata) {
  const Model model = load_model(args.model_path);
  const ModelConfig& c = model.config();
  std::printf("model:        %s\n", model.path().c_str());
  std::printf("format:       %s", c.source_format.c_str());
  if (model.gguf()) std::printf(" v%u", model.gguf()->version());
  std::printf("\narchitecture: %s\n", c.architecture.c_str());
  std::printf(
      "d_model %lld, d_mlp %lld, n_layers %lld, n_heads %lld, n_kv_heads %lld, d_head %lld\n",
      (long long)c.d_model, (long long)c.d_mlp, (long long)c.n_layers, (long long)c.n_heads,
      (long long)c.n_kv_heads, (long long)c.d_head);
  std::printf("d_vocab %lld, n_ctx %lld, norm_eps %g, rope theta %g over %lld dims (%s pairs)\n",
              (long long)c.d_vocab, (long long)c.n_ctx, c.norm_eps, c.rope_theta,
              (long long)c.rope_dims,
              c.rope_style == RopeStyle::kInterleaved ? "interleaved" : "neox");
  std::printf("unembedding:  %s\n", c.tied_embeddings ? "tied to the token embedding" : "separate");
  std::printf("parameters:   %lld\n", (long long)model.n_params());
  std::printf("\ntensors (%zu):\n", model.tensors().size());
  for (const auto& [name, t] : model.tensors()) {
    std::printf("  %-32s %-5s %s\n", name.c_str(), dtype_name(t.dtype()),
                shape_str(t.shape()).c_str());
  }
  if (model.gguf() && show_metadata) {
    std::printf("\nmetadata (%zu):\n", model.gguf()->metadata().size());
    for (const auto& [key, value] : model.gguf()->metadata()) {
      std::printf("  %-40s %s\n", key.c_str(), value.to_display().c_str());
    }
  }
  if (show_hooks) {
    const std::vector<std::string> hooks = available_hooks(c);
    std::printf("\nhooks (%zu):\n", hooks.size());
    for (const std::string& name : hooks) {
      const HookName h = resolve_hook_name(name, c);
      std::printf("  %-36s %s\n", name.c_str(), symbolic_shape(h.point, c).c_str());
    }
  }
  return 0;
}

}  // namespace

Action register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print a model's config, tensors and hook points");
  auto args = std::make_shared<ModelArgs>();
  auto no_hooks = std::make_shared<bool>(false);
  auto no_meta = std::make_shared<bool>(false);
  add_model_options(*cmd, *args, false);
  cmd->add_flag("--no-hooks", *no_hooks, "Do not list hook points");
  cmd->add_flag("--no-metadata", *no_meta, "Do not list GGUF metadata");
  return [=] { return run_info(*args, !*no_hooks, !*no_meta); };
}

}  // namespace glassbox::cli
