// SaeTrainer (sae/train.h): determinism per pool size, bit-identical resume, learning on
// synthetic sparse data for every architecture, the unit-norm decoder, dead-latent accounting
// and AuxK, the batchtopk threshold in the exported Sae, export = training forward, bad configs
// and state files. Gradients themselves are checked against PyTorch in
// tests/reference/sae_train.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "expect_error.h"
#include "sae/train.h"

namespace glassbox {
namespace {

using testing::expect_error;

constexpr SaeArch kArchs[] = {SaeArch::kRelu, SaeArch::kTopK, SaeArch::kBatchTopK,
                              SaeArch::kJumpRelu};

// Rows = sparse non-negative combinations (3 of n_dirs) of random unit directions, plus noise,
// with an offset so that b_dec matters.
std::vector<float> sparse_data(int64_t n, int64_t d_in, int64_t n_dirs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::mt19937_64 drng(12345);  // the same directions for every call
  std::vector<float> dirs(static_cast<size_t>(n_dirs * d_in));
  for (int64_t r = 0; r < n_dirs; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < d_in; ++i) {
      dirs[r * d_in + i] = normal(drng);
      ss += dirs[r * d_in + i] * dirs[r * d_in + i];
    }
    for (int64_t i = 0; i < d_in; ++i) dirs[r * d_in + i] /= float(std::sqrt(ss));
  }
  std::uniform_int_distribution<int64_t> pick(0, n_dirs - 1);
  std::uniform_real_distribution<float> mag(0.5f, 2.0f);
  std::vector<float> x(static_cast<size_t>(n * d_in));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < d_in; ++i) x[r * d_in + i] = 3.0f + 0.01f * normal(rng);
    for (int q = 0; q < 3; ++q) {
      const int64_t d = pick(rng);
      const float a = mag(rng);
      for (int64_t i = 0; i < d_in; ++i) x[r * d_in + i] += a * dirs[d * d_in + i];
    }
  }
  return x;
}

SaeTrainConfig small_config(SaeArch arch) {
  SaeTrainConfig c;
  c.arch = arch;
  c.d_in = 32;
  c.d_sae = 128;
  c.k = 4;
  c.batch_size = 256;
  c.total_steps = 300;
  c.lr = 3e-3;
  c.lr_warmup_steps = 10;
  c.l1_coeff = 0.02;
  c.l0_coeff = 0.02;
  c.bandwidth = 0.05;
  c.init_threshold = 0.1;
  c.dead_tokens = 256 * 50;
  c.seed = 7;
  return c;
}

bool same_floats(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  return a.numel() == b.numel() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

bool same_sae(const Sae& a, const Sae& b) {
  return same_floats(a.W_enc, b.W_enc) && same_floats(a.b_enc, b.b_enc) &&
         same_floats(a.W_dec, b.W_dec) && same_floats(a.b_dec, b.b_dec) &&
         same_floats(a.threshold, b.threshold);
}

Sae train(const SaeTrainConfig& c, int threads, int steps, const std::vector<float>& data) {
  ThreadPool pool(threads);
  SaeTrainer t(c, pool);
  t.init_from_data(data.data(), c.batch_size);
  const int64_t n_batches = static_cast<int64_t>(data.size()) / (c.batch_size * c.d_in);
  for (int s = 0; s < steps; ++s) {
    t.step(data.data() + (s % n_batches) * c.batch_size * c.d_in, c.batch_size);
  }
  return t.export_sae();
}

std::string sae_temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("glassbox_sae_train_" + std::to_string(getpid()) + "_" + name))
      .string();
}

