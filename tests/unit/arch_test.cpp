// The llama-family architectures as GGUF files written here (llama.cpp's keys and tensor names):
// what each key does to the config, that the block's paths agree with each other (one prefill,
// token-by-token decode, the materialized-pattern path a scores hook forces), and refusals.
// Correctness against an independent float64 implementation is tests/reference/hf (check_hf.py,
// also through GGUF); llama.cpp's own logits on the same files are tests/reference/llama_cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "expect_error.h"
#include "io/gguf_writer.h"
#include "model/hooks.h"
#include "model/model.h"
#include "model/session.h"
#include "test_models.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using Meta = std::vector<std::pair<std::string, GgufValue>>;
using Named = std::vector<std::pair<std::string, Tensor>>;

constexpr int64_t kD = 32, kHeads = 4, kKv = 2, kHead = 8, kMlp = 48, kVocab = 64, kLayers = 3;

Tensor random_tensor(std::mt19937& rng, Shape shape, float std, float mean = 0.0f) {
  Tensor t = Tensor::zeros(DType::kF32, std::move(shape));
  std::normal_distribution<float> dist(mean, std);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

struct ArchFile {
  Meta meta;
  Named tensors;
};

// A small random model of `arch` under llama.cpp's names: phi3 with fused qkv and gate/up,
// qwen2 with q/k/v biases, qwen3/gemma3 with q/k norms, gemma with post norms.
ArchFile make_arch(const std::string& a, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  const auto u32 = [](int64_t v) { return gguf_int(GgufType::kU32, v); };
  ArchFile f;
  f.meta = {{"general.architecture", gguf_string(a)},
            {a + ".context_length", u32(256)},
            {a + ".embedding_length", u32(kD)},
            {a + ".feed_forward_length", u32(kMlp)},
            {a + ".block_count", u32(kLayers)},
            {a + ".attention.head_count", u32(kHeads)},
            {a + ".attention.head_count_kv", u32(kKv)},
            {a + ".attention.layer_norm_rms_epsilon", gguf_float(GgufType::kF32, 1e-6)}};
  const float s = 1.0f / std::sqrt(static_cast<float>(kD));
  f.tensors = {{"token_embd.weight", random_tensor(rng, {kVocab, kD}, 1.0f)},
               {"output_norm.weight", random_tensor(rng, {kD}, 0.1f, 1.0f)},
               {"output.weight", random_tensor(rng, {kVocab, kD}, 0.5f)}};
  const bool gemma = a == "gemma2" || a == "gemma3";
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    auto put = [&](const std::string& n, Tensor t) { f.tensors.emplace_back(p + n, std::move(t)); };
    put("attn_norm.weight", random_tensor(rng, {kD}, 0.1f, 1.0f));
    if (a == "phi3") {
      put("attn_qkv.weight", random_tensor(rng, {(kHeads + 2 * kKv) * kHead, kD}, 1.5f * s));
    } else {
      put("attn_q.weight", random_tensor(rng, {kHeads * kHead, kD}, 1.5f * s));
      put("attn_k.weight", random_tensor(rng, {kKv * kHead, kD}, 1.5f * s));
      put("attn_v.weight", random_tensor(rng, {kKv * kHead, kD}, s));
    }
    if (a == "qwen2") {
      put("attn_q.bias", random_tensor(rng, {kHeads * kHead}, 0.3f));
      put("attn_k.bias", random_tensor(rng, {kKv * kHead}, 0.3f));
      put("attn_v.bias", random_tensor(rng, {kKv * kHead}, 0.3f));
    }
    if (a == "qwen3" || a == "gemma3") {
      put("attn_q_norm.weight", random_tensor(rng, {kHead}, 0.2f, 1.0f));
      put("attn_k_norm.weight", random_tensor(rng, {kHead}, 0.2f, 1.0f));
    }
    put("attn_output.weight", random_tensor(rng, {kD, kHeads * kHead}, s));
    put("ffn_norm.weight", random_tensor(rng, {kD}, 0.1f, 1.0f));
    if (gemma) {
      put("post_attention_norm.weight", random_tensor(rng, {kD}, 0.1f, 1.0f));
      put("post_ffw_norm.weight", random_tensor(rng, {kD}, 0.1f, 1.0f));
    }
    if (a == "phi3") {
      put("ffn_up.weight", random_tensor(rng, {2 * kMlp, kD}, s));
    } else {
      put("ffn_gate.weight", random_tensor(rng, {kMlp, kD}, s));
      put("ffn_up.weight", random_tensor(rng, {kMlp, kD}, s));
    }
    put("ffn_down.weight", random_tensor(rng, {kD, kMlp}, 1.0f / std::sqrt(float(kMlp))));
  }
  return f;
}

