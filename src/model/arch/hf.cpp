// Hugging Face checkpoints: config.json + model.safetensors (or shards with an index).
// Supported: the llama family -- LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM, Phi3ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM (RoPE in HF's
// rotate-half layout, GQA, Llama 3 / linear rope scaling, tied or untied embeddings, per-class
// flags) -- and GPT2LMHeadModel (Conv1D weights stored [in, out], transposed here).
// Tensors are renamed to GGUF names so bind_weights() serves every format.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "io/safetensors.h"
#include "model/arch/arch.h"

namespace glassbox::arch {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

fs::path model_dir(const std::string& path) {
  const fs::path p(path);
  return fs::is_directory(p) ? p : p.parent_path();
}

json read_config(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kIo, file.string() + ": cannot open");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line L, column C: ..."
    const std::string what = e.what();
    const size_t at = what.find("] ");
    throw Error(ErrorCode::kFormat, file.string() + ": malformed JSON: " +
                                        (at == std::string::npos ? what : what.substr(at + 2)));
  }
  if (!j.is_object()) throw Error(ErrorCode::kFormat, file.string() + ": not a JSON object");
  return j;
}

// Typed config.json access; errors name the file and field.
class ConfigReader {
 public:
  ConfigReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}
  int64_t integer(const char* key) const {
    if (!j_.contains(key)) throw Error(ErrorCode::kFormat, source_ + ": missing field " + key);
    return integer_or(key, 0);
  }
  int64_t integer_or(const char* key, int64_t fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_number_integer()) fail(key, "an integer");
    return j_[key].get<int64_t>();
  }
  double number_or(const char* key, double fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_number()) fail(key, "a number");
    return j_[key].get<double>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_boolean()) fail(key, "true or false");
    return j_[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    if (!j_[key].is_string()) fail(key, "a string");
    return j_[key].get<std::string>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& expected) const {
    throw Error(ErrorCode::kFormat, source_ + ": field " + key + " must be " + expected);
  }

 private:
  const json& j_;
  std::string source_;
};

std::string architecture_of(const json& j, const std::string& source) {
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    return j["architectures"][0].get<std::string>();
  }
  const std::string type = ConfigReader(j, source).string_or("model_type", "");
  static const std::map<std::string, std::string> kByType = {
      {"llama", "LlamaForCausalLM"},        {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},        {"qwen3", "Qwen3ForCausalLM"},
      {"phi3", "Phi3ForCausalLM"},          {"gemma2", "Gemma2ForCausalLM"},
      {"gemma3_text", "Gemma3ForCausalLM"}, {"gpt2", "GPT2LMHeadModel"}};
  const auto it = kByType.find(type);
  if (it != kByType.end()) return it->second;
  throw Error(ErrorCode::kFormat, source + ": no 'architectures' or known 'model_type'");
}

// Row-major [in, out] -> owned F32 [out, in].
Tensor transposed(const Tensor& t, const std::string& name, const std::string& source) {
  if (t.ndim() != 2) {
    throw Error(ErrorCode::kShape, source + ": tensor " + name + " has shape " +
                                       shape_str(t.shape()) + ", expected a matrix");
  }
  const Tensor f = t.to_f32();
  const int64_t rows = t.dim(0), cols = t.dim(1);
  Tensor out = Tensor::zeros(DType::kF32, {cols, rows});
  const float* src = f.data<float>();
  float* dst = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  return out;
}

// Owned F32 copy of a vector plus one (Gemma norm weights).
Tensor plus_one(const Tensor& t) {
  Tensor out = t.to_f32().clone();
  float* p = out.mutable_data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] += 1.0f;
  return out;
}

// The llama-family classes of transformers and the GGUF architecture each becomes.
const std::map<std::string, std::string>& llama_family_classes() {
  static const std::map<std::string, std::string> kClasses = {
      {"LlamaForCausalLM", "llama"},  {"MistralForCausalLM", "llama"},
      {"Qwen2ForCausalLM", "qwen2"},  {"Qwen3ForCausalLM", "qwen3"},
      {"Phi3ForCausalLM", "phi3"},    {"Gemma2ForCausalLM", "gemma2"},
      {"Gemma3ForCausalLM", "gemma3"}};
  return kClasses;
}

