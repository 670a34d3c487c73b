// Context windows over a corpus, the one definition harvest and SAE evaluation share: each
// document (corpus.h) is tokenized without BOS and cut into pieces of ctx - 1 tokens; a window
// is BOS + one piece (a document's last piece may be shorter). Windows never span documents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "harvest/corpus.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

struct CorpusWindow {
  const CorpusDocument* doc = nullptr;  // valid until the next call to next()
  int64_t index = 0;                    // window number within the document
  int64_t doc_offset = 0;               // document token index of tokens[1]
  bool last_of_doc = false;
  std::vector<int32_t> tokens;  // BOS first
};

class WindowStream {
 public:
  // Starts at window `start_window` of document `start_doc` (a resume point); earlier documents
  // are skipped without tokenizing them.
  WindowStream(std::vector<std::string> corpus, const Tokenizer& tokenizer, int64_t ctx,
               int32_t bos_id, int64_t start_doc = 0, int64_t start_window = 0);
  // The next window, or nullptr when the corpus ends.
  const CorpusWindow* next();

 private:
  CorpusReader reader_;
  const Tokenizer& tokenizer_;
  int64_t piece_;
  int32_t bos_;
  int64_t start_doc_, start_window_;
  std::optional<CorpusDocument> doc_;
  std::vector<int32_t> ids_;
  int64_t next_window_ = 0, n_windows_ = 0;
  CorpusWindow window_;
};

}  // namespace glassbox
