// Tokenizer: the one interface every vocabulary sits behind (SentencePiece .model files via
// libsentencepiece, llama2.c tok*.bin vocabularies and GGUF-embedded vocabularies via our own
// SentencePiece-BPE implementation in spm_bpe.h, Hugging Face tokenizer.json byte-level BPE via
// bpe.h). Owns text <-> id conversion only; models never see text. Loaders throw
// glassbox::Error naming the file; nothing here exits or aborts on bad input. See
// docs/tokenizers.md for the normalization decisions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace glassbox {

class GgufFile;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual int32_t vocab_size() const = 0;
  // Encodes text exactly as the vocabulary's own library would, without BOS/EOS; empty text
  // gives no ids; any bytes are accepted. SentencePiece vocabularies: as SentencePiece (dummy
  // prefix, byte fallback or <unk>; invalid UTF-8 becomes U+FFFD, one per offending byte).
  // Byte-level BPE: as Hugging Face tokenizers with add_special_tokens=False (added tokens in
  // the text are matched); invalid UTF-8 is kept byte for byte (see bpe.h).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Inverse of encode; the result is valid UTF-8. SentencePiece: BOS/EOS/control ids produce no
  // text, byte pieces are reassembled into UTF-8 (bytes that form no valid character become
  // U+FFFD), <unk> becomes " \u2047 ", the dummy-prefix space of the first piece is removed.
  // Byte-level BPE: token bytes concatenated (added/special tokens give their content), each
  // maximal ill-formed subsequence becoming one U+FFFD, as HF does. Throws
  // Error(kInvalidArgument) for an id outside [0, vocab_size).
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The piece of one id for display: SentencePiece form (U+2581 kept as is, BOS/EOS as
  // "<s>"/"</s>" also for llama2.c vocabularies), or a BPE entry as tokenizer.json spells it
  // ("\u0120the"; added tokens as their content). Throws Error(kInvalidArgument) when out of
  // range.
  virtual std::string piece(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> unk_id() const = 0;
  // The byte a byte-fallback piece (<0xNN>) stands for; nullopt for every other id (also out of
  // range). StreamDecoder uses it to hold back incomplete UTF-8 sequences.
  virtual std::optional<uint8_t> byte_value(int32_t id) const = 0;
  // Whether prompts should start with BOS (GGUF tokenizer.ggml.add_bos_token; for BPE see
  // make_bpe_tokenizer; true otherwise).
  virtual bool add_bos_by_default() const { return true; }
  // The exact bytes an id stands for when they do not depend on its neighbours (byte-level BPE:
  // every id); nullopt otherwise (SentencePiece) and out of range. decode() of such a vocabulary
  // is these bytes concatenated and repaired by bpe_bytes::append_utf8_lossy; StreamDecoder
  // relies on that.
  virtual std::optional<std::string_view> token_bytes(int32_t id) const { return std::nullopt; }
  // Control tokens as (text, id): SentencePiece control pieces (<s>, </s>, Gemma's
  // <start_of_turn>, ...), which encode() never matches in text. Byte-level BPE returns none:
  // its encode() already matches every added token.
  virtual std::vector<std::pair<std::string, int32_t>> control_tokens() const { return {}; }

  // encode() plus optional BOS in front and EOS at the end (when the vocabulary has them).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const;
};

// encode() with the control tokens' texts matched too (llama.cpp's parse_special = true), for
// text with special tokens in it such as a rendered chat template: the text is split at every
// occurrence of a control token (leftmost first, the longest at a position), and each part in
// between is encoded on its own (so a SentencePiece dummy prefix follows each special token, as
// in llama.cpp). Adds no BOS/EOS of its own. Equals encode() when there are no control tokens.
std::vector<int32_t> encode_special(const Tokenizer& tokenizer, std::string_view text);

// The ids that end a generation: EOS, BOS (llama2.c models separate stories with it) and the
// vocabulary's end-of-turn tokens, found by their text as llama.cpp builds its end-of-generation
// set ("<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
// "<|end_of_text|>", "<EOT>", ...), so that an instruct model stops at the end of its turn.
// Sorted, without duplicates.
std::vector<int32_t> end_of_generation_ids(const Tokenizer& tokenizer);

// What a person should see for one token, as TransformerLens's to_str_tokens shows it: the
// token's own text with its leading space kept (SentencePiece's U+2581 and byte-level BPE's
// "\u0120" become " "), a byte piece as its byte, control tokens as their piece ("<s>"); bytes
// that do not form a whole UTF-8 character (a character split across tokens) become U+FFFD,
// so the result is always valid UTF-8. Throws Error(kInvalidArgument) when `id` is out of range.
std::string token_display_text(const Tokenizer& tokenizer, int32_t id);

// Loads a tokenizer file by content: a GGUF file's embedded vocabulary (a model or a
// vocabulary-only GGUF; tensors are not read), a Hugging Face tokenizer.json (a JSON object; a
// directory holding tokenizer.json also works), a llama2.c vocabulary (.bin; vocab size taken
// from the file) or a SentencePiece model protobuf (.model). Throws Error naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// A Hugging Face tokenizer.json with a byte-level BPE model (GPT-2, Llama 3, ...), with
// tokenizer_config.json from the same directory when present (BOS/EOS, add_bos_token). Throws
// Error naming the file and the field: kIo, kFormat, kUnsupported (other model types such as
// Unigram or WordPiece, normalizers, ...). See bpe.h and docs/tokenizers.md.
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path);

