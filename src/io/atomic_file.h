// AtomicFile: writes a file as PATH.tmp and renames it over PATH on commit(), so a reader never
// sees a partial file and a failed write leaves any previous PATH untouched. Owns only the
// mechanics of that write; the format writers in io/ produce the bytes. Every failure is
// Error(kIo) naming PATH; a temporary file not committed is removed when the object dies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace glassbox {

class AtomicFile {
 public:
  // Creates PATH.tmp (truncating a leftover one); throws Error(kIo) naming PATH on failure.
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  uint64_t bytes_written() const { return written_; }
  // Closes PATH.tmp and renames it over PATH.
  void commit();

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace glassbox
