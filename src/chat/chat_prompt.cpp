#include "chat/chat_prompt.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

std::string special_token_text(const Tokenizer& tokenizer, std::optional<int32_t> id) {
  if (!id || *id < 0 || *id >= tokenizer.vocab_size()) return {};
  return tokenizer.piece(*id);
}

ChatFormatter::ChatFormatter(std::optional<ChatTemplate> tmpl, std::string bos_text,
                             std::string eos_text)
    : tmpl_(std::move(tmpl)), bos_text_(std::move(bos_text)), eos_text_(std::move(eos_text)) {
  if (tmpl_) template_name_ = tmpl_->name();
}

ChatFormatter::ChatFormatter(const Model& model, const Tokenizer& tokenizer,
                             const ChatTemplateChoice& choice)
    : bos_text_(special_token_text(tokenizer, tokenizer.bos_id())),
      eos_text_(special_token_text(tokenizer, tokenizer.eos_id())) {
  if (choice.disabled) return;
  std::optional<ChatTemplateSource> src;
  if (choice.template_file) {
    std::ifstream in(*choice.template_file, std::ios::binary);
    if (!in) throw Error(ErrorCode::kIo, *choice.template_file + ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    src = ChatTemplateSource{ss.str(), *choice.template_file};
  } else {
    src = find_chat_template(model);
  }
  if (!src) return;
  template_name_ = src->name;
  try {
    tmpl_ = ChatTemplate::parse(std::move(src->source), src->name);
  } catch (const Error& e) {
    template_error_ = e.what();
  }
}

std::string ChatFormatter::describe() const {
  if (!template_error_.empty())
    return "chat template " + template_error_ +
           " (every chat request "
           "will be refused)";
  if (tmpl_) return "chat template " + template_name_;
  return "plain joining of the messages (no chat template)";
}

std::string ChatFormatter::format(const std::string& messages_json, bool add_generation_prompt,
                                  const std::string& extra_json, const ChatDateTime& now) const {
  if (!template_error_.empty())
    throw Error(ErrorCode::kInvalidArgument, "chat template " + template_error_);
  if (tmpl_) {
    ChatRenderInput input;
    input.messages_json = messages_json;
    input.add_generation_prompt = add_generation_prompt;
    input.bos_token = bos_text_;
    input.eos_token = eos_text_;
    input.extra_json = extra_json;
    input.now = now;
    try {
      return render_chat_template(*tmpl_, input);
    } catch (const Error& e) {
      throw Error(e.code(), std::string("chat template ") + e.what());
    }
  }
  // No template: the contents, one message per line.
  const nlohmann::json messages = nlohmann::json::parse(messages_json, nullptr, false);
  if (!messages.is_array())
    throw Error(ErrorCode::kInvalidArgument, "messages: expected a JSON list");
  std::string prompt;
  for (size_t i = 0; i < messages.size(); ++i) {
    const nlohmann::json& m = messages[i];
    if (!m.is_object() || !m.contains("content") || !m["content"].is_string()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "messages[" + std::to_string(i) + "]: expected {role, content: string}");
    }
    prompt += (i ? "\n" : "") + m["content"].get<std::string>();
  }
  return prompt;
}

std::string chat_messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  return list.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string format_turn(const ChatFormatter& chat, const std::string& system,
                        const std::string& user, bool* system_merged) {
  if (system_merged) *system_merged = false;
  if (system.empty()) return chat.format(chat_messages_json({{"user", user}}), true);
  try {
    return chat.format(chat_messages_json({{"system", system}, {"user", user}}), true);
  } catch (const Error&) {
    if (!chat.uses_template()) throw;
    // The template refused the conversation; if it accepts the merged turn, its system role
    // was the reason. Otherwise the merged turn's error is the one to report.
    std::string text = chat.format(chat_messages_json({{"user", system + "\n\n" + user}}), true);
    if (system_merged) *system_merged = true;
    return text;
  }
}

std::vector<int32_t> encode_turn(const ChatFormatter& chat, const Tokenizer& tokenizer,
                                 const std::string& system, const std::string& user,
                                 bool* system_merged) {
  const std::string text = format_turn(chat, system, user, system_merged);
  if (chat.uses_template()) return encode_chat_prompt(tokenizer, text);
  return tokenizer.encode(text, tokenizer.add_bos_by_default(), false);
}

std::vector<int64_t> generation_config_eos_ids(const std::string& dir) {
  const std::filesystem::path file = std::filesystem::path(dir) / "generation_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return {};
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  const auto bad = [&](const std::string& what) {
    return Error(ErrorCode::kFormat, file.string() + ": " + what);
  };
  if (!in || j.is_discarded() || !j.is_object()) throw bad("expected a JSON object");
  if (!j.contains("eos_token_id") || j["eos_token_id"].is_null()) return {};
  const nlohmann::json& e = j["eos_token_id"];
  std::vector<int64_t> ids;
  for (const nlohmann::json& v : e.is_array() ? e : nlohmann::json::array({e})) {
    if (!v.is_number_integer()) throw bad("eos_token_id: expected a number or a list of numbers");
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

std::vector<int32_t> generation_stop_ids(const Model& model, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids = end_of_generation_ids(tokenizer);
  std::vector<int64_t> declared;
  if (const GgufFile* gguf = model.gguf()) {
    for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
      if (const GgufValue* v = gguf->find(key))
        declared.push_back(v->as_int(gguf->path() + ": " + key));
    }
  } else if (const std::optional<std::string> dir = hf_checkpoint_dir(model)) {
    declared = generation_config_eos_ids(*dir);
  }
  for (int64_t id : declared) {
    if (id >= 0 && id < tokenizer.vocab_size()) ids.push_back(static_cast<int32_t>(id));
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tokenizer, const std::string& text) {
  std::vector<int32_t> ids = encode_special(tokenizer, text);
  const std::optional<int32_t> bos = tokenizer.bos_id();
  if (bos && tokenizer.add_bos_by_default() && (ids.empty() || ids.front() != *bos))
    ids.insert(ids.begin(), *bos);
  return ids;
}

}  // namespace glassbox
