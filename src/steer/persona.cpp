#include "steer/persona.h"

#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/run.h"
#include "steer/steering_vector.h"

namespace glassbox {
namespace {

using nlohmann::json;

std::vector<std::string> string_list(const json& j, const std::string& key,
                                     const std::string& where) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) {
    throw Error(ErrorCode::kFormat, where + ": \"" + key + "\" must be a list of strings");
  }
  for (const json& item : j[key]) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      throw Error(ErrorCode::kFormat, where + ": \"" + key + "\" must hold non-empty strings only");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

PersonaSide parse_side(const json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_object()) {
    throw Error(ErrorCode::kFormat, where + ": missing object \"" + key +
                                        "\" ({\"instructions\": [...], "
                                        "\"examples\": [...]})");
  }
  PersonaSide side;
  side.instructions = string_list(j[key], "instructions", where + ": " + key);
  side.examples = string_list(j[key], "examples", where + ": " + key);
  if (side.instructions.empty() && side.examples.empty()) {
    throw Error(ErrorCode::kFormat,
                where + ": \"" + key + "\" needs at least one instruction or example");
  }
  return side;
}

}  // namespace

TraitDefinition parse_trait_definition(const std::string& json_text, const std::string& where) {
  const json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(ErrorCode::kFormat, where + ": not a JSON object");
  }
  TraitDefinition t;
  if (!j.contains("trait") || !j["trait"].is_string() || j["trait"].get<std::string>().empty()) {
    throw Error(ErrorCode::kFormat, where + ": missing string \"trait\"");
  }
  t.trait = j["trait"].get<std::string>();
  t.positive = parse_side(j, "positive", where);
  t.negative = parse_side(j, "negative", where);
  t.eval_prompts = string_list(j, "eval_prompts", where);
  if (t.eval_prompts.empty() &&
      (!t.positive.instructions.empty() || !t.negative.instructions.empty())) {
    throw Error(ErrorCode::kFormat,
                where + ": instructions need \"eval_prompts\" to continue (a non-empty list)");
  }
  if (j.contains("words")) {
    if (!j["words"].is_object()) {
      throw Error(ErrorCode::kFormat,
                  where + ": \"words\" must be {\"positive\": [...], \"negative\": [...]}");
    }
    t.positive_words = string_list(j["words"], "positive", where + ": words");
    t.negative_words = string_list(j["words"], "negative", where + ": words");
  }
  return t;
}

std::vector<Tensor> collect_response_means(Session& session, const std::vector<PersonaText>& texts,
                                           const std::vector<int>& layers) {
  std::vector<std::vector<int32_t>> ids;
  std::vector<int64_t> starts;
  for (size_t t = 0; t < texts.size(); ++t) {
    const int64_t n = static_cast<int64_t>(texts[t].ids.size());
    const int64_t start = texts[t].response_start;
    if (start < 0 || start >= n) {
      throw Error(ErrorCode::kInvalidArgument,
                  "text " + std::to_string(t) + " has an empty response span");
    }
    ids.push_back(texts[t].ids);
    starts.push_back(start);
  }
  return collect_resid_post(session, ids, layers, SteerReduce::kMean, starts);
}

std::vector<double> projection_per_token(Session& session, const std::vector<int32_t>& ids,
                                         int layer, const std::vector<float>& vector) {
  const ModelConfig& config = session.config();
  if (layer < 0 || layer >= config.n_layers) {
    throw Error(ErrorCode::kInvalidArgument, "layer " + std::to_string(layer) +
                                                 " is out of range: the model has " +
                                                 std::to_string(config.n_layers) + " blocks");
  }
  const int64_t d = config.d_model;
  if (static_cast<int64_t>(vector.size()) != d) {
    throw Error(ErrorCode::kShape, "the vector has width " + std::to_string(vector.size()) +
                                       " but the model's d_model is " + std::to_string(d));
  }
  double len = 0;
  for (float x : vector) len += static_cast<double>(x) * x;
  len = std::sqrt(len);
  if (!(len > 0) || !std::isfinite(len)) {
    throw Error(ErrorCode::kInvalidArgument,
                "the vector at layer " + std::to_string(layer) + " is zero or not finite");
  }
  const std::string name = "blocks." + std::to_string(layer) + ".hook_resid_post";
  const CacheRun run = run_with_cache(session, ids, {name});
  const std::span<const float> a = run.cache.at(name).floats();
  std::vector<double> out(ids.size());
  for (size_t p = 0; p < ids.size(); ++p) {
    double s = 0;
    for (int64_t k = 0; k < d; ++k) s += static_cast<double>(a[p * d + k]) * vector[k];
    out[p] = s / len;
  }
  return out;
}

int64_t count_words(const std::string& text, const std::vector<std::string>& words) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string hay = lower(text);
  auto is_word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  int64_t count = 0;
  for (const std::string& w0 : words) {
    const std::string w = lower(w0);
    for (size_t pos = hay.find(w); pos != std::string::npos; pos = hay.find(w, pos + 1)) {
      const bool left = pos == 0 || !is_word(hay[pos - 1]);
      const size_t end = pos + w.size();
      const bool right = end >= hay.size() || !is_word(hay[end]);
      count += left && right;
    }
  }
  return count;
}

}  // namespace glassbox
