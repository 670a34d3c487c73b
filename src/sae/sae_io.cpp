#include "sae/sae_io.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/npz.h"
#include "io/safetensors.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kSaeLensWeights = "sae_weights.safetensors";
constexpr const char* kSparsifyWeights = "sae.safetensors";
constexpr const char* kCfg = "cfg.json";
constexpr const char* kNpz = "params.npz";


json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorCode::kIo, path + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    json j = json::parse(ss.str());
    if (!j.is_object()) fail(ErrorCode::kFormat, path + ": not a JSON object");
    return j;
  } catch (const json::exception& e) {
    fail(ErrorCode::kFormat, path + ": invalid JSON: " + e.what());
  }
}

// Typed config lookups that name the file and field; absent (or null) keys give the default.
int64_t cfg_int(const json& j, const std::string& key, const std::string& file,
                std::optional<int64_t> def = std::nullopt) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    fail(ErrorCode::kFormat, file + ": missing field '" + key + "'");
  }
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()) {
    return static_cast<int64_t>(it->get<double>());
  }
  fail(ErrorCode::kFormat, file + ": field '" + key + "' must be an integer, got " + it->dump());
}

double cfg_number(const json& j, const std::string& key, const std::string& file, double def) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) {
    fail(ErrorCode::kFormat, file + ": field '" + key + "' must be a number, got " + it->dump());
  }
  return it->get<double>();
}

bool cfg_bool(const json& j, const std::string& key, const std::string& file, bool def) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) {
    fail(ErrorCode::kFormat,
         file + ": field '" + key + "' must be true or false, got " + it->dump());
  }
  return it->get<bool>();
}

std::string cfg_string(const json& j, const std::string& key, const std::string& file,
                       const std::string& def = "") {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) {
    fail(ErrorCode::kFormat, file + ": field '" + key + "' must be a string, got " + it->dump());
  }
  return it->get<std::string>();
}

// Loads a tensor as f32 and checks its shape; `what` names where the expected shape came from.
Tensor load_f32(const std::map<std::string, Tensor>& tensors, const std::string& name,
                const Shape& expected, const std::string& file, const std::string& what) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) fail(ErrorCode::kFormat, file + ": missing tensor '" + name + "'");
  const Tensor& t = it->second;
  if (t.dtype() != DType::kF32 && t.dtype() != DType::kF16 && t.dtype() != DType::kBF16 &&
      t.dtype() != DType::kF64) {
    fail(ErrorCode::kUnsupported, file + ": tensor '" + name + "' has dtype " +
                                      dtype_name(t.dtype()) + " (f32, f16, bf16 or f64 expected)");
  }
  if (t.shape() != expected) {
    fail(ErrorCode::kShape, file + ": tensor '" + name + "' has shape " + shape_str(t.shape()) +
                                ", expected " + shape_str(expected) + " (" + what + ")");
  }
  return t.dtype() == DType::kF32 ? t.clone() : t.to_f32();
}

std::map<std::string, Tensor> safetensors_map(const std::string& path) {
  if (!fs::is_regular_file(path)) fail(ErrorCode::kIo, path + ": no such file");
  const SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, Tensor> out;
  for (const auto& info : f.tensor_infos()) out[info.name] = f.tensor(info.name);
  return out;
}

void reject_unknown(const std::map<std::string, Tensor>& tensors,
                    const std::set<std::string>& known, const std::string& file) {
  for (const auto& [name, t] : tensors) {
    if (!known.count(name)) {
      fail(ErrorCode::kUnsupported, file + ": unexpected tensor '" + name + "' (" +
                                        shape_str(t.shape()) +
                                        "); this SAE variant is not supported");
    }
  }
}

Tensor transpose(const Tensor& t) {
  const int64_t r = t.dim(0), c = t.dim(1);
  Tensor out = Tensor::zeros(DType::kF32, {c, r});
  const float* s = t.data<float>();
  float* d = out.mutable_data<float>();
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) d[j * r + i] = s[i * c + j];
  return out;
}

void write_json(const std::string& path, const json& j) {
  const std::string text = j.dump(2) + "\n";
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

void make_dir(const std::string& dir) {
  if (fs::exists(dir) && !fs::is_directory(dir)) {
    fail(ErrorCode::kInvalidArgument, dir + ": exists and is not a directory");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ErrorCode::kIo, dir + ": cannot create directory: " + ec.message());
}

}  // namespace

