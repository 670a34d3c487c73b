// The three output formats of `glassbox convert`: GGUF, llama2.c .bin and HF safetensors dirs.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/convert_internal.h"
#include "tokenizer/bpe.h"
#include "tokenizer/gguf_bpe.h"
#include "tokenizer/spm_bpe.h"

namespace glassbox::convert_detail {
namespace {

namespace fs = std::filesystem;
using Meta = std::vector<std::pair<std::string, GgufValue>>;

void require(bool ok, ErrorCode code, const std::string& what) {
  if (!ok) throw Error(code, what);
}

// tokenizer.ggml.* from a llama2.c vocabulary file.
void add_llama2c_vocab(Meta& meta, const std::string& vocab_path, int64_t d_vocab) {
  const auto file = MappedFile::open(vocab_path);
  const SpmVocab v =
      parse_llama2c_vocab({file->data(), file->size()}, static_cast<int32_t>(d_vocab), vocab_path);
  std::vector<GgufValue> tokens, scores, types;
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    tokens.push_back(gguf_string(v.pieces[i]));
    scores.push_back(gguf_float(GgufType::kF32, v.scores[i]));
    types.push_back(gguf_int(GgufType::kI32, static_cast<int64_t>(v.types[i])));
  }
  meta.emplace_back("tokenizer.ggml.model", gguf_string("llama"));
  meta.emplace_back("tokenizer.ggml.tokens", gguf_array(GgufType::kString, std::move(tokens)));
  meta.emplace_back("tokenizer.ggml.scores", gguf_array(GgufType::kF32, std::move(scores)));
  meta.emplace_back("tokenizer.ggml.token_type", gguf_array(GgufType::kI32, std::move(types)));
  meta.emplace_back("tokenizer.ggml.unknown_token_id", gguf_int(GgufType::kU32, v.unk_id));
  if (v.bos_id)
    meta.emplace_back("tokenizer.ggml.bos_token_id", gguf_int(GgufType::kU32, *v.bos_id));
  if (v.eos_id)
    meta.emplace_back("tokenizer.ggml.eos_token_id", gguf_int(GgufType::kU32, *v.eos_id));
}

// tokenizer.ggml.* from a vocabulary file: a tokenizer.json (byte-level BPE, "gpt2") or a
// llama2.c tok*.bin ("llama").
void add_vocab(Meta& meta, const std::string& vocab_path, int64_t d_vocab) {
  if (vocab_path.ends_with(".json")) {
    for (auto& kv : gguf_bpe_metadata(load_bpe_spec(vocab_path), vocab_path))
      meta.push_back(std::move(kv));
  } else {
    add_llama2c_vocab(meta, vocab_path, d_vocab);
  }
}

// Llama 3 rope scaling as llama.cpp stores it in GGUF: rope_freqs.weight, the divisor of each
// inverse frequency (scaled = unscaled / factor), so any reader recovers the scaled frequencies.
Tensor rope_freqs_tensor(const ModelConfig& c) {
  ModelConfig plain = c;
  plain.rope_scaling = RopeScaling();
  plain.rope_freq_factors.clear();
  const std::vector<double> base = rope_inv_freq(plain), scaled = rope_inv_freq(c);
  Tensor t = Tensor::zeros(DType::kF32, {static_cast<int64_t>(base.size())});
  float* f = t.mutable_data<float>();
  for (size_t i = 0; i < base.size(); ++i) f[i] = static_cast<float>(base[i] / scaled[i]);
  return t;
}

// The period p with "layer l is local iff l % p < p - 1" (llama.cpp's sliding_window_pattern;
// 0 = every layer) that gives `local`, or -1 when none does.
int64_t swa_period(const std::vector<uint8_t>& local) {
  const auto n = static_cast<int64_t>(local.size());
  for (int64_t p = 0; p <= n + 1; ++p) {
    bool ok = true;
    for (int64_t l = 0; l < n && ok; ++l) {
      ok = (local[static_cast<size_t>(l)] != 0) == (p == 0 || l % p < p - 1);
    }
    if (ok) return p;
  }
  return -1;
}

// The llama-family keys beyond the common ones. Refuses (naming the setting) what llama.cpp's
// reader of that architecture would read differently, since a GGUF must mean the same to both.
void add_llama_family_keys(Meta& meta, const ModelConfig& c, const std::string& path) {
  const std::string& a = c.architecture;
  const auto u32 = [](int64_t v) { return gguf_int(GgufType::kU32, v); };
  const auto f32 = [](double v) { return gguf_float(GgufType::kF32, v); };
  const bool gemma = a == "gemma2" || a == "gemma3";
  if (c.sliding_window > 0) {
    meta.emplace_back(a + ".attention.sliding_window", u32(c.sliding_window));
    if (!c.local_layers.empty()) {
      const int64_t p = swa_period(c.local_layers);
      require(p >= 0, ErrorCode::kUnsupported,
              path + ": this model's sliding-window layers follow no period GGUF can state");
      meta.emplace_back(a + ".attention.sliding_window_pattern", u32(p));
    }
  }
  if (c.rope_theta_local > 0.0)
    meta.emplace_back(a + ".rope.freq_base_swa", f32(c.rope_theta_local));
  if (c.rope_linear_factor != 1.0) {
    meta.emplace_back(a + ".rope.scaling.type", gguf_string("linear"));
    meta.emplace_back(a + ".rope.scaling.factor", f32(c.rope_linear_factor));
  }
  if (gemma) {
    const double inferred =
        1.0 / std::sqrt(static_cast<double>(arch::gguf_query_pre_attn_scalar(c)));
    require(std::abs(c.query_scale() - inferred) <= 1e-6 * inferred, ErrorCode::kUnsupported,
            path + ": query_pre_attn_scalar " +
                std::to_string(1.0 / (c.query_scale() * c.query_scale())) +
                " differs from what GGUF readers infer for " + a + " (" +
                std::to_string(1.0 / (inferred * inferred)) + "); GGUF has no key for it");
    require(c.sliding_window > 0, ErrorCode::kUnsupported,
            path + ": " + a + " without a sliding window cannot be stated in GGUF");
  }
  if (a == "gemma2") {
    require(c.attn_softcap > 0.0 && c.final_softcap > 0.0, ErrorCode::kUnsupported,
            path +
                ": gemma2 GGUF readers soft-cap always (50 / 30 when unstated); this model "
                "has soft-capping off");
    meta.emplace_back(a + ".attn_logit_softcapping", f32(c.attn_softcap));
    meta.emplace_back(a + ".final_logit_softcapping", f32(c.final_softcap));
  } else {
    require(c.attn_softcap == 0.0 && (c.final_softcap == 0.0 || a == "gemma3"),
            ErrorCode::kUnsupported,
            path + ": GGUF " + a + " has no attention/logit soft-capping key");
    if (c.final_softcap > 0.0)
      meta.emplace_back(a + ".final_logit_softcapping", f32(c.final_softcap));
  }
}

// Phi-3's GGUF keeps the gated MLP fused: ffn_up = [gate; up] rows, no ffn_gate.
Named fuse_gate_up(const Named& named) {
  Named out;
  for (const auto& [name, t] : named) {
    if (name.ends_with(".ffn_gate.weight")) continue;
    if (name.ends_with(".ffn_up.weight")) {
      const std::string base = name.substr(0, name.size() - std::string("ffn_up.weight").size());
      out.emplace_back(name, concat_rows({find_named(named, base + "ffn_gate.weight"), t}));
      continue;
    }
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace

void write_gguf_model(const Model& m, const std::string& path, const Plan& plan,
                      const std::string& vocab_path, ThreadPool& pool) {
  const ModelConfig& c = m.config();
  const std::string a = c.architecture;
  const auto u32 = [](int64_t v) { return gguf_int(GgufType::kU32, v); };
  Meta meta = {{"general.architecture", gguf_string(a)},
               {"general.name", gguf_string(fs::path(m.path()).stem().string())},
               {"general.file_type", u32(plan.file_type)},
               {a + ".context_length", u32(c.n_ctx)},
               {a + ".embedding_length", u32(c.d_model)},
               {a + ".feed_forward_length", u32(c.d_mlp)},
               {a + ".block_count", u32(c.n_layers)},
               {a + ".attention.head_count", u32(c.n_heads)}};
  if (c.norm == NormType::kRms) {
    meta.emplace_back(a + ".attention.head_count_kv", u32(c.n_kv_heads));
    meta.emplace_back(a + ".attention.key_length", u32(c.d_head));
    meta.emplace_back(a + ".attention.value_length", u32(c.d_head));
    meta.emplace_back(a + ".attention.layer_norm_rms_epsilon",
                      gguf_float(GgufType::kF32, c.norm_eps));
    meta.emplace_back(a + ".rope.freq_base", gguf_float(GgufType::kF32, c.rope_theta));
    meta.emplace_back(a + ".rope.dimension_count", u32(c.rope_dims));
    add_llama_family_keys(meta, c, path);
  } else {
    meta.emplace_back(a + ".attention.layer_norm_epsilon", gguf_float(GgufType::kF32, c.norm_eps));
  }
  if (m.gguf() != nullptr) {
    for (const auto& [key, value] : m.gguf()->metadata())
      if (key.starts_with("tokenizer.")) meta.emplace_back(key, value);
  } else if (!vocab_path.empty()) {
    add_vocab(meta, vocab_path, c.d_vocab);
  }
  // llama.cpp's converters permute Q/K rows to adjacent pairs for `llama` only.
  Named named =
      canonical(m, a == "llama" || a == "gpt2" ? RopeStyle::kInterleaved : RopeStyle::kNeox);
  if (a == "phi3") named = fuse_gate_up(named);
  if (a == "gpt2" || a == "phi3") {  // llama.cpp's gpt2 and phi3 keep q, k, v fused
    Named fused;
    for (auto& [name, t] : named) {
      const size_t at = name.find(".attn_q.");
      if (name.find(".attn_k.") != std::string::npos || name.find(".attn_v.") != std::string::npos)
        continue;
      if (at == std::string::npos) {
        fused.emplace_back(name, t);
        continue;
      }
      const std::string base = name.substr(0, at), kind = name.substr(at + 8);
      fused.emplace_back(base + ".attn_qkv." + kind,
                         concat_rows({t, find_named(named, base + ".attn_k." + kind),
                                      find_named(named, base + ".attn_v." + kind)}));
    }
    named = std::move(fused);
  }
  for (auto& [name, t] : named)
    t = retype(t, dtype_for(name, t, plan, c.n_layers, !c.tied_embeddings), pool);
  if (c.rope_scaling.factor != 0.0 || !c.rope_freq_factors.empty()) {
    named.emplace_back("rope_freqs.weight", rope_freqs_tensor(c));
  }
  write_gguf(path, meta, named);
}

void write_gguf_vocab(const std::string& vocab_path, const std::string& path) {
  const std::string name = fs::path(vocab_path).parent_path().filename().string();
  Meta meta = {{"general.architecture", gguf_string("llama")}, {"general.name", gguf_string(name)}};
  add_vocab(meta, vocab_path, 0);
  write_gguf(path, meta, {});
}

void write_llama2c_model(const Model& m, const std::string& path, const Plan& plan) {
  const ModelConfig& c = m.config();
  require(c.architecture == "llama", ErrorCode::kUnsupported,
          path + ": llama2.c checkpoints hold llama models only, not " + c.architecture);
  require(plan.base == DType::kF32, ErrorCode::kUnsupported,
          path + ": llama2.c checkpoints hold f32 weights only (use --type f32)");
  require(c.sliding_window == 0 && !c.qkv_bias && !c.out_bias && c.rope_linear_factor == 1.0,
          ErrorCode::kUnsupported,
          path + ": llama2.c checkpoints hold no biases, sliding window or rope scaling");
  require(c.rope_theta == 10000.0 && c.rope_dims == c.d_head && c.rope_scaling.factor == 0.0 &&
              c.rope_freq_factors.empty() && std::abs(c.norm_eps - 1e-5) < 1e-9 &&
              c.q_dim() == c.d_model,
          ErrorCode::kUnsupported,
          path +
              ": llama2.c assumes rope theta 10000 over whole heads, eps 1e-5 and "
              "n_heads * d_head == d_model; this model differs");
  const Named named = canonical(m, RopeStyle::kInterleaved);
  const auto get = [&](const std::string& n) { return as_f32(find_named(named, n)); };
  AtomicFile out(path);
  const int32_t header[7] = {static_cast<int32_t>(c.d_model),
                             static_cast<int32_t>(c.d_mlp),
                             static_cast<int32_t>(c.n_layers),
                             static_cast<int32_t>(c.n_heads),
                             static_cast<int32_t>(c.n_kv_heads),
                             static_cast<int32_t>(c.tied_embeddings ? c.d_vocab : -c.d_vocab),
                             static_cast<int32_t>(c.n_ctx)};
  out.write(header, sizeof(header));
  const auto put = [&](const Tensor& t) { out.write(t.raw(), t.nbytes()); };
  put(get("token_embd.weight"));
  for (const char* part : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                           "ffn_gate", "ffn_down", "ffn_up"}) {
    for (int64_t l = 0; l < c.n_layers; ++l)
      put(get("blk." + std::to_string(l) + "." + part + ".weight"));
  }
  put(get("output_norm.weight"));
  // Legacy RoPE tables [n_ctx, d_head / 2] (cos, then sin), which old readers expect.
  std::vector<float> cos_t, sin_t;
  for (int64_t p = 0; p < c.n_ctx; ++p) {
    for (int64_t i = 0; i < c.d_head / 2; ++i) {
      const double angle = p * std::pow(c.rope_theta, -2.0 * i / c.d_head);
      cos_t.push_back(static_cast<float>(std::cos(angle)));
      sin_t.push_back(static_cast<float>(std::sin(angle)));
    }
  }
  out.write(cos_t.data(), cos_t.size() * 4);
  out.write(sin_t.data(), sin_t.size() * 4);
  if (!c.tied_embeddings) put(get("output.weight"));
  out.commit();
}

void write_hf_model(const Model& m, const std::string& dir, const Plan& plan, ThreadPool& pool) {
  const ModelConfig& c = m.config();
  require(
      plan.base == DType::kF32 || plan.base == DType::kF16 || plan.base == DType::kBF16,
      ErrorCode::kUnsupported,
      dir + ": safetensors checkpoints hold f32, f16 or bf16 weights (use --type f32|f16|bf16)");
  require(!fs::exists(dir) || fs::is_directory(dir), ErrorCode::kInvalidArgument,
          dir + ": an HF checkpoint is a directory (or give a .gguf / .bin file name)");
  fs::create_directories(dir);
  nlohmann::json cfg;
  Named out;
  const Named named = canonical(m, RopeStyle::kNeox);
  const auto type_of = [&](const Tensor& t) { return t.ndim() < 2 ? DType::kF32 : plan.base; };
  require(c.architecture == "llama" || c.architecture == "gpt2", ErrorCode::kUnsupported,
          dir + ": writing " + c.architecture +
              " as an HF checkpoint is not supported (llama and gpt2 are; write GGUF instead)");
  if (c.architecture == "llama") {
    require(c.rope_freq_factors.empty(), ErrorCode::kUnsupported,
            dir +
                ": this GGUF's rope_freqs.weight (per-frequency rope factors) has no HF "
                "config.json equivalent");
    require(c.rope_linear_factor == 1.0 && !c.qk_norm && !c.post_norms, ErrorCode::kUnsupported,
            dir + ": this llama model has settings LlamaForCausalLM cannot state");
    const bool mistral = c.sliding_window > 0;  // Llama with a window is Mistral's class
    cfg = {{"architectures", {mistral ? "MistralForCausalLM" : "LlamaForCausalLM"}},
           {"model_type", mistral ? "mistral" : "llama"},
           {"hidden_size", c.d_model},
           {"intermediate_size", c.d_mlp},
           {"num_hidden_layers", c.n_layers},
           {"num_attention_heads", c.n_heads},
           {"num_key_value_heads", c.n_kv_heads},
           {"head_dim", c.d_head},
           {"rms_norm_eps", c.norm_eps},
           {"rope_theta", c.rope_theta},
           {"max_position_embeddings", c.n_ctx},
           {"vocab_size", c.d_vocab},
           {"tie_word_embeddings", c.tied_embeddings},
           {"hidden_act", "silu"}};
    if (mistral) cfg["sliding_window"] = c.sliding_window;
    if (c.rope_scaling.factor != 0.0) {
      cfg["rope_scaling"] = {{"rope_type", "llama3"},
                             {"factor", c.rope_scaling.factor},
                             {"low_freq_factor", c.rope_scaling.low_freq_factor},
                             {"high_freq_factor", c.rope_scaling.high_freq_factor},
                             {"original_max_position_embeddings", c.rope_scaling.original_n_ctx}};
    }
    static const std::vector<std::pair<std::string, std::string>> kNames = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"}};
    for (const auto& [name, t] : named) {
      std::string hf;
      if (name == "token_embd.weight") hf = "model.embed_tokens.weight";
      if (name == "output_norm.weight") hf = "model.norm.weight";
      if (name == "output.weight") hf = "lm_head.weight";
      for (const auto& [g, h] : kNames) {
        if (name.starts_with("blk.") && name.ends_with("." + g)) {
          hf = "model.layers." + name.substr(4, name.find('.', 4) - 4) + "." + h;
        }
      }
      require(!hf.empty(), ErrorCode::kUnsupported, dir + ": no HF name for " + name);
      out.emplace_back(hf, retype(t, type_of(t), pool));
    }
  } else {
    cfg = {{"architectures", {"GPT2LMHeadModel"}},
           {"model_type", "gpt2"},
           {"n_embd", c.d_model},
           {"n_layer", c.n_layers},
           {"n_head", c.n_heads},
           {"n_positions", c.n_ctx},
           {"n_ctx", c.n_ctx},
           {"n_inner", c.d_mlp},
           {"vocab_size", c.d_vocab},
           {"layer_norm_epsilon", c.norm_eps},
           {"activation_function", "gelu_new"}};
    const auto find = [&](const std::string& n) { return find_named(named, n); };
    const auto put = [&](const std::string& hf, const Tensor& t) {
      out.emplace_back("transformer." + hf, retype(t, type_of(t), pool));
    };
    put("wte.weight", find("token_embd.weight"));
    put("wpe.weight", find("position_embd.weight"));
    put("ln_f.weight", find("output_norm.weight"));
    put("ln_f.bias", find("output_norm.bias"));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string g = "blk." + std::to_string(l) + ".", h = "h." + std::to_string(l) + ".";
      const auto qkv = [&](const std::string& kind) {
        return concat_rows(
            {find(g + "attn_q." + kind), find(g + "attn_k." + kind), find(g + "attn_v." + kind)});
      };
      put(h + "ln_1.weight", find(g + "attn_norm.weight"));
      put(h + "ln_1.bias", find(g + "attn_norm.bias"));
      put(h + "attn.c_attn.weight", transpose_f32(qkv("weight")));  // Conv1D: [in, out]
      put(h + "attn.c_attn.bias", qkv("bias"));
      put(h + "attn.c_proj.weight", transpose_f32(find(g + "attn_output.weight")));
      put(h + "attn.c_proj.bias", find(g + "attn_output.bias"));
      put(h + "ln_2.weight", find(g + "ffn_norm.weight"));
      put(h + "ln_2.bias", find(g + "ffn_norm.bias"));
      put(h + "mlp.c_fc.weight", transpose_f32(find(g + "ffn_up.weight")));
      put(h + "mlp.c_fc.bias", find(g + "ffn_up.bias"));
      put(h + "mlp.c_proj.weight", transpose_f32(find(g + "ffn_down.weight")));
      put(h + "mlp.c_proj.bias", find(g + "ffn_down.bias"));
    }
  }
  cfg["torch_dtype"] = plan.base == DType::kF32   ? "float32"
                       : plan.base == DType::kF16 ? "float16"
                                                  : "bfloat16";
  write_safetensors((fs::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}});
  std::ofstream f(fs::path(dir) / "config.json");
  f << cfg.dump(2) << "\n";
  require(static_cast<bool>(f), ErrorCode::kIo, dir + "/config.json: cannot write");
}

}  // namespace glassbox::convert_detail
