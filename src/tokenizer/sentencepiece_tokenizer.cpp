// The libsentencepiece-backed Tokenizer for .model files. The only file that includes
// <sentencepiece_processor.h>, so no SentencePiece type leaks through our headers.
#include <sentencepiece_processor.h>

#include <string_view>

#include "core/error.h"
#include "io/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

// The byte of a "<0xNN>" piece, -1 for any other spelling.
int16_t parse_hex_byte(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int16_t v = 0;
  for (const char c : p.substr(3, 2)) {
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = static_cast<int16_t>(v * 16 + d);
  }
  return v;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(std::string_view serialized, const std::string& source) {
    const auto status = sp_.LoadFromSerializedProto(serialized);
    if (!status.ok()) {
      throw Error(ErrorCode::kFormat,
                  source + ": not a usable SentencePiece model: " + status.ToString());
    }
    n_ = sp_.GetPieceSize();
    if (n_ <= 0) throw Error(ErrorCode::kFormat, source + ": SentencePiece model has no pieces");
    byte_of_.assign(static_cast<size_t>(n_), -1);
    for (int id = 0; id < n_; ++id) {
      if (sp_.IsByte(id)) byte_of_[static_cast<size_t>(id)] = parse_hex_byte(sp_.IdToPiece(id));
    }
  }

  using Tokenizer::encode;
  int32_t vocab_size() const override { return n_; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) {
      throw Error(ErrorCode::kInvalidArgument, "SentencePiece encode failed: " + status.ToString());
    }
    return {ids.begin(), ids.end()};
  }
  std::string decode(std::span<const int32_t> ids) const override {
    for (const int32_t id : ids) check_id(id);
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) {
      throw Error(ErrorCode::kInvalidArgument, "SentencePiece decode failed: " + status.ToString());
    }
    return text;
  }
  std::string piece(int32_t id) const override {
    check_id(id);
    return sp_.IdToPiece(id);
  }
  std::optional<int32_t> bos_id() const override { return optional_id(sp_.bos_id()); }
  std::optional<int32_t> eos_id() const override { return optional_id(sp_.eos_id()); }
  std::optional<int32_t> unk_id() const override { return optional_id(sp_.unk_id()); }
  std::optional<uint8_t> byte_value(int32_t id) const override {
    if (id < 0 || id >= n_ || byte_of_[static_cast<size_t>(id)] < 0) return std::nullopt;
    return static_cast<uint8_t>(byte_of_[static_cast<size_t>(id)]);
  }
  std::vector<std::pair<std::string, int32_t>> control_tokens() const override {
    std::vector<std::pair<std::string, int32_t>> out;
    for (int id = 0; id < n_; ++id)
      if (sp_.IsControl(id)) out.emplace_back(sp_.IdToPiece(id), id);
    return out;
  }

 private:
  static std::optional<int32_t> optional_id(int id) {
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }
  void check_id(int32_t id) const {
    if (id < 0 || id >= n_) {
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is out of range for a vocabulary of " +
                                                   std::to_string(n_) + " pieces");
    }
  }

  sentencepiece::SentencePieceProcessor sp_;
  int32_t n_ = 0;
  std::vector<int16_t> byte_of_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_model(std::string_view serialized,
                                                    const std::string& source) {
  return std::make_unique<SentencePieceTokenizer>(serialized, source);
}

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  const auto file = MappedFile::open(path);
  return load_sentencepiece_model(
      std::string_view(reinterpret_cast<const char*>(file->data()), file->size()), path);
}

}  // namespace glassbox