std::string write_file(const ArchFile& f, const std::string& name) {
  const std::string path = (fs::path(::testing::TempDir()) / (name + ".gguf")).string();
  write_gguf(path, f.meta, f.tensors);
  return path;
}

void set(ArchFile& f, const std::string& key, GgufValue v) {
  for (auto& [k, old] : f.meta) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  f.meta.emplace_back(key, std::move(v));
}

std::vector<int32_t> ids(int n) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + 11) % kVocab);
  return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0.0;
  for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i)
    m = std::max(m, static_cast<double>(std::abs(a.floats()[i] - b.floats()[i])));
  return m;
}

// Logits of one prefill, of token-by-token decode, and of a prefill with a scores hook on every
// layer (the materialized path) must agree; 80 tokens cross a 64-query chunk and a window of 5.
void expect_paths_agree(const Model& m) {
  const std::vector<int32_t> t = ids(80);
  Session a(m, {.n_threads = 2});
  const Tensor prefill = a.forward(t);
  Session b(m, {.n_threads = 2});
  Tensor decoded = Tensor::zeros(DType::kF32, prefill.shape());
  for (size_t i = 0; i < t.size(); ++i) {
    const Tensor row = b.forward(std::span<const int32_t>(&t[i], 1));
    std::copy_n(row.floats().data(), kVocab, decoded.mutable_data<float>() + i * kVocab);
  }
  EXPECT_LT(max_abs_diff(prefill, decoded), 2e-4) << m.config().architecture << " decode";
  Session c(m, {.n_threads = 2});
  std::vector<HookHandle> handles;
  for (int l = 0; l < kLayers; ++l) {
    handles.push_back(c.hooks().add("blocks." + std::to_string(l) + ".attn.hook_attn_scores",
                                    [](const HookEvent&, Tensor&) {}));
  }
  EXPECT_LT(max_abs_diff(prefill, c.forward(t)), 2e-4) << m.config().architecture << " pattern";
  // Two calls continue the cache as one does.
  Session d(m, {.n_threads = 2});
  d.forward(std::span<const int32_t>(t.data(), 30));
  const Tensor tail = d.forward(std::span<const int32_t>(t.data() + 30, 50));
  const Tensor want = Tensor::view(DType::kF32, {50, kVocab},
                                   const_cast<float*>(prefill.floats().data()) + 30 * kVocab);
  EXPECT_LT(max_abs_diff(want, tail), 2e-4) << m.config().architecture << " two calls";
}

TEST(Arch, KeysBecomeFlags) {
  {
    const Model m = load_model(write_file(make_arch("qwen2"), "qwen2"));
    EXPECT_TRUE(m.config().qkv_bias);
    EXPECT_FALSE(m.config().out_bias);
    EXPECT_EQ(m.config().rope_style, RopeStyle::kNeox);
  }
  {
    const Model m = load_model(write_file(make_arch("llama"), "llama"));
    EXPECT_EQ(m.config().rope_style, RopeStyle::kInterleaved);
    EXPECT_EQ(m.config().sliding_window, 0);
  }
  {
    ArchFile f = make_arch("gemma2");
    const Model m = load_model(write_file(f, "gemma2_defaults"));
    // llama.cpp's defaults when the keys are absent: soft-caps 50 / 30, window 4096 on even layers.
    EXPECT_EQ(m.config().attn_softcap, 50.0);
    EXPECT_EQ(m.config().final_softcap, 30.0);
    EXPECT_EQ(m.config().sliding_window, 4096);
    EXPECT_EQ(m.config().local_layers, (std::vector<uint8_t>{1, 0, 1}));
    EXPECT_TRUE(m.config().scale_embeddings && m.config().post_norms);
    EXPECT_EQ(m.config().mlp, MlpType::kGatedGelu);
    EXPECT_NEAR(m.config().query_scale(), 1.0 / std::sqrt(8.0), 1e-12);
  }
  {
    ArchFile f = make_arch("gemma3");
    const Model plain = load_model(write_file(f, "gemma3_nowindow"));
    EXPECT_EQ(plain.config().sliding_window, 0);  // no key: no local layers at all
    EXPECT_EQ(plain.config().final_softcap, 0.0);
    set(f, "gemma3.attention.sliding_window", gguf_int(GgufType::kU32, 5));
    set(f, "gemma3.attention.sliding_window_pattern", gguf_int(GgufType::kU32, 2));
    set(f, "gemma3.rope.scaling.type", gguf_string("linear"));
    set(f, "gemma3.rope.scaling.factor", gguf_float(GgufType::kF32, 8.0));
    const Model m = load_model(write_file(f, "gemma3_window"));
    EXPECT_EQ(m.config().local_layers, (std::vector<uint8_t>{1, 0, 1}));
    EXPECT_EQ(m.config().rope_theta_local, 10000.0);
    EXPECT_EQ(m.config().rope_linear_factor, 8.0);
    EXPECT_TRUE(m.config().qk_norm);
    // The local layers' frequencies are unscaled; the global ones divided by the factor.
    const auto global = rope_inv_freq(m.config()), local = rope_inv_freq(m.config(), true);
    EXPECT_NEAR(global[1] * 8.0, std::pow(10000.0, -2.0 / kHead), 1e-15);
    EXPECT_NEAR(local[1], std::pow(10000.0, -2.0 / kHead), 1e-15);
    std::vector<GgufValue> pattern;
    for (bool b : {false, true, true}) pattern.push_back(gguf_bool(b));
    set(f, "gemma3.attention.sliding_window_pattern", gguf_array(GgufType::kBool, pattern));
    EXPECT_EQ(load_model(write_file(f, "gemma3_array")).config().local_layers,
              (std::vector<uint8_t>{0, 1, 1}));
  }
}

