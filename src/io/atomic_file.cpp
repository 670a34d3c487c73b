#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace glassbox {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create " + tmp_, errno);
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());  // best effort: a leftover .tmp is harmless but untidy
}

void AtomicFile::fail(const std::string& what, int err) const {
  throw Error(ErrorCode::kIo, path_ + ": " + what + ": " + std::strerror(err));
}

void AtomicFile::write(const void* data, size_t n) {
  GLASSBOX_ASSERT(fd_ >= 0 && !committed_);
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void AtomicFile::write_zeros(size_t n) {
  static constexpr char kZeros[256] = {};
  while (n > 0) {
    const size_t k = std::min(n, sizeof(kZeros));
    write(kZeros, k);
    n -= k;
  }
}

void AtomicFile::commit() {
  GLASSBOX_ASSERT(fd_ >= 0 && !committed_);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) fail("close failed", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + tmp_, errno);
  committed_ = true;
}

}  // namespace glassbox
