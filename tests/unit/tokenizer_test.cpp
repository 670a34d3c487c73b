// SentencePiece-BPE rules on small hand-made vocabularies (merge order, ties, byte fallback,
// <unk> runs, invalid UTF-8, user-defined/control/unused pieces, whitespace), decoding, BOS/EOS
// framing and StreamDecoder. Each expectation is derived by hand from the rules in spm_bpe.h;
// tokenizer_corpus_test.cpp and tokenizer_trained_test.cpp compare against libsentencepiece.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/spm_bpe.h"

namespace glassbox {
namespace {

using Ids = std::vector<int32_t>;

// "_" stands for U+2581 in the pieces below, for readability.
std::string sp(std::string s) {
  std::string out;
  for (const char c : s) {
    if (c == '_') {
      out += "\xE2\x96\x81";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct VocabBuilder {
  SpmVocab v;
  explicit VocabBuilder(bool with_bytes) {
    add("<unk>", 0, PieceType::kUnknown);
    add("<s>", 0, PieceType::kControl);
    add("</s>", 0, PieceType::kControl);
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    if (with_bytes) {
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        add(name, 0, PieceType::kByte);
      }
      v.byte_fallback = true;
    }
  }
  int32_t add(const std::string& piece, float score, PieceType type = PieceType::kNormal) {
    v.pieces.push_back(sp(piece));
    v.scores.push_back(score);
    v.types.push_back(type);
    return static_cast<int32_t>(v.pieces.size() - 1);
  }
  std::unique_ptr<Tokenizer> build() const { return make_spm_bpe_tokenizer(v, "test-vocab"); }
};

constexpr int32_t kByte0 = 3;  // id of <0x00> in a VocabBuilder(true)

TEST(TokenizerBpe, MergesHighestScoreFirst) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -10), a = b.add("a", -10), bb = b.add("b", -10);
  b.add("c", -10);
  b.add("ab", -2);
  const int32_t bc = b.add("bc", -1);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("abc"), (Ids{u, a, bc}));  // bc (-1) beats ab (-2)
  EXPECT_EQ(tok->encode("b"), (Ids{u, bb}));
}

TEST(TokenizerBpe, TiesGoToTheLeftmostPair) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -10), a = b.add("a", -10);
  b.add("b", -10);
  const int32_t c = b.add("c", -10), ab = b.add("ab", -1);
  b.add("bc", -1);
  const int32_t aa = b.add("aa", -1);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("abc"), (Ids{u, ab, c}));
  EXPECT_EQ(tok->encode("aaa"), (Ids{u, aa, a}));
}

TEST(TokenizerBpe, MergedSymbolsKeepMergingAcrossTheDummyPrefix) {
  VocabBuilder b(false);
  b.add("_", -10);
  b.add("a", -10);
  b.add("b", -10);
  b.add("ab", -1);
  const int32_t uab = b.add("_ab", -3);
  const int32_t uabab = b.add("_abab", -4);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("ab"), (Ids{uab}));
  EXPECT_EQ(tok->encode("abab"), (Ids{uabab}));  // _ ab ab -> _ab ab -> _abab
}

TEST(TokenizerBpe, ByteFallbackSpellsUnknownCharactersInUtf8Bytes) {
  VocabBuilder b(true);
  const int32_t u = b.add("_", -1), a = b.add("a", -1);
  const auto tok = b.build();
  // é = C3 A9; each unknown character becomes its bytes, runs are not merged.
  EXPECT_EQ(tok->encode("a\xC3\xA9\xC3\xA9"),
            (Ids{u, a, kByte0 + 0xC3, kByte0 + 0xA9, kByte0 + 0xC3, kByte0 + 0xA9}));
  EXPECT_EQ(tok->decode(tok->encode("a\xC3\xA9\xC3\xA9")), "a\xC3\xA9\xC3\xA9");
}

TEST(TokenizerBpe, WithoutByteFallbackARunOfUnknownsIsOneUnk) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1), a = b.add("a", -1), bb = b.add("b", -1);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("a\xC3\xA9\xC3\xA9z"
                        "b"),
            (Ids{u, a, 0, bb}));
  EXPECT_EQ(tok->encode("\xC3\xA9 \xC3\xA9"), (Ids{u, 0, u, 0}));
  EXPECT_EQ(tok->decode(Ids{u, a, 0, bb}), "a \xE2\x81\x87 b");
}

