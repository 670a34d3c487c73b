// Control-vector files (llama.cpp GGUF, .npy, .safetensors): round trips, the block-0 rule, a
// corrupted-file table, summing; and the steering-vector reductions on synthetic activations.
#include "steer/control_vector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "expect_error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "steer/steering_vector.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

std::string cv_temp_path(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "control_vector_test";
  fs::create_directories(dir);
  return (dir / name).string();
}

std::vector<float> ramp(int64_t d, float base) {
  std::vector<float> v(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) v[i] = base + 0.25f * static_cast<float>(i) - 1.0f;
  return v;
}

ControlVector sample(int64_t d = 8) {
  ControlVector cv;
  cv.d_model = d;
  cv.model_hint = "llama";
  cv.directions[1] = ramp(d, 0.5f);
  cv.directions[3] = ramp(d, -2.0f);
  return cv;
}

using Meta = std::vector<std::pair<std::string, GgufValue>>;
using Tensors = std::vector<std::pair<std::string, Tensor>>;

Meta good_meta(int64_t count) {
  return {{"general.architecture", gguf_string("controlvector")},
          {"controlvector.model_hint", gguf_string("llama")},
          {"controlvector.layer_count", gguf_int(GgufType::kI32, count)}};
}

Tensor vec(int64_t d, float base = 0.5f) { return Tensor::from_floats({d}, ramp(d, base)); }

TEST(ControlVector, GgufRoundTripInLlamaCppLayout) {
  const std::string path = cv_temp_path("round.gguf");
  const ControlVector cv = sample();
  save_control_vector(cv, path);
  const ControlVector back = load_control_vector(path);
  EXPECT_EQ(back.d_model, cv.d_model);
  EXPECT_EQ(back.model_hint, "llama");
  EXPECT_EQ(back.directions, cv.directions);
  // What llama.cpp's common_control_vector_load reads.
  const GgufFile file = GgufFile::open(path);
  EXPECT_EQ(file.get("general.architecture").as_string("arch"), "controlvector");
  EXPECT_EQ(file.get("controlvector.layer_count").as_int("count"), 2);
  ASSERT_EQ(file.tensor_infos().size(), 2u);
  EXPECT_EQ(file.tensor_infos()[0].name, "direction.1");
  EXPECT_EQ(file.tensor_infos()[1].name, "direction.3");
  EXPECT_EQ(file.tensor_infos()[0].ggml_type, 0u);
  EXPECT_EQ(file.tensor_infos()[0].shape, (Shape{8}));
}

TEST(ControlVector, NpyAndSafetensorsRoundTrip) {
  ControlVector cv = sample();
  cv.directions[0] = ramp(8, 3.0f);  // allowed outside GGUF
  const std::string npy = cv_temp_path("round.npy");
  save_control_vector(cv, npy);
  ControlVector back = load_control_vector(npy);
  EXPECT_EQ(back.d_model, 8);
  EXPECT_EQ(back.directions, cv.directions);  // zero rows 2 are not directions
  const std::string st = cv_temp_path("round.safetensors");
  save_control_vector(cv, st);
  back = load_control_vector(st);
  EXPECT_EQ(back.directions, cv.directions);
  EXPECT_EQ(back.model_hint, "llama");
}

TEST(ControlVector, Block0IsRefusedForGguf) {
  ControlVector cv = sample();
  cv.directions[0] = ramp(8, 1.0f);
  const std::string path = cv_temp_path("block0.gguf");
  fs::remove(path);  // from an earlier run
  expect_error([&] { save_control_vector(cv, path); }, ErrorCode::kInvalidArgument, "block 0");
  EXPECT_FALSE(fs::exists(path));
  cv.directions[0] = std::vector<float>(8, 0.0f);  // a zero row (from .npy) is simply dropped
  save_control_vector(cv, path);
  EXPECT_EQ(load_control_vector(path).directions.size(), 2u);
}

TEST(ControlVector, SaveChecks) {
  ControlVector cv = sample();
  cv.directions[2] = ramp(7, 0.0f);
  expect_error([&] { save_control_vector(cv, cv_temp_path("w.gguf")); }, ErrorCode::kShape,
               "direction 2 has width 7");
  cv = sample();
  cv.directions[1][2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { save_control_vector(cv, cv_temp_path("nan.npy")); }, ErrorCode::kInvalidArgument,
               "non-finite");
  expect_error([&] { save_control_vector(ControlVector{}, cv_temp_path("e.gguf")); },
               ErrorCode::kInvalidArgument, "no directions");
  expect_error([&] { save_control_vector(sample(), cv_temp_path("x.bin")); },
               ErrorCode::kInvalidArgument, "unknown control-vector file type");
}

