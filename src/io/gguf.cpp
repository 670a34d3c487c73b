#include "io/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "io/gguf_limits.h"

namespace glassbox {

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}
namespace {

using gguf_limits::kMaxAlignment;
using gguf_limits::kMaxArrayDepth;
using gguf_limits::kMaxDims;
using gguf_limits::kMaxMetadataValues;
// Smallest possible encodings, used to reject counts the remaining bytes cannot hold before
// anything is reserved: key/name (u64 length + at least one byte) + type + smallest value.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;
constexpr size_t kMaxDisplayString = 120;


bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

// Bytes of one scalar of the type; 0 for string and array (variable length).
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

// Smallest encoding of one element of the type inside an array.
uint64_t min_elem_size(GgufType t) {
  if (t == GgufType::kString) return 8;     // u64 length, possibly empty
  if (t == GgufType::kArray) return 4 + 8;  // elem type + count, possibly empty
  return scalar_size(t);
}

// Reads GGUF values with every length checked against the bytes left. `field` names the key
// (and element) for messages; it is built once per key, not per element.
class ValueReader {
 public:
  explicit ValueReader(ByteReader& r) : r_(r) {}

  std::string read_string(const std::string& field) {
    const uint64_t n = r_.read<uint64_t>(field + " length");
    if (n > r_.remaining()) {
      r_.fail(field + ": string length " + std::to_string(n) + " exceeds the " +
              std::to_string(r_.remaining()) + " bytes left in the file");
    }
    return r_.read_string(static_cast<size_t>(n), field);
  }

  GgufType read_type(const std::string& field) {
    const uint32_t t = r_.read<uint32_t>(field + " type");
    if (!valid_type(t)) {
      r_.fail(field + ": invalid value type id " + std::to_string(t) + " (expected 0..12)");
    }
    return static_cast<GgufType>(t);
  }

  GgufValue read_value(GgufType type, const std::string& field, int depth) {
    GgufValue out;
    out.type = type;
    switch (type) {
      case GgufType::kU8:
        out.v = int64_t{r_.read<uint8_t>(field)};
        break;
      case GgufType::kI8:
        out.v = int64_t{r_.read<int8_t>(field)};
        break;
      case GgufType::kU16:
        out.v = int64_t{r_.read<uint16_t>(field)};
        break;
      case GgufType::kI16:
        out.v = int64_t{r_.read<int16_t>(field)};
        break;
      case GgufType::kU32:
        out.v = int64_t{r_.read<uint32_t>(field)};
        break;
      case GgufType::kI32:
        out.v = int64_t{r_.read<int32_t>(field)};
        break;
      case GgufType::kI64:
        out.v = r_.read<int64_t>(field);
        break;
      case GgufType::kF32:
        out.v = double{r_.read<float>(field)};
        break;
      case GgufType::kF64:
        out.v = r_.read<double>(field);
        break;
      case GgufType::kU64: {
        const uint64_t u = r_.read<uint64_t>(field);
        if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          out.v = static_cast<int64_t>(u);
        } else {
          out.v = u;
        }
        break;
      }
      case GgufType::kBool: {
        const uint8_t b = r_.read<uint8_t>(field);
        if (b > 1) r_.fail(field + ": bool byte is " + std::to_string(b) + ", expected 0 or 1");
        out.v = b == 1;
        break;
      }
      case GgufType::kString:
        out.v = read_string(field);
        break;
      case GgufType::kArray:
        out.v = read_array(field, depth + 1);
        break;
    }
    return out;
  }

 private:
  std::shared_ptr<GgufArray> read_array(const std::string& field, int depth) {
    if (depth > kMaxArrayDepth) {
      r_.fail(field + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    }
    auto arr = std::make_shared<GgufArray>();
    // Nested levels keep the one " element" suffix so messages stay short.
    const std::string elem_field = depth == 1 ? field + " element" : field;
    arr->elem_type = read_type(elem_field);
    const uint64_t count = r_.read<uint64_t>(field + " array length");
    const uint64_t min = min_elem_size(arr->elem_type);
    if (count > r_.remaining() / min) {
      r_.fail(field + ": array of " + std::to_string(count) + " " + gguf_type_name(arr->elem_type) +
              " elements needs at least " + std::to_string(min) + " bytes each, only " +
              std::to_string(r_.remaining()) + " bytes left");
    }
    n_values_ += count;
    if (n_values_ > kMaxMetadataValues) {
      throw Error(ErrorCode::kUnsupported,
                  r_.source() + ": " + field + ": metadata holds more than " +
                      std::to_string(kMaxMetadataValues) + " array elements in total");
    }
    arr->items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
      arr->items.push_back(read_value(arr->elem_type, elem_field, depth));
    }
    return arr;
  }

