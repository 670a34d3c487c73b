// The byte-level BPE encoder/decoder over a BpeSpec (see bpe.h for the rules it follows).
#include "tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <deque>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "io/mapped_file.h"
#include "tokenizer/bpe_bytes.h"
#include "tokenizer/bpe_pretokenizer.h"
#include "tokenizer/utf8.h"

namespace glassbox {
namespace {

// Rust's char::is_whitespace (Unicode White_Space), which decides what an added token's
// lstrip/rstrip swallows.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// The token's bytes as HF's ByteLevel decoder gives them: every character mapped back through
// the byte alphabet, or, when some character is outside it, the spelling's own UTF-8.
std::string spelling_to_bytes(std::string_view spelling, bool* in_alphabet) {
  std::string out;
  std::string_view rest = spelling;
  while (!rest.empty()) {
    const size_t n = utf8::valid_char_len(rest);
    const int b = n == 0 ? -1 : bpe_bytes::char_to_byte(bpe_bytes::decode_char(rest, n));
    if (b < 0) {
      *in_alphabet = false;
      return std::string(spelling);
    }
    out.push_back(static_cast<char>(b));
    rest.remove_prefix(n);
  }
  *in_alphabet = true;
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct MergeTarget {
  int32_t rank;
  int32_t id;
};

// Per-encode() working memory: merge cache keyed by piece bytes (views into the text or into
// `storage`, valid for the call), and buffers reused across pieces.
struct Scratch {
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;  // -> cache_ids span
  std::vector<int32_t> cache_ids;
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t id;
    // std heap functions build a max-heap; invert so the lowest rank, then leftmost, is on top.
    bool operator<(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> heap;
};

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeSpec spec, const std::string& source);

  int32_t vocab_size() const override { return static_cast<int32_t>(bytes_.size()); }
  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string piece(int32_t id) const override { return spellings_[checked(id)]; }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  std::optional<int32_t> unk_id() const override { return unk_id_; }
  std::optional<uint8_t> byte_value(int32_t) const override { return std::nullopt; }
  bool add_bos_by_default() const override { return add_bos_; }
  std::optional<std::string_view> token_bytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return std::nullopt;
    return bytes_[static_cast<size_t>(id)];
  }

 private:
  struct Added {
    int32_t id;
    std::string content;
    bool lstrip;
    bool rstrip;
  };
  // Added tokens by first byte, longest first: leftmost-longest matching, one group per pass.
  using AddedIndex = std::array<std::vector<const Added*>, 256>;
  struct Segment {
    std::string_view text;
    int32_t id;  // an added token, or -1 for text to tokenize
  };

  size_t checked(int32_t id) const;
  std::optional<int32_t> find_token(const std::string& name) const;
  void cut_added(std::string_view text, const AddedIndex& index, std::vector<Segment>* out) const;
  void encode_text(std::string_view text, Scratch* s, std::vector<int32_t>* ids) const;
  void encode_piece(std::string_view bytes, Scratch* s, std::vector<int32_t>* ids) const;
  void merge(std::string_view bytes, Scratch* s, std::vector<int32_t>* ids) const;

