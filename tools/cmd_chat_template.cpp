// `glassbox chat-template`: render a chat template over a conversation and print the text
// exactly (no newline added), for checking templates and for the reference comparison
// (tests/reference/jinja). The template is a file (--template) or a model's own (--model).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "chat/chat_prompt.h"
#include "chat/chat_template.h"
#include "cli_common.h"

namespace glassbox::cli {
namespace {

struct ChatTemplateArgs {
  std::optional<std::string> template_path;
  std::optional<std::string> model_path;
  std::optional<std::string> tokenizer_path;
  std::string messages_path;
  bool add_generation_prompt = false;
  std::optional<std::string> bos, eos;
  std::optional<std::string> tools_path, vars_path;
  std::optional<std::string> date;
  bool ids = false;
};

std::string read_chat_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]".
ChatDateTime parse_chat_date(const std::string& text) {
  ChatDateTime t;
  int n = 0;
  const int got = std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &t.year, &t.month, &t.day, &n);
  bool ok = got == 3;
  if (ok && static_cast<size_t>(n) < text.size()) {
    int m = 0;
    ok = std::sscanf(text.c_str() + n, "T%2d:%2d%n", &t.hour, &t.minute, &m) == 2;
    n += m;
    if (ok && static_cast<size_t>(n) < text.size()) {
      m = 0;
      ok = std::sscanf(text.c_str() + n, ":%2d%n", &t.second, &m) == 1;
      n += m;
    }
    ok = ok && static_cast<size_t>(n) == text.size();
  }
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                "--date: '" + text + "' is not YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]");
  }
  return t;
}

int run_chat_template(const ChatTemplateArgs& a) {
  ChatRenderInput input;
  input.messages_json = read_chat_file(a.messages_path);
  input.add_generation_prompt = a.add_generation_prompt;
  if (a.tools_path) input.tools_json = read_chat_file(*a.tools_path);
  if (a.vars_path) input.extra_json = read_chat_file(*a.vars_path);
  input.now = a.date ? parse_chat_date(*a.date) : ChatDateTime::now();
  std::optional<ChatTemplate> tmpl;
  std::unique_ptr<Tokenizer> tokenizer;
  if (a.model_path) {
    const Model model = load_model(*a.model_path);
    tokenizer = load_model_tokenizer(model, a.tokenizer_path);
    input.bos_token = special_token_text(*tokenizer, tokenizer->bos_id());
    input.eos_token = special_token_text(*tokenizer, tokenizer->eos_id());
    if (!a.template_path) {
      auto src = find_chat_template(model);
      if (!src)
        throw Error(ErrorCode::kNotFound, *a.model_path + ": the model has no chat template");
      tmpl = ChatTemplate::parse(std::move(src->source), src->name);
    }
  }
  if (a.template_path)
    tmpl = ChatTemplate::parse(read_chat_file(*a.template_path), *a.template_path);
  if (a.bos) input.bos_token = *a.bos;
  if (a.eos) input.eos_token = *a.eos;
  const std::string text = render_chat_template(*tmpl, input);
  if (a.ids) {
    if (!tokenizer) throw Error(ErrorCode::kInvalidArgument, "--ids needs --model");
    std::string out = "[";
    for (int32_t id : encode_chat_prompt(*tokenizer, text))
      out += (out.size() > 1 ? "," : "") + std::to_string(id);
    std::printf("%s]\n", out.c_str());
    return 0;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

}  // namespace

Action register_chat_template(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "chat-template", "Render a chat template (a file or the model's own) over a conversation");
  auto a = std::make_shared<ChatTemplateArgs>();
  auto* tmpl = cmd->add_option("--template", a->template_path, "Jinja chat template file");
  auto* model = cmd->add_option("--model,-m", a->model_path,
                                "Model whose template (GGUF tokenizer.chat_template or HF "
                                "tokenizer_config.json) and BOS/EOS texts to use");
  cmd->add_option("--tokenizer", a->tokenizer_path, "With --model: the tokenizer for BOS/EOS");
  cmd->add_option("--messages", a->messages_path, "JSON file: a list of {role, content, ...}")
      ->required();
  cmd->add_flag("--add-generation-prompt", a->add_generation_prompt,
                "End with the assistant's turn opening (add_generation_prompt=True)");
  cmd->add_option("--bos", a->bos, "bos_token text (default: the model's, else empty)");
  cmd->add_option("--eos", a->eos, "eos_token text (default: the model's, else empty)");
  cmd->add_option("--tools", a->tools_path, "JSON file: the tools list (default: none)");
  cmd->add_option("--vars", a->vars_path, "JSON file: an object of more template variables");
  cmd->add_option("--date", a->date,
                  "Date for strftime_now, YYYY-MM-DD[THH:MM[:SS]] (default: now, local time)");
  cmd->add_flag("--ids", a->ids, "With --model: print the token ids (special tokens matched)");
  cmd->callback([tmpl, model] {
    if (tmpl->count() == 0 && model->count() == 0)
      throw CLI::ValidationError("--template or --model", "give a template file or a model");
  });
  return [a] { return run_chat_template(*a); };
}

}  // namespace glassbox::cli
