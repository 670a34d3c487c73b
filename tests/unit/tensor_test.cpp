#include "core/tensor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"

namespace glassbox {
namespace {

TEST(Tensor, ZerosReshapeSlice) {
  Tensor t = Tensor::zeros(DType::kF32, {3, 4});
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  for (int i = 0; i < 12; ++i) t.mutable_data<float>()[i] = static_cast<float>(i);
  Tensor r = t.slice_rows(1, 3);
  EXPECT_EQ(r.shape(), (Shape{2, 4}));
  EXPECT_EQ(r.data<float>()[0], 4.0f);
  EXPECT_EQ(t.reshape({2, 6}).dim(-1), 6);
  EXPECT_THROW(t.reshape({5, 2}), Error);
}

TEST(Tensor, QuantizedSizesAndErrors) {
  EXPECT_EQ(dtype_bytes(DType::kQ8_0, 64), 68u);
  EXPECT_EQ(dtype_bytes(DType::kQ4_K, 512), 288u);
  EXPECT_THROW(dtype_bytes(DType::kQ8_0, 33), Error);
  EXPECT_THROW(shape_numel({-1, 2}), Error);
}

TEST(Half, KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 5.9604644775390625e-08f);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  Tensor h = Tensor::zeros(DType::kF16, {2});
  h.mutable_data<uint16_t>()[0] = 0x3555;  // 0.333251953125
  EXPECT_EQ(h.to_f32().floats()[0], 0.333251953125f);
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  ThreadPool pool(3);
  std::vector<int> hits(1000, 0);
  for (int rep = 0; rep < 50; ++rep) {
    pool.parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
    });
  }
  for (int h : hits) EXPECT_EQ(h, 50);
}

// Every size from 1 to past the chunk count, back to back (workers spinning) and after the workers
// have gone to sleep (past the spin window), so both wake paths run.
TEST(ThreadPool, EverySizeAndAfterSleep) {
  ThreadPool pool(2);
  for (int round = 0; round < 2; ++round) {
    for (int64_t n = 1; n <= 40; ++n) {
      std::vector<int> hits(static_cast<size_t>(n), 0);
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        ASSERT_LT(b, e);
        for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
      });
      for (int h : hits) ASSERT_EQ(h, 1) << "n=" << n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace
}  // namespace glassbox