const char* sae_format_name(SaeFormat format) {
  switch (format) {
    case SaeFormat::kSaeLens:
      return "saelens";
    case SaeFormat::kSparsify:
      return "sparsify";
    case SaeFormat::kGemmaScope:
      return "gemmascope";
  }
  return "?";
}

std::optional<SaeFormat> parse_sae_format(const std::string& name) {
  if (name == "saelens") return SaeFormat::kSaeLens;
  if (name == "sparsify") return SaeFormat::kSparsify;
  if (name == "gemmascope") return SaeFormat::kGemmaScope;
  return std::nullopt;
}

SaeFormat detect_sae_format(const std::string& path) {
  if (!fs::exists(path)) fail(ErrorCode::kIo, path + ": no such file or directory");
  fs::path dir(path);
  if (fs::is_regular_file(dir)) {
    const std::string name = dir.filename().string();
    if (name.ends_with(".npz")) return SaeFormat::kGemmaScope;
    if (name != kCfg && name != kSaeLensWeights && name != kSparsifyWeights) {
      fail(ErrorCode::kNotFound, path + ": not an SAE file (expected a directory, cfg.json, " +
                                     kSaeLensWeights + ", " + kSparsifyWeights + " or params.npz)");
    }
    dir = dir.parent_path();
    if (dir.empty()) dir = ".";
  }
  if (fs::is_regular_file(dir / kSaeLensWeights)) return SaeFormat::kSaeLens;
  if (fs::is_regular_file(dir / kSparsifyWeights)) return SaeFormat::kSparsify;
  if (fs::is_regular_file(dir / kNpz)) return SaeFormat::kGemmaScope;
  fail(ErrorCode::kNotFound, dir.string() + ": no SAE here (looked for " + kSaeLensWeights +
                                 " (SAELens), " + kSparsifyWeights + " (sparsify), " + kNpz +
                                 " (Gemma Scope))");
}

static std::string sae_dir_of(const std::string& path) {
  return fs::is_regular_file(path) ? fs::path(path).parent_path().string() : path;
}

Sae load_sae(const std::string& path) {
  switch (detect_sae_format(path)) {
    case SaeFormat::kSaeLens:
      return read_saelens(sae_dir_of(path));
    case SaeFormat::kSparsify:
      return read_sparsify(sae_dir_of(path));
    case SaeFormat::kGemmaScope:
      return read_gemma_scope(path);
  }
  GLASSBOX_ASSERT(false);
}

