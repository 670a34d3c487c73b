// `glassbox persona extract|score|eval`: persona vectors from a trait definition (docs/persona.md).
// extract generates texts under each side's instructions and writes the per-layer vector
// (persona.gguf, persona.npy), the texts it used (texts.jsonl) and report.json; score projects
// any text on the vector at one layer; eval generates from the eval prompts under steering and
// scores the generations' trait expression. The math is in steer/persona.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.h"
#include "io/npy.h"
#include "model/run.h"
#include "model/session.h"
#include "steer/control_vector.h"
#include "steer/interventions.h"
#include "steer/persona.h"
#include "steer/steering_vector.h"

namespace glassbox::cli {
namespace {

using nlohmann::json;

struct PersonaArgs {
  ModelArgs model;
  ChatArgs chat;
  std::string trait, vector, layers = "all", out, text, jsonl, alphas = "0,2,4";
  int layer = -1;
  int n = 8;
  int64_t tokens = 40;
  uint64_t seed = 1;
  float temperature = 0.8f;
  bool no_bos = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw Error(ErrorCode::kIo, path + ": cannot write");
}

// Projection gap on held-out texts: the mean difference of the even-numbered rows of P [n_pos, d]
// and N [n_neg, d], and the gap mean(P.u) - mean(N.u) on the odd-numbered rows (u its unit
// vector). NaN when a side has fewer than 2 texts.
double heldout_separation(const Tensor& p, const Tensor& n) {
  const int64_t d = p.dim(1);
  if (p.dim(0) < 2 || n.dim(0) < 2) return std::nan("");
  auto mean = [&](const Tensor& t, int64_t parity) {
    std::vector<double> m(static_cast<size_t>(d), 0.0);
    int64_t count = 0;
    for (int64_t r = parity; r < t.dim(0); r += 2, ++count)
      for (int64_t k = 0; k < d; ++k) m[k] += t.floats()[r * d + k];
    for (double& x : m) x /= static_cast<double>(count);
    return m;
  };
  const std::vector<double> tp = mean(p, 0), tn = mean(n, 0), hp = mean(p, 1), hn = mean(n, 1);
  double gap = 0, len = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double u = tp[k] - tn[k];
    gap += (hp[k] - hn[k]) * u;
    len += u * u;
  }
  return len > 0 ? gap / std::sqrt(len) : std::nan("");
}

double dot_unit(std::span<const float> x, const std::vector<float>& v) {
  double s = 0, len = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    s += static_cast<double>(x[k]) * v[k];
    len += static_cast<double>(v[k]) * v[k];
  }
  return len > 0 ? s / std::sqrt(len) : 0.0;
}

// The pieces every subcommand needs.
struct Loaded {
  Model model;
  std::unique_ptr<Tokenizer> tokenizer;
  bool bos = true;
  std::vector<int32_t> stop_ids;
  std::unique_ptr<ChatFormatter> chat;  // --chat: prompts are chat turns
};

Loaded load(const PersonaArgs& a) {
  if (a.model.model_path.empty()) throw Error(ErrorCode::kInvalidArgument, "needs --model");
  Loaded l{load_model(a.model.model_path), nullptr, true, {}, nullptr};
  l.tokenizer = load_model_tokenizer(l.model, a.model.tokenizer_path);
  l.bos = !a.no_bos && l.tokenizer->add_bos_by_default();
  l.stop_ids = generation_stop_ids(l.model, *l.tokenizer);
  return l;
}

std::vector<int32_t> fits(const Loaded& l, std::vector<int32_t> ids) {
  if (static_cast<int64_t>(ids.size()) > l.model.config().n_ctx) {
    throw Error(ErrorCode::kInvalidArgument,
                "a text has " + std::to_string(ids.size()) + " tokens, more than the context");
  }
  return ids;
}

std::vector<int32_t> encode(const Loaded& l, const std::string& text) {
  return fits(l, l.tokenizer->encode(text, l.bos, false));
}

