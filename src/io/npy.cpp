#include "io/npy.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "io/mapped_file.h"

namespace glassbox {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;  // numpy's ARRAY_ALIGN: data starts at a multiple of this

struct DescrEntry {
  DType dtype;
  const char* descr;  // as written; '<' may also be read as '='
};
constexpr DescrEntry kDescrs[] = {
    {DType::kF32, "<f4"}, {DType::kF64, "<f8"}, {DType::kF16, "<f2"},
    {DType::kI32, "<i4"}, {DType::kI64, "<i8"}, {DType::kU8, "|u1"},
    // numpy has no bfloat16; ml_dtypes' bfloat16 arrays save as 2-byte void, and such a file
    // loads back with np.load(...).view(ml_dtypes.bfloat16).
    {DType::kBF16, "<V2"},
};

std::optional<std::string> descr_for(DType dtype) {
  for (const DescrEntry& e : kDescrs) {
    if (e.dtype == dtype) return std::string(e.descr);
  }
  return std::nullopt;
}

std::optional<DType> dtype_for(std::string descr) {
  if (descr.size() == 3 && (descr[0] == '=' || descr[0] == '|')) descr[0] = '<';
  for (const DescrEntry& e : kDescrs) {
    std::string d = e.descr;
    d[0] = '<';
    if (d == descr) return e.dtype;
  }
  return std::nullopt;
}

// The header dict, as written by numpy: {'descr': ..., 'fortran_order': ..., 'shape': (...), }
struct NpyDict {
  std::string descr;
  bool fortran_order = false;
  Shape shape;
};

// Parses the small subset of Python literal syntax numpy writes in .npy headers.
class DictParser {
 public:
  DictParser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  NpyDict parse() {
    NpyDict d;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = parse_string("key");
      expect(':');
      if (key == "descr") {
        skip_ws();
        if (peek() != '\'' && peek() != '"') {
          fail("descr is not a plain type string (structured dtypes are not supported)");
        }
        d.descr = parse_string("descr");
        seen_descr = true;
      } else if (key == "fortran_order") {
        d.fortran_order = parse_bool();
        seen_order = true;
      } else if (key == "shape") {
        d.shape = parse_shape();
        seen_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        fail("expected ',' or '}' at header byte " + std::to_string(pos_));
      }
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the dict at byte " + std::to_string(pos_));
    if (!seen_descr || !seen_order || !seen_shape) {
      fail("dict lacks one of 'descr', 'fortran_order', 'shape'");
    }
    return d;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kFormat, source_ + ": npy header: " + what);
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) {
      fail(std::string("expected '") + c + "' at header byte " + std::to_string(pos_));
    }
    ++pos_;
  }
  std::string parse_string(const char* what) {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') fail(std::string("expected a quoted ") + what);
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string_view::npos) fail(std::string("unterminated ") + what + " string");
    std::string out(s_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  bool parse_bool() {
    skip_ws();
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("fortran_order is not True or False");
  }
  Shape parse_shape() {
    expect('(');
    Shape shape;
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("shape entry is not a non-negative integer");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = peek() - '0';
        if (v > (kMaxNumel - digit) / 10) fail("shape entry is too large");
        v = v * 10 + digit;
        ++pos_;
      }
      if (peek() == 'L') ++pos_;  // Python 2 long literal
      shape.push_back(v);
      if (shape.size() > 64) fail("shape has more than 64 dimensions");
      skip_ws();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in shape");
      }
    }
    ++pos_;
    // (3) is a parenthesised int, not a tuple; numpy always writes (3,), but accept both.
    return shape;
  }

  std::string_view s_;
  size_t pos_ = 0;
  const std::string& source_;
};