struct CvBadCase {
  const char* name;
  Meta meta;
  Tensors tensors;
  ErrorCode code;
  const char* part;
};

TEST(ControlVector, MalformedGgufTable) {
  Tensor nan = vec(8);
  nan.mutable_floats()[5] = std::numeric_limits<float>::infinity();
  Meta no_arch = good_meta(1);
  no_arch.erase(no_arch.begin());
  Meta llama_arch = good_meta(1);
  llama_arch[0].second = gguf_string("llama");
  Meta no_count = good_meta(1);
  no_count.pop_back();
  const std::vector<CvBadCase> cases = {
      {"wrong_width",
       good_meta(2),
       {{"direction.1", vec(8)}, {"direction.2", vec(7)}},
       ErrorCode::kShape,
       "tensor direction.2 has width 7 but the others have 8"},
      {"direction0",
       good_meta(1),
       {{"direction.0", vec(8)}},
       ErrorCode::kFormat,
       "tensor direction.0"},
      {"direction_x",
       good_meta(1),
       {{"direction.x", vec(8)}},
       ErrorCode::kFormat,
       "'direction.x' is not a control-vector direction"},
      {"other_name",
       good_meta(1),
       {{"blk.1.attn_q.weight", vec(8)}},
       ErrorCode::kFormat,
       "'blk.1.attn_q.weight' is not a control-vector direction"},
      {"leading_zero",
       good_meta(1),
       {{"direction.01", vec(8)}},
       ErrorCode::kFormat,
       "'direction.01'"},
      {"negative", good_meta(1), {{"direction.-1", vec(8)}}, ErrorCode::kFormat, "'direction.-1'"},
      {"f16",
       good_meta(1),
       {{"direction.1", Tensor::zeros(DType::kF16, {8})}},
       ErrorCode::kFormat,
       "tensor direction.1 has type f16; control vectors are F32"},
      {"two_dims",
       good_meta(1),
       {{"direction.1", Tensor::zeros(DType::kF32, {2, 8})}},
       ErrorCode::kShape,
       "tensor direction.1 has shape [2, 8]"},
      {"non_finite",
       good_meta(1),
       {{"direction.1", nan}},
       ErrorCode::kFormat,
       "direction.1 holds a non-finite value at index 5"},
      {"no_arch",
       no_arch,
       {{"direction.1", vec(8)}},
       ErrorCode::kFormat,
       "missing metadata key general.architecture"},
      {"llama_arch",
       llama_arch,
       {{"direction.1", vec(8)}},
       ErrorCode::kFormat,
       "not 'controlvector'"},
      {"no_count",
       no_count,
       {{"direction.1", vec(8)}},
       ErrorCode::kFormat,
       "missing metadata key controlvector.layer_count"},
      {"count_mismatch",
       good_meta(3),
       {{"direction.1", vec(8)}},
       ErrorCode::kFormat,
       "controlvector.layer_count is 3 but the file holds 1"},
      {"no_tensors", good_meta(0), {}, ErrorCode::kFormat, "no direction.N tensors"},
  };
  for (const CvBadCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = cv_temp_path(std::string(c.name) + ".gguf");
    write_gguf(path, c.meta, c.tensors);
    expect_error([&] { load_control_vector(path); }, c.code, path + ": ");
    expect_error([&] { load_control_vector(path); }, c.code, c.part);
  }
}

