// Vocabulary loaders: llama2.c tok*.bin parsing (table of corrupted files), the normalization
// inference, GGUF-embedded vocabularies (in-memory GGUF images), load_tokenizer's choice by
// content. Every failure must be a glassbox::Error naming the file and the field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "model/model.h"
#include "test_models.h"
#include "tokenizer/spm_bpe.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using Ids = std::vector<int32_t>;

const std::string kTok512 = std::string(GLASSBOX_SOURCE_DIR) + "/models/stories260K/tok512.bin";

void put_i32(Bytes& b, int32_t v) {
  uint8_t raw[4];
  std::memcpy(raw, &v, 4);
  b.insert(b.end(), raw, raw + 4);
}
void put_f32(Bytes& b, float v) {
  int32_t raw;
  std::memcpy(&raw, &v, 4);
  put_i32(b, raw);
}
void put_piece(Bytes& b, float score, const std::string& p) {
  put_f32(b, score);
  put_i32(b, static_cast<int32_t>(p.size()));
  b.insert(b.end(), p.begin(), p.end());
}

// A valid 6-piece llama2.c vocabulary: <unk>, BOS, EOS, " ", "a", " a".
Bytes small_llama2c_vocab() {
  Bytes b;
  put_i32(b, 6);
  put_piece(b, 0, "<unk>");
  put_piece(b, 0, "\n<s>\n");
  put_piece(b, 0, "\n</s>\n");
  put_piece(b, -1, " ");
  put_piece(b, -2, "a");
  put_piece(b, -0.5, " a");
  return b;
}

TEST(TokenizerLlama2c, ParsesAndInfersTypes) {
  const SpmVocab v = parse_llama2c_vocab(small_llama2c_vocab(), 0, "small.bin");
  ASSERT_EQ(v.pieces.size(), 6u);
  EXPECT_EQ(v.pieces[1], "<s>");
  EXPECT_EQ(v.pieces[5],
            "\xE2\x96\x81"
            "a");
  EXPECT_EQ(v.types[0], PieceType::kUnknown);
  EXPECT_EQ(v.types[2], PieceType::kControl);
  EXPECT_EQ(v.types[4], PieceType::kNormal);
  EXPECT_FALSE(v.byte_fallback);
  EXPECT_TRUE(v.remove_extra_whitespaces);  // no piece with two spaces
  EXPECT_EQ(write_llama2c_vocab(v), small_llama2c_vocab());
  // An explicit vocab_size reads that many pieces and ignores the rest, as llama2.c does.
  EXPECT_EQ(parse_llama2c_vocab(small_llama2c_vocab(), 4, "small.bin").pieces.size(), 4u);
  const auto tok = make_spm_bpe_tokenizer(v, "small.bin");
  EXPECT_EQ(tok->encode("a a"), (Ids{5, 5}));
}

