#include "cli_common.h"

#include <charconv>

#include "io/atomic_file.h"

namespace glassbox::cli {

void add_model_options(CLI::App& cmd, ModelArgs& args, bool with_tokenizer) {
  cmd.add_option("--model,-m", args.model_path,
                 "Model file: llama2.c checkpoint (.bin) or GGUF (.gguf)")
      ->required();
  if (with_tokenizer) {
    cmd.add_option("--tokenizer", args.tokenizer_path,
                   "Tokenizer (tokenizer.json, GGUF vocabulary, .model SentencePiece or llama2.c "
                   "tok*.bin); default: the GGUF "
                   "vocabulary or a tokenizer file beside the model");
  }
  cmd.add_option("--threads,-t", args.threads, "Threads (default: all cores)");
}

void add_token_options(CLI::App& cmd, TokenArgs& args) {
  auto* tokens =
      cmd.add_option("--tokens", args.tokens, "Comma-separated token ids, used exactly as given");
  auto* prompt = cmd.add_option("--prompt,-p", args.prompt, "Text, encoded with BOS in front");
  tokens->excludes(prompt);
  cmd.add_flag("--no-bos", args.no_bos, "With --prompt: do not prepend BOS");
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& option) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || v < INT32_MIN ||
        v > INT32_MAX) {
      throw Error(ErrorCode::kInvalidArgument,
                  option + ": '" + item + "' is not a token id (expected e.g. 1,2,3)");
    }
    ids.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  return ids;
}

std::vector<int32_t> input_ids(const Model& model, const ModelArgs& margs, const TokenArgs& targs) {
  std::vector<int32_t> ids;
  if (targs.tokens) {
    ids = parse_ids(*targs.tokens, "--tokens");
  } else if (targs.prompt) {
    if (targs.prompt->empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--prompt is empty (give some text, or --tokens with explicit ids)");
    }
    const auto tokenizer = load_model_tokenizer(model, margs.tokenizer_path);
    // GGUF vocabularies may say that prompts take no BOS (tokenizer.ggml.add_bos_token).
    const bool bos = !targs.no_bos && tokenizer->add_bos_by_default();
    ids = tokenizer->encode(*targs.prompt, bos, false);
  } else {
    throw Error(ErrorCode::kInvalidArgument, "give the input as --tokens or --prompt");
  }
  return checked_input_ids(model, std::move(ids));
}

std::vector<int32_t> checked_input_ids(const Model& model, std::vector<int32_t> ids) {
  if (ids.empty()) throw Error(ErrorCode::kInvalidArgument, "the input has no tokens");
  const int64_t n_vocab = model.config().d_vocab;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= n_vocab) {
      throw Error(ErrorCode::kInvalidArgument,
                  "token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                      " is out of range: the model has " + std::to_string(n_vocab) + " tokens");
    }
  }
  if (static_cast<int64_t>(ids.size()) > model.config().n_ctx) {
    throw Error(ErrorCode::kInvalidArgument, "the input has " + std::to_string(ids.size()) +
                                                 " tokens but the model's context length is " +
                                                 std::to_string(model.config().n_ctx));
  }
  return ids;
}

void write_text(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace glassbox::cli
