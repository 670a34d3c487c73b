// Autointerp prompts: <<...>> marking of contexts, the explainer prompt's examples and counts, the
// explanation parser (marker, fallback, unwrapping, UTF-8 cut, empty) and the judgement-list
// parser (count, garbage, booleans, clamping, prose around the list).
#include "autointerp/prompts.h"

#include <gtest/gtest.h>

#include "expect_error.h"

namespace glassbox::autointerp {
namespace {

using testing::expect_error;

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t p = text.find(part); p != std::string::npos; p = text.find(part, p + 1)) ++n;
  return n;
}

FeatureExample example(std::vector<std::string> tokens, std::vector<float> acts) {
  FeatureExample ex;
  ex.tokens = std::move(tokens);
  ex.acts = std::move(acts);
  return ex;
}

TEST(AutointerpPrompts, MarkContextSpans) {
  const std::vector<std::string> tokens = {"The", " cat", " met", " Lily", " Anne", " today", "."};
  EXPECT_EQ(mark_context(tokens, {}), "The cat met Lily Anne today.");
  EXPECT_EQ(mark_context(tokens, {false, false, false, true, false, false, false}),
            "The cat met <<Lily>> Anne today.");
  // A run of marked tokens is one span; separate runs are separate spans.
  EXPECT_EQ(mark_context(tokens, {true, false, false, true, true, false, true}),
            "<<The>> cat met <<Lily Anne>> today<<.>>");
  EXPECT_EQ(mark_context(tokens, std::vector<bool>(tokens.size(), true)),
            "<<The cat met Lily Anne today.>>");
  // Whitespace-only spans keep their text inside the markers.
  EXPECT_EQ(mark_context({"a", "\n", "b"}, {false, true, false}), "a<<\n>>b");
  EXPECT_EQ(mark_context({"x ", "y"}, {true, false}), "<<x>> y");
  EXPECT_EQ(mark_context({}, {}), "");
  expect_error(
      [&] {
        mark_context(tokens, {true, false});
      },
      ErrorCode::kInvalidArgument, "2 marks for 7 tokens");
}

TEST(AutointerpPrompts, ExplainerPromptExamplesAndCounts) {
  FeatureDetail d;
  for (int i = 0; i < 5; ++i) {
    d.top.push_back(example({"top" + std::to_string(i), " Lily", " ran"}, {0, 3.0f - i * 0.1f, 0}));
  }
  QuantileBand b1, b2, b3;
  for (int i = 0; i < 3; ++i)
    b1.examples.push_back(example({"band1", " x" + std::to_string(i)}, {0.5f, 0}));
  b3.examples.push_back(example({"band3", "\n", " Lucy"}, {0, 0, 1.0f}));
  d.quantiles = {b1, b2, b3};

  const std::vector<ChatMessage> m = explainer_prompt(d, 3, 2);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_EQ(m[1].role, "user");
  EXPECT_NE(m[0].content.find("[EXPLANATION]:"), std::string::npos);
  EXPECT_NE(m[1].content.find("[EXPLANATION]:"), std::string::npos);
  const std::string& u = m[1].content;
  // 3 top + 2 of band 1 + none of the empty band 2 + 1 of band 3.
  EXPECT_EQ(count(u, "Example "), 6u);
  EXPECT_NE(u.find("Example 1: top0 <<Lily>> ran\n"), std::string::npos) << u;
  EXPECT_NE(u.find("Example 3: top2 <<Lily>> ran\n"), std::string::npos) << u;
  EXPECT_EQ(u.find("top3"), std::string::npos);
  EXPECT_NE(u.find("Example 4: <<band1>> x0\n"), std::string::npos) << u;
  EXPECT_NE(u.find("Example 5: <<band1>> x1\n"), std::string::npos) << u;
  EXPECT_EQ(u.find("x2"), std::string::npos);
  // The newline token is written \n so the example stays on one line.
  EXPECT_NE(u.find("Example 6: band3\\n <<Lucy>>\n"), std::string::npos) << u;
  EXPECT_EQ(count(u, "<<"), 6u);

  EXPECT_EQ(count(explainer_prompt(d, 10, 10)[1].content, "Example "), 9u);
  EXPECT_EQ(count(explainer_prompt(d, 0, 1)[1].content, "Example "), 2u);
  expect_error([&] { explainer_prompt(FeatureDetail{}, 3, 2); }, ErrorCode::kInvalidArgument,
               "no examples");
  expect_error([&] { explainer_prompt(d, -1, 2); }, ErrorCode::kInvalidArgument, "top");
}

