#include "steer/interventions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "expect_error.h"
#include "io/npy.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

constexpr int64_t kRows = 3;
constexpr int64_t kD = 6;

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 3;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.d_head = 3;
  c.d_model = kD;
  c.d_mlp = 8;
  c.rope_dims = 2;
  return c;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Runs `fn` on a copy of `x` ([kRows, width]) as the rows at absolute positions pos_start...
std::vector<float> apply(const HookFn& fn, std::vector<float> x, int64_t width,
                         int64_t pos_start = 0) {
  Tensor t = Tensor::view(DType::kF32, {static_cast<int64_t>(x.size()) / width, width}, x.data());
  fn(HookEvent{HookName{HookPoint::kResidPost, 1}, pos_start}, t);
  return x;
}

Intervention vector_iv(InterventionKind kind, std::vector<float> v, float value) {
  Intervention iv;
  iv.kind = kind;
  iv.hook = HookName{HookPoint::kResidPost, 1};
  iv.vector = std::move(v);
  iv.value = value;
  return iv;
}

TEST(Interventions, AddScalesVectorAndHonoursPosFrom) {
  const auto x = random_floats(kRows * kD, 1);
  const auto v = random_floats(kD, 2);
  Intervention iv = vector_iv(InterventionKind::kAdd, v, 2.5f);
  auto y = apply(make_intervention_hook(iv), x, kD);
  for (int64_t i = 0; i < kRows * kD; ++i) EXPECT_EQ(y[i], x[i] + 2.5f * v[i % kD]);
  // Rows at absolute positions 10, 11, 12; only >= 11 change.
  iv.pos_from = 11;
  y = apply(make_intervention_hook(iv), x, kD, 10);
  for (int64_t i = 0; i < kD; ++i) EXPECT_EQ(y[i], x[i]);
  for (int64_t i = kD; i < kRows * kD; ++i) EXPECT_EQ(y[i], x[i] + 2.5f * v[i % kD]);
  // alpha = 0 is the identity, bit for bit.
  iv.value = 0.0f;
  iv.pos_from = 0;
  EXPECT_EQ(apply(make_intervention_hook(iv), x, kD), x);
}

TEST(Interventions, AblateAndCapMatchDirectComputation) {
  const auto x = random_floats(kRows * kD, 3);
  const auto v = random_floats(kD, 4, 3.0f);
  double n = 0;
  for (float a : v) n += double(a) * a;
  n = std::sqrt(n);
  const auto ablated =
      apply(make_intervention_hook(vector_iv(InterventionKind::kAblate, v, 0)), x, kD);
  const float cap = 0.1f;
  const auto capped =
      apply(make_intervention_hook(vector_iv(InterventionKind::kCap, v, cap)), x, kD);
  int n_capped = 0;
  for (int64_t r = 0; r < kRows; ++r) {
    double proj = 0, proj_ablated = 0, proj_capped = 0;
    for (int64_t i = 0; i < kD; ++i) {
      proj += x[r * kD + i] * v[i] / n;
      proj_ablated += ablated[r * kD + i] * v[i] / n;
      proj_capped += capped[r * kD + i] * v[i] / n;
    }
    EXPECT_NEAR(proj_ablated, 0.0, 1e-6);
    const double excess = std::max(0.0, proj - cap);
    n_capped += excess > 0;
    EXPECT_NEAR(proj_capped, std::min(proj, double(cap)), 1e-6);
    for (int64_t i = 0; i < kD; ++i) {
      EXPECT_NEAR(ablated[r * kD + i], x[r * kD + i] - proj * v[i] / n, 1e-6);
      EXPECT_NEAR(capped[r * kD + i], x[r * kD + i] - excess * v[i] / n, 1e-6);
      if (excess == 0) {
        EXPECT_EQ(capped[r * kD + i], x[r * kD + i]);  // untouched below the cap
      }
    }
  }
  EXPECT_GT(n_capped, 0);  // the data exercises both branches
  EXPECT_LT(n_capped, kRows);
  expect_error(
      [&] {
        make_intervention_hook(vector_iv(InterventionKind::kAblate, {0, 0}, 0));
      },
      ErrorCode::kInvalidArgument, "nonzero");
  // A vector of another width than the activation's rows.
  const HookFn fn = make_intervention_hook(vector_iv(InterventionKind::kAdd, {1, 2}, 1));
  expect_error([&] { apply(fn, x, kD); }, ErrorCode::kShape, "width 6, expected 2");
}

std::shared_ptr<Sae> random_sae(SaeArch arch, SaeNorm norm, std::optional<double> nsf) {
  constexpr int64_t kSae = 10;
  auto sae = std::make_shared<Sae>(Sae::zeros(arch, kD, kSae));
  const auto fill = [](Tensor& t, uint32_t seed, float scale) {
    const auto v = random_floats(static_cast<size_t>(t.numel()), seed, scale);
    std::copy(v.begin(), v.end(), t.mutable_data<float>());
  };
  fill(sae->W_enc, 10, 1.0f);
  fill(sae->W_dec, 11, 0.5f);
  fill(sae->b_dec, 12, 0.1f);
  fill(sae->b_enc, 13, 0.1f);
  if (arch == SaeArch::kTopK) sae->k = 3;
  sae->normalize_activations = norm;
  sae->norm_scaling_factor = nsf;
  sae->hook_name = "blocks.1.hook_resid_post";
  sae->validate();
  return sae;
}

