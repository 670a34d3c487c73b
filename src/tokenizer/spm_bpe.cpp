#include "tokenizer/spm_bpe.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <queue>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace glassbox {
namespace {

// SentencePiece's default surface for <unk> in decoded text: " U+2047 ".
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";

std::optional<uint8_t> parse_byte_piece(std::string_view p) {
  // Exactly the spelling SentencePiece writes (ByteToPiece: "<0x%02X>"), nothing looser.
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return std::nullopt;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = p[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<uint8_t>(value);
}

bool mergeable(PieceType t) {
  return t == PieceType::kNormal || t == PieceType::kUserDefined || t == PieceType::kUnused;
}

// Piece text -> first id, open addressing over one flat array: the merge loop does a lookup for
// every candidate pair, and node-based std::unordered_map spent most of the time in cache misses.
class PieceIndex {
 public:
  void build(const std::vector<std::string>& pieces) {
    pieces_ = &pieces;
    size_t cap = 16;
    while (cap < pieces.size() * 2) cap *= 2;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const std::string_view p = pieces[i];
      if (p.empty() || find(p)) continue;  // empty pieces never match; the first id wins
      const uint64_t h = hash(p);
      size_t k = h & mask_;
      while (slots_[k].id >= 0) k = (k + 1) & mask_;
      slots_[k] = {h, static_cast<int32_t>(i)};
      max_len_ = std::max(max_len_, p.size());
    }
  }
  std::optional<int32_t> find(std::string_view s) const {
    if (s.size() > max_len_) return std::nullopt;
    const uint64_t h = hash(s);
    for (size_t k = h & mask_;; k = (k + 1) & mask_) {
      const Slot& slot = slots_[k];
      if (slot.id < 0) return std::nullopt;
      if (slot.hash == h && (*pieces_)[static_cast<size_t>(slot.id)] == s) return slot.id;
    }
  }

 private:
  struct Slot {
    uint64_t hash;
    int32_t id;  // -1: empty
  };
  static uint64_t hash(std::string_view s) {  // FNV-1a; pieces are a few bytes long
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
    return h ^ (h >> 29);
  }
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t max_len_ = 0;
};

class SpmBpeTokenizer final : public Tokenizer {
 public:
  SpmBpeTokenizer(SpmVocab vocab, const std::string& source);

  using Tokenizer::encode;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.pieces.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string piece(int32_t id) const override {
    check_id(id);
    return vocab_.pieces[static_cast<size_t>(id)];
  }
  std::optional<int32_t> bos_id() const override { return vocab_.bos_id; }
  std::optional<int32_t> eos_id() const override { return vocab_.eos_id; }
  std::optional<int32_t> unk_id() const override { return vocab_.unk_id; }
  std::optional<uint8_t> byte_value(int32_t id) const override {
    if (id < 0 || id >= vocab_size() || byte_of_[static_cast<size_t>(id)] < 0) return std::nullopt;
    return static_cast<uint8_t>(byte_of_[static_cast<size_t>(id)]);
  }
  bool add_bos_by_default() const override { return vocab_.add_bos; }
  std::vector<std::pair<std::string, int32_t>> control_tokens() const override {
    std::vector<std::pair<std::string, int32_t>> out;
    for (size_t i = 0; i < vocab_.types.size(); ++i)
      if (vocab_.types[i] == PieceType::kControl)
        out.emplace_back(vocab_.pieces[i], static_cast<int32_t>(i));
    return out;
  }

 private:
  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size()) {
      throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                   " is out of range for a vocabulary of " +
                                                   std::to_string(vocab_size()) + " pieces");
    }
  }
  // Length of the longest user-defined piece that `s` starts with, 0 when none.
  size_t match_user_defined(std::string_view s) const;
  std::string normalize(std::string_view text) const;
  // Id of a symbol left after merging; nullopt when it is unknown (not a mergeable piece).
  std::optional<int32_t> symbol_id(std::string_view s) const {
    const std::optional<int32_t> id = piece_ids_.find(s);
    if (!id || !mergeable(vocab_.types[static_cast<size_t>(*id)])) return std::nullopt;
    return id;
  }

  SpmVocab vocab_;
  PieceIndex piece_ids_;  // over vocab_.pieces, which never changes again
  std::unordered_set<std::string_view> user_defined_;
  size_t max_user_defined_len_ = 0;
  bool has_unused_ = false;
  std::array<int32_t, 256> byte_ids_{};  // id emitted for each byte under byte fallback
  std::vector<int16_t> byte_of_;         // per id: the byte of a byte piece, -1 otherwise
};

