#include <gtest/gtest.h>

#include <cmath>

#include "model/run.h"

namespace glassbox {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};

TEST(Sampler, GreedyTakesLowestIdOfTheMaximum) {
  Sampler s({0.0f, 0, 1.0f, 1});
  EXPECT_EQ(s.sample(kLogits), 1);
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  Sampler k1({1.0f, 1, 1.0f, 7});
  Sampler p({1.0f, 0, 1e-6f, 7});
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(k1.sample(kLogits), 1);
    EXPECT_EQ(p.sample(kLogits), 1);
  }
}

TEST(Sampler, SeedReproducesAndFrequenciesFollowSoftmax) {
  Sampler a({1.0f, 0, 1.0f, 42}), b({1.0f, 0, 1.0f, 42});
  std::vector<int> counts(kLogits.size(), 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    const int32_t x = a.sample(kLogits);
    ASSERT_EQ(x, b.sample(kLogits));
    ++counts[static_cast<size_t>(x)];
  }
  double z = 0.0;
  for (float l : kLogits) z += std::exp(l);
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double p = std::exp(kLogits[i]) / z;
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(counts[i], n * p, 5 * sd + 1) << "id " << i;
  }
}

TEST(Sampler, TopKExcludesTheRest) {
  Sampler s({5.0f, 2, 1.0f, 3});
  for (int i = 0; i < 200; ++i) {
    const int32_t x = s.sample(kLogits);
    EXPECT_TRUE(x == 1 || x == 3) << x;
  }
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, -2, 1.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0}), Error);
  EXPECT_THROW(Sampler({1.0f, 0, 1.5f, 0}), Error);
}

}  // namespace
}  // namespace glassbox