TEST(TokenizerBpe, MissingBytePieceFallsBackToUnk) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1);
  const int32_t c3 = b.add("<0xC3>", 0, PieceType::kByte);
  b.v.byte_fallback = true;
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("\xC3\xA9\xC3\xA9"), (Ids{u, c3, 0, c3, 0}));
}

TEST(TokenizerBpe, InvalidUtf8BecomesReplacementCharacters) {
  VocabBuilder b(true);
  const int32_t u = b.add("_", -1), a = b.add("a", -1);
  const Ids fffd = {kByte0 + 0xEF, kByte0 + 0xBF, kByte0 + 0xBD};
  const auto tok = b.build();
  Ids want = {u};
  want.insert(want.end(), fffd.begin(), fffd.end());
  want.push_back(a);
  EXPECT_EQ(tok->encode("\xFF"
                        "a"),
            want);
  // A truncated 3-byte sequence is two malformed bytes; a surrogate (ED A0 80) is three.
  EXPECT_EQ(tok->encode("\xE2\x82").size(), 1u + 2 * 3);
  EXPECT_EQ(tok->encode("\xED\xA0\x80").size(), 1u + 3 * 3);
  // An overlong NUL (C0 80) is two malformed bytes too; a real NUL is a character.
  EXPECT_EQ(tok->encode(std::string("\xC0\x80", 2)).size(), 1u + 2 * 3);
  EXPECT_EQ(tok->encode(std::string("\0", 1)), (Ids{u, kByte0}));
  // With a U+FFFD piece, that piece is used.
  VocabBuilder c(false);
  c.add("_", -1);
  const int32_t rep = c.add("\xEF\xBF\xBD", -1);
  EXPECT_EQ(c.build()->encode("\xFF\xFE"), (Ids{3, rep, rep}));
}

TEST(TokenizerBpe, ControlPiecesAreNeverMatchedFromText) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1), lt = b.add("<", -1), s = b.add("s", -1), gt = b.add(">", -1);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("<s>"), (Ids{u, lt, s, gt}));
  EXPECT_EQ(tok->encode("<unk>").front(), u);
  EXPECT_EQ(tok->encode("<unk>")[1], lt);
}

TEST(TokenizerBpe, UserDefinedPiecesMatchLongestFirstAndNeverMerge) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1), a = b.add("a", -1), bb = b.add("b", -1);
  b.add("c", -1);
  const int32_t d = b.add("d", -1);
  b.add("_ab", 0);  // would win as a merge if user-defined pieces took part in merges
  b.add("ab", 0, PieceType::kUserDefined);
  const int32_t abc = b.add("abc", 0, PieceType::kUserDefined);
  const int32_t ua = b.add("_a", -0.5);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("abcd"), (Ids{u, abc, d}));
  EXPECT_EQ(tok->encode("aabcb"), (Ids{ua, abc, bb}));
  EXPECT_EQ(tok->encode("a"), (Ids{ua}));
  EXPECT_EQ(tok->decode(Ids{u, abc, d}), "abcd");
  (void)a;
}

TEST(TokenizerBpe, UnusedPiecesAreSplitBackIntoTheirParts) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -10), a = b.add("a", -10), bb = b.add("b", -10);
  const int32_t c = b.add("c", -10);
  b.add("ab", -1, PieceType::kUnused);
  const int32_t abc = b.add("abc", -2);
  const auto tok = b.build();
  EXPECT_EQ(tok->encode("abc"), (Ids{u, abc}));
  EXPECT_EQ(tok->encode("ab"), (Ids{u, a, bb}));
  EXPECT_EQ(tok->encode("abab"), (Ids{u, a, bb, a, bb}));
  (void)c;
}

TEST(TokenizerBpe, EmptyInputAndBosEos) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1), a = b.add("a", -1);
  const auto tok = b.build();
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_EQ(tok->encode("", true, true), (Ids{1, 2}));
  EXPECT_EQ(tok->encode("a", true, false), (Ids{1, u, a}));
  EXPECT_EQ(tok->encode("a", false, true), (Ids{u, a, 2}));
  b.v.bos_id.reset();
  EXPECT_EQ(b.build()->encode("a", true, false), (Ids{u, a}));
}