SpmBpeTokenizer::SpmBpeTokenizer(SpmVocab vocab, const std::string& source)
    : vocab_(std::move(vocab)) {
  const auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::kFormat, source + ": " + what);
  };
  const size_t n = vocab_.pieces.size();
  if (n == 0) fail("the vocabulary has no pieces");
  if (n > static_cast<size_t>(INT32_MAX)) fail("the vocabulary has too many pieces");
  if (vocab_.scores.size() != n || vocab_.types.size() != n) {
    fail("vocabulary arrays differ in length (" + std::to_string(n) + " pieces, " +
         std::to_string(vocab_.scores.size()) + " scores, " + std::to_string(vocab_.types.size()) +
         " types)");
  }
  const auto in_range = [&](int64_t id) { return id >= 0 && id < static_cast<int64_t>(n); };
  if (!in_range(vocab_.unk_id))
    fail("unknown-token id " + std::to_string(vocab_.unk_id) + " is out of range");
  if (vocab_.bos_id && !in_range(*vocab_.bos_id))
    fail("BOS id " + std::to_string(*vocab_.bos_id) + " is out of range");
  if (vocab_.eos_id && !in_range(*vocab_.eos_id))
    fail("EOS id " + std::to_string(*vocab_.eos_id) + " is out of range");

  byte_of_.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = vocab_.pieces[i];
    const PieceType type = vocab_.types[i];
    const std::string where = "piece " + std::to_string(i);
    if (static_cast<uint8_t>(type) < 1 || static_cast<uint8_t>(type) > 6) {
      fail(where + " has invalid type " + std::to_string(static_cast<int>(type)));
    }
    // NaN would break the strict weak order the merge queue relies on.
    if (!std::isfinite(vocab_.scores[i])) fail(where + " has a non-finite score");
    if (type == PieceType::kByte) {
      const auto b = parse_byte_piece(p);
      if (!b) fail(where + " is of type byte but not of the form <0xNN>");
      byte_of_[i] = *b;
    }
    if (p.empty()) continue;  // can never be matched; allowed so odd files still load
    if (type == PieceType::kUserDefined) {
      user_defined_.insert(std::string_view(p));
      max_user_defined_len_ = std::max(max_user_defined_len_, p.size());
    }
    if (type == PieceType::kUnused) has_unused_ = true;
  }
  piece_ids_.build(vocab_.pieces);
  for (int b = 0; b < 256; ++b) {
    // As SentencePiece's PieceToId(ByteToPiece(b)): a missing byte piece falls back to <unk>.
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const std::optional<int32_t> id = piece_ids_.find(name);
    byte_ids_[static_cast<size_t>(b)] =
        id && vocab_.types[static_cast<size_t>(*id)] == PieceType::kByte ? *id : vocab_.unk_id;
  }
}

size_t SpmBpeTokenizer::match_user_defined(std::string_view s) const {
  if (user_defined_.empty()) return 0;
  for (size_t len = std::min(max_user_defined_len_, s.size()); len > 0; --len) {
    if (user_defined_.count(s.substr(0, len)) != 0) return len;
  }
  return 0;
}

std::string SpmBpeTokenizer::normalize(std::string_view in) const {
  // sentencepiece::normalizer::Normalizer::Normalize with an empty (identity) charsmap.
  const bool collapse = vocab_.remove_extra_whitespaces;
  std::string_view ch;
  const auto next_char = [&](std::string_view s) -> size_t {
    if (const size_t n = match_user_defined(s)) {
      ch = s.substr(0, n);
      return n;
    }
    const size_t n = utf8::valid_char_len(s);
    if (n == 0) {  // malformed: U+FFFD, consuming one byte
      ch = utf8::kReplacement;
      return 1;
    }
    ch = s.substr(0, n);
    return n;
  };
  if (collapse) {
    while (!in.empty()) {
      const size_t n = next_char(in);
      if (ch != " ") break;
      in.remove_prefix(n);
    }
  }
  std::string out;
  if (in.empty()) return out;
  out.reserve(in.size() + in.size() / 2 + 3);
  if (vocab_.add_dummy_prefix) out.append(utf8::kSpaceSymbol);
  bool prev_space = collapse;
  while (!in.empty()) {
    const size_t n = next_char(in);
    in.remove_prefix(n);
    std::string_view sp = ch;
    while (prev_space && !sp.empty() && sp.front() == ' ') sp.remove_prefix(1);
    if (!sp.empty()) {
      for (const char c : sp) {
        if (c == ' ') {
          out.append(utf8::kSpaceSymbol);
        } else {
          out.push_back(c);
        }
      }
      prev_space = sp.back() == ' ';
    }
    if (!collapse) prev_space = false;
  }
  if (collapse) {
    while (std::string_view(out).ends_with(utf8::kSpaceSymbol)) out.resize(out.size() - 3);
  }
  return out;
}

