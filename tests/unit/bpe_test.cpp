// Byte-level BPE rules on hand-built tokenizer.json files (merge order, ignore_merges, added
// tokens, invalid UTF-8, BOS/EOS), the byte alphabet and UTF-8 repair, streaming, the real GPT-2
// and Llama 3 files (when shared/ is present), and a table of malformed files.
#include "tokenizer/bpe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "test_models.h"
#include "tokenizer/bpe_bytes.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The spelling of raw bytes in the GPT-2 alphabet.
std::string spell(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    bpe_bytes::append_utf8(bpe_bytes::kByteToChar[static_cast<uint8_t>(c)], &out);
  }
  return out;
}

// A tokenizer.json: ids 0..255 are the single bytes (in byte order), then `extra` entries;
// merges are given as raw-byte pairs.
json make_json(const std::vector<std::pair<std::string, std::string>>& merges,
               const std::vector<std::string>& extra = {}) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spell(std::string(1, static_cast<char>(b)))] = b;
  int32_t next = 256;
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(spell(a + b))) vocab[spell(a + b)] = next++;
  }
  for (const std::string& e : extra) vocab[spell(e)] = next++;
  json m = json::array();
  for (const auto& [a, b] : merges) m.push_back(spell(a) + " " + spell(b));
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"added_tokens", json::array()}};
}

std::unique_ptr<Tokenizer> build(const json& j, const json& config = nullptr) {
  return parse_bpe_tokenizer(j.dump(), config.is_null() ? "" : config.dump(), "test.json");
}

int32_t id_of(const json& j, std::string_view bytes) {
  return j["model"]["vocab"][spell(bytes)].get<int32_t>();
}

TEST(BpeBytes, AlphabetIsGpt2s) {
  EXPECT_EQ(bpe_bytes::kByteToChar[' '], U'\u0120');
  EXPECT_EQ(bpe_bytes::kByteToChar['\n'], U'\u010A');
  EXPECT_EQ(bpe_bytes::kByteToChar['!'], U'!');
  EXPECT_EQ(bpe_bytes::kByteToChar[0xAD], U'\u0143');  // soft hyphen is remapped
  EXPECT_EQ(bpe_bytes::kByteToChar[0xFF], U'\u00FF');
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(bpe_bytes::char_to_byte(bpe_bytes::kByteToChar[static_cast<size_t>(b)]), b);
  }
  EXPECT_EQ(bpe_bytes::char_to_byte(U' '), -1);
  EXPECT_EQ(bpe_bytes::char_to_byte(U'\u0144'), -1);
}

