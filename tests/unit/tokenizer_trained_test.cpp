// An independent check of our SentencePiece-BPE encoder: libsentencepiece trains small BPE
// models in-process (byte fallback on), we export them to the llama2.c .bin format (or read the
// ModelProto directly, for piece types .bin cannot carry: user-defined, unused) and compare ids
// with libsentencepiece on held-out corpus lines and on synthetic adversarial lines (invalid
// UTF-8, control characters, runs of spaces, literal "<s>"/"<0x41>", user-defined symbols).
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "sanitized.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;

#ifdef GLASSBOX_SANITIZED
constexpr size_t kHeldOutStride = 12;
#else
constexpr size_t kHeldOutStride = 3;
#endif

const std::string kCorpus = std::string(GLASSBOX_SHARED_DIR) + "/corpus";

std::vector<std::string> read_lines(const std::string& name) {
  std::ifstream in(kCorpus + "/" + name, std::ios::binary);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

std::string train(const std::vector<std::string>& sentences,
                  std::unordered_map<std::string, std::string> args) {
  args.emplace("model_type", "bpe");
  args.emplace("byte_fallback", "true");
  args.emplace("normalization_rule_name", "identity");
  args.emplace("character_coverage", "0.9995");  // leaves rare characters to byte fallback
  args.emplace("num_threads", "2");
  args.emplace("minloglevel", "2");
  VectorIterator it(sentences);
  std::string proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return proto;
}

// ---- A minimal protobuf wire reader for the ModelProto fields we need.
struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
      const uint8_t b = *p++;
      v |= uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) break;
    }
    return v;
  }
  // Calls fn(field, wire_type, value, bytes, raw) for each field; raw spans the whole field.
  template <class Fn>
  void each(Fn fn) {
    while (p < end) {
      const uint8_t* start = p;
      const uint64_t key = varint();
      const int field = static_cast<int>(key >> 3), type = static_cast<int>(key & 7);
      uint64_t value = 0;
      std::string_view bytes;
      if (type == 0) {
        value = varint();
      } else if (type == 5) {
        std::memcpy(&value, p, 4);
        p += 4;
      } else if (type == 1) {
        std::memcpy(&value, p, 8);
        p += 8;
      } else if (type == 2) {
        const uint64_t n = varint();
        bytes = std::string_view(reinterpret_cast<const char*>(p), n);
        p += n;
      }
      fn(field, value, bytes,
         std::string_view(reinterpret_cast<const char*>(start), static_cast<size_t>(p - start)));
    }
  }
};
Wire wire(std::string_view s) {
  const auto* b = reinterpret_cast<const uint8_t*>(s.data());
  return {b, b + s.size()};
}

// ModelProto -> SpmVocab: pieces (1), normalizer_spec (3: add_dummy_prefix = 3,
// remove_extra_whitespaces = 4, both default true), trainer_spec (2: byte_fallback = 35).
SpmVocab vocab_from_proto(const std::string& proto,
                          const sentencepiece::SentencePieceProcessor& sp) {
  SpmVocab v;
  v.add_dummy_prefix = true;  // proto2 defaults when the fields are absent
  v.remove_extra_whitespaces = true;
  wire(proto).each([&](int field, uint64_t, std::string_view bytes, std::string_view) {
    if (field == 1) {
      std::string piece;
      float score = 0;
      auto type = PieceType::kNormal;
      wire(bytes).each([&](int f, uint64_t value, std::string_view b, std::string_view) {
        if (f == 1) piece = std::string(b);
        if (f == 2) std::memcpy(&score, &value, 4);
        if (f == 3) type = static_cast<PieceType>(value);
      });
      v.pieces.push_back(piece);
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (field == 2) {
      wire(bytes).each([&](int f, uint64_t value, std::string_view, std::string_view) {
        if (f == 35) v.byte_fallback = value != 0;
      });
    } else if (field == 3) {
      wire(bytes).each([&](int f, uint64_t value, std::string_view, std::string_view) {
        if (f == 3) v.add_dummy_prefix = value != 0;
        if (f == 4) v.remove_extra_whitespaces = value != 0;
      });
    }
  });
  v.unk_id = sp.unk_id();
  v.bos_id = sp.bos_id() >= 0 ? std::optional<int32_t>(sp.bos_id()) : std::nullopt;
  v.eos_id = sp.eos_id() >= 0 ? std::optional<int32_t>(sp.eos_id()) : std::nullopt;
  return v;
}

void put_varint(std::string& out, uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7F) | 0x80));
  out.push_back(static_cast<char>(v));
}

