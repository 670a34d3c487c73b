// Our SentencePiece-BPE encoder against libsentencepiece itself, on every line of the shared
// corpus (~100k lines, 7.7 MB): llama2.c tokenizer.bin, the vocabulary embedded in
// synth15M-q8_0.gguf and tok105.bin against their .model files; decode(encode(x)) == x wherever
// the vocabulary can represent x. Sanitizer builds compare every 4th line to stay fast.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "io/gguf.h"
#include "sanitized.h"
#include "test_corpus.h"
#include "test_models.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;

const std::string kLlama2Bin = testing::shared_path("models/llama2-tokenizer/tokenizer.bin");
const std::string kLlama2Model = testing::shared_path("models/llama2-tokenizer/tokenizer.model");
const std::string kTok105Bin = testing::shared_path("models/babyllama-tok105/tok105.bin");
const std::string kTok105Model = testing::shared_path("models/babyllama-tok105/tok105.model");
const std::string kSynthGguf = testing::shared_gguf("synth15M-q8_0.gguf");
const std::string kTok512Bin = testing::repo_path("models/stories260K/tok512.bin");

// Every line of every corpus file (split on '\n', as is), in file-name order; read once.
const std::vector<std::string>& cached_corpus_lines() {
  static const std::vector<std::string> lines = testing::corpus_lines();
  return lines;
}

bool have(const std::vector<std::string>& paths) {
  if (cached_corpus_lines().empty()) return false;
  return std::all_of(paths.begin(), paths.end(), [](const auto& p) { return fs::exists(p); });
}

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_spm(const std::string& path) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(path);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return sp;
}

