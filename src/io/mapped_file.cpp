#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace glassbox {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(ErrorCode::kIo, path + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCode::kIo, path + ": mmap failed: " + std::strerror(err));
    }
    file->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

void ByteReader::fail(std::string_view what) const {
  throw Error(ErrorCode::kFormat, source_ + ": " + std::string(what));
}

void ByteReader::require(size_t n, std::string_view field) const {
  if (n > size_ - pos_) {
    fail("truncated reading " + std::string(field) + " at byte " + std::to_string(pos_) +
         " (need " + std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) + " left)");
  }
}

void ByteReader::seek(size_t pos, std::string_view field) {
  if (pos > size_) {
    fail(std::string(field) + " at byte " + std::to_string(pos) + " lies past the end (" +
         std::to_string(size_) + " bytes)");
  }
  pos_ = pos;
}

const uint8_t* ByteReader::take(size_t n, std::string_view field) {
  require(n, field);
  const uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

}  // namespace glassbox