bool is_gemma(const ModelConfig& c) {
  return c.architecture == "gemma2" || c.architecture == "gemma3";
}

// A field that transformers always writes and whose absence would leave us guessing a number:
// required; null means "off" (returns 0).
double required_or_null(const json& j, const ConfigReader& r, const char* key,
                        const std::string& source) {
  if (!j.contains(key)) throw Error(ErrorCode::kFormat, source + ": missing field " + key);
  return r.number_or(key, 0.0);
}

// rope_scaling: llama3 (Llama 3.x) or linear; anything else refused by name.
void read_rope_scaling(const json& j, const std::string& source, ModelConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& s = j["rope_scaling"];
  const ConfigReader rs(s, source + ": rope_scaling");
  const std::string type = rs.string_or("rope_type", rs.string_or("type", ""));
  if (type == "linear") {
    c.rope_linear_factor = rs.number_or("factor", 1.0);
    return;
  }
  if (type != "llama3") {
    throw Error(ErrorCode::kUnsupported, source + ": rope_scaling type '" + type +
                                             "' is not supported (supported: llama3, linear)");
  }
  c.rope_scaling.factor = rs.number_or("factor", 0.0);
  c.rope_scaling.low_freq_factor = rs.number_or("low_freq_factor", 1.0);
  c.rope_scaling.high_freq_factor = rs.number_or("high_freq_factor", 4.0);
  c.rope_scaling.original_n_ctx = rs.integer_or("original_max_position_embeddings", 0);
}

// Gemma 3: which layers are local, from layer_types (newer transformers) or the period
// sliding_window_pattern (layer l is local iff (l + 1) % period != 0).
std::vector<uint8_t> gemma3_local_layers(const json& j, const ConfigReader& r, int64_t n_layers,
                                         const std::string& source) {
  std::vector<uint8_t> local(static_cast<size_t>(n_layers), 0);
  if (j.contains("layer_types") && !j["layer_types"].is_null()) {
    const json& t = j["layer_types"];
    if (!t.is_array() || static_cast<int64_t>(t.size()) != n_layers) {
      r.fail("layer_types", "a list of one entry per layer");
    }
    for (size_t l = 0; l < t.size(); ++l) {
      const std::string v = t[l].is_string() ? t[l].get<std::string>() : "";
      if (v != "sliding_attention" && v != "full_attention") {
        r.fail("layer_types", "\"sliding_attention\" or \"full_attention\" entries");
      }
      local[l] = v == "sliding_attention" ? 1 : 0;
    }
    return local;
  }
  const int64_t period = r.integer_or("sliding_window_pattern", 0);
  if (period <= 0) {
    throw Error(ErrorCode::kFormat,
                source + ": needs layer_types or sliding_window_pattern (which layers are local)");
  }
  for (int64_t l = 0; l < n_layers; ++l) local[static_cast<size_t>(l)] = (l + 1) % period != 0;
  return local;
}