TEST(Arch, PathsAgreeForEveryArchitecture) {
  for (const char* a : {"llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"}) {
    ArchFile f = make_arch(a);
    set(f, std::string(a) + ".attention.sliding_window", gguf_int(GgufType::kU32, 5));
    if (std::string(a) == "gemma2") {
      set(f, "gemma2.attn_logit_softcapping", gguf_float(GgufType::kF32, 2.0));
      set(f, "gemma2.final_logit_softcapping", gguf_float(GgufType::kF32, 3.0));
    }
    const Model m = load_model(write_file(f, std::string("paths_") + a));
    EXPECT_EQ(m.config().sliding_window, 5) << a;
    expect_paths_agree(m);
  }
}

TEST(Arch, FeaturesChangeTheResult) {
  // Each flag must matter: the window (beyond it), the soft-caps, and the local RoPE base.
  const std::vector<int32_t> t = ids(40);
  auto logits = [&](ArchFile f, const std::string& name) {
    const Model m = load_model(write_file(f, name));
    Session s(m, {.n_threads = 1});
    return s.forward(t);
  };
  ArchFile base = make_arch("gemma3");
  set(base, "gemma3.attention.sliding_window", gguf_int(GgufType::kU32, 64));
  ArchFile narrow = base;
  set(narrow, "gemma3.attention.sliding_window", gguf_int(GgufType::kU32, 4));
  ArchFile local_base = base;
  set(local_base, "gemma3.rope.freq_base_swa", gguf_float(GgufType::kF32, 100.0));
  ArchFile capped = base;
  set(capped, "gemma3.final_logit_softcapping", gguf_float(GgufType::kF32, 1.0));
  const Tensor ref = logits(base, "feat_base");
  EXPECT_GT(max_abs_diff(ref, logits(narrow, "feat_narrow")), 1e-2);
  EXPECT_GT(max_abs_diff(ref, logits(local_base, "feat_local")), 1e-2);
  const Tensor cap = logits(capped, "feat_capped");
  EXPECT_GT(max_abs_diff(ref, cap), 1e-2);
  for (float v : cap.floats()) EXPECT_LE(std::abs(v), 1.0f);
}

TEST(Arch, HookPointsPerArchitecture) {
  const auto has = [](const Model& m, const std::string& name) {
    const auto hooks = available_hooks(m.config());
    return std::find(hooks.begin(), hooks.end(), name) != hooks.end();
  };
  const Model qwen3 = load_model(write_file(make_arch("qwen3"), "hooks_qwen3"));
  EXPECT_TRUE(has(qwen3, "blocks.0.attn.q_norm.hook_scale"));
  EXPECT_TRUE(has(qwen3, "blocks.2.attn.k_norm.hook_normalized"));
  EXPECT_FALSE(has(qwen3, "blocks.0.ln1_post.hook_scale"));
  const Model gemma2 = load_model(write_file(make_arch("gemma2"), "hooks_gemma2"));
  EXPECT_TRUE(has(gemma2, "blocks.1.ln1_post.hook_normalized"));
  EXPECT_TRUE(has(gemma2, "blocks.1.ln2_post.hook_scale"));
  EXPECT_FALSE(has(gemma2, "blocks.0.attn.q_norm.hook_scale"));
  // Shapes of the per-head norm hooks, and a hook there changes the result.
  Session s(qwen3, {.n_threads = 1});
  const std::vector<int32_t> t = ids(6);
  const Tensor clean = s.forward(t);
  s.reset();
  Shape seen;
  auto h = s.hooks().add("blocks.1.attn.q_norm.hook_scale", [&](const HookEvent&, Tensor& x) {
    seen = x.shape();
    float* p = x.mutable_data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] *= 2.0f;
  });
  const Tensor patched = s.forward(t);
  EXPECT_EQ(seen, (Shape{6, kHeads, 1}));
  EXPECT_GT(max_abs_diff(clean, patched), 1e-3);
}