  std::vector<std::string> spellings_;  // id -> tokenizer.json spelling ("" for unused ids)
  std::vector<std::string> bytes_;      // id -> exact bytes (added tokens: their content)
  std::unordered_map<std::string, int32_t> by_spelling_;
  std::unordered_map<std::string_view, int32_t> by_bytes_;  // entries spelled in the alphabet
  std::array<int32_t, 256> byte_id_{};                      // -1 when the byte has no entry
  std::unordered_map<uint64_t, MergeTarget> merges_;
  std::deque<Added> added_;  // stable addresses for the indexes
  AddedIndex raw_index_;     // normalized = false: matched first, on the raw text
  AddedIndex norm_index_;    // normalized = true: matched in what is left
  bool has_norm_added_ = false;
  std::unique_ptr<BpePreTokenizer> pre_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  bool add_bos_ = false;
};

BpeTokenizer::BpeTokenizer(BpeSpec spec, const std::string& source) {
  const auto fail = [&](ErrorCode code, const std::string& msg) {
    throw Error(code, source + ": " + msg);
  };
  int32_t max_id = -1;
  for (const auto& [spelling, id] : spec.vocab) max_id = std::max(max_id, id);
  for (const BpeAddedToken& t : spec.added_tokens) max_id = std::max(max_id, t.id);
  if (max_id < 0) fail(ErrorCode::kFormat, "model.vocab: the vocabulary is empty");
  if (max_id > kMaxBpeId)
    fail(ErrorCode::kFormat, "token id " + std::to_string(max_id) + " too large");
  const auto n = static_cast<size_t>(max_id) + 1;
  spellings_.resize(n);
  bytes_.resize(n);
  std::vector<bool> used(n, false);
  std::vector<bool> in_alphabet(n, false);

  by_spelling_.reserve(spec.vocab.size());
  for (auto& [spelling, id] : spec.vocab) {
    const auto i = static_cast<size_t>(id);
    if (used[i]) {
      fail(ErrorCode::kFormat, "model.vocab: id " + std::to_string(id) + " is used by both '" +
                                   spellings_[i] + "' and '" + spelling + "'");
    }
    used[i] = true;
    bool alphabet = false;
    bytes_[i] = spelling_to_bytes(spelling, &alphabet);
    in_alphabet[i] = alphabet;
    by_spelling_.emplace(spelling, id);
    spellings_[i] = std::move(spelling);
  }
  for (int b = 0; b < 256; ++b) {
    std::string c;
    bpe_bytes::append_utf8(bpe_bytes::kByteToChar[static_cast<size_t>(b)], &c);
    const auto it = by_spelling_.find(c);
    byte_id_[static_cast<size_t>(b)] = it == by_spelling_.end() ? -1 : it->second;
  }

  merges_.reserve(spec.merges.size());
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const auto& [a, b] = spec.merges[r];
    const auto where = "model.merges[" + std::to_string(r) + "]: ";
    const auto ia = by_spelling_.find(a);
    const auto ib = by_spelling_.find(b);
    const auto ic = by_spelling_.find(a + b);
    if (ia == by_spelling_.end())
      fail(ErrorCode::kFormat, where + "'" + a + "' is not in the vocabulary");
    if (ib == by_spelling_.end())
      fail(ErrorCode::kFormat, where + "'" + b + "' is not in the vocabulary");
    if (ic == by_spelling_.end()) {
      fail(ErrorCode::kFormat, where + "the merged '" + a + b + "' is not in the vocabulary");
    }
    if (r > static_cast<size_t>(INT32_MAX)) fail(ErrorCode::kFormat, "model.merges: too many");
    // A repeated pair takes its last rank, as HF's merge map does.
    merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(r), ic->second};
  }

  std::vector<bool> added_used(n, false);
  for (BpeAddedToken& t : spec.added_tokens) {
    const auto i = static_cast<size_t>(t.id);
    if (added_used[i]) {
      fail(ErrorCode::kFormat, "added_tokens: id " + std::to_string(t.id) + " appears twice");
    }
    added_used[i] = true;
    // HF gives an added token that is also a vocabulary entry the entry's id (and warns when the
    // file says otherwise); a file that disagrees with itself is malformed.
    if (const auto it = by_spelling_.find(t.content);
        it != by_spelling_.end() && it->second != t.id) {
      fail(ErrorCode::kFormat, "added_tokens: '" + t.content + "' has id " + std::to_string(t.id) +
                                   " but the vocabulary has it as " + std::to_string(it->second));
    }
    if (used[i] && spellings_[i] != t.content) {
      fail(ErrorCode::kFormat, "added_tokens: id " + std::to_string(t.id) + " of '" + t.content +
                                   "' belongs to the vocabulary's '" + spellings_[i] + "'");
    }
    // An added token decodes to its content as is (as tokenizers.js does; HF's Rust decoder
    // maps content spelled wholly in the byte alphabet back to bytes, e.g. "\u00e9" -> 0xE9,
    // which breaks the round trip; the two agree on ASCII content such as <|endoftext|>).
    spellings_[i] = t.content;
    bytes_[i] = t.content;
    if (t.content.empty()) continue;  // matches nothing
    added_.push_back({t.id, t.content, t.lstrip, t.rstrip});
    AddedIndex& index = t.normalized ? norm_index_ : raw_index_;
    has_norm_added_ = has_norm_added_ || t.normalized;
    index[static_cast<uint8_t>(t.content[0])].push_back(&added_.back());
  }
  for (AddedIndex* index : {&raw_index_, &norm_index_}) {
    for (auto& list : *index) {
      std::stable_sort(list.begin(), list.end(), [](const Added* x, const Added* y) {
        return x->content.size() > y->content.size();
      });
    }
  }
  // Whole-piece lookup (ignore_merges) by bytes: only entries spelled in the byte alphabet can
  // be a pre-tokenized piece. Built last: its keys are views into bytes_, final by now.
  for (size_t i = 0; i < n; ++i) {
    if (in_alphabet[i] && !added_used[i]) by_bytes_.emplace(bytes_[i], static_cast<int32_t>(i));
  }

  // The one ByteLevel step must come last: a step after it would see the byte alphabet.
  const auto& steps = spec.pre_tokenizer;
  const auto byte_level = std::count_if(steps.begin(), steps.end(), [](const auto& s) {
    return s.kind == BpePreTokenizerStep::Kind::kByteLevel;
  });
  if (byte_level != 1 || steps.back().kind != BpePreTokenizerStep::Kind::kByteLevel) {
    fail(ErrorCode::kUnsupported,
         "pre_tokenizer: expected exactly one ByteLevel step, last (byte-level BPE)");
  }
  pre_ = std::make_unique<BpePreTokenizer>(steps, source);

  if (spec.unk_token) {
    unk_id_ = find_token(*spec.unk_token);
    if (!unk_id_) fail(ErrorCode::kFormat, "model.unk_token '" + *spec.unk_token + "' is unknown");
  }
  fuse_unk_ = spec.fuse_unk;
  ignore_merges_ = spec.ignore_merges;
  const auto special = [&](const std::optional<std::string>& name) -> std::optional<int32_t> {
    if (!name) return std::nullopt;
    const auto id = find_token(*name);
    if (!id) {
      fail(ErrorCode::kFormat,
           "special token '" + *name + "' (tokenizer_config.json or post_processor) is unknown");
    }
    return id;
  };
  bos_id_ = special(spec.bos_token);
  eos_id_ = special(spec.eos_token);
  add_bos_ = spec.add_bos.value_or(bos_id_.has_value() && bos_id_ != eos_id_);
  if (!bos_id_) add_bos_ = false;
}