// How to normalize text for a vocabulary that does not say so itself (llama2.c .bin files).
// nullopt = infer: a vocabulary holding a piece with two consecutive spaces cannot have been
// trained with whitespace collapsing, so collapsing is off for it and on otherwise (the
// SentencePiece trainer default). See docs/tokenizers.md.
struct Llama2cTokenizerOptions {
  std::optional<bool> remove_extra_whitespaces;
  bool add_dummy_prefix = true;
};
// The llama2.c reader needs the vocabulary size from the model header when known (0 = read
// pieces up to the end of the file, which must then end exactly after the last piece).
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size,
                                                  const Llama2cTokenizerOptions& options = {});
// The vocabulary embedded in a GGUF file: tokenizer.ggml.model "llama" (SentencePiece BPE) or
// "gpt2" (byte-level BPE, pre-tokenizer from tokenizer.ggml.pre as llama.cpp chooses it); throws
// Error(kUnsupported) for other tokenizer models or pre-tokenizers, kNotFound when there is none.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& gguf);
// A SentencePiece .model file through libsentencepiece (any model type it supports); the
// second form takes the serialized ModelProto bytes, `source` naming them in errors.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);
std::unique_ptr<Tokenizer> load_sentencepiece_model(std::string_view serialized,
                                                    const std::string& source);

// Incremental decoding for streaming output: push ids one by one, receive the newly completed
// text (an incomplete UTF-8 sequence is held back until its last byte arrives, also when a
// byte-level BPE token ends inside a character). The concatenation of all push() results and
// flush() equals tokenizer.decode(all ids).
// Cost per push is bounded by the ids since the last piece that produced text, not by the
// length of the stream.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  // Throws Error(kInvalidArgument) for an id out of range (the stream is then unchanged).
  std::string push(int32_t id);
  // Ends the stream: returns whatever is still held back (incomplete bytes become U+FFFD) and
  // resets, so the next push() starts a new stream.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  // The ids not yet settled, preceded by at most one already-emitted "primer" id whose text is
  // non-empty, so that decode(ids_) continues the stream exactly (no dummy-prefix stripping).
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;  // bytes of decode(ids_) already returned
  // Byte-level vocabularies (token_bytes): bytes not yet returned, an incomplete character at
  // most (0..3 bytes).
  std::string pending_;
};

}  // namespace glassbox
