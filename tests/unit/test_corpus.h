// Text the tokenizer tests encode: every line of ../shared/corpus/*.txt and the BPE stress lines
// of tests/reference/bpe/stress.jsonl (written by make_stress.py: scripts, emoji, digits,
// whitespace runs, special tokens inside text, ...). One copy for every tokenizer test.
#pragma once

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "sanitized.h"

namespace glassbox::testing {

// Sanitizer builds encode every 4th corpus line (a deterministic subsample) to stay fast.
#ifdef GLASSBOX_SANITIZED
inline constexpr size_t kCorpusStride = 4;
#else
inline constexpr size_t kCorpusStride = 1;
#endif

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Lines 0, stride, 2 * stride, ... of the corpus files in name order, each split on '\n' as is;
// empty when ../shared is absent.
inline std::vector<std::string> corpus_lines(size_t stride = 1) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  const fs::path dir = fs::path(GLASSBOX_SHARED_DIR) / "corpus";
  if (!fs::is_directory(dir)) return out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".txt") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  size_t index = 0;
  for (const fs::path& f : files) {
    const std::string text = read_file(f);
    for (size_t start = 0;;) {
      const size_t nl = text.find('\n', start);
      if (index++ % stride == 0) {
        out.push_back(text.substr(start, nl == std::string::npos ? nl : nl - start));
      }
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return out;
}

inline std::vector<std::string> bpe_stress_lines() {
  std::vector<std::string> out;
  std::ifstream in(std::filesystem::path(GLASSBOX_SOURCE_DIR) / "tests/reference/bpe/stress.jsonl",
                   std::ios::binary);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace glassbox::testing