TEST(TokenizerBpe, WhitespaceCollapsingAndDummyPrefix) {
  VocabBuilder b(false);
  const int32_t u = b.add("_", -1), a = b.add("a", -1), bb = b.add("b", -1);
  const int32_t nl = b.add("\n", -1);
  const auto keep = b.build();
  EXPECT_EQ(keep->encode(" a"), (Ids{u, u, a}));
  EXPECT_EQ(keep->encode(" "), (Ids{u, u}));
  EXPECT_EQ(keep->decode(keep->encode("  a  b ")), "  a  b ");
  b.v.remove_extra_whitespaces = true;
  const auto collapse = b.build();
  EXPECT_EQ(collapse->encode("  a   b  "), (Ids{u, a, u, bb}));
  EXPECT_TRUE(collapse->encode("   ").empty());
  EXPECT_EQ(collapse->encode("a\n b"), (Ids{u, a, nl, u, bb}));  // only ' ' is whitespace
  EXPECT_EQ(collapse->decode(Ids{u, u, a}), "a");                // leading spaces all go
  b.v.remove_extra_whitespaces = false;
  b.v.add_dummy_prefix = false;
  const auto bare = b.build();
  EXPECT_EQ(bare->encode("a b"), (Ids{a, u, bb}));
  EXPECT_EQ(bare->decode(Ids{u, a}), " a");  // nothing to strip without a dummy prefix
}