TEST(TokenizerLlama2c, CorruptFilesFailWithContext) {
  const Bytes good = small_llama2c_vocab();
  struct Case {
    std::string name;
    Bytes bytes;
    int32_t vocab_size;
    std::string expect;  // substring of the message
  };
  std::vector<Case> cases;
  // Cuts inside a field are truncations; a cut at a piece boundary leaves too few pieces.
  cases.push_back(
      {"cut after max_token_length", Bytes(good.begin(), good.begin() + 4), 0, "has 0 pieces"});
  cases.push_back({"cut after piece 0", Bytes(good.begin(), good.begin() + 17), 0, "has 1 pieces"});
  for (const size_t cut : {size_t{0}, size_t{2}, size_t{6}, size_t{10}, size_t{14}, size_t{19},
                           size_t{50}, good.size() - 1}) {
    cases.push_back({"truncated at " + std::to_string(cut), Bytes(good.begin(), good.begin() + cut),
                     0, "truncated"});
  }
  // Piece 0's length field sits at bytes 8..11, piece 3's at 4 + (13 + 13 + 14) + 4.
  const auto patch = [&](size_t at, int32_t value) {
    Bytes b = good;
    std::memcpy(b.data() + at, &value, 4);
    return b;
  };
  cases.push_back({"negative length", patch(8, -5), 0, "length -5 of piece 0"});
  cases.push_back({"length past the end", patch(48, 1000), 0, "max_token_length"});
  cases.push_back({"length beyond max_token_length", patch(8, 7), 0, "max_token_length 6"});
  cases.push_back({"zero max_token_length", patch(0, 0), 0, "max_token_length 0"});
  cases.push_back({"negative max_token_length", patch(0, -1), 0, "max_token_length -1"});
  cases.push_back({"absurd max_token_length", patch(0, 1 << 30), 0, "max_token_length"});
  {
    Bytes b = patch(0, 2000);
    b.resize(b.size() - 2);  // last length fits max_token_length but exceeds what is left
    cases.push_back({"length > remaining", b, 0, "truncated reading piece 5"});
  }
  cases.push_back({"vocab_size beyond the file", good, 7, "truncated reading score of piece 6"});
  {
    Bytes b;
    put_i32(b, 6);
    put_piece(b, 0, "<unk>");
    put_piece(b, 0, "<s>");
    cases.push_back({"too few pieces", b, 0, "at least"});
  }
  cases.push_back({"empty file", {}, 0, "max_token_length"});
  for (const Case& c : cases) {
    try {
      parse_llama2c_vocab(c.bytes, c.vocab_size, "corrupt.bin");
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << c.name;
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind("corrupt.bin: ", 0), 0u) << c.name << ": " << msg;
      EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    }
  }
  try {
    parse_llama2c_vocab(good, -3, "x.bin");
    ADD_FAILURE() << "negative vocab_size accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  // Non-finite scores pass the parser but not the vocabulary check.
  Bytes nan = good;
  const float q = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan.data() + 4, &q, 4);
  EXPECT_THROW(make_spm_bpe_tokenizer(parse_llama2c_vocab(nan, 0, "nan.bin"), "nan.bin"), Error);
}

TEST(TokenizerLlama2c, WhitespaceNormalizationIsInferredOrGiven) {
  Bytes b = small_llama2c_vocab();
  put_piece(b, -3, "  ");  // a two-space piece: trained without collapsing
  const auto keep = make_spm_bpe_tokenizer(parse_llama2c_vocab(b, 0, "ws.bin"), "ws.bin");
  // ▁a▁▁a: the ▁a pairs (-0.5) beat ▁▁ (-3), which is then stale.
  EXPECT_EQ(keep->encode("a  a"), (Ids{5, 3, 5}));
  EXPECT_EQ(keep->encode(" "), (Ids{6}));
  const auto collapse =
      make_spm_bpe_tokenizer(parse_llama2c_vocab(small_llama2c_vocab(), 0, "c.bin"), "c");
  EXPECT_EQ(collapse->encode("a  a"), (Ids{5, 5}));
  Llama2cTokenizerOptions opt;
  opt.remove_extra_whitespaces = false;
  const auto forced =
      make_spm_bpe_tokenizer(parse_llama2c_vocab(small_llama2c_vocab(), 0, "f.bin", opt), "f");
  EXPECT_EQ(forced->encode("a  a"), (Ids{5, 3, 5}));
}

TEST(TokenizerLlama2c, LoadsFilesAndReportsMissingOnes) {
  ASSERT_TRUE(fs::exists(kTok512)) << kTok512;
  const auto tok = load_llama2c_tokenizer(kTok512, 512);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), std::optional<int32_t>(1));
  EXPECT_EQ(tok->piece(2), "</s>");
  EXPECT_EQ(load_tokenizer(kTok512)->encode("Once upon a time"), tok->encode("Once upon a time"));
  try {
    load_llama2c_tokenizer("/nonexistent/tok.bin", 0);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok.bin"), std::string::npos);
  }
  // Neither format: the message names both attempts.
  const fs::path junk = fs::temp_directory_path() / "glassbox_tokenizer_junk.bin";
  { std::ofstream(junk, std::ios::binary) << "this is not a tokenizer"; }
  try {
    load_tokenizer(junk.string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("llama2.c"), std::string::npos) << msg;
    EXPECT_NE(msg.find("SentencePiece"), std::string::npos) << msg;
  }
  fs::remove(junk);
}

// ---- GGUF: minimal in-memory images holding only metadata.

