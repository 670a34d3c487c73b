// Where a model keeps its chat template: GGUF metadata or the files of a Hugging Face directory.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chat/chat_template.h"
#include "core/error.h"
#include "io/gguf.h"
#include "model/model.h"

namespace glassbox {
namespace chat_source_detail {

namespace fs = std::filesystem;

constexpr uintmax_t kMaxConfigBytes = uintmax_t{64} << 20;

std::string read_text_file(const fs::path& p) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(p, ec);
  if (ec) throw Error(ErrorCode::kIo, p.string() + ": cannot read (" + ec.message() + ")");
  if (size > kMaxConfigBytes)
    throw Error(ErrorCode::kFormat,
                p.string() + ": larger than " + std::to_string(kMaxConfigBytes >> 20) + " MiB");
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, p.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace chat_source_detail

std::optional<std::string> chat_template_from_tokenizer_config(std::string_view json_text,
                                                               const std::string& source) {
  using json = nlohmann::json;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, source + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(ErrorCode::kFormat, source + ": expected a JSON object");
  const auto it = j.find("chat_template");
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) {
    throw Error(ErrorCode::kFormat,
                source + ": chat_template must be a string or a list of {name, template}");
  }
  for (const json& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("template") || !entry["template"].is_string()) {
      throw Error(ErrorCode::kFormat,
                  source + ": each chat_template entry must be {name: string, template: string}");
    }
    if (entry["name"] == "default") return entry["template"].get<std::string>();
  }
  throw Error(ErrorCode::kFormat, source +
                                      ": chat_template lists several templates but none named "
                                      "'default'");
}

std::optional<ChatTemplateSource> find_chat_template(const GgufFile& gguf) {
  const GgufValue* v = gguf.find("tokenizer.chat_template");
  if (!v) return std::nullopt;
  const std::string name = gguf.path() + ": tokenizer.chat_template";
  return ChatTemplateSource{v->as_string(name), name};
}

std::optional<ChatTemplateSource> find_chat_template_in_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path jinja_file = fs::path(dir) / "chat_template.jinja";
  if (fs::is_regular_file(jinja_file)) {
    return ChatTemplateSource{chat_source_detail::read_text_file(jinja_file), jinja_file.string()};
  }
  const fs::path config = fs::path(dir) / "tokenizer_config.json";
  if (!fs::is_regular_file(config)) return std::nullopt;
  const std::string name = config.string();
  auto text = chat_template_from_tokenizer_config(chat_source_detail::read_text_file(config), name);
  if (!text) return std::nullopt;
  return ChatTemplateSource{std::move(*text), name + ": chat_template"};
}

std::optional<std::string> hf_checkpoint_dir(const Model& model) {
  namespace fs = std::filesystem;
  if (model.gguf() != nullptr) return std::nullopt;
  const fs::path p(model.path());
  std::error_code ec;
  if (fs::is_directory(p, ec)) return p.string();
  const std::string file = p.filename().string();
  const bool hf_file = file == "config.json" || file.ends_with(".safetensors") ||
                       file.ends_with(".safetensors.index.json");
  if (hf_file) return p.parent_path().string();
  return std::nullopt;
}

std::optional<ChatTemplateSource> find_chat_template(const Model& model) {
  if (model.gguf() != nullptr) return find_chat_template(*model.gguf());
  const std::optional<std::string> dir = hf_checkpoint_dir(model);
  if (!dir) return std::nullopt;
  return find_chat_template_in_dir(*dir);
}

}  // namespace glassbox