TEST(BpeBytes, LossyRepairReplacesMaximalSubparts) {
  const auto lossy = [](std::string_view s) {
    std::string out;
    bpe_bytes::append_utf8_lossy(s, &out);
    return out;
  };
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(lossy("a\xC3\xA9z"), "a\xC3\xA9z");
  EXPECT_EQ(lossy("\xE2\x82"), r);                      // truncated 3-byte: one
  EXPECT_EQ(lossy("\xF0\x9F\x98X"), r + "X");           // truncated 4-byte: one
  EXPECT_EQ(lossy("\xC0\x80"), r + r);                  // overlong: each byte
  EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);          // surrogate: each byte
  EXPECT_EQ(lossy("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(lossy("\x80\xFF"), r + r);
  EXPECT_EQ(bpe_bytes::incomplete_tail("ab\xF0\x9F\x98"), 3u);
  EXPECT_EQ(bpe_bytes::incomplete_tail("ab\xE2"), 1u);
  EXPECT_EQ(bpe_bytes::incomplete_tail("ab\xE2\x82\xAC"), 0u);
  EXPECT_EQ(bpe_bytes::incomplete_tail("\xC0"), 0u);
  EXPECT_EQ(bpe_bytes::incomplete_tail("\x80\x80\x80"), 0u);
}

TEST(Bpe, LowestRankMergesFirst) {
  const json ab_first = make_json({{"a", "b"}, {"b", "c"}});
  EXPECT_EQ(build(ab_first)->encode("abc"), (std::vector<int32_t>{id_of(ab_first, "ab"), 'c'}));
  const json bc_first = make_json({{"b", "c"}, {"a", "b"}});
  EXPECT_EQ(build(bc_first)->encode("abc"), (std::vector<int32_t>{'a', id_of(bc_first, "bc")}));
  // Merges chain: the merged symbol merges again.
  const json chain = make_json({{"b", "c"}, {"a", "bc"}});
  EXPECT_EQ(build(chain)->encode("abc"), (std::vector<int32_t>{id_of(chain, "abc")}));
  // Ties (the same pair twice) go to the leftmost.
  const json aa = make_json({{"a", "a"}});
  EXPECT_EQ(build(aa)->encode("aaa"), (std::vector<int32_t>{id_of(aa, "aa"), 'a'}));
  // Merges never cross pre-token boundaries (GPT-2 regex splits " b" from "a").
  const json sp = make_json({{"a", " "}});
  EXPECT_EQ(build(sp)->encode("a b"), (std::vector<int32_t>{'a', ' ', 'b'}));
}

TEST(Bpe, IgnoreMergesTakesWholeEntries) {
  json j = make_json({{"a", "b"}}, {"xyz"});
  EXPECT_EQ(build(j)->encode("xyz"), (std::vector<int32_t>{'x', 'y', 'z'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(build(j)->encode("xyz"), (std::vector<int32_t>{id_of(j, "xyz")}));
  EXPECT_EQ(build(j)->encode("xyzab"), (std::vector<int32_t>{'x', 'y', 'z', id_of(j, "ab")}));
}

TEST(Bpe, MissingBytesAreDroppedOrUnk) {
  json j = make_json({});
  j["model"]["vocab"].erase(spell("q"));
  j["model"]["vocab"][spell("<unk>")] = 300;
  EXPECT_EQ(build(j)->encode("aqqb"), (std::vector<int32_t>{'a', 'b'}));  // HF drops them
  j["model"]["unk_token"] = spell("<unk>");
  EXPECT_EQ(build(j)->encode("aqqb"), (std::vector<int32_t>{'a', 300, 300, 'b'}));
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(build(j)->encode("aqqb"), (std::vector<int32_t>{'a', 300, 'b'}));
  EXPECT_EQ(build(j)->unk_id(), 300);
}

TEST(Bpe, AddedTokensAreCutOutFirst) {
  json j = make_json({{"a", "b"}});
  j["added_tokens"] = {{{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                       {{"id", 301}, {"content", "<s>x"}, {"special", true}, {"normalized", false}},
                       {{"id", 302}, {"content", "[L]"}, {"special", false}, {"lstrip", true}},
                       {{"id", 303}, {"content", "[R]"}, {"special", false}, {"rstrip", true}}};
  const auto tok = build(j);
  const int32_t ab = id_of(j, "ab");
  EXPECT_EQ(tok->encode("ab<s>ab"), (std::vector<int32_t>{ab, 300, ab}));
  EXPECT_EQ(tok->encode("<s>xab"), (std::vector<int32_t>{301, ab}));         // longest wins
  EXPECT_EQ(tok->encode("a  [L]b"), (std::vector<int32_t>{'a', 302, 'b'}));  // swallows "  "
  EXPECT_EQ(tok->encode("a[R] \t b"), (std::vector<int32_t>{'a', 303, 'b'}));
  EXPECT_EQ(tok->encode("<s"), (std::vector<int32_t>{'<', 's'}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{ab, 300, 301}), "ab<s><s>x");
  EXPECT_EQ(tok->piece(300), "<s>");
  EXPECT_EQ(tok->vocab_size(), 304);
}

TEST(Bpe, InvalidUtf8IsKeptByteForByte) {
  const json j = make_json({{"\xE2\x82", "\xAC"}, {"\xE2", "\x82"}});
  const auto tok = build(j);
  // The run "\xE2\x82" (a truncated euro sign) is one piece and merges; "\xFF" is a piece.
  EXPECT_EQ(tok->encode("a\xE2\x82 b\xFF"),
            (std::vector<int32_t>{'a', id_of(j, "\xE2\x82"), ' ', 'b', 0xFF}));
  EXPECT_EQ(tok->encode("\xE2\x82\xAC"), (std::vector<int32_t>{id_of(j, "\xE2\x82\xAC")}));
  const std::string raw = "x\xC0\x80y\xED\xA0\x80 z\xF0\x9F\x98";
  std::string expected;
  bpe_bytes::append_utf8_lossy(raw, &expected);
  EXPECT_EQ(tok->decode(tok->encode(raw)), expected);
  std::string bytes;
  for (const int32_t id : tok->encode(raw)) bytes += *tok->token_bytes(id);
  EXPECT_EQ(bytes, raw);
}

TEST(Bpe, BosEosFromConfigPostProcessorOrNeither) {
  json j = make_json({});
  j["added_tokens"] = {{{"id", 300}, {"content", "<bos>"}, {"special", true}},
                       {{"id", 301}, {"content", "<eos>"}, {"special", true}}};
  auto tok = build(j);
  EXPECT_FALSE(tok->bos_id());
  EXPECT_FALSE(tok->add_bos_by_default());
  tok = build(j, {{"bos_token", "<bos>"}, {"eos_token", {{"content", "<eos>"}}}});
  EXPECT_EQ(tok->bos_id(), 300);
  EXPECT_EQ(tok->eos_id(), 301);
  EXPECT_TRUE(tok->add_bos_by_default());  // distinct BOS: trained with it
  EXPECT_EQ(tok->encode("a", true, true), (std::vector<int32_t>{300, 'a', 301}));
  tok = build(j, {{"bos_token", "<bos>"}, {"eos_token", "<bos>"}});
  EXPECT_FALSE(tok->add_bos_by_default());  // GPT-2 style: one token for both
  tok = build(j, {{"bos_token", "<bos>"}, {"add_bos_token", false}});
  EXPECT_FALSE(tok->add_bos_by_default());
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors",
                          {{{"type", "ByteLevel"}},
                           {{"type", "TemplateProcessing"},
                            {"single",
                             {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "<eos>"}, {"type_id", 0}}}}}}}}}};
  tok = build(j);
  EXPECT_EQ(tok->bos_id(), 300);
  EXPECT_EQ(tok->eos_id(), 301);
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_EQ(tok->encode("a"), (std::vector<int32_t>{'a'}));  // encode() adds no framing
}