// Rewrites the type of the pieces `pick` chooses to UNUSED (5), leaving the rest of the
// ModelProto as it is. (SetVocabulary would do this too, but it also retypes byte pieces.)
std::string mark_unused(const std::string& proto, const std::function<bool(int, int)>& pick) {
  std::string out;
  int id = 0;
  wire(proto).each([&](int field, uint64_t, std::string_view bytes, std::string_view raw) {
    if (field != 1) {
      out.append(raw);
      return;
    }
    int type = 1;
    std::string rest;
    wire(bytes).each([&](int f, uint64_t value, std::string_view, std::string_view r) {
      if (f == 3) {
        type = static_cast<int>(value);
      } else {
        rest.append(r);
      }
    });
    if (pick(id, type)) type = 5;
    put_varint(rest, 3 << 3);
    put_varint(rest, static_cast<uint64_t>(type));
    put_varint(out, (1 << 3) | 2);
    put_varint(out, rest.size());
    out.append(rest);
    ++id;
  });
  return out;
}

// The llama2.c export (tokenizer.py): piece and score per id, nothing else.
std::vector<uint8_t> export_llama2c(const sentencepiece::SentencePieceProcessor& sp) {
  SpmVocab v;
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    v.pieces.push_back(sp.IdToPiece(id));
    v.scores.push_back(sp.GetScore(id));
  }
  return write_llama2c_vocab(v);
}

// Lines a tokenizer must survive: corpus words glued with random bytes, invalid UTF-8, control
// characters, runs of spaces, special-looking literals. Deterministic.
std::vector<std::string> adversarial_lines(const std::vector<std::string>& words, size_t n) {
  const std::vector<std::string> specials = {"<s>",
                                             "</s>",
                                             "<unk>",
                                             "<0x41>",
                                             "\xE2\x96\x81",
                                             "<sep>",
                                             "@@",
                                             "<ctl>",
                                             "  ",
                                             "   ",
                                             "\t",
                                             "\r",
                                             "\xEF\xBF\xBD",
                                             "\xFF",
                                             "\xC3",
                                             "\xE2\x82",
                                             "\xED\xA0\x80",
                                             "\xF0\x9F\x98\x80",
                                             "\xE6\x97\xA5\xE6\x9C\xAC",
                                             "\xC3\xA9",
                                             std::string(1, '\0'),
                                             "\xC0\x80",
                                             "0123",
                                             "...",
                                             "\xE2\x80\x9C",
                                             "\xE2\x80\x99s"};
  std::mt19937 rng(1234);
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) {
    std::string line;
    const size_t parts = 1 + rng() % 12;
    for (size_t k = 0; k < parts; ++k) {
      switch (rng() % 6) {
        case 0:
          line += specials[rng() % specials.size()];
          break;
        case 1:
          line += static_cast<char>(rng() % 256);
          break;
        case 2:
          line += ' ';
          break;
        default:
          line += words[rng() % words.size()];
      }
    }
    out.push_back(line);
  }
  return out;
}

struct Result {
  size_t lines = 0;
  size_t mismatches = 0;
  size_t byte_ids = 0;
};

Result compare(const Tokenizer& ours, const sentencepiece::SentencePieceProcessor& ref,
               const std::vector<std::string>& lines, size_t stride) {
  Result r;
  std::vector<int> want;
  for (size_t i = 0; i < lines.size(); i += stride) {
    want.clear();
    EXPECT_TRUE(ref.Encode(lines[i], &want).ok());
    const std::vector<int32_t> got = ours.encode(lines[i]);
    ++r.lines;
    for (const int32_t id : got) r.byte_ids += ours.byte_value(id).has_value();
    if (got != std::vector<int32_t>(want.begin(), want.end()) && ++r.mismatches <= 3) {
      std::string a, b;
      for (const int32_t id : got) a += ours.piece(id) + " ";
      for (const int id : want) b += ref.IdToPiece(id) + " ";
      ADD_FAILURE() << "line " << i << " [" << lines[i] << "]\n ours: " << a << "\n spm:  " << b;
    }
  }
  return r;
}

struct Data {
  std::vector<std::string> train;
  std::vector<std::string> held_out;
  std::vector<std::string> words;
};

