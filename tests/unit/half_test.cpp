#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace glassbox {
namespace {

// Independent check: the nearest representable half/bf16 found by brute force over all 65536
// bit patterns must be what the conversion returns (ties to even).
uint16_t nearest_by_search(float f, float (*decode)(uint16_t)) {
  uint16_t best = 0;
  double best_err = INFINITY;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float v = decode(static_cast<uint16_t>(h));
    if (!std::isfinite(v) || std::signbit(v) != std::signbit(f)) continue;
    const double err = std::fabs(static_cast<double>(v) - f);
    if (err < best_err || (err == best_err && (h & 1u) == 0)) {
      best_err = err;
      best = static_cast<uint16_t>(h);
    }
  }
  return best;
}

TEST(HalfConversion, MatchesNearestRepresentable) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mant(1.0f, 2.0f);
  std::uniform_int_distribution<int> ex(-26, 15);
  for (int i = 0; i < 300; ++i) {
    const float f = std::ldexp(mant(rng), ex(rng)) * (i % 2 ? -1.0f : 1.0f);
    EXPECT_EQ(f32_to_f16(f), nearest_by_search(f, f16_to_f32)) << f;
    if (std::fabs(f) > 1e-30f) {
      EXPECT_EQ(f32_to_bf16(f), nearest_by_search(f, bf16_to_f32)) << f;
    }
  }
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
}

}  // namespace
}  // namespace glassbox
