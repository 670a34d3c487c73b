#include "model/hooks.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "model/model.h"
#include "model/run.h"
#include "model/session.h"
#include "test_models.h"

namespace glassbox {
namespace {

using testing::repo_path;
using testing::stories260k;

class HooksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new Model(load_model(stories260k())); }
  static void TearDownTestSuite() { delete model_; }
  static std::vector<int32_t> tokens(int n) {
    std::vector<int32_t> ids = {1};
    for (int i = 1; i < n; ++i) ids.push_back((i * 37 + 11) % 512);
    return ids;
  }
  static double max_abs_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    double m = 0.0;
    for (int64_t i = 0; i < a.numel(); ++i)
      m = std::max(m, static_cast<double>(std::abs(a.floats()[i] - b.floats()[i])));
    return m;
  }
  static Model* model_;
};
Model* HooksTest::model_ = nullptr;

TEST(HookNames, RoundTripAndRejects) {
  ModelConfig c;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_head = 2;
  c.d_model = 8;
  c.d_mlp = 16;
  for (const std::string& name : available_hooks(c)) {
    const auto parsed = parse_hook_name(name);
    ASSERT_TRUE(parsed) << name;
    EXPECT_EQ(hook_name_string(*parsed), name);
  }
  EXPECT_EQ(available_hooks(c).size(), 3u + 3u * 20u);
  for (const char* bad : {"blocks.01.hook_resid_pre", "blocks.x.hook_resid_pre", "hook_resid_pre",
                          "blocks.0.hook_foo", "blocks..hook_resid_pre", "blocks.0.", "",
                          "blocks.-1.hook_resid_pre", "ln_final.hook_scale "}) {
    EXPECT_FALSE(parse_hook_name(bad)) << bad;
  }
  try {
    resolve_hook_name("blocks.3.hook_resid_pre", c);
    FAIL() << "layer 3 of 3 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("layers are 0..2"), std::string::npos) << e.what();
  }
}

// The golden file pins every hook name and TL shape of the llama architecture (stories260K).
TEST_F(HooksTest, GoldenHookList) {
  const ModelConfig& c = model_->config();
  std::ostringstream got;
  for (const std::string& name : available_hooks(c)) {
    const Shape s = hook_shape(resolve_hook_name(name, c).point, c, 7, 9);
    got << name << " " << shape_str(s) << "\n";
  }
  std::ifstream f(repo_path("tests/golden/hooks_llama_stories260K.txt"));
  ASSERT_TRUE(f) << "missing golden file";
  std::stringstream want;
  want << f.rdbuf();
  EXPECT_EQ(got.str(), want.str());
}

// GPT-2: learned positions add hook_pos_embed; no RoPE means no hook_rot_q/k; the plain MLP has
// no hook_pre_linear. Golden list written by hand from TransformerLens' GPT-2 hooks.
TEST(HookNames, Gpt2GoldenHookList) {
  ModelConfig c;
  c.architecture = "gpt2";
  c.d_model = 16;
  c.d_mlp = 64;
  c.n_layers = 2;
  c.n_heads = c.n_kv_heads = 4;
  c.d_head = 4;
  c.position = PositionType::kLearned;
  c.norm = NormType::kLayer;
  c.mlp = MlpType::kGelu;
  std::ostringstream got;
  for (const std::string& name : available_hooks(c)) {
    got << name << " " << shape_str(hook_shape(resolve_hook_name(name, c).point, c, 7, 9)) << "\n";
  }
  std::ifstream f(repo_path("tests/golden/hooks_gpt2_2layer.txt"));
  ASSERT_TRUE(f) << "missing golden file";
  std::stringstream want;
  want << f.rdbuf();
  EXPECT_EQ(got.str(), want.str());
  for (const char* missing : {"blocks.0.attn.hook_rot_q", "blocks.1.mlp.hook_pre_linear"}) {
    try {
      resolve_hook_name(missing, c);
      FAIL() << missing << " accepted for gpt2";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kNotFound);
      EXPECT_NE(std::string(e.what()).find("gpt2 architecture has no such point"),
                std::string::npos)
          << e.what();
    }
  }
  HookRegistry reg(c);
  EXPECT_THROW(reg.add(HookName{HookPoint::kAttnRotK, 0}, [](const HookEvent&, Tensor&) {}), Error);
}