TEST(Bpe, StreamDecoderHoldsSplitCharacters) {
  const json j = make_json({{"\xF0", "\x9F"}, {"\xF0\x9F", "\x98"}});
  const auto tok = build(j);
  StreamDecoder stream(*tok);
  EXPECT_EQ(stream.push('a'), "a");
  EXPECT_EQ(stream.push(id_of(j, "\xF0\x9F\x98")), "");
  EXPECT_EQ(stream.push(0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(stream.push(0xE2), "");
  EXPECT_EQ(stream.push('x'), "\xEF\xBF\xBDx");
  EXPECT_EQ(stream.push(0xC3), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  // Random byte streams: the pushes add up to decode().
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids(rng() % 10);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % tok->vocab_size());
    std::string streamed;
    for (const int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, tok->decode(ids));
  }
}

// What people are shown per token: the bytes as text ("\u0120the" is " the"), never the
// GPT-2 alphabet spelling; a character split across tokens shows as U+FFFD in each part.
TEST(Bpe, DisplayTextIsTheTokensBytes) {
  json j = make_json({{" ", "t"}, {" t", "h"}, {"\xF0", "\x9F"}, {"\n", "\n"}});
  j["added_tokens"] = {{{"id", 300}, {"content", "<|eot|>"}, {"special", true}}};
  const auto tok = build(j);
  EXPECT_EQ(tok->piece(id_of(j, " th")), "\xC4\xA0th");  // the piece as the vocabulary spells it
  EXPECT_EQ(token_display_text(*tok, id_of(j, " th")), " th");
  EXPECT_EQ(token_display_text(*tok, id_of(j, "\n\n")), "\n\n");
  EXPECT_EQ(token_display_text(*tok, id_of(j, "\xF0\x9F")), "\xEF\xBF\xBD");
  EXPECT_EQ(token_display_text(*tok, 0x80), "\xEF\xBF\xBD");
  EXPECT_EQ(token_display_text(*tok, 300), "<|eot|>");
  EXPECT_THROW(token_display_text(*tok, tok->vocab_size()), Error);
}

// Generation ends at EOS, BOS and the end-of-turn tokens llama.cpp recognizes by their text
// (Llama 3's <|eot_id|> and <|eom_id|>, ChatML's <|im_end|>), not at other special tokens.
TEST(Bpe, EndOfGenerationIdsIncludeEndOfTurnTokens) {
  json j = make_json({{" ", "t"}});
  const std::vector<std::string> added = {"<|eot_id|>",      "<|im_end|>",
                                          "<|eom_id|>",      "<|start_header_id|>",
                                          "<|end_of_text|>", "<|begin_of_text|>"};
  j["added_tokens"] = json::array();
  for (size_t i = 0; i < added.size(); ++i)
    j["added_tokens"].push_back({{"id", 300 + i}, {"content", added[i]}, {"special", true}});
  const auto tok = build(j, {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|end_of_text|>"}});
  EXPECT_EQ(end_of_generation_ids(*tok), (std::vector<int32_t>{300, 301, 302, 304, 305}));
  EXPECT_EQ(end_of_generation_ids(*build(make_json({{" ", "t"}}))), std::vector<int32_t>{});
}

TEST(Bpe, LongInputsStayFast) {
  const auto tok = build(make_json({{"a", "a"}, {"aa", "aa"}, {" ", " "}}));
  for (const std::string& text : {std::string(1 << 20, 'a'), std::string(1 << 20, ' ') + "x",
                                  std::string(1 << 19, '7'), std::string(1 << 18, '\n')}) {
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
}

struct BadCase {
  std::string name;
  std::function<void(json&)> edit;
  ErrorCode code;
  std::string needle;  // must appear in the message
};

TEST(Bpe, MalformedFilesAreErrorsNamingTheField) {
  const std::vector<BadCase> cases = {
      {"no model", [](json& j) { j.erase("model"); }, ErrorCode::kFormat, "missing field 'model'"},
      {"unigram", [](json& j) { j["model"]["type"] = "Unigram"; }, ErrorCode::kUnsupported,
       "model.type"},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, ErrorCode::kUnsupported,
       "WordPiece"},
      {"type not string", [](json& j) { j["model"]["type"] = 3; }, ErrorCode::kFormat,
       "model.type: expected a string"},
      {"vocab array", [](json& j) { j["model"]["vocab"] = json::array(); }, ErrorCode::kFormat,
       "model.vocab: expected an object"},
      {"vocab id string", [](json& j) { j["model"]["vocab"]["zz"] = "1"; }, ErrorCode::kFormat,
       "vocab[\"zz\"]"},
      {"vocab id negative", [](json& j) { j["model"]["vocab"]["zz"] = -1; }, ErrorCode::kFormat,
       "id out of range"},
      {"vocab id huge", [](json& j) { j["model"]["vocab"]["zz"] = 1 << 30; }, ErrorCode::kFormat,
       "id out of range"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["zz"] = 5; }, ErrorCode::kFormat,
       "id 5 is used by both"},
      {"merges object", [](json& j) { j["model"]["merges"] = json::object(); }, ErrorCode::kFormat,
       "model.merges: expected an array"},
      {"merge three parts", [](json& j) { j["model"]["merges"].push_back("a b c"); },
       ErrorCode::kFormat, "merges[1]"},
      {"merge unknown", [](json& j) { j["model"]["merges"].push_back("a \xC3\xA7\xC3\xA7"); },
       ErrorCode::kFormat, "is not in the vocabulary"},
      {"merge result unknown",
       [](json& j) {
         j["model"]["merges"].push_back({"b", "a"});
       },
       ErrorCode::kFormat, "the merged 'ba'"},
      {"merge pair of ints",
       [](json& j) {
         j["model"]["merges"].push_back({1, 2});
       },
       ErrorCode::kFormat, "merges[1]["},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, ErrorCode::kUnsupported, "dropout"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; },
       ErrorCode::kUnsupported, "byte_fallback"},
      {"suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; },
       ErrorCode::kUnsupported, "end_of_word_suffix"},
      {"normalizer",
       [](json& j) {
         j["normalizer"] = {{"type", "NFC"}};
       },
       ErrorCode::kUnsupported, "normalizer 'NFC'"},
      {"no pre_tokenizer", [](json& j) { j.erase("pre_tokenizer"); }, ErrorCode::kUnsupported,
       "pre_tokenizer"},
      {"whitespace",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       ErrorCode::kUnsupported, "pre-tokenizer 'Whitespace'"},
      {"split only",
       [](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}};
       },
       ErrorCode::kUnsupported, "exactly one ByteLevel"},
      {"bad regex",
       [](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
               {{"type", "ByteLevel"}}}}};
       },
       ErrorCode::kFormat, "pretokenizers[0]: regex does not compile"},
      {"bad behavior",
       [](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
       },
       ErrorCode::kFormat, "unknown split behavior"},
      {"no decoder", [](json& j) { j.erase("decoder"); }, ErrorCode::kUnsupported,
       "decoder 'null'"},
      {"metaspace decoder",
       [](json& j) {
         j["decoder"] = {{"type", "Metaspace"}};
       },
       ErrorCode::kUnsupported, "decoder 'Metaspace'"},
      {"added not array", [](json& j) { j["added_tokens"] = 1; }, ErrorCode::kFormat,
       "added_tokens: expected an array"},
      {"added id clash",
       [](json& j) {
         j["added_tokens"] = {{{"id", 7}, {"content", "a"}}};
       },
       ErrorCode::kFormat, "vocabulary has it as"},
      {"added id of another entry",
       [](json& j) {
         j["added_tokens"] = {{{"id", 7}, {"content", "<x>"}}};
       },
       ErrorCode::kFormat, "belongs to the vocabulary's"},
      {"added twice",
       [](json& j) {
         j["added_tokens"] = {{{"id", 300}, {"content", "<x>"}}, {{"id", 300}, {"content", "<y>"}}};
       },
       ErrorCode::kFormat, "appears twice"},
      {"single word",
       [](json& j) {
         j["added_tokens"] = {{{"id", 300}, {"content", "<x>"}, {"single_word", true}}};
       },
       ErrorCode::kUnsupported, "single_word"},
      {"roberta unknown",
       [](json& j) {
         j["post_processor"] = {
             {"type", "RobertaProcessing"}, {"cls", {"<nope>", 0}}, {"sep", {"<nope>", 2}}};
       },
       ErrorCode::kFormat, "'<nope>'"},
      {"bert unknown type",
       [](json& j) {
         j["post_processor"] = {{"type", "Mystery"}};
       },
       ErrorCode::kUnsupported, "post-processor 'Mystery'"},
  };
  for (const BadCase& c : cases) {
    json j = make_json({{"a", "b"}});
    c.edit(j);
    try {
      build(j);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), c.code) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos)
          << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("test.json"), std::string::npos) << e.what();
    }
  }
  const auto code_of = [](std::string_view text, std::string_view config) {
    try {
      parse_bpe_tokenizer(text, config, "t.json");
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kIo;  // no error: not expected by any caller below
  };
  EXPECT_EQ(code_of("{\"model\": ", ""), ErrorCode::kFormat);
  EXPECT_EQ(code_of("[1, 2]", ""), ErrorCode::kFormat);
  EXPECT_EQ(code_of("", ""), ErrorCode::kFormat);
  EXPECT_EQ(code_of(make_json({}).dump(), "not json"), ErrorCode::kFormat);
  EXPECT_EQ(code_of(make_json({}).dump(), "{\"bos_token\": 5}"), ErrorCode::kFormat);
  EXPECT_EQ(code_of(make_json({}).dump(), "{\"bos_token\": \"<absent>\"}"), ErrorCode::kFormat);
  std::string deep = "{\"type\": \"ByteLevel\"}";
  for (int i = 0; i < 40; ++i) deep = "{\"type\": \"Sequence\", \"pretokenizers\": [" + deep + "]}";
  json j = make_json({});
  j["pre_tokenizer"] = json::parse(deep);
  EXPECT_EQ(code_of(j.dump(), ""), ErrorCode::kFormat);
}

