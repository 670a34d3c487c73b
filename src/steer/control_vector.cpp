#include "steer/control_vector.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/tensor.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/npy.h"
#include "io/safetensors.h"

namespace glassbox {
namespace {

constexpr int kMaxLayer = 1 << 16;  // far above any model; bounds what a file may claim

std::string extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// "direction.N" -> N (decimal digits, no sign, no leading zero); throws naming the tensor.
int parse_direction_name(const std::string& path, const std::string& name) {
  static const std::string kPrefix = "direction.";
  const std::string digits =
      name.compare(0, kPrefix.size(), kPrefix) == 0 ? name.substr(kPrefix.size()) : "";
  int n = -1;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  const bool ok = !digits.empty() && ec == std::errc() && ptr == digits.data() + digits.size() &&
                  (digits.size() == 1 || digits[0] != '0') && n >= 0 && n <= kMaxLayer;
  if (!ok) {
    fail(ErrorCode::kFormat, path,
         "tensor '" + name +
             "' is not a control-vector direction (expected direction.N, N a layer "
             "index from 1 to " +
             std::to_string(kMaxLayer) + ")");
  }
  return n;
}

// Checks one direction's shape, type and values; returns it as floats.
std::vector<float> check_direction(const std::string& path, const std::string& name,
                                   const Tensor& t, int64_t* d_model) {
  if (t.dtype() != DType::kF32) {
    fail(ErrorCode::kFormat, path,
         "tensor " + name + " has type " + dtype_name(t.dtype()) + "; control vectors are F32");
  }
  if (t.ndim() != 1) {
    fail(ErrorCode::kShape, path,
         "tensor " + name + " has shape " + shape_str(t.shape()) + "; a direction is [d_model]");
  }
  if (*d_model == 0) *d_model = t.dim(0);
  if (t.dim(0) != *d_model || *d_model == 0) {
    fail(ErrorCode::kShape, path,
         "tensor " + name + " has width " + std::to_string(t.dim(0)) + " but the others have " +
             std::to_string(*d_model));
  }
  std::vector<float> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.raw(), v.size() * sizeof(float));  // mapped data may be unaligned
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      fail(ErrorCode::kFormat, path,
           "tensor " + name + " holds a non-finite value at index " + std::to_string(i));
    }
  }
  return v;
}

ControlVector load_gguf(const std::string& path) {
  const GgufFile file = GgufFile::open(path);
  const GgufValue* arch = file.find("general.architecture");
  if (arch == nullptr) fail(ErrorCode::kFormat, path, "missing metadata key general.architecture");
  const std::string& arch_name = arch->as_string(path + ": general.architecture");
  if (arch_name != "controlvector") {
    fail(ErrorCode::kFormat, path,
         "general.architecture is '" + arch_name + "', not 'controlvector': not a control vector");
  }
  const GgufValue* count = file.find("controlvector.layer_count");
  if (count == nullptr) {
    fail(ErrorCode::kFormat, path, "missing metadata key controlvector.layer_count");
  }
  const int64_t layer_count = count->as_int(path + ": controlvector.layer_count");
  ControlVector cv;
  if (const GgufValue* hint = file.find("controlvector.model_hint")) {
    cv.model_hint = hint->as_string(path + ": controlvector.model_hint");
  }
  for (const GgufTensorInfo& info : file.tensor_infos()) {
    const int n = parse_direction_name(path, info.name);
    if (n == 0) {
      fail(ErrorCode::kFormat, path,
           "tensor direction.0: llama.cpp numbers directions from 1 (direction.N steers the "
           "output of block N; block 0's output is never steered)");
    }
    if (info.ggml_type != 0) {  // GGML_TYPE_F32
      const std::optional<DType> dt = dtype_from_ggml_type(info.ggml_type);
      fail(ErrorCode::kFormat, path,
           "tensor " + info.name + " has type " +
               (dt ? std::string(dtype_name(*dt)) : "ggml " + std::to_string(info.ggml_type)) +
               "; control vectors are F32");
    }
    cv.directions[n] = check_direction(path, info.name, file.tensor(info.name), &cv.d_model);
  }
  if (cv.directions.empty()) fail(ErrorCode::kFormat, path, "no direction.N tensors");
  if (layer_count != static_cast<int64_t>(cv.directions.size())) {
    fail(ErrorCode::kFormat, path,
         "controlvector.layer_count is " + std::to_string(layer_count) + " but the file holds " +
             std::to_string(cv.directions.size()) + " direction tensors");
  }
  return cv;
}

ControlVector load_npy(const std::string& path) {
  const Tensor t = read_npy(path);
  if (t.dtype() != DType::kF32 || t.ndim() != 2 || t.dim(0) == 0 || t.dim(1) == 0) {
    fail(ErrorCode::kShape, path,
         "a control vector .npy is float32 [n_layers, d_model], got " +
             std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()));
  }
  ControlVector cv;
  cv.d_model = t.dim(1);
  const std::span<const float> f = t.floats();
  for (int64_t l = 0; l < t.dim(0); ++l) {
    const std::span<const float> row = f.subspan(l * cv.d_model, cv.d_model);
    bool zero = true;
    for (size_t i = 0; i < row.size(); ++i) {
      if (!std::isfinite(row[i])) {
        fail(
            ErrorCode::kFormat, path,
            "row " + std::to_string(l) + " holds a non-finite value at index " + std::to_string(i));
      }
      zero = zero && row[i] == 0.0f;
    }
    if (!zero) cv.directions[static_cast<int>(l)] = std::vector<float>(row.begin(), row.end());
  }
  if (cv.directions.empty()) fail(ErrorCode::kFormat, path, "every row is zero: no direction");
  return cv;
}

