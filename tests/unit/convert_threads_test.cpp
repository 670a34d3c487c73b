// convert re-types weights on a thread pool (issue #16): the bytes must be those of the
// single-threaded row-by-row quantizer for every output type, whatever the thread count, also
// for an odd number of rows (uneven chunks) and for the fallback types of rows that are no whole
// number of K blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "model/convert_internal.h"
#include "ops/quant.h"

namespace glassbox {
namespace convert_threads_test {

Tensor random_matrix(int64_t rows, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  Tensor t = Tensor::zeros(DType::kF32, {rows, k});
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = dist(rng);
  return t;
}

// What convert wrote before it was threaded: one row after another on this thread.
std::vector<uint8_t> one_row_at_a_time(const Tensor& f, DType type) {
  const int64_t rows = f.dim(0), k = f.dim(1);
  const size_t row_bytes = dtype_bytes(type, k);
  std::vector<uint8_t> out(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = f.data<float>() + r * k;
    uint8_t* y = out.data() + static_cast<size_t>(r) * row_bytes;
    if (type == DType::kF16 || type == DType::kBF16) {
      auto* h = reinterpret_cast<uint16_t*>(y);
      for (int64_t i = 0; i < k; ++i)
        h[i] = type == DType::kF16 ? f32_to_f16(x[i]) : f32_to_bf16(x[i]);
    } else {
      ops::quantize_row(type, x, y, k);
    }
  }
  return out;
}

bool same_bytes(const Tensor& t, const std::vector<uint8_t>& want) {
  return t.nbytes() == want.size() && std::memcmp(t.raw(), want.data(), want.size()) == 0;
}

TEST(ConvertThreads, RetypeOnThreadsIsByteIdentical) {
  const Tensor f = random_matrix(37, 512, 3);  // 37 rows: chunks of unequal size
  ThreadPool one(1), four(4);
  for (DType type : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_K,
                     DType::kQ5_K, DType::kQ6_K}) {
    const std::vector<uint8_t> want = one_row_at_a_time(f, type);
    const Tensor threaded = convert_detail::retype(f, type, four);
    EXPECT_EQ(threaded.dtype(), type);
    EXPECT_TRUE(same_bytes(threaded, want)) << dtype_info(type).name << " on 4 threads";
    EXPECT_TRUE(same_bytes(convert_detail::retype(f, type, one), want))
        << dtype_info(type).name << " on 1 thread";
  }
}

TEST(ConvertThreads, FallbackTypesOnThreadsAreByteIdentical) {
  // 96 columns are no whole number of 256-element K blocks: Q4_K falls back to Q5_0, Q5_K to
  // Q5_1, Q6_K to Q8_0 (llama.cpp's rule), each row still encoded on the pool.
  const Tensor f = random_matrix(19, 96, 5);
  ThreadPool pool(3);
  const std::pair<DType, DType> cases[] = {
      {DType::kQ4_K, DType::kQ5_0}, {DType::kQ5_K, DType::kQ5_1}, {DType::kQ6_K, DType::kQ8_0}};
  for (const auto& [asked, got] : cases) {
    const Tensor threaded = convert_detail::retype(f, asked, pool);
    ASSERT_EQ(threaded.dtype(), got);
    EXPECT_TRUE(same_bytes(threaded, one_row_at_a_time(f, got))) << dtype_info(got).name;
  }
}

}  // namespace convert_threads_test
}  // namespace glassbox