  ByteReader& r_;
  uint64_t n_values_ = 0;  // array elements read so far, over all keys
};

std::string display_string(const std::string& s) {
  std::string out = "\"";
  const size_t n = std::min(s.size(), kMaxDisplayString);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s.size() > n) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string type_mismatch(const std::string& what, const char* expected, GgufType found) {
  return what + ": expected " + expected + ", found " + gguf_type_name(found);
}

}  // namespace

const char* gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::kU8:
      return "u8";
    case GgufType::kI8:
      return "i8";
    case GgufType::kU16:
      return "u16";
    case GgufType::kI16:
      return "i16";
    case GgufType::kU32:
      return "u32";
    case GgufType::kI32:
      return "i32";
    case GgufType::kF32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kU64:
      return "u64";
    case GgufType::kI64:
      return "i64";
    case GgufType::kF64:
      return "f64";
  }
  return "invalid";
}

bool GgufValue::is_integer() const {
  return scalar_size(type) != 0 && type != GgufType::kBool && !is_float();
}

int64_t GgufValue::as_int(const std::string& what) const {
  if (!is_integer()) throw Error(ErrorCode::kFormat, type_mismatch(what, "an integer", type));
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    throw Error(ErrorCode::kFormat, what + ": value " + std::to_string(*u) + " exceeds int64");
  }
  return std::get<int64_t>(v);
}

double GgufValue::as_float(const std::string& what) const {
  if (is_float()) return std::get<double>(v);
  if (is_integer()) {
    if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
    return static_cast<double>(std::get<int64_t>(v));
  }
  throw Error(ErrorCode::kFormat, type_mismatch(what, "a number", type));
}

bool GgufValue::as_bool(const std::string& what) const {
  if (type != GgufType::kBool) throw Error(ErrorCode::kFormat, type_mismatch(what, "bool", type));
  return std::get<bool>(v);
}

const std::string& GgufValue::as_string(const std::string& what) const {
  if (type != GgufType::kString) {
    throw Error(ErrorCode::kFormat, type_mismatch(what, "string", type));
  }
  return std::get<std::string>(v);
}

const GgufArray& GgufValue::as_array(const std::string& what) const {
  if (type != GgufType::kArray) {
    throw Error(ErrorCode::kFormat, type_mismatch(what, "array", type));
  }
  return *std::get<std::shared_ptr<GgufArray>>(v);
}

std::string GgufValue::to_display(size_t max_items) const {
  switch (type) {
    case GgufType::kBool:
      return std::get<bool>(v) ? "true" : "false";
    case GgufType::kString:
      return display_string(std::get<std::string>(v));
    case GgufType::kF32:
    case GgufType::kF64: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.9g", std::get<double>(v));
      return buf;
    }
    case GgufType::kArray: {
      const GgufArray& arr = *std::get<std::shared_ptr<GgufArray>>(v);
      std::string out = "[";
      const size_t n = std::min(arr.items.size(), max_items);
      for (size_t i = 0; i < n; ++i) {
        if (i) out += ", ";
        out += arr.items[i].to_display(max_items);
      }
      if (arr.items.size() > n) {
        out += ", ... (" + std::to_string(arr.items.size()) + " " + gguf_type_name(arr.elem_type) +
               " items)";
      }
      return out + "]";
    }
    default:
      if (const auto* u = std::get_if<uint64_t>(&v)) return std::to_string(*u);
      return std::to_string(std::get<int64_t>(v));
  }
}

namespace {

// " (NAME)" for the ggml types glassbox does not map (ggml.h `enum ggml_type`), so that an error
// can say which one a file uses; empty for ids ggml does not define (4, 5 and 31-33 were removed).
std::string unmapped_ggml_type_name(uint32_t ggml_type) {
  static const std::map<uint32_t, const char*> kNames = {
      {9, "Q8_1"},     {15, "Q8_K"},   {16, "IQ2_XXS"}, {17, "IQ2_XS"},
      {18, "IQ3_XXS"}, {19, "IQ1_S"},  {20, "IQ4_NL"},  {21, "IQ3_S"},
      {22, "IQ2_S"},   {23, "IQ4_XS"}, {24, "I8"},      {25, "I16"},
      {29, "IQ1_M"},   {34, "TQ1_0"},  {35, "TQ2_0"},   {39, "MXFP4"}};
  const auto it = kNames.find(ggml_type);
  return it == kNames.end() ? "" : std::string(" (") + it->second + ")";
}

}  // namespace

