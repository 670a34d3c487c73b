// Corpus documents for harvesting, streamed in a fixed order so a rerun sees the same sequence.
//   *.jsonl: one JSON object per line, the document is its "text" string (blank lines skipped).
//   anything else: UTF-8 text; documents are separated by the literal marker <|endoftext|>
//   (TinyStories' layout), a file without the marker is one document; empty documents are skipped.
// Documents are numbered 0, 1, ... across the files in the order given.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace glassbox {

struct CorpusDocument {
  int64_t id = 0;           // 0-based across all files
  int32_t file = 0;         // index into the corpus paths
  int64_t byte_offset = 0;  // of the text (text files) or of the line (JSONL) in its file
  int64_t byte_length = 0;
  std::string text;
};

class CorpusReader {
 public:
  // Checks every file can be opened (Error kIo naming it) before reading starts.
  explicit CorpusReader(std::vector<std::string> paths);
  // The next document, or nullopt at the end. A malformed JSONL line is Error(kFormat) naming
  // file and line.
  std::optional<CorpusDocument> next();
  const std::vector<std::string>& paths() const { return paths_; }

 private:
  bool open_next_file();

  std::vector<std::string> paths_;
  int32_t file_ = -1;
  std::shared_ptr<MappedFile> map_;
  size_t pos_ = 0;
  int64_t line_ = 0;
  int64_t next_id_ = 0;
  bool jsonl_ = false;
};

}  // namespace glassbox