std::string shape_repr(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

[[noreturn]] void io_fail(const std::string& path, const std::string& what, int err) {
  throw Error(ErrorCode::kIo, path + ": " + what + ": " + std::strerror(err));
}

// Closes the descriptor on every exit path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail(path, "write failed", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

std::string npy_header(DType dtype, const Shape& shape) {
  const std::optional<std::string> descr = descr_for(dtype);
  if (!descr) {
    throw Error(ErrorCode::kUnsupported,
                std::string("dtype ") + dtype_name(dtype) + " cannot be stored in .npy");
  }
  const std::string dict =
      "{'descr': '" + *descr + "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  // Version 1.0 stores the header length as u16; 2.0 (u32) only when that is too small.
  for (int major = 1; major <= 2; ++major) {
    const size_t len_bytes = major == 1 ? 2 : 4;
    const size_t unpadded = kMagicLen + 2 + len_bytes + dict.size() + 1;  // + '\n'
    const size_t total = (unpadded + kAlign - 1) / kAlign * kAlign;
    const size_t header_len = total - kMagicLen - 2 - len_bytes;
    if (major == 1 && header_len > 0xffff) continue;
    std::string out(kNpyMagic, kMagicLen);
    out += static_cast<char>(major);
    out += '\0';
    for (size_t i = 0; i < len_bytes; ++i) out += static_cast<char>((header_len >> (8 * i)) & 0xff);
    out += dict;
    out.append(total - out.size() - 1, ' ');
    out += '\n';
    return out;
  }
  throw Error(ErrorCode::kUnsupported, "npy header too long");  // unreachable in practice
}

void write_npy(const std::string& path, const Tensor& tensor) {
  if (!tensor.defined()) throw Error(ErrorCode::kInvalidArgument, path + ": tensor is undefined");
  const std::string header = npy_header(tensor.dtype(), tensor.shape());
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) io_fail(path, "cannot create " + tmp, errno);
  try {
    write_all(fd.get(), header.data(), header.size(), path);
    write_all(fd.get(), tensor.raw(), tensor.nbytes(), path);
    if (::close(fd.release()) != 0) io_fail(path, "close failed", errno);
    if (::rename(tmp.c_str(), path.c_str()) != 0) io_fail(path, "cannot rename " + tmp, errno);
  } catch (...) {
    ::unlink(tmp.c_str());  // best effort: a leftover .tmp is harmless but untidy
    throw;
  }
}

Tensor read_npy(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return decode_npy(file->data(), file->size(), path);
}

Tensor decode_npy(const uint8_t* data, size_t size, const std::string& name) {
  ByteReader r(data, size, name);
  const uint8_t* magic = r.take(kMagicLen, "npy magic");
  if (std::memcmp(magic, kNpyMagic, kMagicLen) != 0) r.fail("bad npy magic (expected \\x93NUMPY)");
  const auto major = r.read<uint8_t>("npy major version");
  const auto minor = r.read<uint8_t>("npy minor version");
  if (major < 1 || major > 3 || minor != 0) {
    r.fail("npy version " + std::to_string(major) + "." + std::to_string(minor) +
           " is not supported (need 1.0, 2.0 or 3.0)");
  }
  const size_t header_len =
      major == 1 ? r.read<uint16_t>("npy header length") : r.read<uint32_t>("npy header length");
  const uint8_t* text = r.take(header_len, "npy header");
  const NpyDict dict =
      DictParser(std::string_view(reinterpret_cast<const char*>(text), header_len), name).parse();

  if (dict.descr.size() > 0 && dict.descr[0] == '>') {
    r.fail("big-endian descr '" + dict.descr + "' is not supported");
  }
  if (dict.fortran_order) r.fail("fortran_order True (column-major) arrays are not supported");
  const std::optional<DType> dtype = dtype_for(dict.descr);
  if (!dtype) {
    r.fail("descr '" + dict.descr + "' is not supported (need f4, f8, f2, i4, i8 or u1)");
  }
  int64_t numel = 1;
  for (int64_t d : dict.shape) {
    if (d != 0 && numel > kMaxNumel / d) r.fail("shape " + shape_str(dict.shape) + " overflows");
    numel *= d;
  }
  const uint64_t item = dtype_info(*dtype).block_bytes;
  const uint64_t n = static_cast<uint64_t>(numel);
  const bool too_big = n > std::numeric_limits<uint64_t>::max() / item;
  if (too_big || n * item != r.remaining()) {
    r.fail("shape " + shape_str(dict.shape) + " of " + dict.descr + " needs " +
           (too_big ? "more than 2^64" : std::to_string(n * item)) + " data bytes, file has " +
           std::to_string(r.remaining()));
  }
  Tensor t = Tensor::zeros(*dtype, dict.shape);
  const size_t bytes = r.remaining();
  if (bytes > 0) std::memcpy(t.mutable_raw(), r.take(bytes, "npy data"), bytes);
  return t;
}

}  // namespace glassbox
