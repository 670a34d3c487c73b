// `glassbox convert`: llama2.c / safetensors / GGUF to GGUF, llama2.c .bin or an HF directory.
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "model/convert.h"

namespace glassbox::cli {
namespace {

struct ConvertArgs {
  std::string model_path;
  std::string out;
  ConvertOptions options;
  std::optional<std::string> vocab;
};

int run_convert(const ConvertArgs& a) {
  const Model model = load_model(a.model_path);
  std::string vocab = a.vocab.value_or("");
  if (vocab.empty() && model.gguf() == nullptr) {
    // A llama2.c vocabulary beside the model is embedded into GGUF output when present.
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(model.path()).parent_path();
    for (const fs::path& p :
         {dir / ("tok" + std::to_string(model.config().d_vocab) + ".bin"), dir / "tokenizer.bin"}) {
      if (fs::is_regular_file(p)) {
        vocab = p.string();
        break;
      }
    }
  }
  convert_model(model, a.out, a.options, vocab);
  std::fprintf(stderr, "glassbox: wrote %s (%s)%s\n", a.out.c_str(), a.options.type.c_str(),
               vocab.empty() ? "" : (" with the vocabulary of " + vocab).c_str());
  return 0;
}

}  // namespace

Action register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "convert",
      "Convert a model: to GGUF (OUT.gguf), llama2.c (OUT.bin) or an HF safetensors directory");
  auto a = std::make_shared<ConvertArgs>();
  cmd->add_option("--model,-m", a->model_path, "Input model (llama2.c .bin, .gguf, HF directory)")
      ->required();
  cmd->add_option("--out,-o", a->out, "Output: *.gguf, *.bin, or a directory for safetensors")
      ->required();
  cmd->add_option("--type", a->options.type,
                  "Weight type: f32 (default), f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k");
  cmd->add_option("--tokenizer", a->vocab,
                  "llama2.c tok*.bin to embed in GGUF output (default: one beside the model)");
  return [a] { return run_convert(*a); };
}

}  // namespace glassbox::cli
