#include "io/gguf_writer.h"

#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "io/atomic_file.h"
#include "io/gguf_limits.h"

namespace glassbox {
namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMinAlignment = 8;  // the widest element (f64, i64)
constexpr size_t kMaxNameBytes = 63;  // ggml's GGML_MAX_NAME (64) holds the terminator too
// What GgufFile accepts: these keep every file written here readable by it.
using gguf_limits::kMaxAlignment;
using gguf_limits::kMaxArrayDepth;
using gguf_limits::kMaxDims;
using gguf_limits::kMaxMetadataValues;


bool valid_type(GgufType t) { return static_cast<uint32_t>(t) <= uint32_t(GgufType::kF64); }

// Range of each integer type, as int64 (u64 is handled apart).
bool int_range(GgufType t, int64_t* lo, int64_t* hi) {
  switch (t) {
    case GgufType::kU8:
      *lo = 0, *hi = 0xff;
      return true;
    case GgufType::kI8:
      *lo = -128, *hi = 127;
      return true;
    case GgufType::kU16:
      *lo = 0, *hi = 0xffff;
      return true;
    case GgufType::kI16:
      *lo = -32768, *hi = 32767;
      return true;
    case GgufType::kU32:
      *lo = 0, *hi = 0xffffffffLL;
      return true;
    case GgufType::kI32:
      *lo = std::numeric_limits<int32_t>::min(), *hi = std::numeric_limits<int32_t>::max();
      return true;
    case GgufType::kI64:
    case GgufType::kU64:
      *lo = t == GgufType::kU64 ? 0 : std::numeric_limits<int64_t>::min();
      *hi = std::numeric_limits<int64_t>::max();
      return true;
    default:
      return false;
  }
}

// Checks one metadata value against what its type promises and what GgufFile accepts.
class ValueChecker {
 public:
  explicit ValueChecker(const std::string& path) : path_(path) {}

  void check(const GgufValue& v, const std::string& what, int depth) {
    if (!valid_type(v.type)) {
      invalid(what + ": invalid value type id " + std::to_string(uint32_t(v.type)));
    }
    int64_t lo = 0, hi = 0;
    if (int_range(v.type, &lo, &hi)) {
      if (v.type == GgufType::kU64 && std::holds_alternative<uint64_t>(v.v)) return;
      const int64_t* i = std::get_if<int64_t>(&v.v);
      if (i == nullptr) mismatch(v, what);
      if (*i < lo || *i > hi) {
        invalid(what + ": value " + std::to_string(*i) + " does not fit " + gguf_type_name(v.type));
      }
      return;
    }
    bool ok = false;
    switch (v.type) {
      case GgufType::kF32:
      case GgufType::kF64:
        ok = std::holds_alternative<double>(v.v);
        break;
      case GgufType::kBool:
        ok = std::holds_alternative<bool>(v.v);
        break;
      case GgufType::kString:
        ok = std::holds_alternative<std::string>(v.v);
        break;
      case GgufType::kArray: {
        const auto* arr = std::get_if<std::shared_ptr<GgufArray>>(&v.v);
        ok = arr != nullptr && *arr != nullptr;
        if (ok) check_array(**arr, what, depth + 1);
        break;
      }
      default:
        break;
    }
    if (!ok) mismatch(v, what);
  }

 private:
  void check_array(const GgufArray& arr, const std::string& what, int depth) {
    if (depth > kMaxArrayDepth) {
      invalid(what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    }
    if (!valid_type(arr.elem_type)) {
      invalid(what + ": invalid array element type id " + std::to_string(uint32_t(arr.elem_type)));
    }
    n_values_ += arr.items.size();
    if (n_values_ > kMaxMetadataValues) {
      invalid(what + ": metadata holds more than " + std::to_string(kMaxMetadataValues) +
              " array elements in total");
    }
    for (size_t i = 0; i < arr.items.size(); ++i) {
      const GgufValue& item = arr.items[i];
      if (item.type != arr.elem_type) {
        invalid(what + "[" + std::to_string(i) + "] is " + gguf_type_name(item.type) +
                " in an array of " + gguf_type_name(arr.elem_type));
      }
      check(item, what, depth);
    }
  }
  [[noreturn]] void mismatch(const GgufValue& v, const std::string& what) const {
    invalid(what + ": the value held does not match its type " + gguf_type_name(v.type));
  }
  [[noreturn]] void invalid(const std::string& what) const {
    fail(ErrorCode::kInvalidArgument, path_, what);
  }

  const std::string& path_;
  uint64_t n_values_ = 0;
};

// Little-endian byte sink for the header (metadata and tensor infos).
class Encoder {
 public:
  std::string bytes;