// The llama family: one reader, per-class flags (see llama_family_classes()).
ModelConfig llama_family_config(const json& j, const std::string& hf_class,
                                const std::string& source) {
  const ConfigReader r(j, source);
  ModelConfig c;
  c.architecture = llama_family_classes().at(hf_class);
  c.source_format = "safetensors";
  c.d_model = r.integer("hidden_size");
  c.d_mlp = r.integer("intermediate_size");
  c.n_layers = r.integer("num_hidden_layers");
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads);
  c.d_head = r.integer_or("head_dim", c.n_heads > 0 ? c.d_model / c.n_heads : 0);
  c.d_vocab = r.integer("vocab_size");
  if (c.n_heads > 0 && !j.contains("head_dim") && c.d_model % c.n_heads != 0) {
    throw Error(ErrorCode::kFormat, source + ": hidden_size " + std::to_string(c.d_model) +
                                        " is not a multiple of num_attention_heads " +
                                        std::to_string(c.n_heads));
  }
  if (c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads != 0) {
    throw Error(ErrorCode::kFormat, source + ": num_attention_heads " + std::to_string(c.n_heads) +
                                        " is not a multiple of num_key_value_heads " +
                                        std::to_string(c.n_kv_heads));
  }
  c.n_ctx = r.integer_or("max_position_embeddings", 2048);
  c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.rope_theta = r.number_or("rope_theta", 10000.0);
  c.rope_dims = c.d_head;
  c.rope_style = RopeStyle::kNeox;
  const bool gemma = is_gemma(c);
  c.tied_embeddings = r.boolean_or("tie_word_embeddings", gemma);  // transformers' defaults
  read_rope_scaling(j, source, c);
  const std::string act = gemma ? r.string_or("hidden_activation", r.string_or("hidden_act", ""))
                                : r.string_or("hidden_act", "silu");
  const std::string want_act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (act != want_act) {
    throw Error(ErrorCode::kUnsupported, source + ": activation '" + act +
                                             "' is not supported for " + hf_class +
                                             " (supported: " + want_act + ")");
  }
  if (r.boolean_or("mlp_bias", false)) {
    throw Error(ErrorCode::kUnsupported, source + ": mlp_bias true is not supported");
  }
  const std::string& a = c.architecture;
  if (a == "llama" || a == "qwen3") {
    // Llama's attention_bias puts biases on q, k, v and o; Qwen3's would too (none ship one).
    if (r.boolean_or("attention_bias", false)) {
      if (a == "qwen3") {
        throw Error(ErrorCode::kUnsupported, source + ": attention_bias true is not supported");
      }
      c.qkv_bias = c.out_bias = true;
    }
  }
  if (a == "qwen2") c.qkv_bias = true;
  if ((a == "qwen2" || a == "qwen3") && r.boolean_or("use_sliding_window", false)) {
    throw Error(ErrorCode::kUnsupported,
                source +
                    ": use_sliding_window true (windows from max_window_layers on) is not "
                    "supported");
  }
  if (hf_class == "MistralForCausalLM" || a == "phi3") {
    c.sliding_window = r.integer_or("sliding_window", 0);
  }
  if (a == "phi3") {
    const double f = r.number_or("partial_rotary_factor", 1.0);
    c.rope_dims = static_cast<int64_t>(static_cast<double>(c.d_head) * f);
    if (c.rope_scaling.factor != 0.0 || c.rope_linear_factor != 1.0) {
      throw Error(ErrorCode::kUnsupported,
                  source + ": rope_scaling is not supported for " + hf_class);
    }
  }
  set_family_flags(c);
  if (gemma) {
    const double q_pre = r.number_or("query_pre_attn_scalar", 0.0);
    if (!(q_pre > 0.0)) r.fail("query_pre_attn_scalar", "a positive number");
    c.attn_scale = 1.0 / std::sqrt(q_pre);
    c.attn_softcap = required_or_null(j, r, "attn_logit_softcapping", source);
    c.final_softcap = required_or_null(j, r, "final_logit_softcapping", source);
    c.sliding_window = r.integer("sliding_window");
    if (a == "gemma2") {
      c.local_layers.resize(static_cast<size_t>(c.n_layers));
      for (int64_t l = 0; l < c.n_layers; ++l) c.local_layers[static_cast<size_t>(l)] = l % 2 == 0;
    } else {
      c.local_layers = gemma3_local_layers(j, r, c.n_layers, source);
      c.rope_theta_local = r.number_or("rope_local_base_freq", 10000.0);
    }
  }
  return c;
}