// A generation prompt: with --chat the instruction as the system message and the question as the
// user's (the persona-vectors recipe), else the two joined by a space.
std::vector<int32_t> prompt_ids(const Loaded& l, const std::string& instruction,
                                const std::string& question, bool* merged = nullptr) {
  if (l.chat) return fits(l, encode_turn(*l.chat, *l.tokenizer, instruction, question, merged));
  return encode(l, instruction.empty() ? question : instruction + " " + question);
}

// How prompts were made, for the reports.
std::string prompt_format(const Loaded& l) {
  return l.chat ? l.chat->describe()
                : "plain text (an instruction and its prompt joined by a space)";
}

// Generates up to `tokens` new ids after `prompt` (a fresh sequence), without the stop id.
std::vector<int32_t> sample(Session& session, const Loaded& l, const std::vector<int32_t>& prompt,
                            int64_t tokens, float temperature, uint64_t seed) {
  if (static_cast<int64_t>(prompt.size()) + tokens > l.model.config().n_ctx) {
    throw Error(ErrorCode::kInvalidArgument, "prompt + --tokens exceeds the context length");
  }
  session.reset();
  GenerateOptions options;
  options.max_new_tokens = tokens;
  options.sampling.temperature = temperature;
  options.sampling.seed = seed;
  options.stop_ids = l.stop_ids;
  std::vector<int32_t> out = generate(session, prompt, options);
  if (!out.empty() &&
      std::find(l.stop_ids.begin(), l.stop_ids.end(), out.back()) != l.stop_ids.end()) {
    out.pop_back();
  }
  return out;
}