TEST(AutointerpPrompts, ParseExplanation) {
  // The last marker wins; case does not matter.
  EXPECT_EQ(parse_explanation("Format: [EXPLANATION]: <text>\nThinking...\n"
                              "[explanation]: the token \"Lily\"\n"),
            "the token \"Lily\"");
  // The explanation may sit on the line after the marker; later lines are ignored.
  EXPECT_EQ(parse_explanation("[EXPLANATION]:\n\n  names of girls  \nHope this helps"),
            "names of girls");
  // Markdown around the marker and around the text.
  EXPECT_EQ(parse_explanation("**[EXPLANATION]:** **female first names**"), "female first names");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: `end of sentence`"), "end of sentence");
  // Without a marker: the last non-empty line, its "Explanation:" label dropped.
  EXPECT_EQ(parse_explanation("Let me think.\nThe marked tokens are verbs.\n\n  \n"),
            "The marked tokens are verbs.");
  EXPECT_EQ(parse_explanation("reasoning\nExplanation: past tense verbs"), "past tense verbs");
  // Wrapping quotes go; quotes that belong to the text stay.
  EXPECT_EQ(parse_explanation("[EXPLANATION]: \"numbers in dates\""), "numbers in dates");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: \"the token \"Lily\"\""), "the token \"Lily\"");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: \"Lily\" and \"Lucy\""), "\"Lily\" and \"Lucy\"");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: \xE2\x80\x9Cthe word cat\xE2\x80\x9D"),
            "the word cat");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: 'quoted'"), "quoted");
  EXPECT_EQ(parse_explanation("[EXPLANATION]: Lily's dog"), "Lily's dog");

  // Cut to 200 bytes, never inside a character: 199 ASCII bytes + "é" (2 bytes) keeps 199.
  const std::string e_acute = "\xC3\xA9";
  std::string long_text = std::string(199, 'a') + e_acute + "bbb";
  std::string cut = parse_explanation("[EXPLANATION]: " + long_text);
  EXPECT_EQ(cut, std::string(199, 'a'));
  long_text = std::string(198, 'a') + e_acute + "bbb";
  cut = parse_explanation("[EXPLANATION]: " + long_text);
  EXPECT_EQ(cut, std::string(198, 'a') + e_acute);
  EXPECT_EQ(cut.size(), 200u);
  EXPECT_EQ(parse_explanation(std::string(300, 'z')).size(), 200u);

  for (const std::string& empty :
       {std::string(""), std::string("  \n\n \t"), std::string("blah\n[EXPLANATION]:   \n"),
        std::string("[EXPLANATION]: \"\"")}) {
    expect_error([&] { parse_explanation(empty); }, ErrorCode::kFormat,
                 "explanation: the reply has no text");
  }
}

TEST(AutointerpPrompts, JudgePrompts) {
  const std::vector<std::string> ctx = {"one <<two>>", "three\nfour"};
  for (const auto& m :
       {detection_prompt("the token \"two\"", ctx), fuzzing_prompt("the token \"two\"", ctx),
        expression_prompt("the token \"two\"", ctx)}) {
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].role, "system");
    EXPECT_NE(m[0].content.find("JSON list"), std::string::npos);
    EXPECT_NE(m[1].content.find("Explanation: the token \"two\""), std::string::npos);
    EXPECT_NE(m[1].content.find("Example 1: one <<two>>\n"), std::string::npos);
    EXPECT_NE(m[1].content.find("Example 2: three\\nfour\n"), std::string::npos);
    EXPECT_NE(m[1].content.find("JSON list of 2 numbers"), std::string::npos);
  }
  // Each method has its own question.
  EXPECT_NE(detection_prompt("x", ctx)[0].content, fuzzing_prompt("x", ctx)[0].content);
  EXPECT_NE(detection_prompt("x", ctx)[0].content, expression_prompt("x", ctx)[0].content);
  EXPECT_NE(fuzzing_prompt("x", ctx)[0].content.find("<<"), std::string::npos);
}

TEST(AutointerpPrompts, ParseJudgements) {
  EXPECT_EQ(parse_judgements("[0, 1, 0.25]", 3), (std::vector<double>{0, 1, 0.25}));
  EXPECT_EQ(parse_judgements("[]", 0), std::vector<double>{});
  // Booleans read as 1/0; values are clamped to [0, 1].
  EXPECT_EQ(parse_judgements("[true, false, 1.7, -0.2]", 4), (std::vector<double>{1, 0, 1, 0}));
  // The list after prose; the last list of the right size wins.
  EXPECT_EQ(parse_judgements("Example 1 [mentions Lily] looks likely.\nAnswer: [0.9, 0.1]", 2),
            (std::vector<double>{0.9, 0.1}));
  EXPECT_EQ(parse_judgements("draft [0, 0]\nfinal:\n```json\n[1, 0.5]\n```", 2),
            (std::vector<double>{1, 0.5}));
  // A trailing list of another size (prose about the range) does not hide the answer.
  EXPECT_EQ(parse_judgements("[0.2, 0.8, 0.3] (each in [0, 1])", 3),
            (std::vector<double>{0.2, 0.8, 0.3}));

  expect_error([] { parse_judgements("[0.5, 0.5]", 3); }, ErrorCode::kFormat,
               "expected a JSON list of 3 numbers in [0, 1], one per example; the last list of "
               "numbers in the reply has 2");
  expect_error([] { parse_judgements("I cannot tell.", 2); }, ErrorCode::kFormat,
               "expected a JSON list of 2 numbers");
  expect_error([] { parse_judgements("I cannot tell.", 2); }, ErrorCode::kFormat,
               "no list of numbers");
  expect_error([] { parse_judgements("[\"yes\", \"no\"]", 2); }, ErrorCode::kFormat,
               "no list of numbers");
  expect_error([] { parse_judgements("[0.5, nan]", 2); }, ErrorCode::kFormat, "2 numbers");
  expect_error([] { parse_judgements("[0.5, 0.5", 2); }, ErrorCode::kFormat, "2 numbers");
  expect_error([] { parse_judgements("]]][[[", 1); }, ErrorCode::kFormat, "1 numbers");
}

}  // namespace
}  // namespace glassbox::autointerp
