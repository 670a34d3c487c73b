// `glassbox steer-vector`: a steering vector per layer from contrastive texts (pairs.jsonl, or a
// positive and a negative .txt file, one text per line), saved as a llama.cpp control-vector GGUF,
// .npy or .safetensors (steer/control_vector.h); `--info FILE` lists a saved vector's layers.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "model/session.h"
#include "steer/control_vector.h"
#include "steer/steering_vector.h"

namespace glassbox::cli {
namespace {

struct SteerVectorArgs {
  ModelArgs model;
  ChatArgs chat;
  std::string pairs, positive, negative, info, out;
  std::string method = "pca";
  std::string layers = "all";
  std::string reduce = "last";
  bool no_normalize = false;
  bool no_bos = false;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// Non-empty lines of a .txt file, one text each.
std::vector<std::string> read_texts(const std::string& path) {
  std::vector<std::string> texts;
  for (std::string& line : read_lines(path)) {
    if (line.find_first_not_of(" \t") != std::string::npos) texts.push_back(std::move(line));
  }
  if (texts.empty()) throw Error(ErrorCode::kInvalidArgument, path + ": no texts (one per line)");
  return texts;
}

// pairs.jsonl: {"positive": "...", "negative": "..."} per line; blank lines are skipped.
void read_pairs(const std::string& path, std::vector<std::string>& pos,
                std::vector<std::string>& neg) {
  const std::vector<std::string> lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    const nlohmann::json j = nlohmann::json::parse(lines[i], nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      throw Error(ErrorCode::kFormat, where + ": not a JSON object");
    }
    for (const char* key : {"positive", "negative"}) {
      if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
        throw Error(ErrorCode::kFormat,
                    where + ": expected a non-empty string \"" + key +
                        "\" (lines are {\"positive\": \"...\", \"negative\": \"...\"})");
      }
    }
    pos.push_back(j["positive"].get<std::string>());
    neg.push_back(j["negative"].get<std::string>());
  }
  if (pos.empty()) throw Error(ErrorCode::kInvalidArgument, path + ": no pairs");
}

std::vector<int> parse_layers(const std::string& text) {
  std::vector<int> layers;
  if (text == "all") return layers;
  for (const std::string& item : split_list(text)) {
    for (int32_t id : parse_ids(item, "--layers")) layers.push_back(id);
  }
  if (layers.empty()) throw Error(ErrorCode::kInvalidArgument, "--layers: no layers given");
  return layers;
}

double l2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

int run_info(const SteerVectorArgs& a) {
  const ControlVector cv = load_control_vector(a.info);
  std::printf("%s: d_model %lld, model_hint '%s', %zu directions\n", a.info.c_str(),
              static_cast<long long>(cv.d_model), cv.model_hint.c_str(), cv.directions.size());
  for (const auto& [layer, dir] : cv.directions) {
    std::printf("direction.%d  blocks.%d.hook_resid_post  norm %.6g\n", layer, layer, l2(dir));
  }
  return 0;
}

int run_steer(const SteerVectorArgs& a) {
  if (!a.info.empty()) return run_info(a);
  if (a.model.model_path.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "steer-vector needs --model (or --info FILE)");
  }
  if (a.out.empty()) throw Error(ErrorCode::kInvalidArgument, "steer-vector needs --out FILE");
  std::vector<std::string> pos, neg;
  if (!a.pairs.empty()) {
    if (!a.positive.empty() || !a.negative.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "give --pairs or --positive/--negative, not both");
    }
    read_pairs(a.pairs, pos, neg);
  } else if (!a.positive.empty() && !a.negative.empty()) {
    pos = read_texts(a.positive);
    neg = read_texts(a.negative);
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                "give the texts as --pairs FILE.jsonl or as --positive FILE --negative FILE");
  }
  SteeringOptions options;
  options.method = parse_steer_method(a.method);
  options.reduce = parse_steer_reduce(a.reduce);
  options.normalize = !a.no_normalize;
  options.layers = parse_layers(a.layers);
  // Refuse what save_control_vector would refuse before any forward pass.
  const std::string ext = std::filesystem::path(a.out).extension().string();
  if (ext != ".gguf" && ext != ".npy" && ext != ".safetensors") {
    throw Error(ErrorCode::kInvalidArgument, a.out + ": unknown output type '" + ext +
                                                 "' (expected .gguf, .npy or .safetensors)");
  }
  if (ext == ".gguf" &&
      std::find(options.layers.begin(), options.layers.end(), 0) != options.layers.end()) {
    throw Error(ErrorCode::kInvalidArgument,
                a.out +
                    ": a direction for block 0 cannot be written as a llama.cpp control vector "
                    "(llama.cpp never steers block 0's output); use .npy or .safetensors");
  }

  const Model model = load_model(a.model.model_path);
  const auto tokenizer = load_model_tokenizer(model, a.model.tokenizer_path);
  const bool bos = !a.no_bos && tokenizer->add_bos_by_default();
  const std::unique_ptr<ChatFormatter> chat = make_chat_formatter(model, *tokenizer, a.chat);
  auto encode = [&](const std::vector<std::string>& texts) {
    std::vector<std::vector<int32_t>> ids;
    for (const std::string& t : texts) {
      ids.push_back(chat ? encode_turn(*chat, *tokenizer, "", t)
                         : tokenizer->encode(t, bos, false));
      if (static_cast<int64_t>(ids.back().size()) > model.config().n_ctx) {
        throw Error(ErrorCode::kInvalidArgument, "a text has " + std::to_string(ids.back().size()) +
                                                     " tokens, more than the context length");
      }
    }
    return ids;
  };
  Session session(model, session_options(a.model));
  ControlVector cv = compute_steering_vector(session, encode(pos), encode(neg), options);
  cv.model_hint = model.config().architecture;
  save_control_vector(cv, a.out);
  for (const auto& [layer, dir] : cv.directions) {
    std::fprintf(stderr, "glassbox: layer %d: norm %.6g\n", layer, l2(dir));
  }
  std::fprintf(stderr,
               "glassbox: wrote %zu directions (%s, %zu positive / %zu negative texts) to %s\n",
               cv.directions.size(), a.method.c_str(), pos.size(), neg.size(), a.out.c_str());
  return 0;
}

}  // namespace