std::optional<DType> dtype_from_ggml_type(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0:
      return DType::kF32;
    case 1:
      return DType::kF16;
    case 2:
      return DType::kQ4_0;
    case 3:
      return DType::kQ4_1;
    case 6:
      return DType::kQ5_0;
    case 7:
      return DType::kQ5_1;
    case 8:
      return DType::kQ8_0;
    case 10:
      return DType::kQ2_K;
    case 11:
      return DType::kQ3_K;
    case 12:
      return DType::kQ4_K;
    case 13:
      return DType::kQ5_K;
    case 14:
      return DType::kQ6_K;
    case 26:
      return DType::kI32;
    case 27:
      return DType::kI64;
    case 28:
      return DType::kF64;
    case 30:
      return DType::kBF16;
    default:
      return std::nullopt;
  }
}

GgufFile GgufFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return parse(file->data(), file->size(), path, file);
}

GgufFile GgufFile::from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes, std::string name) {
  GLASSBOX_ASSERT(bytes != nullptr);
  return parse(bytes->data(), bytes->size(), std::move(name), bytes);
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, std::string name,
                         std::shared_ptr<const void> owner) {
  GgufFile f;
  f.owner_ = std::move(owner);
  f.data_ = data;
  f.size_ = size;
  f.path_ = std::move(name);
  ByteReader r(data, size, f.path_);

  const uint32_t magic = r.read<uint32_t>("magic");
  if (magic != gguf_limits::kMagic) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "bad magic 0x%08x, expected 0x%08x (\"GGUF\")", magic,
                  gguf_limits::kMagic);
    fail(ErrorCode::kFormat, f.path_, buf);
  }
  f.version_ = r.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3) {
    // v3 allows big-endian files; their version field reads byte-swapped here.
    const bool swapped = f.version_ != 0 && (f.version_ & 0xffff) == 0;
    fail(ErrorCode::kUnsupported, f.path_,
         swapped
             ? "big-endian GGUF files are not supported"
             : "GGUF version " + std::to_string(f.version_) + " is not supported (need 2 or 3)");
  }
  const uint64_t n_tensors = r.read<uint64_t>("n_tensors");
  const uint64_t n_kv = r.read<uint64_t>("n_kv");
  if (n_kv > r.remaining() / kMinKvBytes) {
    r.fail("n_kv = " + std::to_string(n_kv) + " key/value pairs cannot fit in the " +
           std::to_string(r.remaining()) + " bytes left (each needs at least " +
           std::to_string(kMinKvBytes) + ")");
  }
  if (n_tensors > r.remaining() / kMinTensorInfoBytes) {
    r.fail("n_tensors = " + std::to_string(n_tensors) + " tensor infos cannot fit in the " +
           std::to_string(r.remaining()) + " bytes left (each needs at least " +
           std::to_string(kMinTensorInfoBytes) + ")");
  }
  f.parse_metadata(r, n_kv);
  f.parse_tensor_infos(r, n_tensors);
  // The data section starts at the next multiple of the alignment; r.pos() <= size < 2^63 and
  // alignment <= 2^31, so this cannot overflow.
  f.data_offset_ = (r.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  f.validate_tensors();
  return f;
}

void GgufFile::parse_metadata(ByteReader& r, uint64_t n_kv) {
  ValueReader vr(r);
  metadata_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = vr.read_string("metadata key #" + std::to_string(i));
    if (key.empty()) r.fail("metadata key #" + std::to_string(i) + " is empty");
    const std::string field = "metadata " + in_quotes(key);
    const GgufType type = vr.read_type(field);
    GgufValue value = vr.read_value(type, field, 0);
    if (!metadata_index_.emplace(key, metadata_.size()).second) {
      r.fail("duplicate metadata key " + in_quotes(key));
    }
    metadata_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = find("general.alignment")) {
    const int64_t align = a->as_int(path_ + ": metadata 'general.alignment'");
    if (align <= 0 || static_cast<uint64_t>(align) > kMaxAlignment || (align & (align - 1)) != 0) {
      fail(ErrorCode::kFormat, path_,
           "metadata 'general.alignment' = " + std::to_string(align) +
               ", expected a power of two between 1 and 2^31");
    }
    alignment_ = static_cast<uint64_t>(align);
  }
}

