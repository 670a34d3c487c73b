#include "harvest/corpus.h"

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"

namespace glassbox {
namespace {

constexpr std::string_view kMarker = "<|endoftext|>";

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

}  // namespace

CorpusReader::CorpusReader(std::vector<std::string> paths) : paths_(std::move(paths)) {
  if (paths_.empty()) throw Error(ErrorCode::kInvalidArgument, "no corpus file given");
  for (const std::string& p : paths_) MappedFile::open(p);  // fail early, naming the file
}

bool CorpusReader::open_next_file() {
  if (file_ + 1 >= static_cast<int32_t>(paths_.size())) return false;
  ++file_;
  map_ = MappedFile::open(paths_[static_cast<size_t>(file_)]);
  pos_ = 0;
  line_ = 0;
  jsonl_ = paths_[static_cast<size_t>(file_)].ends_with(".jsonl");
  return true;
}

std::optional<CorpusDocument> CorpusReader::next() {
  for (;;) {
    if (map_ == nullptr || pos_ >= map_->size()) {
      if (!open_next_file()) return std::nullopt;
      continue;
    }
    const std::string_view all(reinterpret_cast<const char*>(map_->data()), map_->size());
    const std::string& path = paths_[static_cast<size_t>(file_)];
    CorpusDocument doc;
    doc.file = file_;
    doc.byte_offset = static_cast<int64_t>(pos_);
    if (jsonl_) {
      size_t end = all.find('\n', pos_);
      if (end == std::string_view::npos) end = all.size();
      const std::string_view line = all.substr(pos_, end - pos_);
      doc.byte_length = static_cast<int64_t>(line.size());
      pos_ = end + 1;
      ++line_;
      if (blank(line)) continue;
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object()) {
        throw Error(ErrorCode::kFormat,
                    path + ": line " + std::to_string(line_) + " is not a JSON object");
      }
      if (!j.contains("text") || !j["text"].is_string()) {
        throw Error(ErrorCode::kFormat,
                    path + ": line " + std::to_string(line_) + " has no string field \"text\"");
      }
      doc.text = j["text"].get<std::string>();
    } else {
      size_t end = all.find(kMarker, pos_);
      const size_t next = end == std::string_view::npos ? all.size() : end + kMarker.size();
      if (end == std::string_view::npos) end = all.size();
      doc.byte_length = static_cast<int64_t>(end - pos_);
      doc.text = std::string(all.substr(pos_, end - pos_));
      pos_ = next;
    }
    if (blank(doc.text)) continue;
    doc.id = next_id_++;
    return doc;
  }
}

}  // namespace glassbox