// Independent form of the clamp: decode(acts') + (x - decode(acts)), with decode undoing the
// SAE's normalisation as reconstruct() does, i.e. x + reconstruct'(x) - reconstruct(x). For the
// normalised SAEs, reconstruct' is recon + s(x) * (decode(acts') - decode(acts)).
std::vector<float> clamp_direct(const Sae& sae, const std::vector<float>& x, int64_t j,
                                double value, bool scale) {
  std::vector<float> out = x;
  std::vector<float> acts(sae.d_sae), dec(kD), dec2(kD);
  for (int64_t r = 0; r < kRows; ++r) {
    const float* row = x.data() + r * kD;
    sae.encode(row, 1, acts.data());
    sae.decode(acts.data(), 1, dec.data());
    const double target = scale ? value * acts[j] : value;
    acts[j] = float(target);
    sae.decode(acts.data(), 1, dec2.data());
    double s = 1;
    double mean = 0, ss = 0;
    for (int64_t i = 0; i < kD; ++i) mean += row[i], ss += double(row[i]) * row[i];
    mean /= kD;
    if (sae.normalize_activations == SaeNorm::kConstantNormRescale) s = std::sqrt(ss / kD);
    if (sae.normalize_activations == SaeNorm::kLayerNorm) {
      double var = 0;
      for (int64_t i = 0; i < kD; ++i) var += (row[i] - mean) * (row[i] - mean);
      s = std::sqrt(var / (kD - 1));
    }
    for (int64_t i = 0; i < kD; ++i) out[r * kD + i] = float(row[i] + s * (dec2[i] - dec[i]));
  }
  return out;
}

TEST(Interventions, SaeClampKeepsErrorTerm) {
  const auto x = random_floats(kRows * kD, 20, 2.0f);
  for (const SaeNorm norm : {SaeNorm::kNone, SaeNorm::kConstantNormRescale, SaeNorm::kLayerNorm}) {
    for (const auto nsf : {std::optional<double>(), std::optional<double>(1.7)}) {
      const auto sae = random_sae(SaeArch::kRelu, norm, nsf);
      Intervention iv;
      iv.kind = InterventionKind::kClampLatent;
      iv.hook = HookName{HookPoint::kResidPost, 1};
      iv.sae = sae;
      // Find a latent active on row 0, so clamping to its own value is a real test.
      std::vector<float> acts(sae->d_sae);
      sae->encode(x.data(), 1, acts.data());
      iv.latent = std::max_element(acts.begin(), acts.end()) - acts.begin();
      ASSERT_GT(acts[iv.latent], 0.0f);
      // Clamp every row's latent to row 0's own value: row 0 is bit-identical.
      iv.value = acts[iv.latent];
      auto y = apply(make_intervention_hook(iv), x, kD);
      for (int64_t i = 0; i < kD; ++i) EXPECT_EQ(y[i], x[i]);
      // Scaling by 1 changes nothing anywhere.
      iv.kind = InterventionKind::kScaleLatent;
      iv.value = 1.0f;
      EXPECT_EQ(apply(make_intervention_hook(iv), x, kD), x);
      // Clamp to 5 and scale by 3 agree with the direct formula.
      for (const auto& [kind, value] : {std::pair{InterventionKind::kClampLatent, 5.0f},
                                        std::pair{InterventionKind::kScaleLatent, 3.0f}}) {
        iv.kind = kind;
        iv.value = value;
        y = apply(make_intervention_hook(iv), x, kD);
        const auto want =
            clamp_direct(*sae, x, iv.latent, value, kind == InterventionKind::kScaleLatent);
        double diff = 0, moved = 0;
        for (int64_t i = 0; i < kRows * kD; ++i) {
          diff = std::max(diff, double(std::abs(y[i] - want[i])));
          moved = std::max(moved, double(std::abs(y[i] - x[i])));
        }
        EXPECT_LT(diff, 1e-5) << sae_norm_name(norm);
        EXPECT_GT(moved, 1e-2) << sae_norm_name(norm);
      }
      // With the normalisations off, clamp == decode(acts') + (x - decode(acts)) literally.
      if (norm == SaeNorm::kNone && !nsf) {
        iv.kind = InterventionKind::kClampLatent;
        iv.value = 4.0f;
        y = apply(make_intervention_hook(iv), x, kD);
        std::vector<float> a(sae->d_sae), d0(kD), d1(kD);
        for (int64_t r = 0; r < kRows; ++r) {
          sae->encode(x.data() + r * kD, 1, a.data());
          sae->decode(a.data(), 1, d0.data());
          a[iv.latent] = 4.0f;
          sae->decode(a.data(), 1, d1.data());
          for (int64_t i = 0; i < kD; ++i) {
            EXPECT_NEAR(y[r * kD + i], d1[i] + (x[r * kD + i] - d0[i]), 1e-5);
          }
        }
      }
    }
  }
  Intervention bad;
  bad.kind = InterventionKind::kClampLatent;
  bad.sae = random_sae(SaeArch::kTopK, SaeNorm::kNone, std::nullopt);
  bad.latent = 10;
  expect_error([&] { make_intervention_hook(bad); }, ErrorCode::kInvalidArgument, "out of range");
}