void GgufFile::parse_tensor_infos(ByteReader& r, uint64_t n_tensors) {
  ValueReader vr(r);
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo info;
    info.name = vr.read_string("tensor #" + std::to_string(i) + " name");
    if (info.name.empty()) r.fail("tensor #" + std::to_string(i) + " has an empty name");
    const std::string field = "tensor " + in_quotes(info.name);
    const uint32_t n_dims = r.read<uint32_t>(field + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      r.fail(field + ": n_dims = " + std::to_string(n_dims) + ", expected 1.." +
             std::to_string(kMaxDims));
    }
    Shape ne(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = r.read<uint64_t>(field + " ne[" + std::to_string(d) + "]");
      if (v > static_cast<uint64_t>(kMaxNumel)) {
        r.fail(field + ": ne[" + std::to_string(d) + "] = " + std::to_string(v) + " is too large");
      }
      ne[d] = static_cast<int64_t>(v);
    }
    info.shape.assign(ne.rbegin(), ne.rend());  // ggml's ne0 is the fastest axis
    info.ggml_type = r.read<uint32_t>(field + " type");
    info.offset = r.read<uint64_t>(field + " offset");
    if (!tensor_index_.emplace(info.name, tensors_.size()).second) {
      r.fail("duplicate tensor name " + in_quotes(info.name));
    }
    tensors_.push_back(std::move(info));
  }
}

void GgufFile::validate_tensors() {
  for (GgufTensorInfo& t : tensors_) {
    const std::string what = "tensor " + in_quotes(t.name);
    const std::optional<DType> dtype = dtype_from_ggml_type(t.ggml_type);
    if (!dtype) {
      fail(ErrorCode::kUnsupported, path_,
           what + ": unsupported ggml type id " + std::to_string(t.ggml_type) +
               unmapped_ggml_type_name(t.ggml_type) +
               "; glassbox reads F32, F16, BF16, F64, I32, I64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
               "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K");
    }
    t.dtype = *dtype;
    const DTypeInfo& di = dtype_info(t.dtype);
    const int64_t ne0 = t.shape.back();
    if (ne0 % di.block_size != 0) {
      fail(ErrorCode::kFormat, path_,
           what + ": ne[0] = " + std::to_string(ne0) + " is not a multiple of the " + di.name +
               " block size " + std::to_string(di.block_size));
    }
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d != 0 && numel > kMaxNumel / d) {
        fail(ErrorCode::kFormat, path_, what + ": shape " + shape_str(t.shape) + " overflows");
      }
      numel *= d;
    }
    const uint64_t blocks = static_cast<uint64_t>(numel / di.block_size);
    if (blocks > size_ / di.block_bytes) {
      fail(ErrorCode::kFormat, path_,
           what + ": shape " + shape_str(t.shape) + " of " + di.name + " needs more bytes than " +
               "the whole file (" + std::to_string(size_) + " bytes)");
    }
    t.nbytes = static_cast<size_t>(blocks * di.block_bytes);
    if (t.offset % alignment_ != 0) {
      fail(ErrorCode::kFormat, path_,
           what + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
               std::to_string(alignment_));
    }
    if (data_offset_ > size_ || t.offset > size_ - data_offset_ ||
        t.nbytes > size_ - data_offset_ - t.offset) {
      fail(ErrorCode::kFormat, path_,
           what + ": data [offset " + std::to_string(t.offset) + ", " + std::to_string(t.nbytes) +
               " bytes] runs past the end of the file (" + std::to_string(size_) +
               " bytes, data section at " + std::to_string(data_offset_) + ")");
    }
    // Kernels read elements through typed pointers; an alignment smaller than the element (only
    // possible with a tiny general.alignment) would make that undefined behaviour.
    const size_t elem_align = std::min<size_t>(di.block_size == 1 ? di.block_bytes : 2, 8);
    if ((data_offset_ + t.offset) % elem_align != 0) {
      fail(ErrorCode::kFormat, path_,
           what + ": data at file offset " + std::to_string(data_offset_ + t.offset) +
               " is not aligned to " + std::to_string(elem_align) + " bytes for " + di.name);
    }
  }
  // Tensors may come in any order but must not share bytes.
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : tensors_) {
    if (t.nbytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& a = *by_offset[i - 1];
    const GgufTensorInfo& b = *by_offset[i];
    if (b.offset < a.offset + a.nbytes) {
      fail(ErrorCode::kFormat, path_,
           "tensor " + in_quotes(b.name) + " [offset " + std::to_string(b.offset) +
               "] overlaps tensor " + in_quotes(a.name) + " [offset " + std::to_string(a.offset) +
               ", " + std::to_string(a.nbytes) + " bytes]");
    }
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  const auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) throw Error(ErrorCode::kNotFound, path_ + ": missing metadata key " + key);
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (info == nullptr) throw Error(ErrorCode::kNotFound, path_ + ": no tensor named " + name);
  return Tensor::borrow(info->dtype, info->shape, data_ + data_offset_ + info->offset, owner_);
}

}  // namespace glassbox