TEST(TokenizerBpe, DecodeFollowsSentencePiece) {
  VocabBuilder b(true);
  const int32_t ua = b.add("_a", -1), u = b.add("_", -1);
  const auto tok = b.build();
  EXPECT_EQ(tok->decode(Ids{1, ua, ua, 2}), "a a");  // control ids vanish; one space stripped
  EXPECT_EQ(tok->decode(Ids{u, ua}), " a");          // only the first piece loses it
  EXPECT_EQ(tok->decode(Ids{kByte0 + 'x', ua}), "x a");
  EXPECT_EQ(tok->decode(Ids{kByte0 + 0xE2, kByte0 + 0x82}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok->decode(Ids{kByte0 + 0xE2, kByte0 + 0x82, kByte0 + 0xAC}), "\xE2\x82\xAC");
  EXPECT_EQ(tok->decode(Ids{0}), " \xE2\x81\x87 ");
  EXPECT_EQ(tok->decode(Ids{}), "");
  EXPECT_EQ(tok->piece(ua),
            "\xE2\x96\x81"
            "a");
  EXPECT_EQ(tok->byte_value(kByte0 + 7), std::optional<uint8_t>(7));
  EXPECT_EQ(tok->byte_value(ua), std::nullopt);
  EXPECT_EQ(tok->byte_value(-1), std::nullopt);
}

// What people are shown per token: U+2581 as a space (also inside a piece), byte pieces as their
// byte (U+FFFD when it is only part of a character), control pieces as spelled.
TEST(TokenizerBpe, DisplayTextShowsSpacesAndBytes) {
  VocabBuilder b(true);
  const int32_t ua = b.add("_a", -1), u = b.add("_", -1), mid = b.add("a_b", -1);
  const auto tok = b.build();
  EXPECT_EQ(token_display_text(*tok, ua), " a");
  EXPECT_EQ(token_display_text(*tok, u), " ");
  EXPECT_EQ(token_display_text(*tok, mid), "a b");
  EXPECT_EQ(token_display_text(*tok, kByte0 + '\n'), "\n");
  EXPECT_EQ(token_display_text(*tok, kByte0 + 0xE2), "\xEF\xBF\xBD");
  EXPECT_EQ(token_display_text(*tok, 1), "<s>");
  EXPECT_THROW(token_display_text(*tok, tok->vocab_size()), Error);
}

TEST(TokenizerBpe, OutOfRangeIdsAreInvalidArguments) {
  VocabBuilder b(false);
  b.add("_", -1);
  const auto tok = b.build();
  for (const int32_t bad : {4, -1, 1000000}) {
    try {
      tok->decode(Ids{0, bad});
      ADD_FAILURE() << "no throw for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(bad)), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("4 pieces"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(tok->piece(4), Error);
  StreamDecoder stream(*tok);
  EXPECT_THROW(stream.push(4), Error);
}

TEST(TokenizerBpe, InvalidVocabulariesAreRejected) {
  const auto code_of = [](SpmVocab v) {
    try {
      make_spm_bpe_tokenizer(std::move(v), "bad-vocab");
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad-vocab"), std::string::npos) << e.what();
      return e.code();
    }
    ADD_FAILURE() << "accepted";
    return ErrorCode::kIo;
  };
  VocabBuilder b(false);
  b.add("_", -1);
  EXPECT_EQ(code_of(SpmVocab{}), ErrorCode::kFormat);
  SpmVocab v = b.v;
  v.scores[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(code_of(v), ErrorCode::kFormat);
  v = b.v;
  v.pieces[3] = "<0xZZ>";
  v.types[3] = PieceType::kByte;
  EXPECT_EQ(code_of(v), ErrorCode::kFormat);
  v = b.v;
  v.unk_id = 9;
  EXPECT_EQ(code_of(v), ErrorCode::kFormat);
  v = b.v;
  v.scores.pop_back();
  EXPECT_EQ(code_of(v), ErrorCode::kFormat);
  v = b.v;
  v.types[3] = static_cast<PieceType>(9);
  EXPECT_EQ(code_of(v), ErrorCode::kFormat);
}

// StreamDecoder: the pushes concatenate to decode(all), and a character split over byte pieces
// appears only once complete.
TEST(TokenizerStream, ConcatenationEqualsDecode) {
  VocabBuilder b(true);
  b.add("_", -1);
  b.add("a", -1);
  b.add("_a", -0.5);
  b.add("b", -1);
  const auto tok = b.build();
  const std::vector<std::string> texts = {"a b",
                                          " a",
                                          "\xE6\x97\xA5\xE6\x9C\xAC a",
                                          "\xF0\x9F\x98\x80!",
                                          "\xFF\xE2\x82"
                                          "a",
                                          "",
                                          "  ",
                                          "\xE2\x82",
                                          "a\xE2\x82\xAC\xE2\x82",
                                          "b\xC3"};
  for (const std::string& text : texts) {
    const Ids ids = tok->encode(text, true, true);
    StreamDecoder stream(*tok);
    std::string got;
    for (const int32_t id : ids) got += stream.push(id);
    got += stream.flush();
    EXPECT_EQ(got, tok->decode(ids)) << text;
  }
}

TEST(TokenizerStream, HoldsBackIncompleteCharacters) {
  VocabBuilder b(true);
  const int32_t ua = b.add("_a", -1);
  const auto tok = b.build();
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push(ua), "a");
  EXPECT_EQ(stream.push(kByte0 + 0xE2), "");
  EXPECT_EQ(stream.push(kByte0 + 0x82), "");
  EXPECT_EQ(stream.push(kByte0 + 0xAC), "\xE2\x82\xAC");
  EXPECT_EQ(stream.push(kByte0 + 0xFF), "\xEF\xBF\xBD");  // can never start a character
  EXPECT_EQ(stream.push(kByte0 + 0xF0), "");
  EXPECT_EQ(stream.push(ua), "\xEF\xBF\xBD a");  // the held byte turned out malformed
  EXPECT_EQ(stream.push(kByte0 + 0xC3), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  // After flush a new stream starts: its first piece loses the dummy-prefix space again.
  EXPECT_EQ(stream.push(ua), "a");
}

TEST(TokenizerStream, LongStreamsStayCheap) {
  VocabBuilder b(true);
  const int32_t ua = b.add("_a", -1);
  const auto tok = b.build();
  StreamDecoder stream(*tok);
  std::string got;
  for (int i = 0; i < 200000; ++i) got += stream.push(i % 5 == 4 ? 1 : ua);
  EXPECT_EQ(got.size(), 2u * 160000 - 1);
  // A long run of byte pieces (text with no pieces of its own, e.g. CJK with a small
  // vocabulary) must not make every push re-decode the whole run.
  StreamDecoder bytes(*tok);
  got.clear();
  const std::string cjk = "\xE6\x97\xA5";
  for (int i = 0; i < 60000; ++i) {
    got += bytes.push(kByte0 + static_cast<uint8_t>(cjk[static_cast<size_t>(i % 3)]));
  }
  got += bytes.flush();
  EXPECT_EQ(got.size(), 60000u);
  EXPECT_EQ(got.substr(0, 6), cjk + cjk);
}

// Encoding is O(n log n): a 1 MB line (no spaces, so one word) must not take the llama2.c
// loop's O(n^2) time (~10^12 steps here, hours on any machine). No wall-clock assertion (its
// verdict would depend on load): a quadratic encoder never gets past ctest's 600 s TIMEOUT.
TEST(TokenizerBpe, LongLinesEncode) {
  VocabBuilder b(true);
  b.add("_", -1);
  b.add("a", -1);
  b.add("b", -1);
  b.add("ab", -2);
  b.add("abab", -3);
  b.add("ba", -4);
  const auto tok = b.build();
  std::string text;
  for (int i = 0; i < (1 << 19); ++i) text += (i % 7 == 3) ? "ba" : "ab";
  const Ids ids = tok->encode(text);
  EXPECT_EQ(tok->decode(ids), text);
}

}  // namespace
}  // namespace glassbox