ModelConfig gpt2_config(const json& j, const std::string& source) {
  const ConfigReader r(j, source);
  ModelConfig c;
  c.architecture = "gpt2";
  c.source_format = "safetensors";
  c.d_model = r.integer("n_embd");
  c.d_mlp = r.integer_or("n_inner", 4 * c.d_model);
  c.n_layers = r.integer("n_layer");
  c.n_heads = r.integer("n_head");
  c.n_kv_heads = c.n_heads;
  c.d_head = c.n_heads > 0 ? c.d_model / c.n_heads : 0;
  if (c.n_heads > 0 && c.d_model % c.n_heads != 0) {
    throw Error(ErrorCode::kFormat, source + ": n_embd " + std::to_string(c.d_model) +
                                        " is not a multiple of n_head " +
                                        std::to_string(c.n_heads));
  }
  c.d_vocab = r.integer("vocab_size");
  c.n_ctx = r.integer_or("n_positions", r.integer_or("n_ctx", 1024));
  c.norm_eps = r.number_or("layer_norm_epsilon", 1e-5);
  const std::string act = r.string_or("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh") {
    throw Error(ErrorCode::kUnsupported, source + ": activation_function '" + act +
                                             "' is not supported (supported: gelu_new)");
  }
  c.position = PositionType::kLearned;
  c.norm = NormType::kLayer;
  c.mlp = MlpType::kGelu;
  c.qkv_bias = true;
  c.out_bias = true;
  c.mlp_bias = true;
  c.tied_embeddings = true;
  return c;
}

// The per-layer tensors of a llama-family class: HF suffix, GGUF suffix. Gemma's
// post_attention_layernorm is the norm AFTER attention; Llama's is the one before the MLP.
std::vector<std::pair<std::string, std::string>> llama_layer_names(const ModelConfig& c) {
  std::vector<std::pair<std::string, std::string>> n = {
      {"input_layernorm.weight", "attn_norm.weight"}};
  if (c.architecture == "phi3") {
    n.push_back({"self_attn.qkv_proj.weight", "attn_qkv.weight"});
  } else {
    for (const char* x : {"q", "k", "v"}) {
      n.push_back(
          {std::string("self_attn.") + x + "_proj.weight", std::string("attn_") + x + ".weight"});
      if (c.qkv_bias) {
        n.push_back(
            {std::string("self_attn.") + x + "_proj.bias", std::string("attn_") + x + ".bias"});
      }
    }
  }
  if (c.qk_norm) {
    n.push_back({"self_attn.q_norm.weight", "attn_q_norm.weight"});
    n.push_back({"self_attn.k_norm.weight", "attn_k_norm.weight"});
  }
  n.push_back({"self_attn.o_proj.weight", "attn_output.weight"});
  if (c.out_bias) n.push_back({"self_attn.o_proj.bias", "attn_output.bias"});
  if (c.post_norms) {
    n.push_back({"post_attention_layernorm.weight", "post_attention_norm.weight"});
    n.push_back({"pre_feedforward_layernorm.weight", "ffn_norm.weight"});
    n.push_back({"post_feedforward_layernorm.weight", "post_ffw_norm.weight"});
  } else {
    n.push_back({"post_attention_layernorm.weight", "ffn_norm.weight"});
  }
  if (c.architecture == "phi3") {
    n.push_back({"mlp.gate_up_proj.weight", "ffn_up.weight"});  // fused, split after renaming
  } else {
    n.push_back({"mlp.gate_proj.weight", "ffn_gate.weight"});
    n.push_back({"mlp.up_proj.weight", "ffn_up.weight"});
  }
  n.push_back({"mlp.down_proj.weight", "ffn_down.weight"});
  return n;
}

// HF name -> GGUF name for the llama family; empty when the tensor is not a weight we use.
std::string llama_name(const std::string& name, const ModelConfig& c) {
  static const std::regex layer(R"(model\.layers\.(\d+)\.(.+))");
  if (name == "model.embed_tokens.weight") return "token_embd.weight";
  if (name == "model.norm.weight") return "output_norm.weight";
  if (name == "lm_head.weight") return c.tied_embeddings ? "" : "output.weight";
  std::smatch m;
  if (std::regex_match(name, m, layer)) {
    for (const auto& [hf, gguf] : llama_layer_names(c)) {
      if (m[2] == hf) return "blk." + m[1].str() + "." + gguf;
    }
  }
  return "";
}

