// Chat templates: the Jinja template a model ships to turn a conversation into its prompt text
// (GGUF `tokenizer.chat_template`, or `chat_template` in a Hugging Face directory's
// tokenizer_config.json / chat_template.jinja), parsed and rendered by glassbox's own Jinja
// engine (src/chat/jinja_*: the subset of Jinja2 that Hugging Face chat templates use, with
// transformers' settings trim_blocks, lstrip_blocks, raise_exception, strftime_now, tojson).
// docs/chat_templates.md lists what is supported and how it is checked against an independent
// renderer (@huggingface/jinja). This module knows nothing of tokens: the caller tokenizes the
// rendered text. Untrusted templates are bounded by ChatTemplateLimits; every failure is a
// glassbox::Error naming the template ("NAME: line L, column C: what").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace glassbox {

class GgufFile;
class Model;
namespace jinja {
struct Template;
}

struct ChatTemplateLimits {
  size_t max_source_bytes = size_t{1} << 20;   // template text
  size_t max_output_bytes = size_t{8} << 20;   // the rendered prompt (and captured blocks)
  size_t max_string_bytes = size_t{8} << 20;   // any one string value
  int64_t max_steps = 20'000'000;              // expressions + statements + iterations + items
  size_t max_alloc_bytes = size_t{128} << 20;  // all strings and lists created by one render
  int max_call_depth = 32;                     // nested macro calls
};

// The local date and time strftime_now() formats (transformers uses datetime.now()); callers
// pass a fixed value where output must be reproducible.
struct ChatDateTime {
  int year = 2024, month = 7, day = 26;  // month 1..12, day 1..31
  int hour = 0, minute = 0, second = 0;
  static ChatDateTime now();  // the current local time
};

// What a template sees. JSON texts (so no JSON library type crosses this header): `messages` a
// list of {role, content, ...} objects (any other keys such as tool_calls are passed through),
// `tools` null (None) or a list, `extra` an object of further variables (enable_thinking,
// date_string, ...; a name given twice is an error).
struct ChatRenderInput {
  std::string messages_json = "[]";
  bool add_generation_prompt = false;
  std::string bos_token;  // the vocabulary's BOS / EOS text (e.g. "<|begin_of_text|>")
  std::string eos_token;
  std::string tools_json = "null";
  std::string extra_json = "{}";
  ChatDateTime now;
};

class ChatTemplate {
 public:
  // Parses `source`; `name` names it in every error (a file, or "FILE: tokenizer.chat_template").
  // Throws Error(kFormat) "NAME: line L, column C: what" for a syntax error, an unknown filter or
  // test, or a template larger than limits.max_source_bytes.
  static ChatTemplate parse(std::string source, std::string name,
                            const ChatTemplateLimits& limits = {});

  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }
  const jinja::Template& syntax() const { return *tmpl_; }

 private:
  std::string name_;
  std::string source_;
  std::shared_ptr<const jinja::Template> tmpl_;
};

// Renders `tmpl` with messages, add_generation_prompt, bos_token, eos_token, tools, the extra
// variables, strftime_now and Jinja's globals. Throws Error(kInvalidArgument) naming the template
// and the position for every render error: raise_exception(msg) gives "...: the template raised
// an exception: msg"; invalid JSON in `input` names the field; exceeding a limit names it.
std::string render_chat_template(const ChatTemplate& tmpl, const ChatRenderInput& input,
                                 const ChatTemplateLimits& limits = {});

// A template's text and the name to report it by.
struct ChatTemplateSource {
  std::string source;
  std::string name;
};

// The model's own template: GGUF tokenizer.chat_template; for a Hugging Face checkpoint its
// directory's chat_template.jinja, else tokenizer_config.json's chat_template. nullopt when the
// model has none (llama2.c files, GGUFs without the key, directories without either file).
// Throws Error(kFormat) naming the file when the key or file is malformed.
std::optional<ChatTemplateSource> find_chat_template(const Model& model);
std::optional<ChatTemplateSource> find_chat_template(const GgufFile& gguf);
std::optional<ChatTemplateSource> find_chat_template_in_dir(const std::string& dir);
// The directory of a Hugging Face checkpoint (the directory itself, or the one holding its
// config.json / safetensors file); nullopt for GGUF and llama2.c models.
std::optional<std::string> hf_checkpoint_dir(const Model& model);
// tokenizer_config.json's "chat_template": a string, or a list of {name, template} of which the
// one named "default" is used (a list without one is an error, as in transformers); nullopt when
// absent or null. `source` names the file in errors.
std::optional<std::string> chat_template_from_tokenizer_config(std::string_view json_text,
                                                               const std::string& source);

}  // namespace glassbox