int run_extract(const PersonaArgs& a) {
  if (a.trait.empty() || a.out.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "persona extract needs --trait FILE and --out DIR");
  }
  if (a.n < 1 || a.tokens < 1) {
    throw Error(ErrorCode::kInvalidArgument, "--n and --tokens must be >= 1");
  }
  const TraitDefinition trait = parse_trait_definition(read_file(a.trait), a.trait);
  Loaded l = load(a);
  l.chat = make_chat_formatter(l.model, *l.tokenizer, a.chat);
  const ModelConfig& config = l.model.config();
  std::vector<int> layers;
  if (a.layers == "all") {
    for (int i = 0; i < config.n_layers; ++i) layers.push_back(i);
  } else {
    for (const std::string& item : split_list(a.layers))
      for (int32_t id : parse_ids(item, "--layers")) layers.push_back(id);
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  }
  for (int layer : layers) {
    if (layer < 0 || layer >= config.n_layers) {
      throw Error(ErrorCode::kInvalidArgument, "--layers: layer " + std::to_string(layer) +
                                                   " is out of range (the model has " +
                                                   std::to_string(config.n_layers) + " blocks)");
    }
  }
  if (layers.empty()) throw Error(ErrorCode::kInvalidArgument, "--layers: no layers given");

  Session session(l.model, session_options(a.model));
  json texts_out = json::array();
  std::vector<PersonaText> sides[2];
  uint64_t seed = a.seed;
  int64_t skipped = 0;
  bool system_merged = false;
  const PersonaSide* defs[2] = {&trait.positive, &trait.negative};
  const char* names[2] = {"positive", "negative"};
  for (int s = 0; s < 2; ++s) {
    for (size_t e = 0; e < defs[s]->examples.size(); ++e) {
      PersonaText t{encode(l, defs[s]->examples[e]), l.bos ? 1 : 0};
      if (static_cast<int64_t>(t.ids.size()) <= t.response_start) continue;
      texts_out.push_back({{"side", names[s]},
                           {"source", "example"},
                           {"index", e},
                           {"ids", t.ids},
                           {"response_start", t.response_start}});
      sides[s].push_back(std::move(t));
    }
    for (size_t i = 0; i < defs[s]->instructions.size(); ++i) {
      for (size_t p = 0; p < trait.eval_prompts.size(); ++p) {
        bool merged = false;
        const std::vector<int32_t> prompt =
            prompt_ids(l, defs[s]->instructions[i], trait.eval_prompts[p], &merged);
        system_merged |= merged;
        for (int k = 0; k < a.n; ++k, ++seed) {
          const std::vector<int32_t> gen =
              sample(session, l, prompt, a.tokens, a.temperature, seed);
          if (gen.empty()) {
            ++skipped;
            continue;
          }
          PersonaText t{prompt, static_cast<int64_t>(prompt.size())};
          t.ids.insert(t.ids.end(), gen.begin(), gen.end());
          texts_out.push_back({{"side", names[s]},
                               {"source", "generation"},
                               {"instruction", i},
                               {"prompt", p},
                               {"seed", seed},
                               {"ids", t.ids},
                               {"response_start", t.response_start},
                               {"response", l.tokenizer->decode(gen)}});
          sides[s].push_back(std::move(t));
        }
      }
    }
    if (sides[s].empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("no ") + names[s] + " texts (every generation came back empty)");
    }
  }

  const std::vector<Tensor> pos = collect_response_means(session, sides[0], layers);
  const std::vector<Tensor> neg = collect_response_means(session, sides[1], layers);
  const int64_t d = config.d_model;
  Tensor all = Tensor::zeros(DType::kF32, {config.n_layers, d});  // [n_layers, d_model]
  ControlVector cv;
  cv.d_model = d;
  cv.model_hint = config.architecture;
  json report_layers = json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::vector<float> v;
    try {
      v = steering_direction(pos[i], neg[i], SteerMethod::kMeanDiff, false);
    } catch (const Error& e) {
      throw e.with_context("layer " + std::to_string(layers[i]));
    }
    std::copy(v.begin(), v.end(), all.mutable_floats().data() + layers[i] * d);
    if (layers[i] >= 1) cv.directions[layers[i]] = v;
    double norm = 0;
    for (float x : v) norm += static_cast<double>(x) * x;
    // Projections of every text's response mean on the unit vector: mean and variance per side.
    auto moments = [&](const Tensor& t, double* mean, double* var) {
      std::vector<double> x;
      for (int64_t r = 0; r < t.dim(0); ++r) x.push_back(dot_unit(t.floats().subspan(r * d, d), v));
      *mean = 0;
      for (double y : x) *mean += y / static_cast<double>(x.size());
      *var = 0;
      for (double y : x) *var += (y - *mean) * (y - *mean) / static_cast<double>(x.size());
    };
    double mp = 0, mn = 0, vp = 0, vn = 0;
    moments(pos[i], &mp, &vp);
    moments(neg[i], &mn, &vn);
    const double pooled = std::sqrt((vp + vn) / 2);
    const double heldout = heldout_separation(pos[i], neg[i]);
    report_layers.push_back({{"layer", layers[i]},
                             {"hook", "blocks." + std::to_string(layers[i]) + ".hook_resid_post"},
                             {"norm", std::sqrt(norm)},
                             {"mean_projection_positive", mp},
                             {"mean_projection_negative", mn},
                             {"separation", mp - mn},
                             {"effect_size", pooled > 0 ? (mp - mn) / pooled : 0.0},
                             {"heldout_separation", std::isnan(heldout) ? json() : json(heldout)}});
  }
  std::filesystem::create_directories(a.out);
  const std::string dir = a.out + "/";
  write_npy(dir + "persona.npy", all);
  if (!cv.directions.empty()) save_control_vector(cv, dir + "persona.gguf");
  std::string lines;
  for (const json& t : texts_out) lines += t.dump() + "\n";
  write_text(dir + "texts.jsonl", lines);
  const json report = {{"trait", trait.trait},
                       {"model", a.model.model_path},
                       {"n_positive", sides[0].size()},
                       {"n_negative", sides[1].size()},
                       {"empty_generations_skipped", skipped},
                       {"n_per_prompt", a.n},
                       {"tokens", a.tokens},
                       {"seed", a.seed},
                       {"temperature", a.temperature},
                       {"prompt_format", prompt_format(l)},
                       {"system_merged_into_user", system_merged},
                       {"separation_on",
                        "separation, effect_size: the training texts (separation then equals "
                        "the norm); heldout_separation: vector from the even-numbered texts of "
                        "each side (texts.jsonl order), gap measured on the odd-numbered ones"},
                       {"projection", "per-text mean over response tokens, on the unit vector"},
                       {"layers", report_layers}};
  write_text(dir + "report.json", report.dump(2) + "\n");
  std::printf("layer  norm        proj(+)     proj(-)     effect_size  heldout_sep\n");
  for (const json& r : report_layers) {
    const json& h = r["heldout_separation"];
    std::printf("%5d  %-10.5g  %-10.5g  %-10.5g  %-11.5g  %s\n", r["layer"].get<int>(),
                r["norm"].get<double>(), r["mean_projection_positive"].get<double>(),
                r["mean_projection_negative"].get<double>(), r["effect_size"].get<double>(),
                h.is_null() ? "-" : std::to_string(h.get<double>()).c_str());
  }
  std::fprintf(stderr, "glassbox: %s: %zu positive / %zu negative texts; wrote %s\n",
               trait.trait.c_str(), sides[0].size(), sides[1].size(), a.out.c_str());
  return 0;
}