TEST(SaeTrain, SameSeedSameWeightsPerPoolSize) {
  const auto data = sparse_data(4 * 256, 32, 64, 1);
  for (SaeArch arch : kArchs) {
    SaeTrainConfig c = small_config(arch);
    c.dead_tokens = 512;  // AuxK active in the topk archs
    for (int threads : {1, 2}) {
      const Sae a = train(c, threads, 6, data);
      const Sae b = train(c, threads, 6, data);
      EXPECT_TRUE(same_sae(a, b)) << sae_arch_name(arch) << " threads " << threads;
    }
    // Every reduction has a fixed order, so the pool size does not matter either.
    EXPECT_TRUE(same_sae(train(c, 1, 6, data), train(c, 2, 6, data))) << sae_arch_name(arch);
    SaeTrainConfig other = c;
    other.seed = 8;
    EXPECT_FALSE(same_sae(train(c, 2, 6, data), train(other, 2, 6, data))) << sae_arch_name(arch);
  }
}

TEST(SaeTrain, ResumeIsBitIdentical) {
  const auto data = sparse_data(4 * 256, 32, 64, 2);
  const std::string path = sae_temp_path("state.bin");
  for (SaeArch arch : kArchs) {
    SaeTrainConfig c = small_config(arch);
    c.dead_tokens = 512;
    c.total_steps = 8;  // schedules (lr decay, l1 warm-up) in play
    c.l1_warmup_frac = 0.5;
    c.lr_decay_frac = 0.5;
    ThreadPool pool(2);
    const auto batch = [&](int s) { return data.data() + (s % 4) * 256 * 32; };
    SaeTrainer a(c, pool);
    a.init_from_data(data.data(), 256);
    for (int s = 0; s < 4; ++s) a.step(batch(s), 256);
    a.save_state(path);
    for (int s = 4; s < 8; ++s) a.step(batch(s), 256);

    SaeTrainConfig c2 = c;
    c2.seed = 99;  // the state, not the config, decides
    SaeTrainer b(c2, pool);
    b.load_state(path);
    EXPECT_EQ(b.steps_done(), 4);
    for (int s = 4; s < 8; ++s) b.step(batch(s), 256);
    EXPECT_TRUE(same_sae(a.export_sae(), b.export_sae())) << sae_arch_name(arch);
    EXPECT_EQ(a.tokens_since_fired(), b.tokens_since_fired());
    EXPECT_EQ(a.batch_threshold(), b.batch_threshold());
  }
  std::filesystem::remove(path);
}

TEST(SaeTrain, LossDecreasesOnSparseData) {
  const auto data = sparse_data(8 * 256, 32, 64, 3);
  for (SaeArch arch : kArchs) {
    const SaeTrainConfig c = small_config(arch);
    ThreadPool pool(2);
    SaeTrainer t(c, pool);
    t.init_from_data(data.data(), 256);
    double first = 0, last = 0, l0 = 0;
    for (int s = 0; s < 300; ++s) {
      const SaeStepStats st = t.step(data.data() + (s % 8) * 256 * 32, 256);
      if (s == 0) first = st.fvu;
      if (s >= 290) {
        last += st.fvu / 10;
        l0 += st.l0 / 10;
      }
      ASSERT_TRUE(std::isfinite(st.loss)) << sae_arch_name(arch) << " step " << s;
    }
    EXPECT_LT(last, 0.3 * first) << sae_arch_name(arch) << ": fvu " << first << " -> " << last;
    EXPECT_LT(last, 0.35) << sae_arch_name(arch);
    if (arch == SaeArch::kTopK) {
      EXPECT_LE(l0, 4.0);
    }
    EXPECT_GT(l0, 0.5) << sae_arch_name(arch);
    EXPECT_LT(l0, arch == SaeArch::kRelu ? 64 : 16) << sae_arch_name(arch);
  }
}

TEST(SaeTrain, UnitNormDecoderRows) {
  const auto data = sparse_data(2 * 256, 32, 64, 4);
  for (SaeArch arch : {SaeArch::kTopK, SaeArch::kBatchTopK, SaeArch::kJumpRelu}) {
    SaeTrainConfig c = small_config(arch);
    c.normalize_inputs = false;  // the export's fold would rescale W_dec
    const Sae s = train(c, 2, 10, data);
    for (int64_t j = 0; j < s.d_sae; ++j) {
      double ss = 0;
      for (int64_t i = 0; i < s.d_in; ++i) {
        const double w = s.W_dec.data<float>()[j * s.d_in + i];
        ss += w * w;
      }
      ASSERT_NEAR(std::sqrt(ss), 1.0, 1e-5) << sae_arch_name(arch) << " latent " << j;
    }
  }
}

