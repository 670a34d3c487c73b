// ShardedSafetensors tests: the shards and index written by tests/data/safetensors/
// make_fixtures.py, directory resolution, and every way an index and its shards can disagree.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "expect_error.h"
#include "io/safetensors.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = std::string(GLASSBOX_SOURCE_DIR) + "/tests/data/safetensors";

void write_text(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

using testing::expect_error;

TEST(ShardedSafetensors, ReadsIndependentlyWrittenShards) {
  const std::string dir = kDataDir + "/sharded";
  for (const std::string& p : {dir, dir + "/model.safetensors.index.json"}) {
    SCOPED_TRACE(p);
    const ShardedSafetensors s = ShardedSafetensors::open(p);
    EXPECT_TRUE(s.is_sharded());
    EXPECT_EQ(s.path(), dir + "/model.safetensors.index.json");
    EXPECT_EQ(s.shards().size(), 2u);
    EXPECT_EQ(s.tensor_names(),
              (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                        "model.norm.weight"}));
    EXPECT_EQ(s.tensor("model.embed_tokens.weight").floats()[5], 5.0f);
    EXPECT_EQ(s.tensor("model.norm.weight").floats()[1], 2.0f);
    EXPECT_EQ(s.tensor("lm_head.weight").to_f32().floats()[0], -3.0f);
    EXPECT_EQ(s.find("lm_head.weight")->dtype, DType::kF16);
    EXPECT_EQ(s.find("nope"), nullptr);
    expect_error([&] { s.tensor("nope"); }, ErrorCode::kNotFound,
                 "model.safetensors.index.json: no tensor named nope");
  }
  const ShardedSafetensors one =
      ShardedSafetensors::open(dir + "/model-00002-of-00002.safetensors");
  EXPECT_FALSE(one.is_sharded());
  EXPECT_EQ(one.tensor_names(), std::vector<std::string>{"lm_head.weight"});
}

class ShardedFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(::testing::TempDir()) / "safetensors_index_test" /
            ::testing::UnitTest::GetInstance()->current_test_info()->name())
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    a_ = Tensor::from_floats({2}, std::vector<float>{1, 2});
    b_ = Tensor::from_floats({1}, std::vector<float>{3});
  }
  std::string shard(const std::string& name,
                    const std::vector<std::pair<std::string, Tensor>>& tensors) {
    write_safetensors(dir_ + "/" + name, tensors);
    return name;
  }
  void index(const std::string& weight_map) {
    write_text(dir_ + "/model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 12}, \"weight_map\": {" + weight_map + "}}");
  }
  void expect_open_error(ErrorCode code, const std::string& part) {
    expect_error([&] { ShardedSafetensors::open(dir_); }, code, part);
  }
  std::string dir_;
  Tensor a_, b_;
};

TEST_F(ShardedFixture, SingleFileIsPreferredAndEmptyDirIsNotFound) {
  expect_open_error(ErrorCode::kNotFound, "holds neither model.safetensors nor");
  shard("s1.safetensors", {{"a", a_}});
  index("\"a\": \"s1.safetensors\"");
  EXPECT_TRUE(ShardedSafetensors::open(dir_).is_sharded());
  shard("model.safetensors", {{"b", b_}});
  const ShardedSafetensors s = ShardedSafetensors::open(dir_);
  EXPECT_FALSE(s.is_sharded());
  EXPECT_EQ(s.path(), dir_ + "/model.safetensors");
  EXPECT_EQ(s.tensor("b").floats()[0], 3.0f);
}

TEST_F(ShardedFixture, MissingShardNamesShardAndIndex) {
  shard("s1.safetensors", {{"a", a_}});
  index("\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"");
  expect_open_error(ErrorCode::kIo,
                    "model.safetensors.index.json: shard 's2.safetensors' (holding 'b'): ");
}

TEST_F(ShardedFixture, TensorMissingFromItsShard) {
  shard("s1.safetensors", {{"a", a_}});
  index("\"a\": \"s1.safetensors\", \"b\": \"s1.safetensors\"");
  expect_open_error(ErrorCode::kFormat,
                    "tensor 'b' is mapped to shard 's1.safetensors', which does not contain it");
}

TEST_F(ShardedFixture, TensorInTwoShards) {
  shard("s1.safetensors", {{"a", a_}, {"b", b_}});
  shard("s2.safetensors", {{"b", b_}});
  index("\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"");
  expect_open_error(ErrorCode::kFormat, "tensor 'b' is in shard 's1.safetensors' and in shard");
}

TEST_F(ShardedFixture, TensorTheIndexDoesNotList) {
  shard("s1.safetensors", {{"a", a_}, {"b", b_}});
  index("\"a\": \"s1.safetensors\"");
  expect_open_error(ErrorCode::kFormat,
                    "shard 's1.safetensors' holds tensor 'b', which the index does not list");
}

TEST_F(ShardedFixture, CorruptShardIsReportedWithIndexContext) {
  write_text(dir_ + "/s1.safetensors", "garbage!");
  index("\"a\": \"s1.safetensors\"");
  expect_open_error(ErrorCode::kFormat,
                    "model.safetensors.index.json: shard 's1.safetensors' (holding 'a'): ");
}

TEST_F(ShardedFixture, MalformedIndexes) {
  shard("s1.safetensors", {{"a", a_}});
  const std::string p = dir_ + "/model.safetensors.index.json";
  const std::pair<std::string, std::string> cases[] = {
      {"{\"weight_map\": {\"a\": \"s1.safetensors\"", "not valid JSON"},
      {"[]", "the index is an array, not a JSON object"},
      {std::string("{\"weight_map\": {}}\0x", 20), "byte 18 is NUL"},
      {"{\"metadata\": {}}", "no \"weight_map\" object"},
      {"{\"weight_map\": []}", "weight_map is an array, not an object"},
      {"{\"weight_map\": {\"a\": 1}}", "weight_map 'a' is a number, not a file name"},
      {"{\"weight_map\": {\"a\": \"s1.safetensors\", \"a\": \"s1.safetensors\"}}",
       "weight_map lists tensor 'a' twice"},
      {"{\"weight_map\": {}, \"weight_map\": {}}", "duplicate key 'weight_map'"},
      {"{\"weight_map\": {\"a\": \"../s1.safetensors\"}}",
       "weight_map 'a': shard '../s1.safetensors' is not a file name in the index's directory"},
      {"{\"weight_map\": {\"a\": \"\"}}", "weight_map 'a': shard '' is not a file name"},
      {"{\"metadata\": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]], \"weight_map\": {}}",
       "JSON nested deeper than 16 levels"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    write_text(p, text);
    expect_error([&] { ShardedSafetensors::open(p); }, ErrorCode::kFormat,
                 "model.safetensors.index.json: " + message);
  }
  write_text(p, "{\"metadata\": {\"x\": [1, 2, {\"y\": null}]}, \"weight_map\": {}}");
  EXPECT_TRUE(ShardedSafetensors::open(p).tensor_names().empty());  // other keys are skipped
}

}  // namespace
}  // namespace glassbox
