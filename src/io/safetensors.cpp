#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "io/atomic_file.h"
#include "io/mapped_file.h"

namespace glassbox {
namespace {

using Json = nlohmann::json;

// The reference implementation refuses larger headers; real ones are well under 10 MB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// Real headers nest 3 deep (root, entry, shape); the bound keeps a hostile header cheap.
constexpr size_t kMaxJsonDepth = 16;
constexpr size_t kMaxSafetensorsDims = 64;
constexpr std::string_view kMetadataKey = "__metadata__";

struct DtypeEntry {
  const char* name;
  uint32_t bits;  // per element; sub-byte types pack elements
  std::optional<DType> dtype;
};
// Every dtype safetensors defines (0.6: the float8/6/4 variants and C64 included).
// clang-format off
const DtypeEntry kDtypes[] = {
    {"F64", 64, DType::kF64},   {"F32", 32, DType::kF32},   {"F16", 16, DType::kF16},
    {"BF16", 16, DType::kBF16}, {"I64", 64, DType::kI64},   {"I32", 32, DType::kI32},
    {"U8", 8, DType::kU8},      {"U64", 64, std::nullopt},  {"U32", 32, std::nullopt},
    {"I16", 16, std::nullopt},  {"U16", 16, std::nullopt},  {"I8", 8, std::nullopt},
    {"BOOL", 8, std::nullopt},  {"C64", 64, std::nullopt},  {"F8_E5M2", 8, std::nullopt},
    {"F8_E4M3", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt}, {"F8_E4M3FNUZ", 8, std::nullopt},
    {"F8_E5M2FNUZ", 8, std::nullopt}, {"F6_E2M3", 6, std::nullopt}, {"F6_E3M2", 6, std::nullopt},
    {"F4", 4, std::nullopt},
};
// clang-format on

const DtypeEntry* find_dtype(const std::string& name) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name) return &e;
  }
  return nullptr;
}


// Built by appending: g++ 12 warns falsely (-Wrestrict) on "[" + std::to_string(...).
std::string range_str(uint64_t begin, uint64_t end) {
  std::string s = "[";
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  return s + "]";
}

// Header entries as parsed, before the semantic checks.
struct RawEntry {
  std::string name;
  std::optional<std::string> dtype;
  std::optional<Shape> shape;
  std::vector<uint64_t> offsets;
  bool has_offsets = false;
};