TEST(SaeTrain, DeadLatentsAndAuxK) {
  // Rows base * 1 and base * 2 (+ tiny noise): x - b_dec is +-0.5 base, so with k = 1 at most
  // two latents ever fire, the others are dead after dead_tokens tokens, and AuxK then has
  // candidates.
  SaeTrainConfig c = small_config(SaeArch::kTopK);
  c.d_in = 16;
  c.d_sae = 64;
  c.k = 1;
  c.batch_size = 16;
  c.dead_tokens = 32;
  c.aux_k = 8;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> base(16), x(16 * 16);
  for (float& v : base) v = normal(rng);
  for (int64_t i = 0; i < 16 * 16; ++i) {
    x[i] = base[i % 16] * (i / 16 % 2 ? 2.0f : 1.0f) + 1e-4f * normal(rng);
  }
  ThreadPool pool(2);
  SaeTrainer t(c, pool);
  t.init_from_data(x.data(), 16);
  const SaeStepStats s1 = t.step(x.data(), 16);
  EXPECT_EQ(s1.aux_loss, 0.0);  // nobody dead yet
  EXPECT_EQ(s1.dead_frac, 0.0);
  auto since = t.tokens_since_fired();
  const int64_t fired = std::count(since.begin(), since.end(), 0);
  EXPECT_GE(fired, 1);
  EXPECT_LE(fired, 2);
  EXPECT_EQ(std::count(since.begin(), since.end(), 16), 64 - fired);
  const SaeStepStats s2 = t.step(x.data(), 16);
  EXPECT_EQ(s2.aux_loss, 0.0);  // the dead mask is taken before each step
  EXPECT_GE(s2.dead_frac, 62.0 / 64);
  const SaeStepStats s3 = t.step(x.data(), 16);
  EXPECT_GT(s3.aux_loss, 0.0);
  EXPECT_GT(s3.dense_frac, 0.0);  // the live latents fire on about half the rows each
}

TEST(SaeTrain, BatchTopKThresholdExported) {
  const auto data = sparse_data(4 * 256, 32, 64, 6);
  const SaeTrainConfig c = small_config(SaeArch::kBatchTopK);
  ThreadPool pool(2);
  SaeTrainer t(c, pool);
  t.init_from_data(data.data(), 256);
  EXPECT_EQ(t.batch_threshold(), 0.0);
  for (int s = 0; s < 100; ++s) t.step(data.data() + (s % 4) * 256 * 32, 256);
  const Sae sae = t.export_sae();
  ASSERT_TRUE(sae.threshold.defined());
  const float th = static_cast<float>(t.batch_threshold());
  EXPECT_GT(th, 0.0f);
  for (float v : sae.threshold.floats()) ASSERT_EQ(v, th);
  // Inference with the threshold keeps about k latents per row.
  std::vector<float> acts(static_cast<size_t>(256 * c.d_sae));
  sae.encode(data.data(), 256, acts.data());
  const double l0 =
      double(std::count_if(acts.begin(), acts.end(), [](float a) { return a > 0; })) / 256.0;
  EXPECT_GT(l0, c.k / 2.0);
  EXPECT_LT(l0, c.k * 2.0);
}