TEST_F(HooksTest, HandlesRemoveHooksAtScopeExit) {
  Session s(*model_);
  {
    auto h1 = s.hooks().add("blocks.0.hook_resid_pre", [](const HookEvent&, Tensor&) {});
    auto h2 = s.hooks().add("hook_embed", [](const HookEvent&, Tensor&) {});
    EXPECT_EQ(s.hooks().size(), 2u);
    HookHandle moved = std::move(h1);
    EXPECT_EQ(s.hooks().size(), 2u);
  }
  EXPECT_EQ(s.hooks().size(), 0u);
  EXPECT_THROW(s.hooks().add("blocks.5.hook_resid_pre", [](const HookEvent&, Tensor&) {}), Error);
}

TEST_F(HooksTest, HookSitesDoNotChangeResults) {
  const auto ids = tokens(40);
  Session plain(*model_);
  SessionOptions forced;
  forced.force_hook_sites = true;
  Session checked(*model_, forced);
  EXPECT_EQ(max_abs_diff(plain.forward(ids), checked.forward(ids)), 0.0);
}

TEST_F(HooksTest, IncrementalDecodeMatchesPrefillAndFiresHooks) {
  const auto ids = tokens(24);
  Session full(*model_);
  const Tensor all = full.forward(ids);
  Session inc(*model_);
  std::vector<int64_t> starts;
  std::vector<Shape> shapes;
  auto h = inc.hooks().add("blocks.2.attn.hook_pattern", [&](const HookEvent& ev, Tensor& act) {
    starts.push_back(ev.pos_start);
    shapes.push_back(act.shape());
  });
  inc.forward(std::span<const int32_t>(ids.data(), 10));
  for (size_t i = 10; i < ids.size(); ++i) {
    const Tensor step = inc.forward(std::span<const int32_t>(&ids[i], 1));
    const Tensor want = all.slice_rows(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    EXPECT_LT(max_abs_diff(step, want), 1e-4) << "position " << i;
  }
  ASSERT_EQ(starts.size(), 15u);
  EXPECT_EQ(starts[0], 0);
  EXPECT_EQ(shapes[0], (Shape{8, 10, 10}));
  EXPECT_EQ(starts[1], 10);
  EXPECT_EQ(shapes[1], (Shape{8, 1, 11}));
}

TEST_F(HooksTest, PatternIsCausalAndNormalised) {
  Session s(*model_);
  const CacheRun run = run_with_cache(
      s, tokens(12), {"blocks.1.attn.hook_pattern", "blocks.1.attn.hook_attn_scores"});
  const Tensor& p = run.cache.at("blocks.1.attn.hook_pattern");
  const Tensor& sc = run.cache.at("blocks.1.attn.hook_attn_scores");
  ASSERT_EQ(p.shape(), (Shape{8, 12, 12}));
  for (int64_t h = 0; h < 8; ++h) {
    for (int64_t q = 0; q < 12; ++q) {
      double sum = 0.0;
      for (int64_t k = 0; k < 12; ++k) {
        const float v = p.floats()[(h * 12 + q) * 12 + k];
        sum += v;
        if (k > q) {
          EXPECT_EQ(v, 0.0f);
          EXPECT_TRUE(std::isinf(sc.floats()[(h * 12 + q) * 12 + k]));
        }
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST_F(HooksTest, MaterialisedAttentionMatchesStreaming) {
  const auto ids = tokens(30);
  Session s(*model_);
  const Tensor plain = s.forward(ids);
  s.reset();
  auto h = s.hooks().add("blocks.3.attn.hook_attn_scores", [](const HookEvent&, Tensor&) {});
  EXPECT_LT(max_abs_diff(plain, s.forward(ids)), 1e-5);
}

TEST_F(HooksTest, InterventionsChangeWhatTheyShould) {
  const auto ids = tokens(16);
  Session s(*model_);
  const Tensor clean = s.forward(ids);
  const CacheRun cached = run_with_cache(s, ids, {"blocks.2.hook_resid_pre", "hook_embed"});
  EXPECT_LT(max_abs_diff(clean, cached.logits), 1e-6);

  // Patching a run with its own activations is the identity.
  const Tensor self = run_with_hooks(
      s, ids,
      {{"blocks.2.hook_resid_pre", patch_hook(cached.cache.at("blocks.2.hook_resid_pre"))}});
  EXPECT_LT(max_abs_diff(clean, self), 1e-6);

  // Replacing the whole residual stream at layer 2 with another run's makes every later
  // computation, and so the logits, those of the other run.
  std::vector<int32_t> other = ids;
  for (size_t i = 1; i < other.size(); ++i) other[i] = (other[i] * 7 + 3) % 512;
  const CacheRun donor = run_with_cache(s, other, {"blocks.2.hook_resid_pre"});
  const Tensor patched = run_with_hooks(
      s, ids, {{"blocks.2.hook_resid_pre", patch_hook(donor.cache.at("blocks.2.hook_resid_pre"))}});
  EXPECT_LT(max_abs_diff(patched, donor.logits), 1e-5);
  EXPECT_GT(max_abs_diff(patched, clean), 1e-2);

  // Adding a vector at hook_embed or at blocks.0.hook_resid_pre is the same intervention.
  std::vector<float> v(64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.05f * static_cast<float>(i % 7) - 0.1f;
  const Tensor vec = Tensor::from_floats({64}, v);
  const Tensor a = run_with_hooks(s, ids, {{"hook_embed", add_vector_hook(vec, 2.0f)}});
  const Tensor b =
      run_with_hooks(s, ids, {{"blocks.0.hook_resid_pre", add_vector_hook(vec, 2.0f)}});
  EXPECT_LT(max_abs_diff(a, b), 1e-6);
  EXPECT_GT(max_abs_diff(a, clean), 1e-3);

  // Zero-ablating every attention output changes the logits; the cache still sees zeros.
  std::vector<std::pair<std::string, HookFn>> ablate;
  for (int l = 0; l < 5; ++l)
    ablate.push_back({"blocks." + std::to_string(l) + ".hook_attn_out", zero_ablate_hook()});
  const Tensor ablated = run_with_hooks(s, ids, ablate);
  EXPECT_GT(max_abs_diff(ablated, clean), 1e-2);
  {
    auto h = s.hooks().add("blocks.1.hook_attn_out", zero_ablate_hook());
    const CacheRun seen = run_with_cache(s, ids, {"blocks.1.hook_attn_out"});
    for (float x : seen.cache.at("blocks.1.hook_attn_out").floats()) ASSERT_EQ(x, 0.0f);
  }
  EXPECT_EQ(s.hooks().size(), 0u);

  // Mean-ablation over positions leaves every row equal.
  const CacheRun m = [&] {
    auto h = s.hooks().add("blocks.0.hook_mlp_out", mean_ablate_hook());
    return run_with_cache(s, ids, {"blocks.0.hook_mlp_out"});
  }();
  const Tensor& mo = m.cache.at("blocks.0.hook_mlp_out");
  for (int64_t r = 1; r < mo.dim(0); ++r)
    for (int64_t c = 0; c < 64; ++c) ASSERT_EQ(mo.floats()[r * 64 + c], mo.floats()[c]);
}

TEST_F(HooksTest, BadInputsThrowClearErrors) {
  Session s(*model_);
  const std::vector<int32_t> bad = {1, 512};
  try {
    s.forward(bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("token id 512 at position 1"), std::string::npos);
  }
  EXPECT_EQ(s.n_past(), 0);
  EXPECT_THROW(s.forward({}), Error);
  std::vector<int32_t> too_long(513, 5);
  EXPECT_THROW(s.forward(too_long), Error);
  EXPECT_THROW(run_with_cache(s, std::vector<int32_t>{1, 2}, {"blocks.0.hook_nope"}), Error);
  auto h = s.hooks().add("blocks.0.hook_resid_pre", patch_hook(Tensor::zeros(DType::kF32, {3, 5})));
  const std::vector<int32_t> ok = {1, 2};
  EXPECT_THROW(s.forward(ok), Error);  // the hook's shape check throws through forward
  EXPECT_EQ(s.n_past(), 0);
}

}  // namespace
}  // namespace glassbox

namespace glassbox {
namespace {

// forward_partial (TL's stop_at_layer): the hooks it runs see exactly what a full forward gives
// them, and the cache guard refuses to run later blocks on a partially filled cache.
TEST_F(HooksTest, PartialForwardMatchesFullAndGuardsTheCache) {
  const std::vector<int32_t> ids = tokens(20);
  Session full(*model_, SessionOptions{1});
  const CacheRun ref = run_with_cache(full, ids, {"blocks.1.hook_resid_post"});
  Session part(*model_, SessionOptions{1});
  Tensor got;
  {
    auto h = part.hooks().add("blocks.1.hook_resid_post",
                              [&](const HookEvent&, Tensor& t) { got = t.clone(); });
    part.forward_partial(ids, 2);
  }
  EXPECT_EQ(max_abs_diff(got, ref.cache.at("blocks.1.hook_resid_post")), 0.0);
  EXPECT_THROW(part.forward(std::vector<int32_t>{5}), Error);         // block 2 has no cache
  EXPECT_NO_THROW(part.forward_partial(std::vector<int32_t>{5}, 1));  // earlier blocks do
  EXPECT_THROW(part.forward_partial(ids, 9), Error);                  // past the last block
  part.reset();
  EXPECT_NO_THROW(part.forward(ids));
}

}  // namespace
}  // namespace glassbox
