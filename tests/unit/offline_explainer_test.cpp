// The offline explainer on hand-made features and base rates whose shares and lifts are worked
// out by hand below: ranking, the quoted text, thresholds, escaping, dead features.
#include "autointerp/offline_explainer.h"

#include <gtest/gtest.h>

namespace glassbox::autointerp {
namespace {

std::vector<VocabEntry> test_vocab() {
  return {{"<s>", "", "<s>"},                          // 0: decodes to nothing
          {"\u2581Lily", "Lily", " Lily"},              // 1
          {"\u2581was", "was", " was"},                 // 2
          {"\u2581the", "the", " the"},                 // 3
          {"\u2581Lucy", "Lucy", " Lucy"},              // 4
          {"\u2581happy", "happy", " happy"},           // 5
          {"\u2581say", "say \"hi\" \\o/", " say"},     // 6: quotes and a backslash
          {"<0x0A>", "", "\n"},                        // 7: a line break, named as such
          {"\u0120", "", " "}};                         // 8: nothing left to quote
}

FeatureExample ex_ctx(std::vector<int32_t> ids, std::vector<float> acts) {
  FeatureExample e;
  e.ids = std::move(ids);
  e.acts = std::move(acts);
  return e;
}

// 1000 positions: Lily 20 (2%), was 100, the 300, Lucy 10, happy 50; bigrams (key order)
// "Lily was" 8, "the Lily" 5, "the Lucy" 2.
BaseRates test_base() {
  BaseRates b;
  b.counts = {0, 20, 100, 300, 10, 50, 0, 0, 0};
  b.total = 1000;
  b.bigrams = {{bigram_key(1, 2), 8}, {bigram_key(3, 1), 5}, {bigram_key(3, 4), 2}};
  return b;
}

// Firing positions (act > 0): Lily x4 (c1, c2, c3, c5), was x1 (c2), Lucy x1 (c4), the x1 (c6) =
// 7. Bigrams ending at them: "the Lily" x2 (c1, c3), "Lily was" x1, "the Lucy" x1 (c2's and c5's
// Lily start their contexts).
FeatureDetail lily_feature() {
  FeatureDetail d;
  d.top = {ex_ctx({3, 1, 2, 5}, {0, 2, 0, 0}), ex_ctx({1, 2, 3}, {1.5f, 0.5f, 0}),
           ex_ctx({3, 1, 2}, {0, 1, 0}), ex_ctx({3, 4, 2}, {0, 1, 0})};
  d.quantiles.push_back({0, 0.5, {ex_ctx({1}, {0.3f}), ex_ctx({3}, {0.2f})}});
  return d;
}

TEST(OfflineExplainer, QuotesTheDominantTokenWithShareAndLift) {
  const auto x = explain_offline(lily_feature(), test_base(), test_vocab());
  ASSERT_TRUE(x.has_value());
  // Lily: share 4/7, lift (4/7) / 0.02 = 28.57, score 4 ln 28.57 = 13.4
  // Lucy: 1/7, (1/7) / 0.01 = 14.29, score 2.66;  was: 1/7, (1/7) / 0.1 = 1.43, score 0.36
  // the: (1/7) / 0.3 = 0.48 <= 1, never listed.
  ASSERT_EQ(x->tokens.size(), 3u);
  EXPECT_EQ(x->tokens[0].text, "Lily");
  EXPECT_EQ(x->tokens[0].count, 4);
  EXPECT_NEAR(x->tokens[0].share, 4.0 / 7, 1e-12);
  EXPECT_NEAR(x->tokens[0].lift, 4.0 / 7 / 0.02, 1e-9);
  EXPECT_EQ(x->tokens[1].text, "Lucy");
  EXPECT_NEAR(x->tokens[1].lift, 1.0 / 7 / 0.01, 1e-9);
  EXPECT_EQ(x->tokens[2].text, "was");
  EXPECT_NEAR(x->tokens[2].lift, 1.0 / 7 / 0.1, 1e-9);
  // "the Lily": 2/7 over 5/1000 = 57.1 (score 8.1); "the Lucy": 1/7 over 0.002 = 71.4 (4.3);
  // "Lily was": 1/7 over 0.008 = 17.9 (2.9).
  ASSERT_EQ(x->bigrams.size(), 3u);
  EXPECT_EQ(x->bigrams[0].text, "the Lily");
  EXPECT_NEAR(x->bigrams[0].lift, 2.0 / 7 / 0.005, 1e-9);
  EXPECT_EQ(x->bigrams[1].text, "the Lucy");
  EXPECT_EQ(x->bigrams[2].text, "Lily was");
  EXPECT_EQ(x->text,
            "fires on \"Lily\" (57% of activations, 29x base rate), \"Lucy\" (14%, 14x), \"was\" "
            "(14%, 1.4x); often in \"the Lily\" (29%, 57x)");
  EXPECT_EQ(x->text.find("\"the\""), std::string::npos);  // common everywhere: lift <= 1
}

TEST(OfflineExplainer, BigramFallsBackToSecondTokenRateWithoutBigramCounts) {
  BaseRates base = test_base();
  base.bigrams.clear();
  const auto x = explain_offline(lily_feature(), base, test_vocab());
  ASSERT_TRUE(x.has_value());
  ASSERT_FALSE(x->bigrams.empty());
  EXPECT_EQ(x->bigrams[0].text, "the Lily");
  EXPECT_NEAR(x->bigrams[0].lift, 2.0 / 7 / 0.02, 1e-9);  // Lily's rate
  EXPECT_NE(x->text.find("often in \"the Lily\" (29%, 14x)"), std::string::npos) << x->text;
}

TEST(OfflineExplainer, SmallSharesAreListedButNotQuoted) {
  // 30 firing positions: Lily 28 (5 after "the"), Lucy 1, was 1.
  FeatureDetail d;
  for (int i = 0; i < 5; ++i) d.top.push_back(ex_ctx({3, 1}, {0, 1}));
  for (int i = 0; i < 23; ++i) d.top.push_back(ex_ctx({1}, {1}));
  d.top.push_back(ex_ctx({4}, {1}));
  d.top.push_back(ex_ctx({2}, {1}));
  const auto x = explain_offline(d, test_base(), test_vocab());
  ASSERT_TRUE(x.has_value());
  // Lucy: share 1/30 < 5%, lift 3.3: listed, not quoted. "the Lily": 5/30 < 20%, lift 33.
  ASSERT_EQ(x->tokens.size(), 2u);
  EXPECT_EQ(x->tokens[1].text, "Lucy");
  ASSERT_EQ(x->bigrams.size(), 1u);
  // Lily's base count (20) is below its own 28: floored to 28, lift (28/30) / 0.028 = 33.3.
  EXPECT_NEAR(x->tokens[0].lift, 28.0 / 30 / 0.028, 1e-9);
  EXPECT_EQ(x->text, "fires on \"Lily\" (93% of activations, 33x base rate)");
}

TEST(OfflineExplainer, EscapesQuotesAndNamesLineBreaksNotPieces) {
  FeatureDetail d;
  d.top = {ex_ctx({6}, {1}), ex_ctx({6}, {1}), ex_ctx({7}, {1}), ex_ctx({8}, {1})};
  BaseRates base;
  base.counts = {0, 0, 0, 0, 0, 0, 2, 1, 1};
  base.total = 100;
  const auto x = explain_offline(d, base, test_vocab());
  ASSERT_TRUE(x.has_value());
  // token 6: 2/4 over 0.02 = 25x; token 7 (a line break, quoted as "\n", never as its piece
  // <0x0A>): 1/4 over 0.01 = 25x; token 8 is spaces only and never quoted.
  ASSERT_EQ(x->tokens.size(), 2u);
  EXPECT_EQ(x->tokens[1].text, "\n");
  EXPECT_EQ(x->text,
            "fires on \"say \\\"hi\\\" \\\\o/\" (50% of activations, 25x base rate), \"\\n\" "
            "(25%, 25x)");
}

TEST(OfflineExplainer, JsonQuote) {
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("x\ny\x01\xC3\xA9"), "\"x\\ny\\u0001\xC3\xA9\"");
  EXPECT_EQ(term_text({"\u2581cat", "  cat \n", " cat"}), "cat");
  EXPECT_EQ(term_text({"<s>", "", " <s> "}), "<s>");
  EXPECT_EQ(term_text({"\u010a\u010a", "", "\n\n"}), "\n\n");
  EXPECT_EQ(term_text({"\u2581\u2581", "", "  "}), "");
}

TEST(OfflineExplainer, CommonTokenOnlyQuotesNothing) {
  FeatureDetail d;
  d.top = {ex_ctx({3}, {1}), ex_ctx({3}, {1}), ex_ctx({5, 3}, {0, 1})};
  BaseRates base = test_base();
  base.counts[3] = 1000;  // "the" at every stored position: share 1, lift exactly 1
  base.bigrams.push_back({bigram_key(5, 3), 1000});  // "happy the" as common: lift 1/3
  const auto x = explain_offline(d, base, test_vocab());
  ASSERT_TRUE(x.has_value());
  EXPECT_TRUE(x->tokens.empty());
  EXPECT_EQ(x->text, "no token above its base rate");
}

TEST(OfflineExplainer, DeadFeatureHasNoExplanation) {
  EXPECT_FALSE(explain_offline(FeatureDetail(), test_base(), test_vocab()).has_value());
  FeatureDetail d;
  d.top = {ex_ctx({1, 2}, {0, 0})};  // contexts but no firing position
  EXPECT_FALSE(explain_offline(d, test_base(), test_vocab()).has_value());
}

TEST(OfflineExplainer, BigramCountLookup) {
  const BaseRates b = test_base();
  EXPECT_EQ(b.bigram_count(3, 1), 5);
  EXPECT_EQ(b.bigram_count(1, 3), 0);
  EXPECT_EQ(b.bigram_count(3, 4), 2);
  EXPECT_NE(bigram_key(1, 2), bigram_key(2, 1));
}

}  // namespace
}  // namespace glassbox::autointerp