Sae read_saelens(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? "." : dir_in;
  const std::string cfg_path = (fs::path(dir) / kCfg).string();
  const std::string w_path = (fs::path(dir) / kSaeLensWeights).string();
  if (!fs::is_regular_file(cfg_path)) fail(ErrorCode::kIo, cfg_path + ": no such file");
  const json cfg = read_json(cfg_path);
  // Metadata: SAELens 6 nests it ("metadata", briefly "meta"); earlier versions keep it top-level.
  json meta = json::object();
  for (const char* key : {"metadata", "meta"}) {
    if (cfg.contains(key) && cfg[key].is_object()) meta = cfg[key];
  }
  const auto meta_string = [&](const char* key, const char* alt = nullptr) {
    std::string v = cfg_string(meta, key, cfg_path);
    if (v.empty()) v = cfg_string(cfg, key, cfg_path);
    if (v.empty() && alt) v = cfg_string(cfg, alt, cfg_path);
    return v;
  };

  Sae s;
  s.d_in = cfg_int(cfg, "d_in", cfg_path);
  s.d_sae = cfg_int(cfg, "d_sae", cfg_path);
  if (s.d_in <= 0 || s.d_sae <= 0 || s.d_in > (int64_t(1) << 24) || s.d_sae > (int64_t(1) << 28)) {
    fail(ErrorCode::kFormat, cfg_path + ": d_in (" + std::to_string(s.d_in) + ") and d_sae (" +
                                 std::to_string(s.d_sae) + ") must be positive and plausible");
  }
  const std::string arch_name = cfg_string(cfg, "architecture", cfg_path, "standard");
  std::string act_fn = cfg_string(cfg, "activation_fn", cfg_path);
  if (act_fn.empty()) act_fn = cfg_string(cfg, "activation_fn_str", cfg_path, "relu");
  if (arch_name == "standard" && act_fn == "topk") {
    // Pre-6.0: TopK was the standard architecture with a topk activation function.
    s.arch = SaeArch::kTopK;
    const auto kw = cfg.find("activation_fn_kwargs");
    if (kw == cfg.end() || !kw->is_object()) {
      fail(ErrorCode::kFormat, cfg_path + ": activation_fn 'topk' needs activation_fn_kwargs.k");
    }
    s.k = double(cfg_int(*kw, "k", cfg_path + " (activation_fn_kwargs)"));
  } else {
    const auto arch = parse_sae_arch(arch_name);
    if (!arch || arch_name == "relu") {
      fail(ErrorCode::kUnsupported,
           cfg_path + ": architecture '" + arch_name +
               "' is not supported (standard, topk, jumprelu and batchtopk are)");
    }
    s.arch = *arch;
    if (act_fn != "relu" && act_fn != "topk") {
      fail(ErrorCode::kUnsupported,
           cfg_path + ": activation_fn '" + act_fn + "' is not supported (relu is)");
    }
    if (s.arch == SaeArch::kTopK) {
      s.k = double(cfg_int(cfg, "k", cfg_path, 100));  // SAELens's TopKSAEConfig default
    } else if (s.arch == SaeArch::kBatchTopK) {
      s.k = cfg_number(cfg, "k", cfg_path, 100);
    }
  }
  if (cfg_bool(cfg, "rescale_acts_by_decoder_norm", cfg_path, false)) {
    fail(ErrorCode::kUnsupported,
         cfg_path + ": rescale_acts_by_decoder_norm = true is not supported");
  }
  if (cfg_bool(cfg, "finetuning_scaling_factor", cfg_path, false)) {
    fail(ErrorCode::kUnsupported, cfg_path + ": finetuning_scaling_factor = true is not supported");
  }
  s.apply_b_dec_to_input = cfg_bool(cfg, "apply_b_dec_to_input", cfg_path, true);
  const auto norm_it = cfg.find("normalize_activations");
  if (norm_it != cfg.end() && norm_it->is_boolean()) {
    // Old configs: true meant the April-update expected-average scaling.
    s.normalize_activations =
        norm_it->get<bool>() ? SaeNorm::kExpectedAverageOnlyIn : SaeNorm::kNone;
  } else {
    const std::string norm = cfg_string(cfg, "normalize_activations", cfg_path, "none");
    const auto parsed = parse_sae_norm(norm);
    if (!parsed) {
      fail(ErrorCode::kUnsupported,
           cfg_path + ": normalize_activations '" + norm + "' is not supported");
    }
    s.normalize_activations = *parsed;
  }
  s.hook_name = meta_string("hook_name", "hook_point");
  s.model_name = meta_string("model_name");

  const auto tensors = safetensors_map(w_path);
  const std::string from_cfg =
      "d_in " + std::to_string(s.d_in) + ", d_sae " + std::to_string(s.d_sae) + " from cfg.json";
  s.W_enc = load_f32(tensors, "W_enc", {s.d_in, s.d_sae}, w_path, from_cfg);
  s.b_enc = load_f32(tensors, "b_enc", {s.d_sae}, w_path, from_cfg);
  s.W_dec = load_f32(tensors, "W_dec", {s.d_sae, s.d_in}, w_path, from_cfg);
  s.b_dec = load_f32(tensors, "b_dec", {s.d_in}, w_path, from_cfg);
  std::set<std::string> known = {"W_enc", "b_enc", "W_dec", "b_dec"};
  if (s.arch == SaeArch::kJumpRelu || s.arch == SaeArch::kBatchTopK) {
    s.threshold = load_f32(tensors, "threshold", {s.d_sae}, w_path, from_cfg);
    known.insert("threshold");
  }
  if (tensors.count("scaling_factor")) {
    // Older SAELens files carry an all-ones scaling_factor, which its loader drops.
    const Tensor sf = load_f32(tensors, "scaling_factor", {s.d_sae}, w_path, from_cfg);
    for (float v : sf.floats()) {
      if (v != 1.0f) {
        fail(ErrorCode::kUnsupported, w_path +
                                          ": a scaling_factor other than all ones "
                                          "(finetuning_scaling_factor) is not supported");
      }
    }
    known.insert("scaling_factor");
  }
  reject_unknown(tensors, known, w_path);
  s.validate(w_path);
  return s;
}