struct VocabGgufWriter {
  Bytes b;
  uint64_t n_kv = 0;
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void kv_string(const std::string& k, const std::string& v) {
    str(k);
    u32(8);
    str(v);
    ++n_kv;
  }
  void kv_u32(const std::string& k, uint32_t v) {
    str(k);
    u32(4);
    u32(v);
    ++n_kv;
  }
  void kv_bool(const std::string& k, bool v) {
    str(k);
    u32(7);
    const uint8_t x = v;
    raw(&x, 1);
    ++n_kv;
  }
  void kv_strings(const std::string& k, const std::vector<std::string>& v) {
    str(k);
    u32(9);
    u32(8);
    u64(v.size());
    for (const auto& s : v) str(s);
    ++n_kv;
  }
  void kv_f32s(const std::string& k, const std::vector<float>& v) {
    str(k);
    u32(9);
    u32(6);
    u64(v.size());
    for (const float f : v) raw(&f, 4);
    ++n_kv;
  }
  void kv_i32s(const std::string& k, const std::vector<int32_t>& v) {
    str(k);
    u32(9);
    u32(5);
    u64(v.size());
    for (const int32_t i : v) raw(&i, 4);
    ++n_kv;
  }
  GgufFile file() const {
    auto out = std::make_shared<Bytes>();
    const uint32_t magic = 0x46554747, version = 3;
    const uint64_t n_tensors = 0;
    const auto add = [&](const void* p, size_t n) {
      const auto* c = static_cast<const uint8_t*>(p);
      out->insert(out->end(), c, c + n);
    };
    add(&magic, 4);
    add(&version, 4);
    add(&n_tensors, 8);
    add(&n_kv, 8);
    out->insert(out->end(), b.begin(), b.end());
    return GgufFile::from_bytes(out, "mem.gguf");
  }
};

const std::vector<std::string> kPieces = {"<unk>",
                                          "<s>",
                                          "</s>",
                                          "<0x41>",
                                          "\xE2\x96\x81",
                                          "a",
                                          "\xE2\x96\x81"
                                          "a",
                                          "<sep>"};

VocabGgufWriter llama_vocab() {
  VocabGgufWriter w;
  w.kv_string("tokenizer.ggml.model", "llama");
  w.kv_strings("tokenizer.ggml.tokens", kPieces);
  w.kv_f32s("tokenizer.ggml.scores", {0, 0, 0, 0, -1, -2, -0.5, 0});
  w.kv_i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 1, 4});
  return w;
}

