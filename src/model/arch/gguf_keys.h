// Typed GGUF metadata lookups for the architecture readers; errors name the file and key.
#pragma once

#include <string>

#include "io/gguf.h"

namespace glassbox::arch {

inline int64_t gguf_int(const GgufFile& gguf, const std::string& key) {
  return gguf.get(key).as_int(gguf.path() + ": metadata " + key);
}

inline int64_t gguf_int_or(const GgufFile& gguf, const std::string& key, int64_t fallback) {
  const GgufValue* v = gguf.find(key);
  return v ? v->as_int(gguf.path() + ": metadata " + key) : fallback;
}

inline double gguf_float_or(const GgufFile& gguf, const std::string& key, double fallback) {
  const GgufValue* v = gguf.find(key);
  return v ? v->as_float(gguf.path() + ": metadata " + key) : fallback;
}

// Rows of token_embd.weight: the vocabulary size (checked against <arch>.vocab_size if set).
int64_t gguf_vocab_rows(const GgufFile& gguf, const std::string& arch);

}  // namespace glassbox::arch