// HF GPT-2 name (with or without "transformer.") -> GGUF name, and whether it is a Conv1D
// weight stored [in, out].
std::pair<std::string, bool> gpt2_name(std::string name) {
  static const std::regex layer(R"(h\.(\d+)\.(.+))");
  static const std::map<std::string, std::pair<std::string, bool>> per_layer = {
      {"ln_1.weight", {"attn_norm.weight", false}},
      {"ln_1.bias", {"attn_norm.bias", false}},
      {"attn.c_attn.weight", {"attn_qkv.weight", true}},
      {"attn.c_attn.bias", {"attn_qkv.bias", false}},
      {"attn.c_proj.weight", {"attn_output.weight", true}},
      {"attn.c_proj.bias", {"attn_output.bias", false}},
      {"ln_2.weight", {"ffn_norm.weight", false}},
      {"ln_2.bias", {"ffn_norm.bias", false}},
      {"mlp.c_fc.weight", {"ffn_up.weight", true}},
      {"mlp.c_fc.bias", {"ffn_up.bias", false}},
      {"mlp.c_proj.weight", {"ffn_down.weight", true}},
      {"mlp.c_proj.bias", {"ffn_down.bias", false}},
  };
  if (name.starts_with("transformer.")) name = name.substr(12);
  if (name == "wte.weight") return {"token_embd.weight", false};
  if (name == "wpe.weight") return {"position_embd.weight", false};
  if (name == "ln_f.weight") return {"output_norm.weight", false};
  if (name == "ln_f.bias") return {"output_norm.bias", false};
  std::smatch m;
  if (std::regex_match(name, m, layer)) {
    const auto it = per_layer.find(m[2]);
    if (it != per_layer.end())
      return {"blk." + m[1].str() + "." + it->second.first, it->second.second};
  }
  return {"", false};  // lm_head (tied), attn.bias / masked_bias buffers, ...
}

// A tensor the config calls for: its HF name and, per axis, the size the config implies with the
// config field (or expression of fields) that sets it.
struct Expected {
  std::string name;
  std::vector<std::pair<int64_t, std::string>> dims;
  std::string why;  // extra context when it is missing
};
using Dim = std::pair<int64_t, std::string>;

std::vector<Expected> llama_expected(const ModelConfig& c) {
  const Dim d{c.d_model, "hidden_size"}, f{c.d_mlp, "intermediate_size"},
      f2{2 * c.d_mlp, "2 * intermediate_size"}, v{c.d_vocab, "vocab_size"},
      q{c.q_dim(), "num_attention_heads * head_dim"},
      kv{c.kv_dim(), "num_key_value_heads * head_dim"}, dh{c.d_head, "head_dim"},
      qkv{c.q_dim() + 2 * c.kv_dim(), "(num_attention_heads + 2 * num_key_value_heads) * head_dim"};
  const std::map<std::string, std::vector<Dim>> dims = {{"input_layernorm.weight", {d}},
                                                        {"self_attn.q_proj.weight", {q, d}},
                                                        {"self_attn.k_proj.weight", {kv, d}},
                                                        {"self_attn.v_proj.weight", {kv, d}},
                                                        {"self_attn.q_proj.bias", {q}},
                                                        {"self_attn.k_proj.bias", {kv}},
                                                        {"self_attn.v_proj.bias", {kv}},
                                                        {"self_attn.qkv_proj.weight", {qkv, d}},
                                                        {"self_attn.q_norm.weight", {dh}},
                                                        {"self_attn.k_norm.weight", {dh}},
                                                        {"self_attn.o_proj.weight", {d, q}},
                                                        {"self_attn.o_proj.bias", {d}},
                                                        {"post_attention_layernorm.weight", {d}},
                                                        {"pre_feedforward_layernorm.weight", {d}},
                                                        {"post_feedforward_layernorm.weight", {d}},
                                                        {"mlp.gate_proj.weight", {f, d}},
                                                        {"mlp.up_proj.weight", {f, d}},
                                                        {"mlp.gate_up_proj.weight", {f2, d}},
                                                        {"mlp.down_proj.weight", {d, f}}};
  std::vector<Expected> e = {{"model.embed_tokens.weight", {v, d}, ""},
                             {"model.norm.weight", {d}, ""}};
  if (!c.tied_embeddings) e.push_back({"lm_head.weight", {v, d}, "tie_word_embeddings is false"});
  const auto names = llama_layer_names(c);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const auto& [hf, gguf] : names) e.push_back({p + hf, dims.at(hf), ""});
  }
  return e;
}

