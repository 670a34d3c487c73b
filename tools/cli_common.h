// Shared plumbing of the glassbox subcommands: model/tokenizer loading, token input
// (--tokens / --prompt), and registration of each subcommand with CLI11.
// Subcommands stay thin: parse, call the library, print.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_prompt.h"
#include "model/model.h"
#include "model/session.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::cli {

// --model, --tokenizer, --tokens, --prompt, --no-bos, --threads options shared by commands.
struct ModelArgs {
  std::string model_path;
  std::optional<std::string> tokenizer_path;
  int threads = 0;
  std::string kv_type = "f32";  // --kv-type, on commands that run a session (add_kv_type_option)
};
struct TokenArgs {
  std::optional<std::string> tokens;  // "1,2,3"
  std::optional<std::string> prompt;
  bool no_bos = false;
};

void add_model_options(CLI::App& cmd, ModelArgs& args, bool with_tokenizer = true);
// --kv-type f32|f16|bf16: the KV cache's element type (SessionOptions::kv_type; default f32).
void add_kv_type_option(CLI::App& cmd, std::string& kv_type);
// "f32" / "f16" / "bf16" -> the DType; anything else throws Error(kInvalidArgument) naming `flag`
// and the allowed values.
DType parse_kv_type(const std::string& value, const std::string& flag = "--kv-type");
// The session options of --threads and --kv-type.
SessionOptions session_options(const ModelArgs& args);
void add_token_options(CLI::App& cmd, TokenArgs& args);

// --chat and --chat-template FILE: prompts become chat turns rendered with the model's template.
struct ChatArgs {
  bool chat = false;
  std::optional<std::string> chat_template;  // instead of the model's own template
};
// `what` says what becomes the user message ("each text"). Returns the --chat flag.
CLI::Option* add_chat_options(CLI::App& cmd, ChatArgs& args, const std::string& what);
// The formatter --chat asks for, its choice stated on stderr; nullptr without --chat (then a
// model that has a template gets a line saying --chat would use it: never a silent choice).
std::unique_ptr<ChatFormatter> make_chat_formatter(const Model& model, const Tokenizer& tokenizer,
                                                   const ChatArgs& args);

// Parses "1, 2,3" into ids; throws Error(kInvalidArgument) naming the bad item.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& option);

// Resolves --tokens or --prompt into ids for `model` (loading its tokenizer only for --prompt)
// and checks they are non-empty and fit in the context.
std::vector<int32_t> input_ids(const Model& model, const ModelArgs& margs, const TokenArgs& targs);
// input_ids' checks on ids made elsewhere: non-empty, in the vocabulary, within the context.
std::vector<int32_t> checked_input_ids(const Model& model, std::vector<int32_t> ids);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped), for comma-separated list options.
std::vector<std::string> split_list(const std::string& text);

// Writes `text` to `path` atomically (a reader sees the old file or the whole new one).
void write_text(const std::string& path, const std::string& text);

// Each subcommand registers itself and returns the action to run after parsing.
using Action = std::function<int()>;
Action register_info(CLI::App& app);
Action register_generate(CLI::App& app);
Action register_logits(CLI::App& app);
Action register_cache(CLI::App& app);
Action register_tokenize(CLI::App& app);
Action register_convert(CLI::App& app);
Action register_bench(CLI::App& app);
Action register_convert_sae(CLI::App& app);
Action register_sae_encode(CLI::App& app);
Action register_harvest(CLI::App& app);
Action register_eval_sae(CLI::App& app);
Action register_train_sae(CLI::App& app);
Action register_analyze(CLI::App& app);
Action register_serve(CLI::App& app);
Action register_steer_vector(CLI::App& app);
Action register_probe(CLI::App& app);
Action register_persona(CLI::App& app);
Action register_explain(CLI::App& app);
Action register_score(CLI::App& app);
Action register_chat_template(CLI::App& app);

}  // namespace glassbox::cli