TEST(ControlVector, TruncatedAndMissingFiles) {
  const std::string path = cv_temp_path("trunc.gguf");
  save_control_vector(sample(), path);
  const uintmax_t size = fs::file_size(path);
  for (uintmax_t keep : {size - 4, size / 2, uintmax_t{20}, uintmax_t{3}}) {
    SCOPED_TRACE(keep);
    fs::resize_file(path, keep);
    try {
      load_control_vector(path);
      ADD_FAILURE() << "truncated file accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  expect_error([&] { load_control_vector(cv_temp_path("absent.gguf")); }, ErrorCode::kIo,
               "absent.gguf");
  std::ofstream(cv_temp_path("bad.npy"), std::ios::binary) << "not numpy";
  expect_error([&] { load_control_vector(cv_temp_path("bad.npy")); }, ErrorCode::kFormat, "bad.npy");
}

TEST(ControlVector, SumScaledFiles) {
  const std::string a = cv_temp_path("sum_a.gguf"), b = cv_temp_path("sum_b.safetensors");
  save_control_vector(sample(), a);
  ControlVector other;
  other.d_model = 8;
  other.directions[3] = std::vector<float>(8, 1.0f);
  other.directions[4] = std::vector<float>(8, 2.0f);
  save_control_vector(other, b);
  const ControlVector sum = sum_control_vectors({{a, 2.0f}, {b, -0.5f}}, 8);
  const ControlVector s = sample();
  ASSERT_EQ(sum.directions.size(), 3u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_FLOAT_EQ(sum.directions.at(1)[i], 2.0f * s.directions.at(1)[i]);
    EXPECT_FLOAT_EQ(sum.directions.at(3)[i], 2.0f * s.directions.at(3)[i] - 0.5f);
    EXPECT_FLOAT_EQ(sum.directions.at(4)[i], -1.0f);
  }
  expect_error(
      [&] {
        sum_control_vectors({{a, 1.0f}}, 16);
      },
      ErrorCode::kShape, "width 8 but the model has d_model 16");
}

// --- steering_direction on synthetic activations ---

Tensor rows(const std::vector<std::vector<float>>& r) {
  std::vector<float> flat;
  for (const auto& x : r) flat.insert(flat.end(), x.begin(), x.end());
  return Tensor::from_floats({static_cast<int64_t>(r.size()), static_cast<int64_t>(r[0].size())},
                             flat);
}

TEST(SteeringVector, MeanDiff) {
  const Tensor p = rows({{1, 2, 3}, {3, 2, 1}});
  const Tensor n = rows({{0, 0, 0}, {0, 0, 2}, {0, 0, 1}});
  const std::vector<float> raw = steering_direction(p, n, SteerMethod::kMeanDiff, false);
  EXPECT_FLOAT_EQ(raw[0], 2.0f);
  EXPECT_FLOAT_EQ(raw[1], 2.0f);
  EXPECT_FLOAT_EQ(raw[2], 1.0f);
  const std::vector<float> unit = steering_direction(p, n, SteerMethod::kMeanDiff, true);
  EXPECT_NEAR(unit[0], 2.0f / 3.0f, 1e-7);
  EXPECT_NEAR(unit[2], 1.0f / 3.0f, 1e-7);
}

TEST(SteeringVector, PcaFindsTheVaryingAxisWithPositiveSign) {
  // Differences vary mostly along axis 1 (+-3) with a constant offset on axis 0 (removed by
  // centring); positives are higher along axis 1 in 3 pairs of 4, so the sign is +.
  const Tensor n = rows({{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}});
  const Tensor p = rows({{5, 3, 0.1f}, {5, 3, -0.1f}, {5, 3.2f, 0}, {5, -3, 0}});
  const std::vector<float> v = steering_direction(p, n, SteerMethod::kPca, true);
  EXPECT_NEAR(std::fabs(v[1]), 1.0, 1e-3);
  EXPECT_GT(v[1], 0.0f);
  // Swap the sets: the vote flips the sign.
  const std::vector<float> w = steering_direction(n, p, SteerMethod::kPca, true);
  EXPECT_LT(w[1], 0.0f);
  double len = 0;
  for (float x : v) len += static_cast<double>(x) * x;
  EXPECT_NEAR(len, 1.0, 1e-6);
}

TEST(SteeringVector, Errors) {
  const Tensor a = rows({{1, 2}, {3, 4}});
  expect_error(
      [&] {
        steering_direction(a, rows({{1, 2, 3}}), SteerMethod::kMeanDiff, true);
      },
      ErrorCode::kShape, "width");
  expect_error(
      [&] {
        steering_direction(a, rows({{1, 2}}), SteerMethod::kPca, true);
      },
      ErrorCode::kShape, "2 positives and 1 negatives");
  expect_error(
      [&] {
        steering_direction(rows({{1, 2}}), rows({{0, 1}}), SteerMethod::kPca, true);
      },
      ErrorCode::kInvalidArgument, "at least 2 pairs");
  expect_error([&] { steering_direction(a, a, SteerMethod::kPca, true); },
               ErrorCode::kInvalidArgument, "no variance");
  expect_error([&] { steering_direction(a, a, SteerMethod::kMeanDiff, true); },
               ErrorCode::kInvalidArgument, "means are equal");
  expect_error([] { parse_steer_method("svd"); }, ErrorCode::kInvalidArgument, "'svd'");
}

}  // namespace
}  // namespace glassbox
