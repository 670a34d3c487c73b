// Paths of the models tests run on: the embedded default (always present) and ../shared ones.
#pragma once

#include <filesystem>
#include <string>

namespace glassbox::testing {

inline std::string repo_path(const std::string& rel) {
  return std::string(GLASSBOX_SOURCE_DIR) + "/" + rel;
}
inline std::string shared_path(const std::string& rel) {
  return std::string(GLASSBOX_SHARED_DIR) + "/" + rel;
}
inline bool exists(const std::string& path) { return std::filesystem::exists(path); }

inline std::string shared_gguf(const std::string& name) { return shared_path("models/gguf/" + name); }
inline std::filesystem::path shared_tokenizers() { return shared_path("models/tokenizers"); }

inline std::string stories260k() { return repo_path("models/stories260K/stories260K.bin"); }

}  // namespace glassbox::testing
