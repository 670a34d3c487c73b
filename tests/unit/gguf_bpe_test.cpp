// GGUF byte-level BPE vocabularies (tokenizer.ggml.model "gpt2", src/tokenizer/gguf_bpe.cpp):
//  - the GPT-2 and Llama 3 tokenizer.json files written into vocabulary-only GGUFs (as `glassbox
//    convert --vocab-only` writes them) give the same ids as the tokenizer.json path, which is
//    itself checked against Hugging Face's tokenizers in bpe_reference_test, on every line of
//    ../shared/corpus and the stress lines, under each tokenizer.ggml.pre value that applies;
//  - each key changes the result as llama.cpp defines it (pre-tokenizer regexes, ignore_merges,
//    control / user-defined tokens, BOS/EOS defaults, add_bos_token), on small vocabularies built
//    here where a wrong default would give other ids;
//  - malformed files are refused naming the key.
// Sanitizer builds take every 4th corpus line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "expect_error.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_corpus.h"
#include "test_models.h"
#include "tokenizer/bpe.h"
#include "tokenizer/gguf_bpe.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using Meta = std::vector<std::pair<std::string, GgufValue>>;
using testing::expect_error;
using Ids = std::vector<int32_t>;



fs::path bpe_temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("glassbox_gguf_bpe_" + std::to_string(::getpid()) + name);
}

// A vocabulary-only GGUF holding `meta` (plus general.architecture), opened as a tokenizer.
std::unique_ptr<Tokenizer> gguf_tokenizer(Meta meta, const std::string& name) {
  const fs::path path = bpe_temp_path(name + ".gguf");
  meta.insert(meta.begin(), {"general.architecture", gguf_string("llama")});
  write_gguf(path.string(), meta, {});
  auto tok = load_tokenizer(path.string());
  fs::remove(path);
  return tok;
}

void set(Meta& meta, const std::string& key, GgufValue value) {
  for (auto& [k, v] : meta) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  meta.emplace_back(key, std::move(value));
}

void remove_key(Meta& meta, const std::string& key) {
  std::erase_if(meta, [&](const auto& kv) { return kv.first == key; });
}

// Encodes every corpus and stress line both ways; returns the number of lines that differ.
size_t mismatches(const Tokenizer& ref, const Tokenizer& gguf, const std::string& label) {
  std::vector<std::string> lines = testing::corpus_lines(testing::kCorpusStride);
  const std::vector<std::string> stress = testing::bpe_stress_lines();
  lines.insert(lines.end(), stress.begin(), stress.end());
  size_t bad = 0;
  for (const std::string& line : lines) {
    const Ids want = ref.encode(line), got = gguf.encode(line);
    if (want != got && ++bad <= 3) ADD_FAILURE() << label << ": ids differ on '" << line << "'";
  }
  std::printf("[ gguf ] %s: %zu lines, %zu differ\n", label.c_str(), lines.size(), bad);
  return bad;
}

class SharedVocab : public ::testing::TestWithParam<const char*> {};