  template <class T>
  void put(T v) {
    static_assert(std::endian::native == std::endian::little, "GGUF is written little-endian");
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes += s;
  }
  // Assumes ValueChecker accepted `v`.
  void value(const GgufValue& v) {
    switch (v.type) {
      case GgufType::kU8:
        return put(static_cast<uint8_t>(std::get<int64_t>(v.v)));
      case GgufType::kI8:
        return put(static_cast<int8_t>(std::get<int64_t>(v.v)));
      case GgufType::kU16:
        return put(static_cast<uint16_t>(std::get<int64_t>(v.v)));
      case GgufType::kI16:
        return put(static_cast<int16_t>(std::get<int64_t>(v.v)));
      case GgufType::kU32:
        return put(static_cast<uint32_t>(std::get<int64_t>(v.v)));
      case GgufType::kI32:
        return put(static_cast<int32_t>(std::get<int64_t>(v.v)));
      case GgufType::kI64:
        return put(std::get<int64_t>(v.v));
      case GgufType::kU64:
        if (const auto* u = std::get_if<uint64_t>(&v.v)) return put(*u);
        return put(static_cast<uint64_t>(std::get<int64_t>(v.v)));
      case GgufType::kF32:
        return put(static_cast<float>(std::get<double>(v.v)));
      case GgufType::kF64:
        return put(std::get<double>(v.v));
      case GgufType::kBool:
        return put(static_cast<uint8_t>(std::get<bool>(v.v) ? 1 : 0));
      case GgufType::kString:
        return str(std::get<std::string>(v.v));
      case GgufType::kArray: {
        const GgufArray& arr = *std::get<std::shared_ptr<GgufArray>>(v.v);
        put(static_cast<uint32_t>(arr.elem_type));
        put<uint64_t>(arr.items.size());
        for (const GgufValue& item : arr.items) value(item);
        return;
      }
    }
  }
};

uint64_t alignment_of(const std::string& path,
                      const std::vector<std::pair<std::string, GgufValue>>& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != "general.alignment") continue;
    const std::string what = "metadata 'general.alignment'";
    if (!value.is_integer() || std::holds_alternative<uint64_t>(value.v)) {
      fail(ErrorCode::kInvalidArgument, path, what + " is not an integer in range");
    }
    const int64_t a = std::get<int64_t>(value.v);
    if (a < static_cast<int64_t>(kMinAlignment) || static_cast<uint64_t>(a) > kMaxAlignment ||
        (a & (a - 1)) != 0) {
      fail(ErrorCode::kInvalidArgument, path,
           what + " = " + std::to_string(a) + ", expected a power of two between 8 and 2^31");
    }
    return static_cast<uint64_t>(a);
  }
  return kDefaultAlignment;
}

uint64_t padded(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

}  // namespace

std::optional<uint32_t> ggml_type_from_dtype(DType dtype) {
  // Searched through the reader's table so the two directions cannot disagree.
  for (uint32_t id = 0; id < 64; ++id) {
    if (dtype_from_ggml_type(id) == dtype) return id;
  }
  return std::nullopt;
}

GgufValue gguf_int(GgufType type, int64_t v) {
  int64_t lo = 0, hi = 0;
  if (!int_range(type, &lo, &hi) || v < lo || v > hi) {
    throw Error(ErrorCode::kInvalidArgument,
                "gguf_int: " + std::to_string(v) + " is not a " + gguf_type_name(type) + " value");
  }
  return GgufValue{type, v};
}

GgufValue gguf_u64(uint64_t v) {
  if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return GgufValue{GgufType::kU64, static_cast<int64_t>(v)};
  }
  return GgufValue{GgufType::kU64, v};
}

