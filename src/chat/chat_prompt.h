// A conversation turned into a model's input ids: rendered with the model's chat template (or a
// template file the user names) when there is one, else today's plain joining (the messages'
// contents joined with "\n"), then tokenized with special tokens matched. What the server's
// /v1/chat/completions and `generate --chat` share; which of the two formats was used is
// reported, never guessed silently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"

namespace glassbox {

class Model;
class Tokenizer;

struct ChatMessage {
  std::string role;
  std::string content;
};

// Where a chat prompt's template comes from.
struct ChatTemplateChoice {
  std::optional<std::string> template_file;  // use this file instead of the model's template
  bool disabled = false;                     // use the plain joining even if the model has one
};

class ChatFormatter {
 public:
  // The model's template (find_chat_template) or `choice.template_file`; BOS/EOS texts from the
  // tokenizer. A template that does not parse does not throw here: format() reports it (so a
  // server still starts and answers each chat request with the error). A template file that
  // cannot be read throws Error(kIo).
  ChatFormatter(const Model& model, const Tokenizer& tokenizer, const ChatTemplateChoice& choice);
  // With an already parsed template (tests), or none for the plain joining.
  ChatFormatter(std::optional<ChatTemplate> tmpl, std::string bos_text, std::string eos_text);

  // Whether a template (possibly one that failed to parse) is in use; its name.
  bool uses_template() const { return tmpl_.has_value() || !template_error_.empty(); }
  const std::string& template_name() const { return template_name_; }

  // Renders `messages_json` (a list of {role, content, ...}) with the template, `extra_json` (an
  // object) giving more variables (enable_thinking, ...), or joins the contents with "\n" when
  // there is none. Throws Error(kInvalidArgument) "chat template NAME: ..." for a template that
  // failed to parse or to render.
  std::string format(const std::string& messages_json, bool add_generation_prompt,
                     const std::string& extra_json = "{}",
                     const ChatDateTime& now = ChatDateTime::now()) const;
  // "chat template NAME", "chat template NAME (does not parse: ...)" or "plain joining".
  std::string describe() const;

 private:
  std::optional<ChatTemplate> tmpl_;
  std::string template_name_;
  std::string template_error_;  // a parse error, reported by every format()
  std::string bos_text_, eos_text_;
};

// One instruction-following turn: an optional system text and the user's text, rendered with the
// generation prompt (what persona, steer-vector, probe and score prompts are with --chat). A
// template that refuses a system message (Gemma 2 raises "System role not supported") gets the
// system text in front of the user's, separated by a blank line, as Gemma 3's own template
// merges them; `*system_merged` says whether that happened. Without a template: the plain
// joining. Errors as format().
std::string format_turn(const ChatFormatter& chat, const std::string& system,
                        const std::string& user, bool* system_merged = nullptr);

// format_turn's text as input ids: with a template, encode_chat_prompt (special tokens matched,
// one BOS); without, the plain joining encoded as any text (BOS when the vocabulary wants it).
std::vector<int32_t> encode_turn(const ChatFormatter& chat, const Tokenizer& tokenizer,
                                 const std::string& system, const std::string& user,
                                 bool* system_merged = nullptr);

// The ids that end a generation with this model: end_of_generation_ids(tokenizer) plus the
// end-of-turn ids the model's files declare: GGUF tokenizer.ggml.eot_token_id and
// eom_token_id, a Hugging Face checkpoint's generation_config.json eos_token_id (a number or a
// list, as Llama 3.1 Instruct's [128001, 128008, 128009]). Declared ids outside the vocabulary
// are ignored (the tokenizer may come from another file). Throws Error(kFormat) naming
// generation_config.json when it is not JSON or eos_token_id is not a number or list of numbers.
std::vector<int32_t> generation_stop_ids(const Model& model, const Tokenizer& tokenizer);
// The eos_token_id entries of `dir`/generation_config.json (none when the file or key is absent).
std::vector<int64_t> generation_config_eos_ids(const std::string& dir);

// Messages as the JSON list a template reads.
std::string chat_messages_json(const std::vector<ChatMessage>& messages);

// The BOS/EOS text of a vocabulary (its piece; "" when it has none).
std::string special_token_text(const Tokenizer& tokenizer, std::optional<int32_t> id);

// Tokenizes a formatted chat prompt: special tokens in the text are matched (encode_special),
// and BOS is put in front when the vocabulary wants one and the text did not start with it
// (llama.cpp's rule, so a template that writes bos_token never yields two).
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& text);

}  // namespace glassbox
