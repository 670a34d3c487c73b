// `glassbox tokenize`: text -> ids (JSON arrays), or ids -> text with --decode.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "io/gguf.h"

namespace glassbox::cli {
namespace {

struct TokenizeArgs {
  std::optional<std::string> tokenizer_path;
  std::optional<std::string> model_path;
  std::optional<std::string> text;
  std::optional<std::string> jsonl;
  bool bos = false;
  bool decode = false;
};

std::unique_ptr<Tokenizer> open_tokenizer(const TokenizeArgs& a) {
  if (a.tokenizer_path) return load_tokenizer(*a.tokenizer_path);
  // A GGUF that embeds its vocabulary (a model, or a vocabulary-only file such as llama.cpp ships
  // for its tokenizer tests) is tokenized without loading, or needing, its weights.
  if (is_gguf_file(*a.model_path)) {
    const GgufFile gguf = GgufFile::open(*a.model_path);
    if (gguf.find("tokenizer.ggml.model") != nullptr) return load_gguf_tokenizer(gguf);
  }
  const Model model = load_model(*a.model_path);
  return load_model_tokenizer(model, std::nullopt);
}

std::vector<int32_t> ids_from_json(const nlohmann::json& j, const std::string& where) {
  const nlohmann::json& arr = j.is_object() && j.contains("ids") ? j["ids"] : j;
  if (!arr.is_array())
    throw Error(ErrorCode::kInvalidArgument, where + ": expected an array of ids");
  std::vector<int32_t> ids;
  for (const auto& v : arr) {
    if (!v.is_number_integer()) {
      throw Error(ErrorCode::kInvalidArgument, where + ": '" + v.dump() + "' is not a token id");
    }
    ids.push_back(v.get<int32_t>());
  }
  return ids;
}

std::string encode_line(const Tokenizer& tok, const std::string& text, bool bos) {
  return nlohmann::json(tok.encode(text, bos, false)).dump();
}

int run_tokenize(const TokenizeArgs& a) {
  const auto tok = open_tokenizer(a);
  if (a.text) {
    if (a.decode) {
      const std::string t = *a.text;
      const auto ids = t.find('[') != std::string::npos
                           ? ids_from_json(nlohmann::json::parse(t, nullptr, false), "--text")
                           : parse_ids(t, "--text");
      std::printf("%s\n", tok->decode(ids).c_str());
    } else {
      std::printf("%s\n", encode_line(*tok, *a.text, a.bos).c_str());
    }
    return 0;
  }
  std::ifstream in(*a.jsonl);
  if (!in) throw Error(ErrorCode::kIo, *a.jsonl + ": cannot open");
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = *a.jsonl + ":" + std::to_string(line_no);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) throw Error(ErrorCode::kInvalidArgument, where + ": invalid JSON");
    if (a.decode) {
      std::printf("%s\n",
                  nlohmann::json({{"text", tok->decode(ids_from_json(j, where))}}).dump().c_str());
      continue;
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      throw Error(ErrorCode::kInvalidArgument, where + ": expected an object with a string 'text'");
    }
    std::printf("%s\n", encode_line(*tok, j["text"].get<std::string>(), a.bos).c_str());
  }
  return 0;
}

}  // namespace

Action register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "tokenize", "Text to token ids (one JSON array per input), or ids to text with --decode");
  auto a = std::make_shared<TokenizeArgs>();
  auto* tok = cmd->add_option("--tokenizer", a->tokenizer_path,
                              "Tokenizer file: tokenizer.json, GGUF (its vocabulary), .model "
                              "SentencePiece or llama2.c tok*.bin");
  auto* model = cmd->add_option("--model,-m", a->model_path,
                                "Model whose tokenizer to use (GGUF vocabulary or file beside it)");
  tok->excludes(model);
  auto* text = cmd->add_option("--text", a->text, "Text to encode (with --decode: ids 1,2,3)");
  auto* jsonl = cmd->add_option("--jsonl", a->jsonl,
                                "JSONL input: encodes each line's \"text\"; with --decode, reads "
                                "an array of ids (or {\"ids\": [...]}) per line");
  text->excludes(jsonl);
  cmd->add_flag("--bos", a->bos, "Prepend BOS (default: no BOS/EOS)");
  cmd->add_flag("--decode", a->decode, "Decode ids to text instead");
  cmd->callback([cmd, a] {
    if (!a->tokenizer_path && !a->model_path) throw CLI::RequiredError("--tokenizer or --model");
    if (!a->text && !a->jsonl) throw CLI::RequiredError("--text or --jsonl");
  });
  return [a] { return run_tokenize(*a); };
}

}  // namespace glassbox::cli