const Data& data() {
  static const Data d = [] {
    Data d;
    // Train on the first 4000 lines of TinyStories part 1 plus 1500 Shakespeare lines (which
    // hold runs of spaces); hold out everything else.
    const auto ts1 = read_lines("tinystories_part1.txt");
    const auto shakes = read_lines("tinyshakespeare.txt");
    const size_t n_ts = std::min<size_t>(ts1.size(), 4000),
                 n_sh = std::min<size_t>(shakes.size(), 1500);
    d.train.assign(ts1.begin(), ts1.begin() + n_ts);
    d.train.insert(d.train.end(), shakes.begin(), shakes.begin() + n_sh);
    d.held_out.assign(ts1.begin() + n_ts, ts1.end());
    d.held_out.insert(d.held_out.end(), shakes.begin() + n_sh, shakes.end());
    for (const char* f : {"tinystories_part2.txt", "sotu.txt", "wizard_of_oz.txt"}) {
      const auto more = read_lines(f);
      d.held_out.insert(d.held_out.end(), more.begin(), more.end());
    }
    for (size_t i = 0; i < d.train.size(); i += 7) {
      std::istringstream words(d.train[i]);
      for (std::string w; words >> w;) d.words.push_back(w);
    }
    return d;
  }();
  return d;
}

bool have_corpus() { return fs::exists(kCorpus + "/tinystories_part1.txt"); }

void run_comparison(const std::string& name, const Tokenizer& ours,
                    const sentencepiece::SentencePieceProcessor& ref) {
  const Result held = compare(ours, ref, data().held_out, kHeldOutStride);
  const Result adv = compare(ours, ref, adversarial_lines(data().words, 3000), 1);
  std::cout << "[ trained ] " << name << ": held-out " << held.lines << " lines, "
            << held.mismatches << " mismatches, " << held.byte_ids
            << " byte-fallback ids; adversarial " << adv.lines << " lines, " << adv.mismatches
            << " mismatches, " << adv.byte_ids << " byte-fallback ids\n";
  EXPECT_EQ(held.mismatches, 0u);
  EXPECT_EQ(adv.mismatches, 0u);
  EXPECT_GT(held.byte_ids, 0u);  // byte fallback was exercised
}

// Default normalizer (whitespace collapsing): exported to .bin, the inference must pick it.
TEST(TokenizerTrained, CollapsingModelExportedToLlama2cMatches) {
  if (!have_corpus()) GTEST_SKIP() << "corpus absent";
  const std::string proto = train(data().train, {{"vocab_size", "800"}});
  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.LoadFromSerializedProto(proto).ok());
  const auto bin = export_llama2c(ref);
  const SpmVocab vocab = parse_llama2c_vocab(bin, 0, "trained-collapse.bin");
  EXPECT_TRUE(vocab.remove_extra_whitespaces);
  EXPECT_TRUE(vocab.byte_fallback);
  run_comparison("collapsing model via .bin", *make_spm_bpe_tokenizer(vocab, "trained"), ref);
}

// No collapsing and whitespace-only pieces allowed: the model learns "▁▁"-style pieces, from
// which the .bin inference must conclude "no collapsing".
TEST(TokenizerTrained, KeepWhitespaceModelExportedToLlama2cMatches) {
  if (!have_corpus()) GTEST_SKIP() << "corpus absent";
  // Indented copies and two spaces after full stops, so that whitespace runs are frequent.
  std::vector<std::string> sentences = data().train;
  for (size_t i = 0; i < data().train.size(); i += 2) {
    std::string line = "    " + data().train[i];
    for (size_t at = line.find(". "); at != std::string::npos; at = line.find(". ", at + 3)) {
      line.insert(at + 1, " ");
    }
    sentences.push_back(line);
  }
  const std::string proto = train(sentences, {{"vocab_size", "800"},
                                              {"remove_extra_whitespaces", "false"},
                                              {"allow_whitespace_only_pieces", "true"},
                                              {"split_digits", "true"}});
  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.LoadFromSerializedProto(proto).ok());
  const auto bin = export_llama2c(ref);
  const SpmVocab vocab = parse_llama2c_vocab(bin, 0, "trained-keep.bin");
  ASSERT_FALSE(vocab.remove_extra_whitespaces) << "the model learned no two-space piece";
  run_comparison("whitespace-keeping model via .bin", *make_spm_bpe_tokenizer(vocab, "trained"),
                 ref);
}

