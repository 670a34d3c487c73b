// SHA-256 (FIPS 180-4), for content hashes recorded in manifests (model files, store shards):
// the hash users compare with `sha256sum` and the Hugging Face hub.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace glassbox {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);

  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Hex SHA-256 of a whole file, read in chunks. Throws Error(kIo) naming the path.
std::string sha256_file(const std::string& path);

// Content hash of a file (sha256_file) or of a directory: SHA-256 over one line
// "<name> <sha256_file>\n" per regular file whose name ends with one of `suffixes`, in name order
// (a model or SAE directory: its config and weight files, not stray logs).
std::string sha256_path(const std::string& path, std::initializer_list<std::string_view> suffixes);

}  // namespace glassbox