// libsentencepiece's ids for every strided corpus line, computed once per model (two tests
// compare against tokenizer.model).
const std::vector<std::vector<int>>& reference_ids(
    const std::string& model, const sentencepiece::SentencePieceProcessor& sp) {
  static std::map<std::string, std::vector<std::vector<int>>> cache;
  auto [it, inserted] = cache.try_emplace(model);
  if (inserted) {
    const auto& lines = cached_corpus_lines();
    for (size_t i = 0; i < lines.size(); i += testing::kCorpusStride) {
      std::vector<int> ids;
      EXPECT_TRUE(sp.Encode(lines[i], &ids).ok());
      it->second.push_back(std::move(ids));
    }
  }
  return it->second;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

// Splits valid UTF-8 into characters (the corpus is valid UTF-8).
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

// A line that whitespace collapsing changes: leading/trailing space or two spaces in a row.
bool has_extra_whitespace(const std::string& s) {
  return !s.empty() && (s.front() == ' ' || s.back() == ' ' || s.find("  ") != std::string::npos);
}

struct Stats {
  size_t lines = 0;
  size_t ids = 0;
  size_t encode_mismatches = 0;
  size_t decode_compared = 0;
  size_t decode_mismatches = 0;
  size_t roundtrip_compared = 0;
  size_t roundtrip_failures = 0;
};

// Encodes every (strided) line with both; compares ids, optionally decode against spm's, and
// round trip for lines `representable` accepts. Reports the first few mismatches.
Stats compare(const Tokenizer& ours, const std::string& model,
              const sentencepiece::SentencePieceProcessor& ref,
              const std::function<bool(const std::string&)>& representable, bool compare_decode) {
  Stats st;
  const auto& lines = cached_corpus_lines();
  const auto& all_ref_ids = reference_ids(model, ref);
  for (size_t i = 0, k = 0; i < lines.size(); i += testing::kCorpusStride, ++k) {
    const std::string& line = lines[i];
    const std::vector<int32_t> got = ours.encode(line);
    const std::vector<int>& ref_ids = all_ref_ids[k];
    ++st.lines;
    st.ids += got.size();
    const std::vector<int32_t> want(ref_ids.begin(), ref_ids.end());
    if (got != want && ++st.encode_mismatches <= 3) {
      ADD_FAILURE() << "line " << i << " [" << line << "]\n ours: " << ids_str(got)
                    << "\n spm:  " << ids_str(want);
    }
    const std::string text = ours.decode(got);
    const bool has_unk = std::find(got.begin(), got.end(), *ours.unk_id()) != got.end();
    // spm's <unk> surface is the model's own; ours is the default " \u2047 ".
    if (compare_decode && !has_unk) {
      ++st.decode_compared;
      if (text != ref.DecodeIds(ref_ids) && ++st.decode_mismatches <= 3) {
        ADD_FAILURE() << "decode differs on line " << i << " [" << line << "]";
      }
    }
    if (representable(line)) {
      ++st.roundtrip_compared;
      if (text != line && ++st.roundtrip_failures <= 3) {
        ADD_FAILURE() << "round trip fails on line " << i << " [" << line << "] -> [" << text
                      << "]";
      }
    }
  }
  return st;
}

void report(const std::string& name, const Stats& st) {
  std::cout << "[ corpus ] " << name << ": " << st.lines << " lines (stride " << testing::kCorpusStride << "), "
            << st.ids << " ids, " << st.encode_mismatches << " encode mismatches; decode vs spm "
            << st.decode_compared << " lines, " << st.decode_mismatches << " mismatches; "
            << "round trip " << st.roundtrip_compared << " lines, " << st.roundtrip_failures
            << " failures, " << (st.lines - st.roundtrip_compared) << " excluded\n";
  EXPECT_EQ(st.encode_mismatches, 0u);
  EXPECT_EQ(st.decode_mismatches, 0u);
  EXPECT_EQ(st.roundtrip_failures, 0u);
}

TEST(TokenizerCorpus, Llama2BinMatchesSentencePiece) {
  if (!have({kLlama2Bin, kLlama2Model})) GTEST_SKIP() << "shared llama2 tokenizer/corpus absent";
  const auto ours = load_llama2c_tokenizer(kLlama2Bin, 0);
  const auto ref = load_spm(kLlama2Model);
  ASSERT_EQ(ours->vocab_size(), ref->GetPieceSize());
  // Byte fallback and no whitespace collapsing: every line must round-trip.
  const auto all = [](const std::string&) { return true; };
  const Stats st = compare(*ours, kLlama2Model, *ref, all, true);
  report("llama2 tokenizer.bin vs tokenizer.model", st);
  EXPECT_EQ(st.roundtrip_compared, st.lines);
  EXPECT_GT(st.lines, 80000u / testing::kCorpusStride);
}

TEST(TokenizerCorpus, GgufVocabularyMatchesSentencePiece) {
  if (!have({kSynthGguf, kLlama2Model})) GTEST_SKIP() << "shared GGUF/corpus absent";
  const GgufFile gguf = GgufFile::open(kSynthGguf);
  const auto ours = load_gguf_tokenizer(gguf);
  const auto ref = load_spm(kLlama2Model);
  ASSERT_EQ(ours->vocab_size(), ref->GetPieceSize());
  // Same vocabulary as above, where decode was compared with spm's.
  const auto all = [](const std::string&) { return true; };
  const Stats st = compare(*ours, kLlama2Model, *ref, all, false);
  report("synth15M-q8_0.gguf vocabulary vs llama2 tokenizer.model", st);
  EXPECT_EQ(st.roundtrip_compared, st.lines);
}

TEST(TokenizerCorpus, Tok105BinMatchesSentencePiece) {
  if (!have({kTok105Bin, kTok105Model})) GTEST_SKIP() << "shared tok105/corpus absent";
  const auto ours = load_llama2c_tokenizer(kTok105Bin, 0);
  const auto ref = load_spm(kTok105Model);
  ASSERT_EQ(ours->vocab_size(), ref->GetPieceSize());
  // Representable: every character has a piece (no byte pieces here) and collapsing whitespace
  // (tok105.model's normalizer) leaves the line unchanged. Decided from the piece list alone.
  std::set<std::string> chars;
  for (int32_t id = 3; id < ours->vocab_size(); ++id) chars.insert(ref->IdToPiece(id));
  size_t unknown_chars = 0;
  size_t extra_space = 0;
  const auto representable = [&](const std::string& line) {
    for (std::string c : chars_of(line)) {
      if (c == " ") c = "\xE2\x96\x81";
      if (chars.count(c) == 0) {
        ++unknown_chars;
        return false;
      }
    }
    if (has_extra_whitespace(line)) {
      ++extra_space;
      return false;
    }
    return true;
  };
  const Stats st = compare(*ours, kTok105Model, *ref, representable, true);
  report("tok105.bin vs tok105.model", st);
  std::cout << "[ corpus ] tok105 round-trip exclusions: " << unknown_chars
            << " lines with characters outside the vocabulary, " << extra_space
            << " with whitespace the normalizer collapses\n";
}

TEST(TokenizerCorpus, Tok512RoundTrip) {
  if (!have({kTok512Bin})) GTEST_SKIP() << "tok512.bin/corpus absent";
  const auto tok = load_llama2c_tokenizer(kTok512Bin, 512);
  size_t compared = 0;
  size_t excluded = 0;
  size_t failures = 0;
  size_t byte_pieces = 0;
  const auto& lines = cached_corpus_lines();
  for (size_t i = 0; i < lines.size(); i += testing::kCorpusStride) {
    const std::vector<int32_t> ids = tok->encode(lines[i]);
    for (const int32_t id : ids) byte_pieces += tok->byte_value(id).has_value();
    // Byte fallback covers every character; only collapsed whitespace cannot come back.
    if (has_extra_whitespace(lines[i])) {
      ++excluded;
      continue;
    }
    ++compared;
    const std::string text = tok->decode(ids);
    if (text != lines[i] && ++failures <= 3) {
      ADD_FAILURE() << "line " << i << " [" << lines[i] << "] -> [" << text << "]";
    }
  }
  std::cout << "[ corpus ] tok512.bin round trip: " << compared << " lines, " << failures
            << " failures, " << excluded << " excluded (collapsed whitespace); " << byte_pieces
            << " byte-fallback ids\n";
  EXPECT_EQ(failures, 0u);
}

// Known encodings for tok512, worked out by hand from its piece list (id = 259 + k for the piece
// with score -k; see shared/models/README.md's dump): e.g. "Once" merges ▁O (-60), ▁On (-62),
// ce (-72), ▁Once (-144).
TEST(TokenizerCorpus, Tok512KnownEncodings) {
  if (!fs::exists(kTok512Bin)) GTEST_SKIP() << "tok512.bin absent";
  const auto tok = load_llama2c_tokenizer(kTok512Bin, 512);
  EXPECT_EQ(tok->piece(403), "\xE2\x96\x81Once");
  EXPECT_EQ(tok->piece(407), "\xE2\x96\x81upon");
  EXPECT_EQ(tok->piece(261),
            "\xE2\x96\x81"
            "a");
  EXPECT_EQ(tok->piece(378), "\xE2\x96\x81time");
  EXPECT_EQ(tok->encode("Once upon a time"), (std::vector<int32_t>{403, 407, 261, 378}));
  EXPECT_EQ(tok->encode("Once upon a time", true, false),
            (std::vector<int32_t>{1, 403, 407, 261, 378}));
  // "Lily" is one piece (-58 -> 317); "," has score -173 -> 432.
  EXPECT_EQ(tok->encode("Lily,"), (std::vector<int32_t>{317, 432}));
  // 日 (U+65E5, E6 97 A5) has no piece: ▁ (-151 -> 410) then byte pieces 3 + byte.
  EXPECT_EQ(tok->encode("\xE6\x97\xA5"), (std::vector<int32_t>{410, 3 + 0xE6, 3 + 0x97, 3 + 0xA5}));
  // "the": ▁t (-0) merges first, then he (-1) beats ▁th (-49), then ▁t + he = ▁the (-6 -> 265).
  EXPECT_EQ(tok->encode("the"), (std::vector<int32_t>{265}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{1, 403, 407, 261, 378, 2}), "Once upon a time");
}

TEST(TokenizerCorpus, PiecesAndIdsMatchSentencePiece) {
  for (const auto& [bin, model] :
       {std::pair{kLlama2Bin, kLlama2Model}, {kTok105Bin, kTok105Model}}) {
    if (!fs::exists(bin) || !fs::exists(model)) GTEST_SKIP() << "shared tokenizers absent";
    const auto ours = load_llama2c_tokenizer(bin, 0);
    const auto ref = load_spm(model);
    ASSERT_EQ(ours->vocab_size(), ref->GetPieceSize());
    for (int32_t id = 0; id < ours->vocab_size(); ++id) {
      ASSERT_EQ(ours->piece(id), ref->IdToPiece(id)) << bin << " id " << id;
      ASSERT_EQ(ours->byte_value(id).has_value(), ref->IsByte(id)) << bin << " id " << id;
    }
    EXPECT_EQ(ours->bos_id(), std::optional<int32_t>(ref->bos_id()));
    EXPECT_EQ(ours->eos_id(), std::optional<int32_t>(ref->eos_id()));
    EXPECT_EQ(ours->unk_id(), std::optional<int32_t>(ref->unk_id()));
  }
}

TEST(TokenizerCorpus, LoadTokenizerPicksByContent) {
  if (!have({kLlama2Bin, kLlama2Model, kTok105Model})) GTEST_SKIP() << "shared files absent";
  const auto ref = load_spm(kLlama2Model);
  const auto from_bin = load_tokenizer(kLlama2Bin);
  const auto from_model = load_tokenizer(kLlama2Model);
  const auto tok105 = load_tokenizer(kTok105Model);
  EXPECT_EQ(from_bin->vocab_size(), 32000);
  EXPECT_EQ(from_model->vocab_size(), 32000);
  EXPECT_EQ(tok105->vocab_size(), 105);
  // The wrapper is libsentencepiece: identical ids and text on a sample of lines.
  const auto& lines = cached_corpus_lines();
  for (size_t i = 0; i < lines.size(); i += 997) {
    std::vector<int> want;
    ASSERT_TRUE(ref->Encode(lines[i], &want).ok());
    const std::vector<int32_t> got = from_model->encode(lines[i]);
    ASSERT_EQ(got, std::vector<int32_t>(want.begin(), want.end())) << lines[i];
    ASSERT_EQ(from_bin->encode(lines[i]), got) << lines[i];
    ASSERT_EQ(from_model->decode(got), ref->DecodeIds(want));
  }
  // StreamDecoder over both implementations (emoji go through byte pieces here).
  const std::vector<std::string> texts = {
      "Emoji \xF0\x9F\x98\x80\xF0\x9F\x98\x81 and \xE6\x97\xA5 ok", " lead", lines[1]};
  for (const std::string& text : texts) {
    for (const Tokenizer* tok : {from_model.get(), from_bin.get()}) {
      const std::vector<int32_t> ids = tok->encode(text, true, true);
      StreamDecoder stream(*tok);
      std::string got;
      for (const int32_t id : ids) got += stream.push(id);
      got += stream.flush();
      EXPECT_EQ(got, tok->decode(ids));
      EXPECT_EQ(got, text);
    }
  }
  EXPECT_EQ(from_model->byte_value(3 + 0x41), std::optional<uint8_t>(0x41));
  EXPECT_EQ(from_model->piece(1), "<s>");
  EXPECT_THROW(from_model->decode(std::vector<int32_t>{32000}), Error);
}

}  // namespace
}  // namespace glassbox