// tests/data/hooks/<arch>.txt lists TL's names as the float64 reference (tests/reference/hf)
// does, blocks as "blocks.{L}.suffix"; glassbox must list exactly those, in that order.
std::vector<std::string> golden_hooks(const std::string& arch, int64_t n_layers) {
  std::ifstream in(testing::repo_path("tests/data/hooks/" + arch + ".txt"));
  EXPECT_TRUE(in) << arch;
  std::vector<std::string> model_pre, block, model_post;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("blocks.{L}.")) {
      block.push_back(line.substr(11));
    } else {
      (block.empty() ? model_pre : model_post).push_back(line);
    }
  }
  std::vector<std::string> names = model_pre;
  for (int64_t l = 0; l < n_layers; ++l) {
    for (const std::string& s : block) names.push_back("blocks." + std::to_string(l) + "." + s);
  }
  names.insert(names.end(), model_post.begin(), model_post.end());
  return names;
}

TEST(Arch, HookNamesMatchTheGoldenFiles) {
  for (const char* a : {"llama", "qwen2", "qwen3", "phi3", "gemma2", "gemma3"}) {
    const Model m = load_model(write_file(make_arch(a), std::string("golden_") + a));
    EXPECT_EQ(available_hooks(m.config()), golden_hooks(a, kLayers)) << a;
  }
  ArchFile mistral = make_arch("llama");
  set(mistral, "llama.attention.sliding_window", gguf_int(GgufType::kU32, 8));
  EXPECT_EQ(available_hooks(load_model(write_file(mistral, "golden_mistral")).config()),
            golden_hooks("mistral", kLayers));
  ModelConfig gpt2;
  gpt2.n_layers = 2;
  gpt2.position = PositionType::kLearned;
  gpt2.norm = NormType::kLayer;
  gpt2.mlp = MlpType::kGelu;
  EXPECT_EQ(available_hooks(gpt2), golden_hooks("gpt2", 2));
}

TEST(Arch, Refusals) {
  using testing::expect_error;
  {
    ArchFile f = make_arch("gemma2");
    set(f, "gemma2.rope.scaling.type", gguf_string("yarn"));
    set(f, "gemma2.rope.scaling.factor", gguf_float(GgufType::kF32, 4.0));
    const std::string path = write_file(f, "bad_scaling");
    expect_error([&] { load_model(path); }, ErrorCode::kUnsupported, "rope.scaling.type 'yarn'");
  }
  {
    ArchFile f = make_arch("gemma3");
    set(f, "gemma3.attention.sliding_window", gguf_int(GgufType::kU32, 5));
    set(f, "gemma3.attention.sliding_window_pattern",
        gguf_array(GgufType::kBool, {gguf_bool(true)}));
    const std::string path = write_file(f, "bad_pattern");
    expect_error([&] { load_model(path); }, ErrorCode::kFormat, "one per layer (3)");
  }
  {
    ArchFile f = make_arch("llama");
    set(f, "general.architecture", gguf_string("mamba"));
    const std::string path = write_file(f, "bad_arch");
    expect_error([&] { load_model(path); }, ErrorCode::kUnsupported,
                 "'mamba' is not supported (supported: llama, qwen2, qwen3, phi3, gemma2, gemma3, "
                 "gpt2)");
  }
  {
    ArchFile f = make_arch("qwen3");
    f.tensors.erase(
        std::remove_if(f.tensors.begin(), f.tensors.end(),
                       [](const auto& kv) { return kv.first == "blk.1.attn_k_norm.weight"; }),
        f.tensors.end());
    const std::string path = write_file(f, "missing_norm");
    expect_error([&] { load_model(path); }, ErrorCode::kFormat,
                 "missing tensor blk.1.attn_k_norm.weight");
  }
  {
    ArchFile f = make_arch("qwen3");
    f.meta.erase(std::remove_if(f.meta.begin(), f.meta.end(),
                                [](const auto& kv) { return kv.first == "qwen3.block_count"; }),
                 f.meta.end());
    const std::string path = write_file(f, "missing_key");
    expect_error([&] { load_model(path); }, ErrorCode::kNotFound,
                 "missing metadata key qwen3.block_count");
  }
}

}  // namespace
}  // namespace glassbox
