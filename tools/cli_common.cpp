#include "cli_common.h"

#include <charconv>
#include <cstdio>

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

void add_kv_type_option(CLI::App& cmd, std::string& kv_type) {
  cmd.add_option("--kv-type", kv_type,
                 "KV cache type: f32 (default, exact), f16 or bf16 (half the memory; keys and "
                 "values rounded once as they are stored)");
}

DType parse_kv_type(const std::string& value, const std::string& flag) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (value == dtype_name(t)) return t;
  }
  throw Error(ErrorCode::kInvalidArgument,
              flag + ": unknown KV cache type '" + value + "' (allowed: f32, f16, bf16)");
}

SessionOptions session_options(const ModelArgs& args) {
  SessionOptions o;
  o.n_threads = args.threads;
  o.kv_type = parse_kv_type(args.kv_type);
  return o;
}

void add_token_options(CLI::App& cmd, TokenArgs& args) {
  auto* tokens =
      cmd.add_option("--tokens", args.tokens, "Comma-separated token ids, used exactly as given");
  auto* prompt = cmd.add_option("--prompt,-p", args.prompt, "Text, encoded with BOS in front");
  tokens->excludes(prompt);
  cmd.add_flag("--no-bos", args.no_bos, "With --prompt: do not prepend BOS");
}

CLI::Option* add_chat_options(CLI::App& cmd, ChatArgs& args, const std::string& what) {
  auto* chat = cmd.add_flag("--chat", args.chat,
                            "Render " + what +
                                " as a user message with the model's chat template and its "
                                "generation prompt (plain text when it has none)");
  cmd.add_option("--chat-template", args.chat_template,
                 "With --chat: a Jinja chat template file instead of the model's own")
      ->needs(chat);
  return chat;
}

std::unique_ptr<ChatFormatter> make_chat_formatter(const Model& model, const Tokenizer& tokenizer,
                                                   const ChatArgs& args) {
  if (!args.chat) {
    try {
      if (const auto src = find_chat_template(model)) {
        std::fprintf(stderr, "glassbox: prompts are plain text; --chat would use %s\n",
                     src->name.c_str());
      }
    } catch (const Error&) {  // a malformed template only matters to --chat
    }
    return nullptr;
  }
  auto chat = std::make_unique<ChatFormatter>(model, tokenizer,
                                              ChatTemplateChoice{args.chat_template, false});
  std::fprintf(stderr, "glassbox: chat prompts: %s\n", chat->describe().c_str());
  return chat;
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