// Streams the header JSON into RawEntry values and the metadata map. Keeps only what it needs
// (unknown keys inside an entry are skipped, as serde does), so memory stays proportional to the
// tensors described, not to what a hostile header nests; every structural problem throws at once.
class HeaderHandler : public nlohmann::json_sax<Json> {
 public:
  HeaderHandler(const std::string& source, std::vector<RawEntry>& entries,
                std::map<std::string, std::string>& metadata)
      : source_(source), entries_(entries), metadata_(metadata) {}

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("a boolean"); }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) return number_unsigned(static_cast<uint64_t>(v));
    if (top() == Ctx::kShape) fail(where() + ": shape" + index_str() + " is negative");
    if (top() == Ctx::kOffsets) fail(where() + ": data_offsets" + index_str() + " is negative");
    return scalar("a number");
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (top() == Ctx::kShape) {
      if (v > static_cast<uint64_t>(kMaxNumel)) {
        fail(where() + ": shape" + index_str() + " = " + std::to_string(v) + " is too large");
      }
      if (entry().shape->size() == kMaxSafetensorsDims) {
        fail(where() + ": shape has more than " + std::to_string(kMaxSafetensorsDims) + " dims");
      }
      entry().shape->push_back(static_cast<int64_t>(v));
      return true;
    }
    if (top() == Ctx::kOffsets) {
      if (entry().offsets.size() == 2) fail(where() + ": data_offsets has more than 2 entries");
      entry().offsets.push_back(v);
      return true;
    }
    return scalar("a number");
  }
  bool number_float(number_float_t, const string_t& text) override {
    if (top() == Ctx::kShape || top() == Ctx::kOffsets) {
      fail(where() + ": " + (top() == Ctx::kShape ? "shape" : "data_offsets") + index_str() +
           " = " + text + " is not an integer in 0..2^64-1");
    }
    return scalar("a number");
  }
  bool string(string_t& v) override {
    if (top() == Ctx::kMetadata) {
      metadata_[key_] = std::move(v);
      return true;
    }
    if (top() == Ctx::kTensor && key_ == "dtype") {
      entry().dtype = std::move(v);
      return true;
    }
    return scalar("a string");
  }
  bool binary(binary_t&) override { return scalar("binary"); }

  bool start_object(std::size_t) override {
    switch (top()) {
      case Ctx::kNone:
        push(Ctx::kRoot);
        return true;
      case Ctx::kRoot:
        if (key_ == kMetadataKey) {
          push(Ctx::kMetadata);
        } else {
          entries_.push_back(RawEntry{key_, std::nullopt, std::nullopt, {}, false});
          push(Ctx::kTensor);
        }
        return true;
      case Ctx::kTensor:
        if (is_known_field()) fail(where() + ": " + key_ + " is an object");
        push(Ctx::kSkip);
        return true;
      case Ctx::kSkip:
        push(Ctx::kSkip);
        return true;
      default:
        return scalar("an object");
    }
  }
  bool key(string_t& k) override {
    if (top() == Ctx::kRoot) {
      if (!root_keys_.insert(k).second) fail("header: duplicate entry " + in_quotes(k));
    } else if (top() == Ctx::kMetadata) {
      if (metadata_.count(k)) fail("header: __metadata__: duplicate key " + in_quotes(k));
    } else if (top() == Ctx::kTensor) {
      if (is_known_field(k) && !fields_seen_.insert(k).second) {
        fail("header: tensor " + in_quotes(entry().name) + ": duplicate key " + in_quotes(k));
      }
    }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (top() == Ctx::kTensor) {
      for (const char* field : {"dtype", "shape", "data_offsets"}) {
        if (!fields_seen_.count(field)) fail(where() + ": missing " + in_quotes(field));
      }
      fields_seen_.clear();
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (top() == Ctx::kTensor && key_ == "shape") {
      entry().shape.emplace();
      push(Ctx::kShape);
    } else if (top() == Ctx::kTensor && key_ == "data_offsets") {
      entry().has_offsets = true;
      push(Ctx::kOffsets);
    } else if (top() == Ctx::kSkip || (top() == Ctx::kTensor && !is_known_field())) {
      push(Ctx::kSkip);
    } else {
      scalar("an array");
    }
    return true;
  }
  bool end_array() override {
    if (top() == Ctx::kOffsets && entry().offsets.size() != 2) {
      fail(where() + ": data_offsets has " + std::to_string(entry().offsets.size()) +
           " entries, expected 2");
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep its description.
    std::string what = ex.what();
    const size_t close = what.find("] ");
    if (close != std::string::npos) what = what.substr(close + 2);
    fail("header is not valid JSON (header byte " + std::to_string(position) + "): " + what);
  }

 private:
  enum class Ctx { kNone, kRoot, kMetadata, kTensor, kShape, kOffsets, kSkip };

  Ctx top() const { return stack_.empty() ? Ctx::kNone : stack_.back(); }
  void push(Ctx c) {
    if (stack_.size() == kMaxJsonDepth) {
      fail("header: JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    stack_.push_back(c);
  }
  RawEntry& entry() { return entries_.back(); }
  bool is_known_field() const { return is_known_field(key_); }
  static bool is_known_field(const std::string& k) {
    return k == "dtype" || k == "shape" || k == "data_offsets";
  }
  std::string where() const { return "header: tensor " + in_quotes(entries_.back().name); }
  std::string index_str() {
    const size_t i = top() == Ctx::kShape ? entry().shape->size() : entry().offsets.size();
    std::string s = "[";
    s += std::to_string(i);
    return s + "]";
  }
  // A value of the wrong kind for where it appears (anything goes inside skipped values).
  bool scalar(const char* kind) {
    switch (top()) {
      case Ctx::kSkip:
        return true;
      case Ctx::kNone:
        fail(std::string("header is ") + kind + ", not a JSON object");
      case Ctx::kRoot:
        if (key_ == kMetadataKey) fail(std::string("header: __metadata__ is ") + kind);
        fail("header: entry " + in_quotes(key_) + " is " + kind + ", not an object");
      case Ctx::kMetadata:
        fail("header: __metadata__ " + in_quotes(key_) + " is " + kind + ", not a string");
      case Ctx::kTensor:
        if (!is_known_field()) return true;  // unknown fields are ignored
        fail(where() + ": " + key_ + " is " + kind);
      case Ctx::kShape:
        fail(where() + ": shape" + index_str() + " is " + kind + ", not an integer");
      case Ctx::kOffsets:
        fail(where() + ": data_offsets" + index_str() + " is " + kind + ", not an integer");
    }
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kFormat, source_ + ": " + what);
  }

  const std::string& source_;
  std::vector<RawEntry>& entries_;
  std::map<std::string, std::string>& metadata_;
  std::vector<Ctx> stack_;
  std::string key_;
  std::set<std::string> root_keys_;
  std::set<std::string> fields_seen_;  // of the tensor entry being parsed
};


}  // namespace

std::optional<std::string> safetensors_dtype_name(DType dtype) {
  for (const DtypeEntry& e : kDtypes) {
    if (e.dtype == dtype) return std::string(e.name);
  }
  return std::nullopt;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return parse(file->data(), file->size(), path, file);
}

SafetensorsFile SafetensorsFile::from_bytes(std::shared_ptr<const std::vector<uint8_t>> bytes,
                                            std::string name) {
  GLASSBOX_ASSERT(bytes != nullptr);
  return parse(bytes->data(), bytes->size(), std::move(name), bytes);
}

SafetensorsFile SafetensorsFile::parse(const uint8_t* data, size_t size, std::string name,
                                       std::shared_ptr<const void> owner) {
  SafetensorsFile f;
  f.owner_ = std::move(owner);
  f.data_ = data;
  f.size_ = size;
  f.path_ = std::move(name);
  ByteReader r(data, size, f.path_);
  const uint64_t n = r.read<uint64_t>("header length");
  if (n > kMaxHeaderBytes) {
    r.fail("header length " + std::to_string(n) + " exceeds the limit of " +
           std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (n > r.remaining()) {
    r.fail("header length " + std::to_string(n) + " runs past the end of the file (" +
           std::to_string(size) + " bytes)");
  }
  const auto* header = reinterpret_cast<const char*>(r.take(static_cast<size_t>(n), "header"));
  f.data_offset_ = 8 + n;
  // nlohmann's lexer reads a NUL byte as the end of input, which would accept "{}\0garbage";
  // raw NULs are never valid JSON (inside strings they must be escaped), so refuse them here.
  if (const void* nul = std::memchr(header, 0, static_cast<size_t>(n))) {
    r.fail("header byte " + std::to_string(static_cast<const char*>(nul) - header) +
           " is NUL (headers are padded with spaces)");
  }

  std::vector<RawEntry> entries;
  HeaderHandler handler(f.path_, entries, f.metadata_);
  if (!Json::sax_parse(header, header + n, &handler)) {
    fail(ErrorCode::kFormat, f.path_, "header is not valid JSON");  // handlers throw first
  }

  f.tensors_.reserve(entries.size());
  for (RawEntry& e : entries) {
    SafetensorsTensorInfo info;
    info.name = std::move(e.name);
    info.dtype_name = std::move(*e.dtype);
    info.shape = std::move(*e.shape);
    info.begin = e.offsets[0];
    info.end = e.offsets[1];
    f.index_.emplace(info.name, f.tensors_.size());
    f.tensors_.push_back(std::move(info));
  }
  f.validate_layout(size - f.data_offset_);
  return f;
}

void SafetensorsFile::validate_layout(uint64_t buffer_size) {
  for (SafetensorsTensorInfo& t : tensors_) {
    const std::string what = "tensor " + in_quotes(t.name);
    const DtypeEntry* dt = find_dtype(t.dtype_name);
    if (dt == nullptr) {
      fail(ErrorCode::kUnsupported, path_, what + ": unknown dtype " + in_quotes(t.dtype_name));
    }
    t.dtype = dt->dtype;
    if (t.begin > t.end) {
      fail(ErrorCode::kFormat, path_,
           what + ": data_offsets " + range_str(t.begin, t.end) + " end before they begin");
    }
    if (t.end > buffer_size) {
      fail(ErrorCode::kFormat, path_,
           what + ": data_offsets " + range_str(t.begin, t.end) +
               " run past the end of the data buffer (" + std::to_string(buffer_size) + " bytes)");
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d != 0 && numel > static_cast<uint64_t>(kMaxNumel / d)) {
        fail(ErrorCode::kFormat, path_, what + ": shape " + shape_str(t.shape) + " overflows");
      }
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t bits = numel * dt->bits;  // numel <= 2^62 and bits <= 64: fits after /8
    if (numel > std::numeric_limits<uint64_t>::max() / dt->bits || bits % 8 != 0) {
      fail(ErrorCode::kFormat, path_,
           what + ": shape " + shape_str(t.shape) + " of " + t.dtype_name +
               " is not a whole number of bytes");
    }
    if (bits / 8 != t.end - t.begin) {
      fail(ErrorCode::kFormat, path_,
           what + ": shape " + shape_str(t.shape) + " of " + t.dtype_name + " needs " +
               std::to_string(bits / 8) + " bytes, but data_offsets " + range_str(t.begin, t.end) +
               " hold " + std::to_string(t.end - t.begin));
    }
  }
  // Sorted by offset, the tensors must tile the buffer exactly: overlapping tensors would alias,
  // and unclaimed bytes mean a damaged or hand-edited file.
  std::vector<const SafetensorsTensorInfo*> order;
  order.reserve(tensors_.size());
  for (const SafetensorsTensorInfo& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const SafetensorsTensorInfo* t : order) {
    if (t->begin < covered) {
      fail(ErrorCode::kFormat, path_,
           "tensor " + in_quotes(t->name) + " " + range_str(t->begin, t->end) +
               " overlaps tensor " + in_quotes(prev->name) + " " +
               range_str(prev->begin, prev->end));
    }
    if (t->begin > covered) {
      fail(ErrorCode::kFormat, path_,
           "bytes " + range_str(covered, t->begin) + " of the data buffer before tensor " +
               in_quotes(t->name) + " belong to no tensor");
    }
    covered = t->end;
    prev = t;
  }
  if (covered != buffer_size) {
    fail(ErrorCode::kFormat, path_,
         "the data buffer has " + std::to_string(buffer_size) + " bytes but the tensors cover " +
             std::to_string(covered) + " (trailing bytes after the last tensor)");
  }
}

const SafetensorsTensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const SafetensorsTensorInfo* info = find(name);
  if (info == nullptr) throw Error(ErrorCode::kNotFound, path_ + ": no tensor named " + name);
  if (!info->dtype) {
    fail(ErrorCode::kUnsupported, path_,
         "tensor " + in_quotes(name) + " has dtype " + info->dtype_name +
             ", which glassbox does not support (F64, F32, F16, BF16, I64, I32, U8)");
  }
  const uint8_t* p = data_ + data_offset_ + info->begin;
  Tensor t = Tensor::borrow(*info->dtype, info->shape, p, owner_);
  // Kernels read through typed pointers; a file whose header length is not a multiple of 8, or
  // whose tensors are not ordered by alignment, would hand them misaligned ones.
  const size_t align = dtype_info(*info->dtype).block_bytes;
  if (reinterpret_cast<uintptr_t>(p) % align != 0) return t.clone();
  return t;
}

// ---- writer ----

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  static_assert(std::endian::native == std::endian::little, "safetensors is little-endian");
  struct Item {
    const std::string* name;
    const Tensor* tensor;
    std::string dtype;
    size_t itemsize;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::set<std::string_view> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    auto invalid = [&](const std::string& what) {
      throw Error(ErrorCode::kInvalidArgument, path + ": " + what);
    };
    if (name.empty()) invalid("tensor #" + std::to_string(i) + " has an empty name");
    if (name == kMetadataKey) invalid("tensor name '__metadata__' is reserved");
    if (!names.insert(name).second) invalid("duplicate tensor name " + in_quotes(name));
    if (!t.defined() || (t.nbytes() > 0 && t.raw() == nullptr)) {
      invalid("tensor " + in_quotes(name) + " is undefined");
    }
    const std::optional<std::string> dtype = safetensors_dtype_name(t.dtype());
    if (!dtype) {
      throw Error(ErrorCode::kUnsupported, path + ": tensor " + in_quotes(name) + " has dtype " +
                                               dtype_name(t.dtype()) +
                                               ", which safetensors cannot store");
    }
    items.push_back({&name, &t, *dtype, dtype_info(t.dtype()).block_bytes});
  }
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.itemsize > b.itemsize; });

  // Built by hand rather than as one Json object: an ordered object's inserts are linear, and
  // only names and metadata need escaping.
  std::string header = "{";
  try {
    if (!metadata.empty()) header += "\"__metadata__\":" + Json(metadata).dump() + ",";
    uint64_t offset = 0;
    for (const Item& it : items) {
      const uint64_t end = offset + it.tensor->nbytes();
      header += Json(*it.name).dump() + ":{\"dtype\":\"" + it.dtype +
                "\",\"shape\":" + Json(it.tensor->shape()).dump() + ",\"data_offsets\":[" +
                std::to_string(offset) + "," + std::to_string(end) + "]},";
      offset = end;
    }
  } catch (const Json::type_error& e) {
    throw Error(ErrorCode::kInvalidArgument,
                path + ": a tensor name or metadata string is not valid UTF-8");
  }
  if (header.size() > 1) header.pop_back();  // the last ','
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // the buffer starts 8-byte aligned

  AtomicFile out(path);
  const uint64_t n = header.size();
  out.write(&n, sizeof(n));
  out.write(header.data(), header.size());
  for (const Item& it : items) out.write(it.tensor->raw(), it.tensor->nbytes());
  out.commit();
}

}  // namespace glassbox