size_t BpeTokenizer::checked(int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) +
                                                 " is out of range for a vocabulary of " +
                                                 std::to_string(vocab_size()) + " ids");
  }
  return static_cast<size_t>(id);
}

std::optional<int32_t> BpeTokenizer::find_token(const std::string& name) const {
  for (const Added& a : added_) {
    if (a.content == name) return a.id;
  }
  const auto it = by_spelling_.find(name);
  if (it != by_spelling_.end()) return it->second;
  return std::nullopt;
}

// HF AddedVocabulary::split_with_indices: leftmost-longest matches; lstrip/rstrip widen a match
// over White_Space (never back past the previous match), the next search resumes after the
// match itself.
void BpeTokenizer::cut_added(std::string_view text, const AddedIndex& index,
                             std::vector<Segment>* out) const {
  size_t done = 0;  // text before this is already in `out`
  size_t pos = 0;
  while (pos < text.size()) {
    const Added* hit = nullptr;
    for (const Added* a : index[static_cast<uint8_t>(text[pos])]) {
      if (text.compare(pos, a->content.size(), a->content) == 0) {
        hit = a;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t stop = pos + hit->content.size();
    if (hit->lstrip) {
      while (start > done) {
        size_t len = 1;
        while (len <= 3 && len <= start && utf8::valid_char_len(text.substr(start - len)) != len) {
          ++len;
        }
        if (len > 3 || len > start) break;
        if (!is_white_space(bpe_bytes::decode_char(text.substr(start - len), len))) break;
        start -= len;
      }
      start = std::max(start, done);
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        const size_t len = utf8::valid_char_len(text.substr(stop));
        if (len == 0 || !is_white_space(bpe_bytes::decode_char(text.substr(stop), len))) break;
        stop += len;
      }
    }
    if (done < start) out->push_back({text.substr(done, start - done), -1});
    out->push_back({{}, hit->id});
    done = std::max(done, stop);
    pos += hit->content.size();
  }
  if (done < text.size()) out->push_back({text.substr(done), -1});
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  std::vector<Segment> segments;
  cut_added(text, raw_index_, &segments);
  if (has_norm_added_) {
    std::vector<Segment> refined;
    for (const Segment& seg : segments) {
      if (seg.id >= 0) {
        refined.push_back(seg);
      } else {
        cut_added(seg.text, norm_index_, &refined);
      }
    }
    segments.swap(refined);
  }
  Scratch scratch;
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      encode_text(seg.text, &scratch, &ids);
    }
  }
  return ids;
}

