// Our own SentencePiece-BPE tokenizer: the vocabulary (pieces, scores, types, normalizer flags)
// and the encoder/decoder over it, for vocabularies that carry no SentencePiece model (llama2.c
// tok*.bin files and GGUF-embedded vocabularies). The loaders in llama2c_vocab.cpp and
// gguf_vocab.cpp only build an SpmVocab; every encoding rule lives in spm_bpe.cpp and follows
// libsentencepiece 0.1.97 (identity normalizer, BPE model) id for id. This module does no I/O.
//
// Encoding (as sentencepiece::SentencePieceProcessor::Encode with a BPE model):
//  1. Normalize: invalid UTF-8 bytes become U+FFFD (one per byte); with remove_extra_whitespaces
//     leading/trailing spaces are dropped and runs of spaces collapse to one; empty text stops
//     here; with add_dummy_prefix a space is prepended; every ' ' becomes U+2581.
//  2. Split into characters (user-defined pieces are matched first, longest match, and frozen).
//  3. Merge the adjacent pair whose concatenation is a normal/user-defined/unused piece with the
//     highest score, ties to the leftmost pair, until no pair is a piece (priority queue:
//     O(n log n) in the text length).
//  4. Pieces of type unused are split back into the pair they were merged from.
//  5. A symbol that is not a piece is unknown: with byte fallback it becomes one <0xNN> piece
//     per UTF-8 byte, otherwise <unk>, and a run of consecutive unknown symbols is one <unk>.
// Control, unknown and byte pieces are never matched from text.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace glassbox {

// SentencePiece piece types, numbered as in sentencepiece_model.proto and GGUF token_type.
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A byte-fallback piece: "<0xAB>" with two upper-case hex digits.
inline bool is_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return false;
  const auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return hex(p[3]) && hex(p[4]);
}

struct SpmVocab {
  // Pieces in SentencePiece form: U+2581 for a space, byte pieces spelled "<0xNN>" (uppercase).
  std::vector<std::string> pieces;
  std::vector<float> scores;     // same length as pieces; higher merges first
  std::vector<PieceType> types;  // same length as pieces
  int32_t unk_id = 0;            // must be a kUnknown piece
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  // Normalizer flags (NormalizerSpec of the .model; GGUF keys; inferred for llama2.c).
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  // Unknown characters become <0xNN> pieces; set when the vocabulary has byte pieces.
  bool byte_fallback = false;
  bool add_bos = true;  // advice for callers: Tokenizer::add_bos_by_default()
};

// Validates the vocabulary (equal lengths, at least one piece, finite scores, ids in range, unk
// of type kUnknown, byte pieces well formed) and builds the tokenizer. Duplicate pieces keep the
// first id (SentencePiece refuses such models; llama2.c files are not checked by their writer).
// Throws Error(kFormat) naming `source` and the offending piece.
std::unique_ptr<Tokenizer> make_spm_bpe_tokenizer(SpmVocab vocab, const std::string& source);

// Parses a llama2.c tokenizer file held in memory (format in docs/tokenizers.md and
// shared/models/README.md): int32 max_token_length, then per piece float32 score, int32 length,
// bytes. vocab_size > 0 reads that many pieces and ignores what follows (as llama2.c does);
// 0 reads to the end, which must fall exactly after a piece. Types are inferred (id 0 unknown,
// ids 1 and 2 control, "<0xNN>" byte), spaces become U+2581, "\n<s>\n"/"\n</s>\n" become
// "<s>"/"</s>". Throws Error(kFormat) naming `source`, the field and the offset.
SpmVocab parse_llama2c_vocab(std::span<const uint8_t> bytes, int32_t vocab_size,
                             const std::string& source,
                             const Llama2cTokenizerOptions& options = {});

// The inverse of parse_llama2c_vocab, as llama2.c's tokenizer.py exports a SentencePiece model:
// U+2581 -> space, "<s>"/"</s>" at ids 1/2 -> "\n<s>\n"/"\n</s>\n", max_token_length = the
// longest piece in bytes. Types and normalizer flags are not stored (the format has no room).
std::vector<uint8_t> write_llama2c_vocab(const SpmVocab& vocab);

}  // namespace glassbox