// HF GPT-2 stores Conv1D weights [in, out]. `prefix` is "transformer." or "".
std::vector<Expected> gpt2_expected(const ModelConfig& c, const json& j,
                                    const std::string& prefix) {
  const bool has_inner = j.contains("n_inner") && !j["n_inner"].is_null();
  const bool has_positions = j.contains("n_positions") && !j["n_positions"].is_null();
  const Dim d{c.d_model, "n_embd"}, f{c.d_mlp, has_inner ? "n_inner" : "4 * n_embd"},
      v{c.d_vocab, "vocab_size"}, ctx{c.n_ctx, has_positions ? "n_positions" : "n_ctx"},
      qkv{c.q_dim() + 2 * c.kv_dim(), "3 * n_embd"};
  std::vector<Expected> e = {{prefix + "wte.weight", {v, d}, ""},
                             {prefix + "wpe.weight", {ctx, d}, ""},
                             {prefix + "ln_f.weight", {d}, ""},
                             {prefix + "ln_f.bias", {d}, ""}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = prefix + "h." + std::to_string(l) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      e.push_back({p + ln + ".weight", {d}, ""});
      e.push_back({p + ln + ".bias", {d}, ""});
    }
    e.push_back({p + "attn.c_attn.weight", {d, qkv}, ""});
    e.push_back({p + "attn.c_attn.bias", {qkv}, ""});
    e.push_back({p + "attn.c_proj.weight", {d, d}, ""});
    e.push_back({p + "attn.c_proj.bias", {d}, ""});
    e.push_back({p + "mlp.c_fc.weight", {d, f}, ""});
    e.push_back({p + "mlp.c_fc.bias", {f}, ""});
    e.push_back({p + "mlp.c_proj.weight", {f, d}, ""});
    e.push_back({p + "mlp.c_proj.bias", {d}, ""});
  }
  return e;
}

// Config and weights must agree before any tensor is renamed, so that errors speak of config.json
// fields and the tensor names in the file: the number of layers (tensors `layer_re` matches, its
// first group the layer index), then every expected tensor's presence and shape.
void check_against_config(const std::vector<Expected>& expected, const ShardedSafetensors& st,
                          const std::string& config_source, const std::regex& layer_re,
                          const char* layers_field, int64_t n_layers) {
  const std::string& wsource = st.path();
  int64_t max_layer = -1;
  std::smatch m;
  for (const std::string& name : st.tensor_names()) {
    if (std::regex_search(name, m, layer_re)) {
      max_layer = std::max<int64_t>(max_layer, std::stoll(m[1].str()));
    }
  }
  if (max_layer + 1 != n_layers) {
    throw Error(ErrorCode::kFormat,
                config_source + ": " + layers_field + " is " + std::to_string(n_layers) + " but " +
                    wsource +
                    (max_layer < 0 ? std::string(" holds no layer tensors")
                                   : " holds layers 0.." + std::to_string(max_layer)));
  }
  for (const Expected& e : expected) {
    const SafetensorsTensorInfo* info = st.find(e.name);
    if (info == nullptr) {
      throw Error(ErrorCode::kFormat, config_source + (e.why.empty() ? "" : " (" + e.why + ")") +
                                          " calls for tensor " + e.name + ", which " + wsource +
                                          " does not have");
    }
    Shape want;
    std::string fields;
    for (const auto& [size, field] : e.dims) {
      want.push_back(size);
      fields += (fields.empty() ? "" : ", ") + field;
    }
    if (info->shape == want) continue;
    std::string culprit;
    for (size_t i = 0; i < want.size() && i < info->shape.size(); ++i) {
      if (info->shape[i] != want[i]) {
        culprit = e.dims[i].second + " is " + std::to_string(want[i]) + " but ";
        break;
      }
    }
    throw Error(ErrorCode::kShape, config_source + ": " + culprit + wsource + ": tensor " + e.name +
                                       " has shape " + shape_str(info->shape) + " (expected [" +
                                       fields + "] = " + shape_str(want) + ")");
  }
}

}  // namespace