ControlVector load_safetensors(const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  ControlVector cv;
  const auto& meta = file.metadata();
  if (auto it = meta.find("model_hint"); it != meta.end()) cv.model_hint = it->second;
  for (const SafetensorsTensorInfo& info : file.tensor_infos()) {
    const int n = parse_direction_name(path, info.name);
    if (!info.dtype || *info.dtype != DType::kF32) {
      fail(ErrorCode::kFormat, path,
           "tensor " + info.name + " has type " + info.dtype_name + "; control vectors are F32");
    }
    cv.directions[n] = check_direction(path, info.name, file.tensor(info.name), &cv.d_model);
  }
  if (cv.directions.empty()) fail(ErrorCode::kFormat, path, "no direction.N tensors");
  return cv;
}

// Shared checks before writing: something to write, every width d_model, finite values.
void validate(const ControlVector& cv, const std::string& path) {
  if (cv.directions.empty()) {
    fail(ErrorCode::kInvalidArgument, path, "the control vector has no directions to write");
  }
  if (cv.d_model <= 0) fail(ErrorCode::kInvalidArgument, path, "d_model is not set");
  for (const auto& [layer, dir] : cv.directions) {
    if (layer < 0 || layer > kMaxLayer) {
      fail(ErrorCode::kInvalidArgument, path,
           "layer " + std::to_string(layer) + " is out of range");
    }
    if (static_cast<int64_t>(dir.size()) != cv.d_model) {
      fail(ErrorCode::kShape, path,
           "direction " + std::to_string(layer) + " has width " + std::to_string(dir.size()) +
               " but d_model is " + std::to_string(cv.d_model));
    }
    for (float v : dir) {
      if (!std::isfinite(v)) {
        fail(ErrorCode::kInvalidArgument, path,
             "direction " + std::to_string(layer) + " holds a non-finite value");
      }
    }
  }
}

bool all_zero(const std::vector<float>& v) {
  for (float x : v) {
    if (x != 0.0f) return false;
  }
  return true;
}

std::vector<std::pair<std::string, Tensor>> direction_tensors(const ControlVector& cv) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [layer, dir] : cv.directions) {
    tensors.emplace_back("direction." + std::to_string(layer),
                         Tensor::from_floats({cv.d_model}, dir));
  }
  return tensors;
}

}  // namespace

ControlVector load_control_vector(const std::string& path) {
  const std::string ext = extension(path);
  if (ext == ".gguf") return load_gguf(path);
  if (ext == ".npy") return load_npy(path);
  if (ext == ".safetensors") return load_safetensors(path);
  fail(ErrorCode::kInvalidArgument, path,
       "unknown control-vector file type '" + ext + "' (expected .gguf, .npy or .safetensors)");
}

void save_control_vector(const ControlVector& cv, const std::string& path) {
  validate(cv, path);
  const std::string ext = extension(path);
  if (ext == ".gguf") {
    ControlVector out = cv;
    if (auto it = out.directions.find(0); it != out.directions.end()) {
      if (!all_zero(it->second)) {
        fail(ErrorCode::kInvalidArgument, path,
             "a direction for block 0 cannot be written as a llama.cpp control vector (llama.cpp "
             "never steers block 0's output; direction.N starts at 1)");
      }
      out.directions.erase(it);
      if (out.directions.empty()) validate(out, path);
    }
    const std::vector<std::pair<std::string, GgufValue>> metadata = {
        {"general.architecture", gguf_string("controlvector")},
        {"controlvector.model_hint", gguf_string(cv.model_hint.empty() ? "llama" : cv.model_hint)},
        {"controlvector.layer_count",
         gguf_int(GgufType::kI32, static_cast<int64_t>(out.directions.size()))},
    };
    write_gguf(path, metadata, direction_tensors(out));
  } else if (ext == ".npy") {
    const int64_t n_rows = cv.directions.rbegin()->first + 1;
    Tensor t = Tensor::zeros(DType::kF32, {n_rows, cv.d_model});
    float* dst = t.mutable_floats().data();
    for (const auto& [layer, dir] : cv.directions) {
      std::copy(dir.begin(), dir.end(), dst + layer * cv.d_model);
    }
    write_npy(path, t);
  } else if (ext == ".safetensors") {
    std::map<std::string, std::string> metadata;
    if (!cv.model_hint.empty()) metadata["model_hint"] = cv.model_hint;
    write_safetensors(path, direction_tensors(cv), metadata);
  } else {
    fail(ErrorCode::kInvalidArgument, path,
         "unknown control-vector file type '" + ext + "' (expected .gguf, .npy or .safetensors)");
  }
}

ControlVector sum_control_vectors(const std::vector<std::pair<std::string, float>>& files,
                                  int64_t d_model) {
  ControlVector sum;
  sum.d_model = d_model;
  for (const auto& [path, scale] : files) {
    const ControlVector cv = load_control_vector(path);
    if (sum.d_model == 0) sum.d_model = cv.d_model;
    if (cv.d_model != sum.d_model) {
      fail(ErrorCode::kShape, path,
           "control vector has width " + std::to_string(cv.d_model) +
               " but the model has d_model " + std::to_string(sum.d_model));
    }
    if (sum.model_hint.empty()) sum.model_hint = cv.model_hint;
    for (const auto& [layer, dir] : cv.directions) {
      std::vector<float>& acc = sum.directions[layer];
      acc.resize(static_cast<size_t>(sum.d_model), 0.0f);
      for (size_t i = 0; i < dir.size(); ++i) acc[i] += scale * dir[i];
    }
  }
  return sum;
}

}  // namespace glassbox