TEST_P(SharedVocab, GgufEqualsTokenizerJsonOnTheCorpus) {
  const fs::path json = testing::shared_tokenizers() / GetParam() / "tokenizer.json";
  if (!fs::exists(json) || testing::corpus_lines(1000).empty()) {
    GTEST_SKIP() << "../shared tokenizers or corpus absent";
  }
  const BpeSpec spec = load_bpe_spec(json.string());
  const auto ref = make_bpe_tokenizer(spec, json.string());
  Meta meta = gguf_bpe_metadata(spec, json.string());
  const std::string written = [&] {
    for (const auto& [k, v] : meta)
      if (k == "tokenizer.ggml.pre") return v.as_string(k);
    return std::string();
  }();
  // The pre values llama.cpp maps to the same pre-tokenizer as this file's.
  const std::vector<std::string> pres = written == "gpt-2"
                                            ? std::vector<std::string>{"gpt-2", "phi-2"}
                                            : std::vector<std::string>{"llama-bpe", "llama3",
                                                                       "llama-v3"};
  EXPECT_EQ(written, pres[0]);
  for (const std::string& pre : pres) {
    set(meta, "tokenizer.ggml.pre", gguf_string(pre));
    const auto gguf = gguf_tokenizer(meta, GetParam());
    EXPECT_EQ(gguf->vocab_size(), ref->vocab_size());
    EXPECT_EQ(gguf->bos_id(), ref->bos_id());
    EXPECT_EQ(gguf->eos_id(), ref->eos_id());
    EXPECT_EQ(gguf->add_bos_by_default(), ref->add_bos_by_default());
    EXPECT_EQ(mismatches(*ref, *gguf, std::string(GetParam()) + " as GGUF, pre " + pre), 0u);
    // Decoding: every id's bytes and a sample sequence.
    for (int32_t id = 0; id < ref->vocab_size(); id += 97) {
      EXPECT_EQ(gguf->decode(Ids{id}), ref->decode(Ids{id})) << id;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Gpt2AndLlama3, SharedVocab, ::testing::Values("gpt2", "llama3"));

// A small vocabulary over the byte alphabet: every printable ASCII character, plus merged
// entries. Ids: one per character in order, then the merges' results.
struct Small {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::map<std::string, int32_t> id;
};

Small small_vocab() {
  Small s;
  // GPT-2's byte alphabet spells ' ' as U+0120 and '\n' as U+010A.
  for (int c = 33; c < 127; ++c) s.tokens.push_back(std::string(1, static_cast<char>(c)));
  s.tokens.push_back("\xc4\xa0");  // ' '
  s.tokens.push_back("\xc4\x8a");  // '\n'
  for (const char* m : {"1 2", "12 3", "\xc4\xa0 a", "\xc4\xa0" "a b"}) {
    s.merges.push_back(m);
    std::string t(m);
    t.erase(t.find(' '), 1);
    s.tokens.push_back(t);
  }
  s.tokens.push_back("\xc4\xa0" "abc");  // an entry no merge reaches: only ignore_merges finds it
  s.tokens.push_back("<|ctl|>");
  s.tokens.push_back("<|user|>");
  for (size_t i = 0; i < s.tokens.size(); ++i) s.id[s.tokens[i]] = static_cast<int32_t>(i);
  return s;
}

Meta small_meta(const Small& s, const std::string& pre) {
  std::vector<GgufValue> tokens, types, merges;
  for (const std::string& t : s.tokens) {
    tokens.push_back(gguf_string(t));
    types.push_back(gguf_int(GgufType::kI32, t == "<|ctl|>" ? 3 : t == "<|user|>" ? 4 : 1));
  }
  for (const std::string& m : s.merges) merges.push_back(gguf_string(m));
  return {{"tokenizer.ggml.model", gguf_string("gpt2")},
          {"tokenizer.ggml.pre", gguf_string(pre)},
          {"tokenizer.ggml.tokens", gguf_array(GgufType::kString, tokens)},
          {"tokenizer.ggml.token_type", gguf_array(GgufType::kI32, types)},
          {"tokenizer.ggml.merges", gguf_array(GgufType::kString, merges)}};
}

TEST(GgufBpe, PreTokenizerDecidesTheSplit) {
  const Small s = small_vocab();
  // "123": Llama 3 keeps up to three digits together (merged to one id); Qwen 2 splits single
  // digits; GPT-2's regex keeps digit runs too.
  const auto llama3 = gguf_tokenizer(small_meta(s, "llama-bpe"), "l3");
  const auto qwen2 = gguf_tokenizer(small_meta(s, "qwen2"), "q2");
  const auto gpt2 = gguf_tokenizer(small_meta(s, "gpt-2"), "g2");
  const auto smollm = gguf_tokenizer(small_meta(s, "smollm"), "sm");
  EXPECT_EQ(llama3->encode("123"), Ids{s.id.at("123")});
  EXPECT_EQ(gpt2->encode("123"), Ids{s.id.at("123")});
  const Ids digits = {s.id.at("1"), s.id.at("2"), s.id.at("3")};
  EXPECT_EQ(qwen2->encode("123"), digits);
  EXPECT_EQ(smollm->encode("123"), digits);  // \p{N} split first, one digit at a time
  // "a\n\nb": GPT-2's regex gives each newline a piece of its own (no merge joins them).
  EXPECT_EQ(gpt2->encode("a\n\nb"),
            (Ids{s.id.at("a"), s.id.at("\xc4\x8a"), s.id.at("\xc4\x8a"), s.id.at("b")}));
}

TEST(GgufBpe, IgnoreMergesFollowsThePreTokenizer) {
  const Small s = small_vocab();
  // " abc" is one piece for both. Llama 3 (ignore_merges) takes the entry " abc" whole; GPT-2
  // applies the merges: " a", " ab", then nothing joins "c".
  const auto llama3 = gguf_tokenizer(small_meta(s, "llama3"), "l3");
  const auto gpt2 = gguf_tokenizer(small_meta(s, "gpt-2"), "g2");
  EXPECT_EQ(llama3->encode(" abc"), Ids{s.id.at("\xc4\xa0" "abc")});
  EXPECT_EQ(gpt2->encode(" abc"), (Ids{s.id.at("\xc4\xa0" "ab"), s.id.at("c")}));
}

TEST(GgufBpe, ControlAndUserDefinedTokensAreCutOutOfTheText) {
  const Small s = small_vocab();
  const auto tok = gguf_tokenizer(small_meta(s, "gpt-2"), "ct");
  EXPECT_EQ(tok->encode("a<|ctl|>b<|user|>"),
            (Ids{s.id.at("a"), s.id.at("<|ctl|>"), s.id.at("b"), s.id.at("<|user|>")}));
  EXPECT_EQ(tok->decode(Ids{s.id.at("<|ctl|>"), s.id.at("a")}), "<|ctl|>a");
  // As normal entries (type 1) they are text: '<', '|', ... pieces.
  Meta meta = small_meta(s, "gpt-2");
  remove_key(meta, "tokenizer.ggml.token_type");
  const auto plain = gguf_tokenizer(meta, "pl");
  EXPECT_GT(plain->encode("<|ctl|>").size(), 1u);
}

TEST(GgufBpe, BosEosAndAddBos) {
  const Small s = small_vocab();
  // Absent ids: llama.cpp's default for "gpt2" is 11 for both.
  const auto none = gguf_tokenizer(small_meta(s, "gpt-2"), "b0");
  EXPECT_EQ(none->bos_id(), 11);
  EXPECT_EQ(none->eos_id(), 11);
  EXPECT_FALSE(none->add_bos_by_default());  // gpt-2's default
  // The llama3 family prepends BOS unless the file says otherwise.
  Meta meta = small_meta(s, "llama-bpe");
  set(meta, "tokenizer.ggml.bos_token_id", gguf_int(GgufType::kU32, s.id.at("<|ctl|>")));
  set(meta, "tokenizer.ggml.eos_token_id", gguf_int(GgufType::kU32, s.id.at("<|user|>")));
  const auto l3 = gguf_tokenizer(meta, "b1");
  EXPECT_EQ(l3->bos_id(), s.id.at("<|ctl|>"));
  EXPECT_EQ(l3->eos_id(), s.id.at("<|user|>"));
  EXPECT_TRUE(l3->add_bos_by_default());
  set(meta, "tokenizer.ggml.add_bos_token", gguf_bool(false));
  EXPECT_FALSE(gguf_tokenizer(meta, "b2")->add_bos_by_default());
  // 0xFFFFFFFF: none.
  set(meta, "tokenizer.ggml.bos_token_id", gguf_int(GgufType::kU32, 0xFFFFFFFFll));
  EXPECT_EQ(gguf_tokenizer(meta, "b3")->bos_id(), std::nullopt);
}

TEST(GgufBpe, MetadataRoundTripChoosesThePre) {
  const Small s = small_vocab();
  for (const char* pre : {"gpt-2", "llama-bpe", "qwen2", "tekken", "smollm", "default",
                          "deepseek-llm", "deepseek-coder"}) {
    const fs::path path = bpe_temp_path(std::string("rt_") + pre + ".gguf");
    Meta meta = small_meta(s, pre);
    meta.insert(meta.begin(), {"general.architecture", gguf_string("llama")});
    write_gguf(path.string(), meta, {});
    const BpeSpec spec = gguf_bpe_spec(GgufFile::open(path.string()));
    fs::remove(path);
    const Meta again = gguf_bpe_metadata(spec, "spec");
    std::string written;
    for (const auto& [k, v] : again)
      if (k == "tokenizer.ggml.pre") written = v.as_string(k);
    EXPECT_EQ(written, pre);
  }
}

TEST(GgufBpe, BadFilesAreRefusedNamingTheKey) {
  const Small s = small_vocab();
  const auto refused = [&](Meta meta, ErrorCode code, const std::string& needle) {
    meta.insert(meta.begin(), {"general.architecture", gguf_string("llama")});
    const fs::path path = bpe_temp_path("bad.gguf");
    write_gguf(path.string(), meta, {});
    expect_error([&] { load_tokenizer(path.string()); }, code, needle);
    fs::remove(path);
  };
  Meta m = small_meta(s, "no-such-pre");
  refused(m, ErrorCode::kUnsupported,
          "tokenizer.ggml.pre = 'no-such-pre' is not a supported pre-tokenizer (supported: "
          "default, llama-bpe");
  m = small_meta(s, "gpt-2");
  remove_key(m, "tokenizer.ggml.merges");
  refused(m, ErrorCode::kNotFound, "missing tokenizer.ggml.merges");
  m = small_meta(s, "gpt-2");
  set(m, "tokenizer.ggml.merges", gguf_array(GgufType::kString, {gguf_string("ab")}));
  refused(m, ErrorCode::kFormat, "tokenizer.ggml.merges[0] = 'ab' is not of the form 'a b'");
  m = small_meta(s, "gpt-2");
  set(m, "tokenizer.ggml.merges", gguf_array(GgufType::kString, {gguf_string("x\xc4\xa0 q")}));
  refused(m, ErrorCode::kFormat, "merge");
  m = small_meta(s, "gpt-2");
  set(m, "tokenizer.ggml.token_type", gguf_array(GgufType::kI32, {gguf_int(GgufType::kI32, 1)}));
  refused(m, ErrorCode::kFormat, "tokenizer.ggml.token_type has 1 entries for");
  m = small_meta(s, "gpt-2");
  set(m, "tokenizer.ggml.bos_token_id", gguf_int(GgufType::kU32, 100000));
  refused(m, ErrorCode::kFormat, "tokenizer.ggml.bos_token_id = 100000 is out of range");
  m = small_meta(s, "gpt-2");
  set(m, "tokenizer.ggml.model", gguf_string("bert"));
  refused(m, ErrorCode::kUnsupported, "tokenizer.ggml.model = 'bert' is not supported");
}

}  // namespace
}  // namespace glassbox
