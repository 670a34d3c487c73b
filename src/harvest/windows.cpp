#include "harvest/windows.h"

#include <algorithm>

#include "core/error.h"

namespace glassbox {

WindowStream::WindowStream(std::vector<std::string> corpus, const Tokenizer& tokenizer, int64_t ctx,
                           int32_t bos_id, int64_t start_doc, int64_t start_window)
    : reader_(std::move(corpus)),
      tokenizer_(tokenizer),
      piece_(ctx - 1),
      bos_(bos_id),
      start_doc_(start_doc),
      start_window_(start_window) {
  if (ctx < 2) throw Error(ErrorCode::kInvalidArgument, "--ctx must be at least 2 (BOS + 1)");
}

const CorpusWindow* WindowStream::next() {
  while (!doc_ || next_window_ >= n_windows_) {
    doc_ = reader_.next();
    if (!doc_) return nullptr;
    if (doc_->id < start_doc_) continue;  // before the resume point: not even tokenized
    ids_ = tokenizer_.encode(doc_->text);
    n_windows_ = (static_cast<int64_t>(ids_.size()) + piece_ - 1) / piece_;
    next_window_ = doc_->id == start_doc_ ? start_window_ : 0;
  }
  const int64_t begin = next_window_ * piece_;
  const int64_t end = std::min<int64_t>(static_cast<int64_t>(ids_.size()), begin + piece_);
  window_.doc = &*doc_;
  window_.index = next_window_;
  window_.doc_offset = begin;
  window_.last_of_doc = next_window_ + 1 == n_windows_;
  window_.tokens.assign(1, bos_);
  window_.tokens.insert(window_.tokens.end(), ids_.begin() + begin, ids_.begin() + end);
  ++next_window_;
  return &window_;
}

}  // namespace glassbox