TEST(BpeFiles, Gpt2) {
  const fs::path path = testing::shared_tokenizers() / "gpt2/tokenizer.json";
  if (!fs::exists(path)) GTEST_SKIP() << "shared/models/tokenizers absent";
  const auto tok = load_bpe_tokenizer(path.string());
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tok->encode("a<|endoftext|>b"), (std::vector<int32_t>{64, 50256, 65}));
  EXPECT_EQ(tok->bos_id(), 50256);
  EXPECT_EQ(tok->eos_id(), 50256);
  EXPECT_FALSE(tok->unk_id());
  EXPECT_FALSE(tok->add_bos_by_default());
  EXPECT_EQ(tok->piece(995), "\xC4\xA0world");
  EXPECT_EQ(tok->token_bytes(995), " world");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{50256}), "<|endoftext|>");
  EXPECT_THROW(tok->decode(std::vector<int32_t>{50257}), Error);
  EXPECT_THROW(tok->piece(-1), Error);
  // load_tokenizer recognises the file and its directory.
  EXPECT_EQ(load_tokenizer(path.string())->encode("Hello world"), tok->encode("Hello world"));
  EXPECT_EQ(load_tokenizer(path.parent_path().string())->vocab_size(), 50257);
  // An emoji split over two tokens streams as one character.
  const std::vector<int32_t> ids = tok->encode("\xF0\x9F\x98\x80!");
  ASSERT_GT(ids.size(), 2u);
  StreamDecoder stream(*tok);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string part = stream.push(id);
    EXPECT_TRUE(part.empty() || part == "\xF0\x9F\x98\x80" || part == "!") << part;
    streamed += part;
  }
  EXPECT_EQ(streamed + stream.flush(), "\xF0\x9F\x98\x80!");
}