// Valid stretches are pre-tokenized; each maximal run of malformed bytes is a piece by itself,
// so that any byte string round-trips (HF only ever sees valid UTF-8).
void BpeTokenizer::encode_text(std::string_view text, Scratch* s, std::vector<int32_t>* ids) const {
  const auto encode_valid = [&](std::string_view valid) {
    if (valid.empty()) return;
    s->pieces.clear();
    pre_->split(valid, &s->pieces, &s->storage);
    for (const std::string_view piece : s->pieces) encode_piece(piece, s, ids);
  };
  size_t run = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t len = utf8::valid_char_len(text.substr(pos));
    if (len > 0) {
      pos += len;
      continue;
    }
    encode_valid(text.substr(run, pos - run));
    const size_t bad = pos;
    while (pos < text.size() && utf8::valid_char_len(text.substr(pos)) == 0) ++pos;
    encode_piece(text.substr(bad, pos - bad), s, ids);
    run = pos;
  }
  encode_valid(text.substr(run));
}

void BpeTokenizer::encode_piece(std::string_view bytes, Scratch* s,
                                std::vector<int32_t>* ids) const {
  if (const auto it = s->cache.find(bytes); it != s->cache.end()) {
    const auto [begin, count] = it->second;
    ids->insert(ids->end(), s->cache_ids.begin() + begin, s->cache_ids.begin() + begin + count);
    return;
  }
  const size_t before = ids->size();
  const auto whole = ignore_merges_ ? by_bytes_.find(bytes) : by_bytes_.end();
  if (whole != by_bytes_.end()) {
    ids->push_back(whole->second);
  } else {
    merge(bytes, s, ids);
  }
  const auto begin = static_cast<uint32_t>(s->cache_ids.size());
  s->cache_ids.insert(s->cache_ids.end(), ids->begin() + static_cast<std::ptrdiff_t>(before),
                      ids->end());
  s->cache.emplace(bytes, std::pair{begin, static_cast<uint32_t>(ids->size() - before)});
}

// HF Word::merge_all: one symbol per byte (unknown bytes become unk, fused when asked, or are
// dropped without an unk token), then repeatedly the pair of lowest merge rank, leftmost first.
// Heap entries go stale when a neighbour merged; they are skipped when popped.
void BpeTokenizer::merge(std::string_view bytes, Scratch* s, std::vector<int32_t>* ids) const {
  auto& sym = s->symbols;
  sym.clear();
  bool pending_unk = false;
  const auto add = [&](int32_t id) {
    const auto k = static_cast<int32_t>(sym.size());
    sym.push_back({id, k - 1, -1, true});
    if (k > 0) sym[static_cast<size_t>(k - 1)].next = k;
  };
  for (const char c : bytes) {
    const int32_t id = byte_id_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(id);
    } else if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);

  auto& heap = s->heap;
  heap.clear();
  const auto consider = [&](int32_t pos) {
    const auto& a = sym[static_cast<size_t>(pos)];
    if (a.next < 0) return;
    const auto it = merges_.find(pair_key(a.id, sym[static_cast<size_t>(a.next)].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, it->second.id});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Scratch::Candidate top = heap.back();
    heap.pop_back();
    auto& a = sym[static_cast<size_t>(top.pos)];
    if (!a.alive || a.next < 0) continue;
    auto& b = sym[static_cast<size_t>(a.next)];
    const auto it = merges_.find(pair_key(a.id, b.id));
    if (it == merges_.end() || it->second.id != top.id) continue;
    a.id = top.id;
    b.alive = false;
    a.next = b.next;
    if (b.next >= 0) sym[static_cast<size_t>(b.next)].prev = top.pos;
    if (a.prev >= 0) consider(a.prev);
    consider(top.pos);
  }
  for (const auto& x : sym) {
    if (x.alive) ids->push_back(x.id);
  }
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string raw;
  for (const int32_t id : ids) raw += bytes_[checked(id)];
  std::string out;
  bpe_bytes::append_utf8_lossy(raw, &out);
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec, const std::string& source) {
  return std::make_unique<BpeTokenizer>(std::move(spec), source);
}

BpeSpec load_bpe_spec(const std::string& path) {
  const auto read = [](const std::string& p) {
    const auto file = MappedFile::open(p);
    return std::string(reinterpret_cast<const char*>(file->data()), file->size());
  };
  const std::string json = read(path);
  std::string config;
  const size_t slash = path.find_last_of('/');
  const std::string config_path =
      (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
      "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(config_path, ec)) config = read(config_path);
  return parse_bpe_spec(json, config, path);
}

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& path) {
  return make_bpe_tokenizer(load_bpe_spec(path), path);
}

}  // namespace glassbox