Sae read_sparsify(const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? "." : dir_in;
  const std::string cfg_path = (fs::path(dir) / kCfg).string();
  const std::string w_path = (fs::path(dir) / kSparsifyWeights).string();
  if (!fs::is_regular_file(cfg_path)) fail(ErrorCode::kIo, cfg_path + ": no such file");
  const json cfg = read_json(cfg_path);
  Sae s;
  s.arch = SaeArch::kTopK;
  s.d_in = cfg_int(cfg, "d_in", cfg_path);
  const int64_t num_latents = cfg_int(cfg, "num_latents", cfg_path, 0);
  const int64_t expansion = cfg_int(cfg, "expansion_factor", cfg_path, 32);
  if (s.d_in <= 0 || s.d_in > (int64_t(1) << 24) || num_latents < 0 || expansion <= 0 ||
      expansion > (int64_t(1) << 16)) {
    fail(ErrorCode::kFormat, cfg_path + ": d_in (" + std::to_string(s.d_in) +
                                 "), num_latents or expansion_factor out of range");
  }
  s.d_sae = num_latents > 0 ? num_latents : s.d_in * expansion;
  s.k = double(cfg_int(cfg, "k", cfg_path, 32));
  const std::string activation = cfg_string(cfg, "activation", cfg_path, "topk");
  if (activation != "topk") {
    fail(ErrorCode::kUnsupported,
         cfg_path + ": activation '" + activation + "' is not supported (topk is)");
  }
  for (const char* flag : {"skip_connection", "transcode", "embed_skip", "gram_lookup"}) {
    if (cfg_bool(cfg, flag, cfg_path, false)) {
      fail(ErrorCode::kUnsupported, cfg_path + ": " + flag + " = true is not supported");
    }
  }
  s.apply_b_dec_to_input = true;  // sparsify's encode: x - b_dec unless transcoding
  const auto tensors = safetensors_map(w_path);
  const std::string from_cfg = "d_in " + std::to_string(s.d_in) + ", num_latents " +
                               std::to_string(s.d_sae) + " from cfg.json";
  const Tensor enc = load_f32(tensors, "encoder.weight", {s.d_sae, s.d_in}, w_path, from_cfg);
  s.W_enc = transpose(enc);
  s.b_enc = load_f32(tensors, "encoder.bias", {s.d_sae}, w_path, from_cfg);
  s.W_dec = load_f32(tensors, "W_dec", {s.d_sae, s.d_in}, w_path, from_cfg);
  s.b_dec = load_f32(tensors, "b_dec", {s.d_in}, w_path, from_cfg);
  reject_unknown(tensors, {"encoder.weight", "encoder.bias", "W_dec", "b_dec"}, w_path);
  s.validate(w_path);
  return s;
}

Sae read_gemma_scope(const std::string& path) {
  const std::string file = fs::is_directory(path) ? (fs::path(path) / kNpz).string() : path;
  if (!fs::is_regular_file(file)) fail(ErrorCode::kIo, file + ": no such file");
  std::map<std::string, Tensor> arrays;
  for (auto& [name, t] : read_npz(file)) {
    // SAELens's loader accepts lower-case w_enc / w_dec too.
    arrays[name.starts_with("w_") ? "W_" + name.substr(2) : name] = t;
  }
  const auto it = arrays.find("W_enc");
  if (it == arrays.end()) fail(ErrorCode::kFormat, file + ": missing array 'W_enc'");
  if (it->second.ndim() != 2) {
    fail(ErrorCode::kShape, file + ": array 'W_enc' has shape " + shape_str(it->second.shape()) +
                                ", expected [d_in, d_sae]");
  }
  Sae s;
  s.arch = SaeArch::kJumpRelu;
  s.apply_b_dec_to_input = false;
  s.d_in = it->second.dim(0);
  s.d_sae = it->second.dim(1);
  const std::string from =
      "d_in " + std::to_string(s.d_in) + ", d_sae " + std::to_string(s.d_sae) + " from W_enc";
  s.W_enc = load_f32(arrays, "W_enc", {s.d_in, s.d_sae}, file, from);
  s.W_dec = load_f32(arrays, "W_dec", {s.d_sae, s.d_in}, file, from);
  s.b_enc = load_f32(arrays, "b_enc", {s.d_sae}, file, from);
  s.b_dec = load_f32(arrays, "b_dec", {s.d_in}, file, from);
  s.threshold = load_f32(arrays, "threshold", {s.d_sae}, file, from);
  reject_unknown(arrays, {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}, file);
  s.validate(file);
  return s;
}