TEST(BpeFiles, Llama3) {
  const fs::path path = testing::shared_tokenizers() / "llama3/tokenizer.json";
  if (!fs::exists(path)) GTEST_SKIP() << "shared/models/tokenizers absent";
  const auto tok = load_bpe_tokenizer(path.string());
  EXPECT_EQ(tok->vocab_size(), 128256);
  EXPECT_EQ(tok->encode("Hello World"), (std::vector<int32_t>{9906, 4435}));
  EXPECT_EQ(tok->bos_id(), 128000);
  EXPECT_EQ(tok->eos_id(), 128001);
  EXPECT_TRUE(tok->add_bos_by_default());
  EXPECT_EQ(tok->encode("Hello World", true, false), (std::vector<int32_t>{128000, 9906, 4435}));
  EXPECT_EQ(tok->encode("<|begin_of_text|>x"), (std::vector<int32_t>{128000, 87}));
  EXPECT_EQ(tok->piece(128001), "<|end_of_text|>");
}

TEST(BpeFiles, LoadTokenizerSniffsJson) {
  const fs::path dir =
      fs::temp_directory_path() / ("glassbox_bpe_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const auto code_of = [&](const std::string& content, std::string* what) {
    std::ofstream(dir / "tokenizer.json", std::ios::binary) << content;
    try {
      load_tokenizer((dir / "tokenizer.json").string());
    } catch (const Error& e) {
      *what = e.what();
      return e.code();
    }
    return ErrorCode::kIo;
  };
  std::string what;
  EXPECT_EQ(code_of(make_json({{"a", "b"}}).dump(), &what), ErrorCode::kIo);  // loads
  EXPECT_EQ(load_tokenizer(dir.string())->encode("ab").size(), 1u);
  json unigram = make_json({});
  unigram["model"]["type"] = "Unigram";
  EXPECT_EQ(code_of(unigram.dump(), &what), ErrorCode::kUnsupported);
  EXPECT_NE(what.find("model.type"), std::string::npos) << what;
  EXPECT_EQ(code_of("{not json", &what), ErrorCode::kFormat);
  EXPECT_NE(what.find("as tokenizer.json: not valid JSON"), std::string::npos) << what;
  fs::remove_all(dir);
}

TEST(BpeFiles, MissingFileIsIoError) {
  try {
    load_bpe_tokenizer("/nonexistent/tokenizer.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
  }
}

}  // namespace
}  // namespace glassbox