GgufValue gguf_float(GgufType type, double v) {
  if (type != GgufType::kF32 && type != GgufType::kF64) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("gguf_float: type ") + gguf_type_name(type) + " is not f32 or f64");
  }
  // An f32 value holds what a reader would get back from the file.
  return GgufValue{type, type == GgufType::kF32 ? double{static_cast<float>(v)} : v};
}

GgufValue gguf_bool(bool v) { return GgufValue{GgufType::kBool, v}; }

GgufValue gguf_string(std::string v) { return GgufValue{GgufType::kString, std::move(v)}; }

GgufValue gguf_array(GgufType elem_type, std::vector<GgufValue> items) {
  auto arr = std::make_shared<GgufArray>();
  arr->elem_type = elem_type;
  arr->items = std::move(items);
  return GgufValue{GgufType::kArray, std::move(arr)};
}

void write_gguf(const std::string& path,
                const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<std::pair<std::string, Tensor>>& tensors) {
  auto invalid = [&](const std::string& what) { fail(ErrorCode::kInvalidArgument, path, what); };
  Encoder e;
  e.put(gguf_limits::kMagic);
  e.put(kVersion);
  e.put<uint64_t>(tensors.size());
  e.put<uint64_t>(metadata.size());

  ValueChecker checker(path);
  std::set<std::string> keys;
  for (size_t i = 0; i < metadata.size(); ++i) {
    const auto& [key, value] = metadata[i];
    if (key.empty()) invalid("metadata key #" + std::to_string(i) + " is empty");
    if (!keys.insert(key).second) invalid("duplicate metadata key " + in_quotes(key));
    checker.check(value, "metadata " + in_quotes(key), 0);
    e.str(key);
    e.put(static_cast<uint32_t>(value.type));
    e.value(value);
  }
  const uint64_t alignment = alignment_of(path, metadata);

  std::set<std::string> names;
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    const std::string what = "tensor " + in_quotes(name);
    if (name.empty()) invalid("tensor #" + std::to_string(i) + " has an empty name");
    if (name.size() > kMaxNameBytes) {
      invalid(what + ": name of " + std::to_string(name.size()) + " bytes exceeds ggml's " +
              std::to_string(kMaxNameBytes));
    }
    if (!names.insert(name).second) invalid("duplicate tensor name " + in_quotes(name));
    if (!t.defined() || (t.nbytes() > 0 && t.raw() == nullptr)) invalid(what + " is undefined");
    const std::optional<uint32_t> ggml_type = ggml_type_from_dtype(t.dtype());
    if (!ggml_type) {
      fail(ErrorCode::kUnsupported, path, what + ": GGUF has no type for " + dtype_name(t.dtype()));
    }
    if (t.ndim() < 1 || static_cast<size_t>(t.ndim()) > kMaxDims) {
      fail(ErrorCode::kUnsupported, path,
           what + ": shape " + shape_str(t.shape()) + " has " + std::to_string(t.ndim()) +
               " dims, GGUF holds 1 to 4");
    }
    const DTypeInfo& di = dtype_info(t.dtype());
    if (t.shape().back() % di.block_size != 0) {
      fail(ErrorCode::kShape, path,
           what + ": rows of " + std::to_string(t.shape().back()) + " are not whole " + di.name +
               " blocks of " + std::to_string(di.block_size));
    }
    e.str(name);
    e.put(static_cast<uint32_t>(t.ndim()));
    for (int d = t.ndim() - 1; d >= 0; --d) e.put(static_cast<uint64_t>(t.shape()[d]));
    e.put(*ggml_type);
    e.put(offset);
    offset += padded(t.nbytes(), alignment);
  }

  AtomicFile out(path);
  out.write(e.bytes.data(), e.bytes.size());
  out.write_zeros(padded(e.bytes.size(), alignment) - e.bytes.size());
  for (const auto& [name, t] : tensors) {
    out.write(t.raw(), t.nbytes());
    out.write_zeros(padded(t.nbytes(), alignment) - t.nbytes());
  }
  out.commit();
}

}  // namespace glassbox