std::vector<int32_t> SpmBpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  const std::string norm = normalize(text);
  if (norm.empty()) return ids;
  const std::string_view all(norm);

  // Symbols form a doubly linked list over `norm`; a merged-away symbol has len 0.
  struct Symbol {
    int32_t prev;
    int32_t next;
    uint32_t begin;
    uint32_t len;
    bool freeze;  // user-defined pieces take part in no merge
  };
  std::vector<Symbol> sym;
  sym.reserve(norm.size());
  for (size_t pos = 0; pos < norm.size();) {
    const std::string_view rest = all.substr(pos);
    size_t len = match_user_defined(rest);
    const bool freeze = len > 0;
    if (!freeze) len = utf8::one_char_len(rest);
    const auto index = static_cast<int32_t>(sym.size());
    sym.push_back({index - 1, pos + len < norm.size() ? index + 1 : -1, static_cast<uint32_t>(pos),
                   static_cast<uint32_t>(len), freeze});
    pos += len;
  }
  const auto text_of = [&](int32_t i) {
    const Symbol& s = sym[static_cast<size_t>(i)];
    return all.substr(s.begin, s.len);
  };

  struct Pair {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
  };
  // Max-heap order: higher score first, ties to the leftmost pair (SymbolPairComparator).
  const auto lower = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> agenda(lower);
  // For unused pieces: the pair a merged symbol came from, to split it back afterwards.
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  const auto maybe_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = sym[static_cast<size_t>(left)];
    const Symbol& r = sym[static_cast<size_t>(right)];
    if (l.freeze || r.freeze) return;
    const std::string_view merged = all.substr(l.begin, l.len + r.len);  // r follows l
    const std::optional<int32_t> id = piece_ids_.find(merged);
    if (!id) return;
    const PieceType type = vocab_.types[static_cast<size_t>(*id)];
    if (!mergeable(type)) return;
    agenda.push({vocab_.scores[static_cast<size_t>(*id)], left, right,
                 static_cast<uint32_t>(merged.size())});
    if (type == PieceType::kUnused) rev_merge[merged] = {text_of(left), text_of(right)};
  };

  for (size_t i = 1; i < sym.size(); ++i) {
    maybe_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  }
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = sym[static_cast<size_t>(top.left)];
    Symbol& r = sym[static_cast<size_t>(top.right)];
    // Stale entry: one side was merged since (pieces only grow, so sizes tell).
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = top.left;
    r.len = 0;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }

  ids.reserve(sym.size());
  bool prev_unknown = false;
  const auto emit = [&](std::string_view piece) {
    const std::optional<int32_t> id = symbol_id(piece);
    if (!id && vocab_.byte_fallback) {
      for (const char c : piece) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    } else if (!id) {
      // A run of unknown symbols is one <unk> (PopulateSentencePieceText merges them).
      if (!prev_unknown) ids.push_back(vocab_.unk_id);
    } else {
      ids.push_back(*id);
    }
    prev_unknown = !id;
  };
  // Splits unused pieces back into the pieces they were merged from (recursively).
  std::vector<std::string_view> stack;
  for (int32_t i = 0; i != -1; i = sym[static_cast<size_t>(i)].next) {
    stack.push_back(text_of(i));
    while (!stack.empty()) {
      const std::string_view w = stack.back();
      stack.pop_back();
      if (has_unused_) {
        const std::optional<int32_t> id = symbol_id(w);
        if (id && vocab_.types[static_cast<size_t>(*id)] == PieceType::kUnused) {
          const auto it = rev_merge.find(w);
          if (it != rev_merge.end()) {
            stack.push_back(it->second.second);  // right after left
            stack.push_back(it->second.first);
            continue;
          }
        }
      }
      emit(w);
    }
  }
  return ids;
}

std::string SpmBpeTokenizer::decode(std::span<const int32_t> ids) const {
  for (const int32_t id : ids) check_id(id);
  // sentencepiece::SentencePieceProcessor::Decode, decoding ids.
  std::string text;
  std::string bytes;         // a run of byte pieces, turned into UTF-8 when the run ends
  bool is_bos_ws = true;     // may the next piece still lose a dummy-prefix space?
  bool bos_ws_seen = false;  // did the previous piece lose one?
  for (const int32_t id : ids) {
    const auto i = static_cast<size_t>(id);
    if (byte_of_[i] >= 0) {
      bytes.push_back(static_cast<char>(byte_of_[i]));
      continue;
    }
    utf8::append_bytes_lossy(bytes, &text);
    bytes.clear();
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    bos_ws_seen = false;
    const PieceType type = vocab_.types[i];
    if (type == PieceType::kControl) continue;
    if (type == PieceType::kUnknown) {
      text.append(kUnknownSurface);
      continue;
    }
    std::string_view piece = vocab_.pieces[i];
    if (is_bos_ws && (vocab_.add_dummy_prefix || vocab_.remove_extra_whitespaces) &&
        piece.starts_with(utf8::kSpaceSymbol)) {
      piece.remove_prefix(utf8::kSpaceSymbol.size());
      // With whitespace removal every leading space goes, so the next piece may lose one too.
      bos_ws_seen = !vocab_.remove_extra_whitespaces;
    }
    utf8::append_unescaped(piece, &text);
  }
  utf8::append_bytes_lossy(bytes, &text);
  return text;
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_bpe_tokenizer(SpmVocab vocab, const std::string& source) {
  return std::make_unique<SpmBpeTokenizer>(std::move(vocab), source);
}

}  // namespace glassbox