// The direction at `layer` of a vector file, checked against the model.
std::vector<float> load_layer_vector(const PersonaArgs& a, const ModelConfig& config) {
  if (a.vector.empty()) throw Error(ErrorCode::kInvalidArgument, "needs --vector FILE");
  if (a.layer < 0 || a.layer >= config.n_layers) {
    throw Error(ErrorCode::kInvalidArgument, "--layer " + std::to_string(a.layer) +
                                                 " is out of range (the model has " +
                                                 std::to_string(config.n_layers) + " blocks)");
  }
  const ControlVector cv = load_control_vector(a.vector);
  if (cv.d_model != config.d_model) {
    throw Error(ErrorCode::kShape, a.vector + ": vector width " + std::to_string(cv.d_model) +
                                       " does not match the model's d_model " +
                                       std::to_string(config.d_model));
  }
  const auto it = cv.directions.find(a.layer);
  if (it == cv.directions.end()) {
    throw Error(ErrorCode::kInvalidArgument,
                a.vector + ": no (non-zero) direction for layer " + std::to_string(a.layer));
  }
  return it->second;
}

double mean_of(const std::vector<double>& v, size_t from) {
  double s = 0;
  for (size_t i = from; i < v.size(); ++i) s += v[i];
  return v.size() > from ? s / static_cast<double>(v.size() - from) : 0.0;
}

