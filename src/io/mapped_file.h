// MappedFile: a read-only memory mapping of a whole file, shared by the tensors borrowed from it.
// ByteReader: a bounds-checked little-endian cursor over such bytes; every read names the file
// and the field being read, so a truncated file yields "FILE: truncated reading FIELD at byte N
// (need K bytes, file has M)" instead of a crash. All format readers in io/ parse through it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

namespace glassbox {

// The largest element count a tensor header may declare: products of dims are checked against it
// before any size is computed, so that no multiplication of file-given numbers can overflow.
inline constexpr int64_t kMaxNumel = int64_t{1} << 62;

class MappedFile {
 public:
  // Throws Error(kIo) when the file is missing or cannot be mapped. An empty file maps to size 0.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, std::string source)
      : data_(data), size_(size), source_(std::move(source)) {}

  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& source() const { return source_; }
  void seek(size_t pos, std::string_view field);

  template <class T>
  T read(std::string_view field) {
    require(sizeof(T), field);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  // Returns a pointer to `n` bytes and advances past them.
  const uint8_t* take(size_t n, std::string_view field);
  std::string read_string(size_t n, std::string_view field) {
    const uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  // Throws Error(kFormat) naming the source, field and offset.
  [[noreturn]] void fail(std::string_view what) const;
  void require(size_t n, std::string_view field) const;

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string source_;
};

}  // namespace glassbox
