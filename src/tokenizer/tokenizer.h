// Tokenizer: the one interface every vocabulary sits behind (SentencePiece .model files via
// libsentencepiece, llama2.c tok*.bin vocabularies and GGUF-embedded vocabularies via our own
// SentencePiece-BPE implementation). Owns text <-> id conversion only; models never see text.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace glassbox {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual int32_t vocab_size() const = 0;
  // Encodes text exactly as SentencePiece would (dummy-prefix space, byte fallback or <unk>),
  // without BOS/EOS.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Inverse of encode: BOS/EOS/control ids produce no text, byte pieces are reassembled into
  // UTF-8, the dummy-prefix space of the first piece is removed. Throws Error(kInvalidArgument)
  // for an id outside [0, vocab_size).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The raw piece of one id as stored in the vocabulary (for display; U+2581 kept as is).
  virtual std::string piece(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;

  // encode() plus optional BOS in front and EOS at the end (when the vocabulary has them).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const;
};

// Loads a tokenizer file by content: a SentencePiece model protobuf (.model) or a llama2.c
// vocabulary (.bin; vocab size taken from the file). Throws Error naming the file on failure.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
// The llama2.c reader needs the vocabulary size from the model header when known (0 = infer
// from the file length).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size);
// The vocabulary embedded in a GGUF file (tokenizer.ggml.model == "llama"); throws
// Error(kUnsupported) for other tokenizer models, kNotFound when there is none.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf);

// Incremental decoding for streaming output: push ids one by one, receive the newly completed
// text (an incomplete UTF-8 sequence is held back until its last byte arrives).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);
  std::string flush();  // whatever is still held back

 private:
  const Tokenizer& tokenizer_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
};

}  // namespace glassbox