// An HF directory of a SentencePiece model (Llama 2, Gemma) ships tokenizer.json in a form
// glassbox does not implement beside tokenizer.model: the model's tokenizer is the latter. A
// tokenizer.json glassbox refuses with nothing beside it stays an error naming it.
TEST(TokenizerBesideModel, UnsupportedTokenizerJsonGivesWayToTokenizerModel) {
  const std::string spm = testing::shared_path("models/llama2-tokenizer/tokenizer.model");
  if (!fs::exists(spm)) GTEST_SKIP() << spm << " absent";
  const fs::path dir =
      fs::temp_directory_path() / ("glassbox_beside_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(testing::stories260k(), dir / "model.bin", fs::copy_options::overwrite_existing);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  const Model model = load_model((dir / "model.bin").string());
  try {
    load_model_tokenizer(model, std::nullopt);
    ADD_FAILURE() << "an unsupported tokenizer.json alone must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  fs::copy_file(spm, dir / "tokenizer.model");
  const auto tok = load_model_tokenizer(model, std::nullopt);
  EXPECT_EQ(tok->vocab_size(), 32000);  // Llama 2's SentencePiece model, not tok512
  EXPECT_EQ(tok->encode("Hello world"), load_tokenizer(spm)->encode("Hello world"));
  fs::remove_all(dir);
}

TEST(TokenizerGguf, BuildsTheVocabularyFromMetadata) {
  VocabGgufWriter w = llama_vocab();
  w.kv_u32("tokenizer.ggml.bos_token_id", 1);
  w.kv_u32("tokenizer.ggml.eos_token_id", 2);
  w.kv_u32("tokenizer.ggml.unknown_token_id", 0);
  w.kv_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
  w.kv_bool("tokenizer.ggml.add_bos_token", false);
  const auto tok = load_gguf_tokenizer(w.file());
  EXPECT_EQ(tok->vocab_size(), 8);
  EXPECT_FALSE(tok->add_bos_by_default());
  EXPECT_EQ(tok->byte_value(3), std::optional<uint8_t>(0x41));
  // "<sep>" is user-defined (type 4): matched whole; "A" has no piece: byte fallback to <0x41>;
  // "b" has no byte piece either: <unk>.
  EXPECT_EQ(tok->encode("a<sep>a"), (Ids{6, 7, 5}));
  EXPECT_EQ(tok->encode("A"), (Ids{4, 3}));
  EXPECT_EQ(tok->encode("b"), (Ids{4, 0}));
  EXPECT_EQ(tok->decode(Ids{1, 6, 7, 3, 2}), "a<sep>A");
  VocabGgufWriter np = llama_vocab();
  np.kv_bool("tokenizer.ggml.add_space_prefix", false);
  EXPECT_EQ(load_gguf_tokenizer(np.file())->encode("a a"), (Ids{5, 6}));
}

TEST(TokenizerGguf, ErrorsNameTheKey) {
  const auto expect_error = [](const VocabGgufWriter& w, ErrorCode code, const std::string& part) {
    try {
      load_gguf_tokenizer(w.file());
      ADD_FAILURE() << "accepted; wanted " << part;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find("mem.gguf"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  VocabGgufWriter bert;
  bert.kv_string("tokenizer.ggml.model", "bert");
  bert.kv_strings("tokenizer.ggml.tokens", {"a"});
  expect_error(bert, ErrorCode::kUnsupported, "tokenizer.ggml.model = 'bert' is not supported");
  // Byte-level BPE ("gpt2") needs its merges (gguf_bpe_test.cpp tests the rest).
  VocabGgufWriter gpt2;
  gpt2.kv_string("tokenizer.ggml.model", "gpt2");
  gpt2.kv_strings("tokenizer.ggml.tokens", {"a"});
  expect_error(gpt2, ErrorCode::kNotFound, "missing tokenizer.ggml.merges");
  VocabGgufWriter none;
  none.kv_string("general.architecture", "llama");
  expect_error(none, ErrorCode::kNotFound, "tokenizer.ggml.model");
  VocabGgufWriter no_tokens;
  no_tokens.kv_string("tokenizer.ggml.model", "llama");
  expect_error(no_tokens, ErrorCode::kNotFound, "tokenizer.ggml.tokens");
  VocabGgufWriter short_scores;
  short_scores.kv_string("tokenizer.ggml.model", "llama");
  short_scores.kv_strings("tokenizer.ggml.tokens", kPieces);
  short_scores.kv_f32s("tokenizer.ggml.scores", {0, 0});
  expect_error(short_scores, ErrorCode::kFormat, "tokenizer.ggml.scores");
  VocabGgufWriter bad_type = llama_vocab();
  bad_type.b.clear();
  bad_type.n_kv = 0;
  bad_type.kv_string("tokenizer.ggml.model", "llama");
  bad_type.kv_strings("tokenizer.ggml.tokens", kPieces);
  bad_type.kv_i32s("tokenizer.ggml.token_type", {2, 3, 3, 6, 1, 1, 9, 1});
  expect_error(bad_type, ErrorCode::kFormat, "tokenizer.ggml.token_type[6]");
  VocabGgufWriter bad_bos = llama_vocab();
  bad_bos.kv_u32("tokenizer.ggml.bos_token_id", 99);
  expect_error(bad_bos, ErrorCode::kFormat, "tokenizer.ggml.bos_token_id");
  VocabGgufWriter wrong_kind = llama_vocab();
  wrong_kind.kv_string("tokenizer.ggml.add_bos_token", "yes");
  expect_error(wrong_kind, ErrorCode::kFormat, "tokenizer.ggml.add_bos_token");
}

TEST(TokenizerGguf, RealFileCarriesTheTok512Vocabulary) {
  const std::string path = testing::shared_gguf("stories260K-f32.gguf");
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent";
  const auto gguf = load_gguf_tokenizer(GgufFile::open(path));
  const auto bin = load_llama2c_tokenizer(kTok512, 512);
  ASSERT_EQ(gguf->vocab_size(), bin->vocab_size());
  for (int32_t id = 0; id < bin->vocab_size(); ++id) ASSERT_EQ(gguf->piece(id), bin->piece(id));
  // Same ids except where whitespace would be collapsed (llama.cpp never collapses; see docs).
  for (const std::string text : {"Once upon a time, Lily saw a big dog.", "\xE6\x97\xA5 x"}) {
    EXPECT_EQ(gguf->encode(text), bin->encode(text)) << text;
  }
  EXPECT_NE(gguf->encode("a  b"), bin->encode("a  b"));
}

}  // namespace
}  // namespace glassbox
