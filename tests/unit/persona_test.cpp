// The persona trait definition parser (docs/persona.md) and the lexical word count: the fields
// read, and every malformed definition refused with an Error naming the file and the field.
#include "steer/persona.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "expect_error.h"

namespace glassbox {
namespace {

using testing::expect_error;

TEST(PersonaTrait, ReadsEveryField) {
  const TraitDefinition t = parse_trait_definition(R"({
    "trait": "sad",
    "positive": {"instructions": ["Be sad."], "examples": ["I cried.", "It rained."]},
    "negative": {"examples": ["I smiled."]},
    "eval_prompts": ["Once upon a time", "One day"],
    "words": {"positive": ["sad", "cried"], "negative": ["happy"]}})",
                                                   "t.json");
  EXPECT_EQ(t.trait, "sad");
  EXPECT_EQ(t.positive.instructions, std::vector<std::string>({"Be sad."}));
  EXPECT_EQ(t.positive.examples, std::vector<std::string>({"I cried.", "It rained."}));
  EXPECT_TRUE(t.negative.instructions.empty());
  EXPECT_EQ(t.negative.examples, std::vector<std::string>({"I smiled."}));
  EXPECT_EQ(t.eval_prompts, std::vector<std::string>({"Once upon a time", "One day"}));
  EXPECT_EQ(t.positive_words, std::vector<std::string>({"sad", "cried"}));
  EXPECT_EQ(t.negative_words, std::vector<std::string>({"happy"}));
}

TEST(PersonaTrait, ExamplesAloneNeedNoEvalPrompts) {
  const TraitDefinition t = parse_trait_definition(
      R"({"trait": "x", "positive": {"examples": ["a"]}, "negative": {"examples": ["b"]}})",
      "t.json");
  EXPECT_TRUE(t.eval_prompts.empty());
  EXPECT_TRUE(t.positive_words.empty());
}

TEST(PersonaTrait, TheShippedDefinitionParses) {
  std::ifstream in(std::string(GLASSBOX_SOURCE_DIR) + "/data/persona/sad.json");
  std::stringstream text;
  text << in.rdbuf();
  const TraitDefinition t = parse_trait_definition(text.str(), "sad.json");
  EXPECT_EQ(t.trait, "sad");
  EXPECT_FALSE(t.positive.instructions.empty());
  EXPECT_FALSE(t.negative.instructions.empty());
  EXPECT_FALSE(t.eval_prompts.empty());
}

TEST(PersonaTrait, MalformedDefinitionsNameTheField) {
  const std::string sides = R"("positive": {"examples": ["a"]}, "negative": {"examples": ["b"]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1, 2]", "not a JSON object"},
      {"{", "not a JSON object"},
      {"{" + sides + "}", "\"trait\""},
      {R"({"trait": "", )" + sides + "}", "\"trait\""},
      {R"({"trait": 3, )" + sides + "}", "\"trait\""},
      {R"({"trait": "x", "negative": {"examples": ["b"]}})", "\"positive\""},
      {R"({"trait": "x", "positive": [], "negative": {"examples": ["b"]}})", "\"positive\""},
      {R"({"trait": "x", "positive": {}, "negative": {"examples": ["b"]}})",
       "at least one instruction or example"},
      {R"({"trait": "x", "positive": {"examples": "a"}, "negative": {"examples": ["b"]}})",
       "positive: \"examples\" must be a list"},
      {R"({"trait": "x", "positive": {"examples": ["a", 2]}, "negative": {"examples": ["b"]}})",
       "positive: \"examples\" must hold non-empty strings"},
      {R"({"trait": "x", "positive": {"examples": ["a"]}, "negative": {"examples": [""]}})",
       "negative: \"examples\" must hold non-empty strings"},
      {R"({"trait": "x", "positive": {"instructions": ["a"]}, "negative": {"examples": ["b"]}})",
       "eval_prompts"},
      {R"({"trait": "x", )" + sides + R"(, "eval_prompts": "p"})", "\"eval_prompts\" must be"},
      {R"({"trait": "x", )" + sides + R"(, "words": ["sad"]})", "\"words\" must be"},
      {R"({"trait": "x", )" + sides + R"(, "words": {"positive": [1]}})",
       "words: \"positive\" must hold"},
  };
  for (const auto& [text, part] : cases) {
    SCOPED_TRACE(text);
    expect_error([&] { (void)parse_trait_definition(text, "bad.json"); }, ErrorCode::kFormat,
                 "bad.json");
    expect_error([&] { (void)parse_trait_definition(text, "bad.json"); }, ErrorCode::kFormat, part);
  }
}

TEST(PersonaWords, CountsWholeWordsCaseInsensitively) {
  EXPECT_EQ(count_words("Sad, sadly sad! SAD.", {"sad"}), 3);
  EXPECT_EQ(count_words("She cried; the crier cried", {"cried", "sad"}), 2);
  EXPECT_EQ(count_words("", {"sad"}), 0);
  EXPECT_EQ(count_words("happy happy", {}), 0);
  EXPECT_EQ(count_words("unhappy happyish happy", {"happy"}), 1);
}

}  // namespace
}  // namespace glassbox