bool is_hf_checkpoint(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p)) return true;  // the only directory format; needs config.json
  const std::string name = p.filename().string();
  return name == "config.json" || name.ends_with(".safetensors") ||
         name.ends_with(".safetensors.index.json");
}

HfCheckpoint load_hf_checkpoint(const std::string& path) {
  const fs::path dir = model_dir(path);
  const fs::path config_file = dir / "config.json";
  if (!fs::exists(config_file)) {
    throw Error(ErrorCode::kNotFound,
                path + ": a Hugging Face checkpoint needs config.json in " + dir.string());
  }
  const std::string source = config_file.string();
  const json j = read_config(config_file);
  const std::string arch = architecture_of(j, source);
  HfCheckpoint ck;
  const bool llama_family = llama_family_classes().count(arch) != 0;
  if (llama_family) {
    ck.config = llama_family_config(j, arch, source);
  } else if (arch == "GPT2LMHeadModel") {
    ck.config = gpt2_config(j, source);
  } else {
    std::string supported;
    for (const auto& [name, gguf] : llama_family_classes()) supported += name + ", ";
    throw Error(ErrorCode::kUnsupported, source + ": architecture '" + arch +
                                             "' is not supported (supported: " + supported +
                                             "GPT2LMHeadModel)");
  }
  validate_config(ck.config, source);
  const fs::path weights =
      fs::is_directory(fs::path(path)) || fs::path(path).filename() == "config.json"
          ? dir
          : fs::path(path);
  const ShardedSafetensors st = ShardedSafetensors::open(weights.string());
  const std::string wsource = st.path();
  if (llama_family) {
    static const std::regex layer(R"(^model\.layers\.(\d+)\.)");
    check_against_config(llama_expected(ck.config), st, source, layer, "num_hidden_layers",
                         ck.config.n_layers);
  } else {
    static const std::regex layer(R"(^(?:transformer\.)?h\.(\d+)\.)");
    const std::string prefix = st.find("wte.weight") != nullptr ? "" : "transformer.";
    check_against_config(gpt2_expected(ck.config, j, prefix), st, source, layer, "n_layer",
                         ck.config.n_layers);
  }
  for (const std::string& name : st.tensor_names()) {
    const Tensor t = st.tensor(name);
    ck.file_tensors.emplace_back(name, t);
    if (llama_family) {
      const std::string gguf = llama_name(name, ck.config);
      if (gguf.empty()) continue;
      // Gemma's RMSNorm multiplies by (1 + w); GGUF and the forward pass hold the multiplier.
      ck.tensors[gguf] = is_gemma(ck.config) && gguf.ends_with("norm.weight") ? plus_one(t) : t;
    } else {
      const auto [gguf, conv1d] = gpt2_name(name);
      if (!gguf.empty()) ck.tensors[gguf] = conv1d ? transposed(t, name, wsource) : t;
    }
  }
  split_fused_qkv(ck.tensors, ck.config, wsource);      // gpt2, phi3
  split_fused_gate_up(ck.tensors, ck.config, wsource);  // phi3
  return ck;
}

}  // namespace glassbox::arch