int run_score(const PersonaArgs& a) {
  if (a.text.empty() == a.jsonl.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "persona score needs --text T or --jsonl FILE");
  }
  const Loaded l = load(a);
  const std::vector<float> v = load_layer_vector(a, l.model.config());
  std::vector<std::string> texts;
  if (!a.text.empty()) {
    texts.push_back(a.text);
  } else {
    std::istringstream in(read_file(a.jsonl));
    std::string line;
    for (int no = 1; std::getline(in, line); ++no) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
        throw Error(ErrorCode::kFormat,
                    a.jsonl + ":" + std::to_string(no) + ": expected {\"text\": \"...\"}");
      }
      texts.push_back(j["text"].get<std::string>());
    }
  }
  Session session(l.model, session_options(a.model));
  json results = json::array();
  for (const std::string& t : texts) {
    const std::vector<int32_t> ids = encode(l, t);
    if (ids.empty()) throw Error(ErrorCode::kInvalidArgument, "an empty text");
    const std::vector<double> per = projection_per_token(session, ids, a.layer, v);
    // A prepended BOS has the same activation in every text: it is left out of the mean.
    const size_t from = l.bos && ids.size() > 1 ? 1 : 0;
    results.push_back({{"text", t},
                       {"ids", ids},
                       {"mean", mean_of(per, from)},
                       {"mean_from", from},
                       {"per_token", per}});
  }
  const json out = {{"vector", a.vector},
                    {"layer", a.layer},
                    {"hook", "blocks." + std::to_string(a.layer) + ".hook_resid_post"},
                    {"results", results}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

int run_eval(const PersonaArgs& a) {
  if (a.trait.empty()) throw Error(ErrorCode::kInvalidArgument, "persona eval needs --trait FILE");
  if (a.n < 1 || a.tokens < 1) {
    throw Error(ErrorCode::kInvalidArgument, "--n and --tokens must be >= 1");
  }
  const TraitDefinition trait = parse_trait_definition(read_file(a.trait), a.trait);
  if (trait.eval_prompts.empty()) {
    throw Error(ErrorCode::kInvalidArgument, a.trait + ": no eval_prompts to generate from");
  }
  std::vector<float> alphas;
  for (const std::string& item : split_list(a.alphas)) {
    try {
      size_t used = 0;
      alphas.push_back(std::stof(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument, "--alphas: '" + item + "' is not a number");
    }
  }
  if (alphas.empty()) throw Error(ErrorCode::kInvalidArgument, "--alphas: no values");
  Loaded l = load(a);
  l.chat = make_chat_formatter(l.model, *l.tokenizer, a.chat);
  const std::vector<float> v = load_layer_vector(a, l.model.config());
  const bool lexical = !trait.positive_words.empty() || !trait.negative_words.empty();
  Session session(l.model, session_options(a.model));
  json rows = json::array();
  for (float alpha : alphas) {
    std::vector<std::vector<int32_t>> prompts, gens;
    {
      Intervention iv;
      iv.kind = InterventionKind::kAdd;
      iv.hook = resolve_hook_name("blocks." + std::to_string(a.layer) + ".hook_resid_post",
                                  l.model.config());
      iv.vector = v;
      iv.value = alpha;
      const std::vector<HookHandle> steering = add_interventions(session.hooks(), {iv});
      uint64_t seed = a.seed;  // the same seeds at every alpha
      for (const std::string& p : trait.eval_prompts) {
        const std::vector<int32_t> prompt = prompt_ids(l, "", p);
        for (int k = 0; k < a.n; ++k, ++seed) {
          prompts.push_back(prompt);
          gens.push_back(sample(session, l, prompt, a.tokens, a.temperature, seed));
        }
      }
    }
    // Trait expression read back without steering: the generated tokens' mean projection.
    double proj_sum = 0;
    int64_t proj_n = 0, lexical_hits = 0;
    json samples = json::array();
    for (size_t g = 0; g < gens.size(); ++g) {
      json sample_row = {{"response", l.tokenizer->decode(gens[g])}};
      if (!gens[g].empty()) {
        std::vector<int32_t> ids = prompts[g];
        ids.insert(ids.end(), gens[g].begin(), gens[g].end());
        const double m = mean_of(projection_per_token(session, ids, a.layer, v), prompts[g].size());
        proj_sum += m;
        ++proj_n;
        sample_row["projection"] = m;
      }
      if (lexical) {
        const std::string text = sample_row["response"].get<std::string>();
        const int64_t np = count_words(text, trait.positive_words);
        const int64_t nn = count_words(text, trait.negative_words);
        lexical_hits += np > nn;
        sample_row["positive_words"] = np;
        sample_row["negative_words"] = nn;
      }
      samples.push_back(sample_row);
    }
    json row = {{"alpha", alpha},
                {"n_generations", gens.size()},
                {"n_scored", proj_n},
                {"projection", proj_n ? proj_sum / static_cast<double>(proj_n) : 0.0},
                {"samples", samples}};
    if (lexical) {
      row["lexical"] = static_cast<double>(lexical_hits) / static_cast<double>(gens.size());
    }
    rows.push_back(row);
  }
  const json out = {{"trait", trait.trait},
                    {"vector", a.vector},
                    {"layer", a.layer},
                    {"steering", "alpha * vector (as stored) added to blocks.L.hook_resid_post"},
                    {"projection",
                     "unsteered re-read; mean over generated tokens on the unit "
                     "vector, averaged over generations"},
                    {"lexical",
                     "share of generations with more positive-trait than "
                     "negative-trait words"},
                    {"seed", a.seed},
                    {"prompt_format", prompt_format(l)},
                    {"rows", rows}};
  if (!a.out.empty()) write_text(a.out, out.dump(2) + "\n");
  std::printf("alpha     projection  lexical\n");
  for (const json& r : rows) {
    std::printf("%-8.4g  %-10.5g  %s\n", r["alpha"].get<double>(), r["projection"].get<double>(),
                r.contains("lexical") ? std::to_string(r["lexical"].get<double>()).c_str() : "-");
  }
  return 0;
}

void add_common(CLI::App& cmd, PersonaArgs& a) {
  cmd.add_option("--model,-m", a.model.model_path, "Model file (.bin llama2.c or .gguf)")
      ->required();
  cmd.add_option("--tokenizer", a.model.tokenizer_path, "Tokenizer (default: beside the model)");
  cmd.add_option("--threads,-t", a.model.threads, "Threads (default: all cores)");
  add_kv_type_option(cmd, a.model.kv_type);
  cmd.add_flag("--no-bos", a.no_bos, "Do not prepend BOS");
}

void add_generation(CLI::App& cmd, PersonaArgs& a) {
  cmd.add_option("--n", a.n, "Generations per prompt")->capture_default_str();
  cmd.add_option("--tokens", a.tokens, "Max new tokens per generation")->capture_default_str();
  cmd.add_option("--seed", a.seed, "Sampling seed (generation k uses seed + k)")
      ->capture_default_str();
  cmd.add_option("--temperature", a.temperature, "Sampling temperature")->capture_default_str();
}

}  // namespace

Action register_persona(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "persona", "Persona vectors from a trait definition: extract, score texts, eval steering");
  cmd->require_subcommand(1);
  auto a = std::make_shared<PersonaArgs>();
  auto* ex = cmd->add_subcommand("extract", "Per-layer persona vector from a trait definition");
  add_common(*ex, *a);
  add_generation(*ex, *a);
  add_chat_options(*ex, a->chat, "each eval prompt (with the instruction as the system message)");
  ex->add_option("--trait", a->trait, "Trait definition JSON (docs/persona.md)")->required();
  ex->add_option("--layers", a->layers, "Block indices, comma-separated, or all")
      ->capture_default_str();
  ex->add_option("--out,-o", a->out, "Output directory")->required();
  auto* sc = cmd->add_subcommand("score", "Projection of texts on the vector at one layer (JSON)");
  add_common(*sc, *a);
  sc->add_option("--vector", a->vector, "persona.npy / .gguf / .safetensors")->required();
  sc->add_option("--layer", a->layer, "Block index")->required();
  sc->add_option("--text", a->text, "A text to score");
  sc->add_option("--jsonl", a->jsonl, "One {\"text\": ...} per line");
  auto* ev = cmd->add_subcommand("eval", "Trait expression of generations under steering");
  add_common(*ev, *a);
  add_generation(*ev, *a);
  add_chat_options(*ev, a->chat, "each eval prompt");
  a->n = 8;
  ev->add_option("--trait", a->trait, "Trait definition JSON (eval_prompts, words)")->required();
  ev->add_option("--vector", a->vector, "persona.npy / .gguf / .safetensors")->required();
  ev->add_option("--layer", a->layer, "Block index")->required();
  ev->add_option("--alphas", a->alphas, "Comma-separated steering scales")->capture_default_str();
  ev->add_option("--out,-o", a->out, "Write the JSON report here");
  return [a, ex, sc] {
    if (ex->parsed()) return run_extract(*a);
    if (sc->parsed()) return run_score(*a);
    return run_eval(*a);
  };
}

}  // namespace glassbox::cli