TEST(Interventions, ControlVectorLayersFollowLlamaCpp) {
  const ModelConfig c = small_config();  // 3 layers
  ControlVector cv;
  cv.d_model = kD;
  for (int n : {1, 2, 3}) cv.directions[n] = std::vector<float>(kD, float(n));
  const auto layers = [&](int start, int end) {
    std::vector<int> out;
    for (const auto& iv : control_vector_interventions(cv, c, start, end)) {
      EXPECT_EQ(iv.hook.point, HookPoint::kResidPost);
      EXPECT_EQ(iv.vector[0], float(iv.hook.layer));
      EXPECT_EQ(iv.value, 1.0f);
      out.push_back(iv.hook.layer);
    }
    return out;
  };
  EXPECT_EQ(layers(0, 0), (std::vector<int>{1, 2}));  // default 1..n_layers; direction.3 unused
  EXPECT_EQ(layers(2, 2), (std::vector<int>{2}));
  EXPECT_EQ(layers(0, 1), (std::vector<int>{1}));  // layer 0 never steered
  EXPECT_EQ(layers(3, 5), (std::vector<int>{}));
  cv.d_model = kD + 1;
  expect_error([&] { control_vector_interventions(cv, c); }, ErrorCode::kShape, "n_embd 7");
}

class SpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("interventions_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string npy(const std::string& name, Shape shape, std::vector<float> values) {
    const std::string path = (dir_ / name).string();
    write_npy(path, Tensor::from_floats(std::move(shape), values));
    return path;
  }
  fs::path dir_;
};

TEST_F(SpecTest, ParsesSpecsAndNamesTheFlagOnErrors) {
  const ModelConfig c = small_config();
  const auto v = random_floats(kD, 5);
  const std::string vec = npy("v.npy", {kD}, v);
  std::vector<float> table(3 * kD);
  for (size_t i = 0; i < table.size(); ++i) table[i] = float(i);
  const std::string per_layer = npy("per_layer.npy", {3, kD}, table);

  Intervention iv = parse_steer_spec(vec + ":2:-1.5", c);
  EXPECT_EQ(iv.kind, InterventionKind::kAdd);
  EXPECT_EQ(iv.hook, (HookName{HookPoint::kResidPost, 2}));
  EXPECT_EQ(iv.value, -1.5f);
  EXPECT_EQ(iv.vector, v);
  iv = parse_steer_spec(per_layer + ":blocks.1.hook_resid_pre:3", c);
  EXPECT_EQ(iv.hook, (HookName{HookPoint::kResidPre, 1}));
  EXPECT_EQ(iv.vector[0], float(kD));  // row 1
  iv = parse_ablate_spec(vec + ":0", c);
  EXPECT_EQ(iv.kind, InterventionKind::kAblate);
  iv = parse_cap_spec(vec + ":1:0.25", c);
  EXPECT_EQ(iv.kind, InterventionKind::kCap);
  EXPECT_EQ(iv.value, 0.25f);

  const auto E = ErrorCode::kInvalidArgument;
  expect_error([&] { parse_steer_spec(vec + ":2", c); }, E, "--steer: expected FILE:LAYER:ALPHA");
  expect_error([&] { parse_steer_spec(vec + ":2:x", c); }, E, "'x' is not a finite number");
  expect_error([&] { parse_steer_spec(vec + ":3:1", c); }, E, "layer 3 out of range");
  expect_error([&] { parse_steer_spec(vec + ":blocks.0.hook_foo:1", c); }, E, "hook name");
  expect_error([&] { parse_ablate_spec(vec, c); }, E, "--ablate: expected FILE:LAYER");
  expect_error([&] { parse_cap_spec(vec + ":1:inf", c); }, E, "--cap: expected FILE:LAYER:MAX");
  const std::string narrow = npy("narrow.npy", {kD - 1}, std::vector<float>(kD - 1, 1.0f));
  expect_error([&] { parse_steer_spec(narrow + ":1:1", c); }, ErrorCode::kShape,
               narrow + ": vector width 5");
  const std::string zero = npy("zero.npy", {kD}, std::vector<float>(kD, 0.0f));
  expect_error([&] { parse_ablate_spec(zero + ":1", c); }, E, "nonzero");
  expect_error([&] { parse_steer_spec((dir_ / "missing.npy").string() + ":1:1", c); },
               ErrorCode::kIo, "--steer: ");
  expect_error([&] { parse_clamp_spec("sae_dir:1", c); }, E, "--clamp: expected SAE:LATENT:VALUE");
  expect_error([&] { parse_clamp_spec("sae_dir:x:1", c); }, E, "not a latent index");
}

}  // namespace
}  // namespace glassbox