// The exported Sae (input scale folded in) reconstructs raw inputs as the trainer does in
// training scale: its FVU on a batch equals the FVU the next step reports for the same weights.
TEST(SaeTrain, ExportMatchesTrainingForward) {
  const auto data = sparse_data(2 * 256, 32, 64, 7);
  for (SaeArch arch : {SaeArch::kRelu, SaeArch::kTopK, SaeArch::kJumpRelu}) {
    const SaeTrainConfig c = small_config(arch);
    ThreadPool pool(2);
    SaeTrainer t(c, pool);
    t.init_from_data(data.data(), 256);
    for (int s = 0; s < 20; ++s) t.step(data.data() + (s % 2) * 256 * 32, 256);
    EXPECT_NE(t.input_scale(), 1.0);
    const Sae sae = t.export_sae();
    sae.validate("exported");
    EXPECT_FALSE(sae.norm_scaling_factor.has_value());
    const float* x = data.data();
    std::vector<float> rec(256 * 32);
    sae.reconstruct(x, 256, rec.data());
    double se = 0, sv = 0;
    std::vector<double> mean(32, 0.0);
    for (int64_t r = 0; r < 256; ++r) {
      for (int64_t i = 0; i < 32; ++i) mean[i] += x[r * 32 + i] / 256.0;
    }
    for (int64_t r = 0; r < 256; ++r) {
      for (int64_t i = 0; i < 32; ++i) {
        se += std::pow(double(rec[r * 32 + i]) - x[r * 32 + i], 2);
        sv += std::pow(x[r * 32 + i] - mean[i], 2);
      }
    }
    const SaeStepStats st = t.step(x, 256);
    EXPECT_NEAR(se / sv, st.fvu, 1e-3 * st.fvu + 1e-6) << sae_arch_name(arch);
  }
}

TEST(SaeTrain, BadConfigAndStateFiles) {
  ThreadPool pool(1);
  SaeTrainConfig c = small_config(SaeArch::kTopK);
  c.k = 0;
  expect_error([&] { SaeTrainer t(c, pool); }, ErrorCode::kInvalidArgument, "k must be");
  c = small_config(SaeArch::kJumpRelu);
  c.bandwidth = 0;
  expect_error([&] { SaeTrainer t(c, pool); }, ErrorCode::kInvalidArgument, "bandwidth");
  c = small_config(SaeArch::kTopK);
  SaeTrainer t(c, pool);
  const std::vector<float> x(256 * 32, 1.0f);
  expect_error([&] { t.step(x.data(), 256); }, ErrorCode::kInvalidArgument, "init_from_data");
  t.init_from_data(x.data(), 256);
  t.step(x.data(), 256);
  const std::string path = sae_temp_path("bad_state.bin");
  t.save_state(path);
  SaeTrainConfig other = c;
  other.d_sae = 64;
  SaeTrainer u(other, pool);
  expect_error([&] { u.load_state(path); }, ErrorCode::kInvalidArgument, "does not match");
  // Truncated: a format error naming the file; the trainer is left as it was.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 10);
  SaeTrainer v(c, pool);
  expect_error([&] { v.load_state(path); }, ErrorCode::kFormat, path);
  EXPECT_EQ(v.steps_done(), 0);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "not a state file at all";
  }
  expect_error([&] { v.load_state(path); }, ErrorCode::kFormat, "bad magic");
  std::filesystem::remove(path);
}

// Gradient-norm clipping is applied: Adam is invariant to a constant gradient scale except
// through eps, so clipping the norm far below eps makes the first step (nearly) vanish, while
// clipping at a large norm changes nothing.
TEST(SaeTrain, GradientClipping) {
  const std::vector<float> x = sparse_data(256, 32, 16, 3);
  const auto first_step_change = [&](double clip) {
    SaeTrainConfig c = small_config(SaeArch::kRelu);
    c.lr_warmup_steps = 0;
    c.grad_clip = clip;
    ThreadPool pool(1);
    SaeTrainer t(c, pool);
    t.init_from_data(x.data(), 256);
    const Sae before = t.export_sae();
    t.step(x.data(), 256);
    const Sae after = t.export_sae();
    double change = 0;
    for (int64_t i = 0; i < before.W_dec.numel(); ++i)
      change =
          std::max(change, double(std::abs(after.W_dec.floats()[i] - before.W_dec.floats()[i])));
    return change;
  };
  const double off = first_step_change(0), huge = first_step_change(1e9);
  const double tiny = first_step_change(1e-12);
  EXPECT_EQ(off, huge);
  EXPECT_GT(off, 1e-4);
  EXPECT_LT(tiny, 0.01 * off);
}

}  // namespace
}  // namespace glassbox