// Without byte pieces, unknown characters become <unk> and a run of them one <unk>.
TEST(TokenizerTrained, ModelWithoutByteFallbackMatches) {
  if (!have_corpus()) GTEST_SKIP() << "corpus absent";
  const std::string proto =
      train(data().train, {{"vocab_size", "400"}, {"byte_fallback", "false"}});
  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.LoadFromSerializedProto(proto).ok());
  const SpmVocab vocab = parse_llama2c_vocab(export_llama2c(ref), 0, "trained-nobytes.bin");
  EXPECT_FALSE(vocab.byte_fallback);
  const auto ours = make_spm_bpe_tokenizer(vocab, "trained");
  const Result held = compare(*ours, ref, data().held_out, kHeldOutStride);
  const Result adv = compare(*ours, ref, adversarial_lines(data().words, 3000), 1);
  size_t unks = 0;
  for (const std::string& line : adversarial_lines(data().words, 3000)) {
    const auto ids = ours->encode(line);
    unks += static_cast<size_t>(std::count(ids.begin(), ids.end(), 0));
  }
  std::cout << "[ trained ] model without byte fallback via .bin: held-out " << held.lines
            << " lines, " << held.mismatches << " mismatches; adversarial " << adv.lines
            << " lines, " << adv.mismatches << " mismatches, " << unks << " <unk> ids\n";
  EXPECT_EQ(held.mismatches, 0u);
  EXPECT_EQ(adv.mismatches, 0u);
  EXPECT_GT(unks, 1000u);
}

// The shared llama2.c vocabularies against their .model files on the adversarial lines.
TEST(TokenizerTrained, SharedVocabulariesMatchOnAdversarialLines) {
  if (!have_corpus()) GTEST_SKIP() << "corpus absent";
  const std::string models = std::string(GLASSBOX_SHARED_DIR) + "/models/";
  for (const auto& [bin, model] :
       {std::pair<std::string, std::string>{"llama2-tokenizer/tokenizer.bin",
                                            "llama2-tokenizer/tokenizer.model"},
        {"babyllama-tok105/tok105.bin", "babyllama-tok105/tok105.model"}}) {
    if (!fs::exists(models + bin) || !fs::exists(models + model)) GTEST_SKIP() << "absent";
    sentencepiece::SentencePieceProcessor ref;
    ASSERT_TRUE(ref.Load(models + model).ok());
    const auto ours = load_llama2c_tokenizer(models + bin, 0);
    const Result adv = compare(*ours, ref, adversarial_lines(data().words, 3000), 1);
    std::cout << "[ trained ] " << bin << " adversarial: " << adv.lines << " lines, "
              << adv.mismatches << " mismatches, " << adv.byte_ids << " byte-fallback ids\n";
    EXPECT_EQ(adv.mismatches, 0u);
  }
}

// Number of characters of piece `id` in a ModelProto.
size_t ref_piece_len(const std::string& proto, int id) {
  static std::map<std::string, sentencepiece::SentencePieceProcessor> cache;
  auto [it, fresh] = cache.try_emplace(proto);
  if (fresh) {
    EXPECT_TRUE(it->second.LoadFromSerializedProto(proto).ok());
  }
  const std::string& p = it->second.IdToPiece(id);
  return static_cast<size_t>(
      std::count_if(p.begin(), p.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

// User-defined and control symbols, and unused pieces: read from the ModelProto itself, as the
// .bin format cannot carry those types.
TEST(TokenizerTrained, UserDefinedControlAndUnusedPiecesMatch) {
  if (!have_corpus()) GTEST_SKIP() << "corpus absent";
  const std::string proto = train(
      data().train,
      {{"vocab_size", "700"}, {"user_defined_symbols", "<sep>,@@"}, {"control_symbols", "<ctl>"}});
  // Every third multi-character normal piece becomes unused.
  const std::string edited = mark_unused(proto, [&](int id, int type) {
    return type == 1 && id % 3 == 0 && ref_piece_len(proto, id) > 1;
  });
  sentencepiece::SentencePieceProcessor ref;
  ASSERT_TRUE(ref.LoadFromSerializedProto(edited).ok());
  const SpmVocab vocab = vocab_from_proto(edited, ref);
  const auto count = [&](PieceType t) {
    return std::count(vocab.types.begin(), vocab.types.end(), t);
  };
  EXPECT_EQ(count(PieceType::kUserDefined), 2);
  EXPECT_EQ(count(PieceType::kControl), 3);
  EXPECT_GT(count(PieceType::kUnused), 50);
  const auto ours = make_spm_bpe_tokenizer(vocab, "trained-proto");
  for (int id = 0; id < ref.GetPieceSize(); ++id) ASSERT_EQ(ours->piece(id), ref.IdToPiece(id));
  run_comparison("user-defined/control/unused model via ModelProto", *ours, ref);
}

}  // namespace
}  // namespace glassbox
