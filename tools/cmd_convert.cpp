// `glassbox convert`: llama2.c / safetensors / GGUF to GGUF, llama2.c .bin or an HF directory.
#include <cstdio>
#include <filesystem>
#include <vector>

#include "cli_common.h"
#include "model/convert.h"

namespace glassbox::cli {
namespace {

struct ConvertArgs {
  std::string model_path;
  std::string out;
  ConvertOptions options;
  std::optional<std::string> vocab;
  bool vocab_only = false;
};

int run_convert(const ConvertArgs& a) {
  if (a.vocab_only) {
    if (!a.vocab) throw Error(ErrorCode::kInvalidArgument, "--vocab-only: needs --tokenizer FILE");
    convert_vocab(*a.vocab, a.out);
    std::fprintf(stderr, "glassbox: wrote %s (vocabulary only, from %s)\n", a.out.c_str(),
                 a.vocab->c_str());
    return 0;
  }
  if (a.model_path.empty()) throw Error(ErrorCode::kInvalidArgument, "--model is required");
  const Model model = load_model(a.model_path);
  std::string vocab = a.vocab.value_or("");
  if (vocab.empty() && model.gguf() == nullptr) {
    // A vocabulary with the model is embedded into GGUF output when present: an HF directory's
    // own tokenizer.json, or a llama2.c vocabulary beside a checkpoint file.
    namespace fs = std::filesystem;
    const bool hf_dir = fs::is_directory(model.path());
    const fs::path dir = hf_dir ? fs::path(model.path()) : fs::path(model.path()).parent_path();
    const std::vector<fs::path> candidates =
        hf_dir
            ? std::vector<fs::path>{dir / "tokenizer.json"}
            : std::vector<fs::path>{dir / ("tok" + std::to_string(model.config().d_vocab) + ".bin"),
                                    dir / "tokenizer.bin"};
    for (const fs::path& p : candidates) {
      if (fs::is_regular_file(p)) {
        vocab = p.string();
        break;
      }
    }
  }
  try {
    convert_model(model, a.out, a.options, vocab);
  } catch (const Error& e) {
    // A tokenizer.json found beside the model that GGUF cannot hold (not byte-level BPE, or a
    // pre-tokenizer llama.cpp lacks) leaves the output without a vocabulary, as before; one named
    // with --tokenizer is an error.
    if (a.vocab || !vocab.ends_with("tokenizer.json") || e.code() != ErrorCode::kUnsupported) throw;
    std::fprintf(stderr, "glassbox: note: %s; the output has no embedded vocabulary\n", e.what());
    vocab.clear();
    convert_model(model, a.out, a.options, vocab);
  }
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
  cmd->add_option("--model,-m", a->model_path,
                  "Input model (llama2.c .bin, .gguf, HF directory); required unless --vocab-only");
  cmd->add_option("--out,-o", a->out, "Output: *.gguf, *.bin, or a directory for safetensors")
      ->required();
  cmd->add_option("--type", a->options.type,
                  "Weight type: f32 (default), f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k");
  cmd->add_option("--threads,-t", a->options.n_threads,
                  "Threads that re-type the weights (default: all cores; the output is the same)");
  cmd->add_option("--tokenizer", a->vocab,
                  "Vocabulary to embed in GGUF output: a tokenizer.json (byte-level BPE) or a "
                  "llama2.c tok*.bin (default: an HF directory's tokenizer.json, or one beside the "
                  "model)");
  cmd->add_flag("--vocab-only", a->vocab_only,
                "Write only the --tokenizer vocabulary as GGUF (no model, no tensors)");
  return [a] { return run_convert(*a); };
}

}  // namespace glassbox::cli
