// `glassbox generate`: stream a continuation of a prompt with greedy or sampled decoding.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "chat/chat_prompt.h"
#include "cli_common.h"
#include "model/run.h"
#include "model/session.h"
#include "steer_options.h"

namespace glassbox::cli {
namespace {

struct GenerateArgs {
  ModelArgs model;
  TokenArgs input;
  int64_t n = 256;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;
  std::optional<std::string> ids_out;
  SteerArgs steer;
  ChatArgs chat;                      // --prompt is one user message of a conversation
  std::optional<std::string> system;  // an optional system message before it
};

// --chat: the conversation rendered with the model's chat template (or --chat-template) and
// tokenized with its special tokens; without a template the messages joined as plain text.
std::vector<int32_t> chat_input_ids(const Model& model, const Tokenizer& tokenizer,
                                    const GenerateArgs& a) {
  if (!a.input.prompt) throw Error(ErrorCode::kInvalidArgument, "--chat needs --prompt");
  const std::unique_ptr<ChatFormatter> chat = make_chat_formatter(model, tokenizer, a.chat);
  std::vector<ChatMessage> messages;
  if (a.system) messages.push_back({"system", *a.system});
  messages.push_back({"user", *a.input.prompt});
  const std::string text = chat->format(chat_messages_json(messages), true);
  if (!chat->uses_template()) {
    return checked_input_ids(
        model, tokenizer.encode(text, !a.input.no_bos && tokenizer.add_bos_by_default(), false));
  }
  return checked_input_ids(model, encode_chat_prompt(tokenizer, text));
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

int run_generate(GenerateArgs& a) {
  const Model model = load_model(a.model.model_path);
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int32_t> prompt;
  if (a.chat.chat) {
    tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
    prompt = chat_input_ids(model, *tokenizer, a);
  } else {
    prompt = input_ids(model, a.model, a.input);
    // Decoding the output always needs a tokenizer; missing one is not an error with --ids-out.
    try {
      tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
    } catch (const Error&) {
      if (!a.ids_out) throw;
    }
  }
  a.sampling.seed = a.seed ? *a.seed : std::random_device{}();
  GenerateOptions options;
  options.max_new_tokens = a.n;
  options.sampling = a.sampling;
  if (!a.ignore_eos && tokenizer) options.stop_ids = generation_stop_ids(model, *tokenizer);
  Session session(model, session_options(a.model));
  const std::vector<HookHandle> steering = install_steering(session, a.steer);
  std::optional<StreamDecoder> stream;
  if (tokenizer) {
    stream.emplace(*tokenizer);
    for (int32_t id : prompt) std::fputs(stream->push(id).c_str(), stdout);
    std::fflush(stdout);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> out = generate(session, prompt, options, [&](int32_t id) {
    if (stream) {
      std::fputs(stream->push(id).c_str(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stream) std::fputs((stream->flush() + "\n").c_str(), stdout);
  std::fflush(stdout);
  std::fprintf(stderr,
               "glassbox: %zu prompt + %zu generated tokens in %.3f s (%.1f tok/s), seed %llu\n",
               prompt.size(), out.size(), secs, out.size() / std::max(secs, 1e-9),
               (unsigned long long)a.sampling.seed);
  if (a.ids_out) {
    std::ofstream f(*a.ids_out);
    f << "{\"prompt_ids\": " << ids_json(prompt) << ", \"generated_ids\": " << ids_json(out)
      << "}\n";
    if (!f) throw Error(ErrorCode::kIo, *a.ids_out + ": cannot write");
  }
  return 0;
}

}  // namespace

Action register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt, streaming it");
  auto a = std::make_shared<GenerateArgs>();
  add_model_options(*cmd, a->model);
  add_kv_type_option(*cmd, a->model.kv_type);
  add_token_options(*cmd, a->input);
  cmd->add_option("-n,--n-tokens", a->n, "Tokens to generate (default 256)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--temp", a->sampling.temperature, "Temperature; 0 = greedy (default 0.8)")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", a->sampling.top_k, "Keep the k most likely tokens (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->sampling.top_p, "Nucleus mass in (0, 1] (default 1)")
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", a->seed, "Random seed (default: random, printed on stderr)");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at EOS, BOS or end-of-turn tokens");
  cmd->add_option("--ids-out", a->ids_out, "Also write {prompt_ids, generated_ids} as JSON");
  add_steer_options(*cmd, a->steer);
  auto* chat = add_chat_options(*cmd, a->chat, "--prompt");
  cmd->add_option("--system", a->system, "With --chat: a system message before the prompt")
      ->needs(chat);
  chat->excludes("--tokens");
  return [a] { return run_generate(*a); };
}

}  // namespace glassbox::cli