Action register_steer_vector(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "steer-vector",
      "Steering vectors from contrastive texts (mean difference or PCA of pair differences) per "
      "layer, saved as a llama.cpp control-vector GGUF, .npy or .safetensors");
  auto a = std::make_shared<SteerVectorArgs>();
  cmd->add_option("--model,-m", a->model.model_path,
                  "Model file: llama2.c checkpoint (.bin) or GGUF (.gguf)");
  cmd->add_option("--tokenizer", a->model.tokenizer_path,
                  "Tokenizer (default: the GGUF vocabulary or a tokenizer file beside the model)");
  cmd->add_option("--threads,-t", a->model.threads, "Threads (default: all cores)");
  add_kv_type_option(*cmd, a->model.kv_type);
  cmd->add_option("--pairs", a->pairs,
                  "JSONL, one {\"positive\": \"...\", \"negative\": \"...\"} per line");
  cmd->add_option("--positive", a->positive, "Positive texts, one per line");
  cmd->add_option("--negative", a->negative, "Negative texts, one per line");
  cmd->add_option("--method", a->method,
                  "pca (first component of paired differences, repeng's pca_diff) or mean_diff")
      ->capture_default_str();
  cmd->add_option("--layers", a->layers,
                  "Comma-separated block indices, or 'all' (blocks 1 .. n_layers-1, the ones "
                  "llama.cpp steers)")
      ->capture_default_str();
  cmd->add_option("--reduce", a->reduce,
                  "Row per text: last (last token's resid_post) or mean (mean over tokens)")
      ->capture_default_str();
  cmd->add_flag("--no-normalize", a->no_normalize, "mean_diff: keep the raw difference's scale");
  auto* no_bos = cmd->add_flag("--no-bos", a->no_bos, "Do not prepend BOS to each text");
  add_chat_options(*cmd, a->chat, "each text")->excludes(no_bos);
  cmd->add_option("--out,-o", a->out,
                  "Output: .gguf (llama.cpp control vector), .npy, .safetensors");
  cmd->add_option("--info", a->info, "Print the layers and norms of a saved control vector");
  return [a] { return run_steer(*a); };
}

}  // namespace glassbox::cli
