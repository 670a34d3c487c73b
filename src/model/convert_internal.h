// Pieces shared by convert.cpp (planning, re-typing, Q/K layout) and convert_writers.cpp (one
// writer per output format). Not a public interface.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace glassbox::convert_detail {

using Named = std::vector<std::pair<std::string, Tensor>>;

struct Plan {
  DType base = DType::kF32;
  DType more_bits = DType::kF32;
  bool mixed = false;
  uint32_t file_type = 0;  // llama.cpp's general.file_type
};

Plan plan_for(const std::string& type);
Tensor as_f32(const Tensor& t);
// `t` as `type` (after retype's fallback for rows that are no whole number of blocks), its rows
// encoded on `pool`.
Tensor retype(const Tensor& t, DType type, ThreadPool& pool);
// rows x k floats -> rows x dtype_bytes(type, k) bytes of a float or block type (not F32), the
// rows split between the pool's threads; the bytes do not depend on the thread count.
void encode_rows(DType type, const float* src, int64_t rows, int64_t k, void* dst,
                 ThreadPool& pool);
Tensor concat_rows(const std::vector<Tensor>& parts);
Tensor transpose_f32(const Tensor& t);
// The tensor named `name` (which the caller knows is there: asserts otherwise).
const Tensor& find_named(const Named& named, const std::string& name);
// The model's weights under GGUF names, Q/K rows in `want` RoPE order.
Named canonical(const Model& m, RopeStyle want);
// The dtype a weight gets under `plan` (1-D tensors stay f32), before the fallback of retype()
// for rows that are no whole number of blocks. `has_output`: the model has its own output.weight
// (else the tied token embedding is treated as the classifier, as llama.cpp does).
DType dtype_for(const std::string& name, const Tensor& t, const Plan& plan, int64_t n_layers,
                bool has_output);

void write_gguf_model(const Model& m, const std::string& path, const Plan& plan,
                      const std::string& vocab_path, ThreadPool& pool);
void write_gguf_vocab(const std::string& vocab_path, const std::string& path);
void write_llama2c_model(const Model& m, const std::string& path, const Plan& plan);
void write_hf_model(const Model& m, const std::string& dir, const Plan& plan, ThreadPool& pool);

}  // namespace glassbox::convert_detail