std::optional<std::string> sae_write_refusal(const Sae& sae, SaeFormat format) {
  if (format == SaeFormat::kGemmaScope) return "Gemma Scope params.npz is read, not written";
  if (format == SaeFormat::kSparsify) {
    if (sae.arch != SaeArch::kTopK) {
      return std::string("sparsify holds only TopK SAEs; this one is ") + sae_arch_name(sae.arch) +
             (sae.threshold.defined() ? " (sparsify has no threshold)" : "");
    }
    if (!sae.apply_b_dec_to_input) {
      return "sparsify always subtracts b_dec from the input; this SAE does not "
             "(apply_b_dec_to_input = false)";
    }
    if (sae.normalize_activations != SaeNorm::kNone && !sae.norm_scaling_factor) {
      return std::string(
                 "sparsify has no input normalisation; this SAE uses "
                 "normalize_activations = ") +
             sae_norm_name(sae.normalize_activations);
    }
    if (sae.normalize_activations != SaeNorm::kNone &&
        sae.normalize_activations != SaeNorm::kExpectedAverageOnlyIn) {
      return std::string("sparsify has no input normalisation; this SAE uses ") +
             sae_norm_name(sae.normalize_activations);
    }
  }
  return std::nullopt;
}

void save_sae(const Sae& sae_in, const std::string& dir, SaeFormat format) {
  if (const auto why = sae_write_refusal(sae_in, format)) {
    fail(ErrorCode::kUnsupported,
         dir + ": cannot write as " + sae_format_name(format) + ": " + *why);
  }
  Sae sae = sae_in;
  sae.fold_norm_scaling_factor();
  sae.validate(dir);
  make_dir(dir);
  if (format == SaeFormat::kSaeLens) {
    // batchtopk is saved as jumprelu, as SAELens's BatchTopKTrainingSAE does.
    const char* arch = sae.arch == SaeArch::kRelu   ? "standard"
                       : sae.arch == SaeArch::kTopK ? "topk"
                                                    : "jumprelu";
    json cfg = {{"architecture", arch},
                {"d_in", sae.d_in},
                {"d_sae", sae.d_sae},
                {"dtype", "float32"},
                {"device", "cpu"},
                {"apply_b_dec_to_input", sae.apply_b_dec_to_input},
                {"normalize_activations", sae_norm_name(sae.normalize_activations)},
                {"reshape_activations", "none"}};
    if (sae.arch == SaeArch::kTopK) cfg["k"] = static_cast<int64_t>(sae.k);
    json meta = {{"sae_lens_version", "6.0.0"}, {"sae_lens_training_version", "6.0.0"}};
    meta["model_name"] = sae.model_name.empty() ? json(nullptr) : json(sae.model_name);
    meta["hook_name"] = sae.hook_name.empty() ? json(nullptr) : json(sae.hook_name);
    cfg["metadata"] = meta;
    std::vector<std::pair<std::string, Tensor>> tensors = {
        {"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec}, {"b_dec", sae.b_dec}};
    if (sae.threshold.defined()) tensors.emplace_back("threshold", sae.threshold);
    write_safetensors((fs::path(dir) / kSaeLensWeights).string(), tensors);
    write_json((fs::path(dir) / kCfg).string(), cfg);
  } else {
    json cfg = {{"activation", "topk"},
                {"expansion_factor", sae.d_sae % sae.d_in == 0 ? sae.d_sae / sae.d_in : 32},
                {"normalize_decoder", true},
                {"num_latents", sae.d_sae},
                {"k", static_cast<int64_t>(sae.k)},
                {"multi_topk", false},
                {"skip_connection", false},
                {"transcode", false},
                {"d_in", sae.d_in}};
    write_safetensors((fs::path(dir) / kSparsifyWeights).string(),
                      {{"encoder.weight", transpose(sae.W_enc)},
                       {"encoder.bias", sae.b_enc},
                       {"W_dec", sae.W_dec},
                       {"b_dec", sae.b_dec}},
                      {{"format", "pt"}});
    write_json((fs::path(dir) / kCfg).string(), cfg);
  }
}

}  // namespace glassbox
