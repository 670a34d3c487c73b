// Autointerp scoring: explanation terms, the offline judge's matching, binary metrics vs hand
// counts and a brute-force pair count, the detection and fuzzing protocols (balance, seeded
// order, the wrong markings), the synthetic-feature acceptance check (a feature firing exactly on
// " Lily": the right explanation scores >= 0.9, a wrong one about 0.5), the LLM judge over scripted
// chat functions (batching, one retry, errors) and the intervention score.
#include "autointerp/scoring.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "autointerp/prompts.h"
#include "expect_error.h"

namespace glassbox::autointerp {
namespace {

using testing::expect_error;

JudgeItem item(std::vector<std::string> tokens, std::vector<bool> marked = {}) {
  return {std::move(tokens), std::move(marked)};
}

TEST(AutointerpScoring, ExplanationTerms) {
  using V = std::vector<std::string>;
  EXPECT_EQ(explanation_terms(
                "fires on \"Lily\" (62% of activations, 41x base rate), \"Lucy\" (20%, 35x); "
                "often in \"Lily was\""),
            (V{"Lily", "Lucy", "Lily was"}));
  // JSON escapes are undone; whitespace around a term and empty terms go; duplicates once.
  EXPECT_EQ(
      explanation_terms(R"(the tokens "say \"hi\"", "a\\b", "\u00e9t\u00e9", " x ", "", "x")"),
      (V{"say \"hi\"", "a\\b", "\xC3\xA9t\xC3\xA9", "x"}));
  EXPECT_EQ(explanation_terms("\xE2\x80\x9CLily\xE2\x80\x9D and \"Tom\""), (V{"Lily", "Tom"}));
  // Without quotes: words of 3+ characters, lowercased, stop words out.
  EXPECT_EQ(explanation_terms("Mentions of the girl's name Lily, in stories; LILY again"),
            (V{"girl", "name", "lily", "stories", "again"}));
  EXPECT_EQ(explanation_terms("the token cafés"), (V{"cafés"}));
  EXPECT_EQ(explanation_terms("an ox"), V{});
  // An unterminated quote is not a term; only empty quotes fall back to words.
  EXPECT_EQ(explanation_terms("the word \"Lily"), (V{"lily"}));
  EXPECT_EQ(explanation_terms("\"\" Lily"), (V{"lily"}));
}

TEST(AutointerpScoring, OfflineJudgeMatching) {
  OfflineJudge j;
  EXPECT_EQ(j.name(), "offline");
  const std::vector<std::string> t = {" The", " Lily", " was", " here", "."};
  const std::vector<JudgeItem> items = {item(t)};
  EXPECT_EQ(j.detect("the token \"Lily\"", items), std::vector<double>{1});
  EXPECT_EQ(j.detect("the token \"lily\"", items), std::vector<double>{1});
  EXPECT_EQ(j.detect("\"Lily was\"", items), std::vector<double>{1});  // a run of tokens
  EXPECT_EQ(j.detect("\"was here.\"", items), std::vector<double>{1});
  EXPECT_EQ(j.detect("\"Lil\"", items), std::vector<double>{0});
  EXPECT_EQ(j.detect("\"Lily here\"", items), std::vector<double>{0});
  EXPECT_EQ(j.detect("names like Lily", items), std::vector<double>{1});  // word fallback
  EXPECT_EQ(j.detect("\"Lily\"", {item({" Lilyanne"})}), std::vector<double>{0});
  // Tokens are display text: a U+0120 or U+2581 in it is that character, not a space marker.
  EXPECT_EQ(j.detect("\"Lily\"", {item({"\xC4\xA0Lily"})}), std::vector<double>{0});
  EXPECT_EQ(j.detect("\"Lily was\"", {item({"\xE2\x96\x81Lily", " was"})}),
            std::vector<double>{0});
  EXPECT_EQ(j.detect("\"Lily\"", {}), std::vector<double>{});

  // Fuzzing: at least half of the marked tokens covered by a match.
  const auto fuzz = [&](const std::string& e, std::vector<bool> marked) {
    return j.fuzz(e, {item(t, std::move(marked))})[0];
  };
  EXPECT_EQ(fuzz("\"Lily\"", {false, true, false, false, false}), 1);
  EXPECT_EQ(fuzz("\"Lily\"", {false, true, true, false, false}), 1);  // 1 of 2
  EXPECT_EQ(fuzz("\"Lily\"", {false, true, true, true, false}), 0);   // 1 of 3
  EXPECT_EQ(fuzz("\"Lily was\"", {false, true, true, true, false}), 1);
  EXPECT_EQ(fuzz("\"Lily\"", {true, false, false, false, false}), 0);
  EXPECT_EQ(fuzz("\"Lily\"", std::vector<bool>(5, false)), 0);
  EXPECT_EQ(fuzz("\"Lily\"", {}), 0);
  expect_error([&] { j.fuzz("x", {item(t, {true})}); }, ErrorCode::kInvalidArgument,
               "1 marks for 5 tokens");

  // Expression: a term as a whole word, case-insensitive.
  EXPECT_EQ(j.expresses("the token \"Lily\"",
                        {"I met LILY.", "Lilyanne", "Lily's cat", "lil y", "xLily", "Lily"}),
            (std::vector<double>{1, 0, 1, 0, 0, 1}));
  EXPECT_EQ(j.expresses("\"New York\"", {"to new york!", "new yorker"}),
            (std::vector<double>{1, 0}));
}

TEST(AutointerpScoring, ScoreBinaryHandComputed) {
  // pos {0.9, 0.4, 0.6}, neg {0.6, 0.1}: TP 2, FN 1, FP 1, TN 1. Pairs pos>neg: 0.9>0.6,
  // 0.9>0.1, 0.4>0.1, 0.6>0.1 and the tie 0.6=0.6 for 1/2: 4.5 of 6.
  BinaryScore s = score_binary({true, true, true, false, false}, {0.9, 0.4, 0.6, 0.6, 0.1});
  EXPECT_DOUBLE_EQ(s.accuracy, 0.6);
  EXPECT_DOUBLE_EQ(s.balanced_accuracy, (2.0 / 3 + 1.0 / 2) / 2);
  ASSERT_TRUE(s.auroc.has_value());
  EXPECT_DOUBLE_EQ(*s.auroc, 0.75);
  EXPECT_EQ(s.n_pos, 3);
  EXPECT_EQ(s.n_neg, 2);

  // prob 0.5 counts as positive; all tied gives AUROC 1/2.
  s = score_binary({true, false}, {0.5, 0.5});
  EXPECT_DOUBLE_EQ(s.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s.balanced_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(*s.auroc, 0.5);
  s = score_binary({false, true, false, true}, {0.1, 0.8, 0.3, 0.7});
  EXPECT_DOUBLE_EQ(s.balanced_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(*s.auroc, 1.0);
  s = score_binary({false, true}, {0.9, 0.2});
  EXPECT_DOUBLE_EQ(s.accuracy, 0.0);
  EXPECT_DOUBLE_EQ(*s.auroc, 0.0);

  // One class missing: that class's rate only, no AUROC.
  s = score_binary({true, true, true}, {0.9, 0.2, 0.5});
  EXPECT_DOUBLE_EQ(s.accuracy, 2.0 / 3);
  EXPECT_DOUBLE_EQ(s.balanced_accuracy, 2.0 / 3);
  EXPECT_FALSE(s.auroc.has_value());
  EXPECT_EQ(s.n_neg, 0);
  s = score_binary({false, false, false, false}, {0.7, 0.1, 0.0, 0.2});
  EXPECT_DOUBLE_EQ(s.balanced_accuracy, 0.75);
  EXPECT_FALSE(s.auroc.has_value());
  s = score_binary({}, {});
  EXPECT_EQ(s.accuracy, 0);
  EXPECT_FALSE(s.auroc.has_value());

  expect_error(
      [] {
        score_binary({true}, {0.1, 0.2});
      },
      ErrorCode::kInvalidArgument, "1 labels for 2 probabilities");
  expect_error(
      [] {
        score_binary({true, false}, {0.1, std::nan("")});
      },
      ErrorCode::kInvalidArgument, "probability 1 is NaN");
}

TEST(AutointerpScoring, AurocMatchesPairCount) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<bool> truth;
    std::vector<double> prob;
    for (int i = 0; i < 40; ++i) {
      truth.push_back(rng() % 3 == 0);
      prob.push_back(static_cast<double>(rng() % 6) / 5);  // coarse: many ties
    }
    double pairs = 0, wins = 0;
    for (size_t a = 0; a < truth.size(); ++a) {
      for (size_t b = 0; b < truth.size(); ++b) {
        if (!truth[a] || truth[b]) continue;
        pairs += 1;
        wins += prob[a] > prob[b] ? 1 : prob[a] == prob[b] ? 0.5 : 0;
      }
    }
    const BinaryScore s = score_binary(truth, prob);
    ASSERT_TRUE(s.auroc.has_value());
    EXPECT_NEAR(*s.auroc, wins / pairs, 1e-12);
  }
}

// ---- synthetic feature
// ---------------------------------------------------------------------------

const std::vector<std::string> kVocab = {" the", " a",   " dog",  " cat", " ran", " sat", " big",
                                         " and", " Tom", " park", " red", " to",  " was", ",",
                                         ".",    " he",  " she",  " it",  " on",  " in"};
const std::string kLily = " Lily";

// Contexts of 21 tokens over kVocab; positives get " Lily" at 1-3 random places. The feature fires
// exactly on " Lily", with a random strength.
std::vector<ScoringSample> synthetic(size_t n, bool positive, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ScoringSample> out(n);
  for (ScoringSample& s : out) {
    for (int i = 0; i < 21; ++i) s.tokens.push_back(kVocab[rng() % kVocab.size()]);
    if (positive) {
      for (uint64_t k = 0, lilies = 1 + rng() % 3; k < lilies; ++k) {
        s.tokens[rng() % s.tokens.size()] = kLily;
      }
    }
    for (const std::string& t : s.tokens) {
      s.acts.push_back(t == kLily ? 0.5f + static_cast<float>(rng() % 100) / 20 : 0.0f);
    }
  }
  return out;
}

TEST(AutointerpScoring, SyntheticFeatureOfflineJudge) {
  const std::vector<ScoringSample> pos = synthetic(300, true, 1), neg = synthetic(200, false, 2);
  OfflineJudge judge;
  const std::string right = "the token \"Lily\"", wrong = "the token \"dog\"";

  const MethodResult det = run_detection(judge, right, pos, neg, 0);
  EXPECT_EQ(det.score.n_pos, 200);  // balanced: min(300, 200) of each
  EXPECT_EQ(det.score.n_neg, 200);
  EXPECT_GE(det.score.balanced_accuracy, 0.9);
  EXPECT_GE(det.score.auroc.value_or(0), 0.9);
  const MethodResult fuzz = run_fuzzing(judge, right, pos, 0);
  EXPECT_EQ(fuzz.score.n_pos, 300);
  EXPECT_EQ(fuzz.score.n_neg, 300);
  EXPECT_GE(fuzz.score.balanced_accuracy, 0.9);

  const MethodResult det_wrong = run_detection(judge, wrong, pos, neg, 0);
  EXPECT_NEAR(det_wrong.score.balanced_accuracy, 0.5, 0.1);
  const MethodResult fuzz_wrong = run_fuzzing(judge, wrong, pos, 0);
  EXPECT_NEAR(fuzz_wrong.score.balanced_accuracy, 0.5, 0.1);
  std::printf(
      "synthetic \" Lily\" feature, balanced accuracy: right %.3f (detection) %.3f "
      "(fuzzing), wrong %.3f (detection) %.3f (fuzzing)\n",
      det.score.balanced_accuracy, fuzz.score.balanced_accuracy, det_wrong.score.balanced_accuracy,
      fuzz_wrong.score.balanced_accuracy);

  // The LLM-style word fallback names the token too.
  EXPECT_GE(run_detection(judge, "mentions of Lily", pos, neg, 3).score.balanced_accuracy, 0.9);
}

// Records what it was asked and answers like the offline judge.
class RecordingJudge : public OfflineJudge {
 public:
  std::vector<double> detect(const std::string& e, const std::vector<JudgeItem>& items) override {
    seen = items;
    return OfflineJudge::detect(e, items);
  }
  std::vector<double> fuzz(const std::string& e, const std::vector<JudgeItem>& items) override {
    seen = items;
    return OfflineJudge::fuzz(e, items);
  }
  std::vector<JudgeItem> seen;
};

TEST(AutointerpScoring, DetectionProtocol) {
  const std::vector<ScoringSample> pos = synthetic(30, true, 5), neg = synthetic(12, false, 6);
  RecordingJudge judge;
  const MethodResult a = run_detection(judge, "\"Lily\"", pos, neg, 42);
  ASSERT_EQ(judge.seen.size(), 24u);
  ASSERT_EQ(a.truth.size(), 24u);
  // Items are unmarked, truth follows the sample (a positive holds " Lily"), and the order is
  // shuffled rather than positives first.
  bool interleaved = false;
  for (size_t i = 0; i < judge.seen.size(); ++i) {
    EXPECT_TRUE(judge.seen[i].marked.empty());
    const bool has_lily =
        std::count(judge.seen[i].tokens.begin(), judge.seen[i].tokens.end(), kLily) > 0;
    EXPECT_EQ(a.truth[i], has_lily);
    if (i > 0 && i < 12 && !a.truth[i]) interleaved = true;
  }
  EXPECT_TRUE(interleaved);
  // The first 12 positives were used.
  for (const JudgeItem& it : judge.seen) {
    bool known = false;
    for (size_t p = 0; p < 12; ++p) known = known || it.tokens == pos[p].tokens;
    for (size_t q = 0; q < 12; ++q) known = known || it.tokens == neg[q].tokens;
    EXPECT_TRUE(known);
  }
  // Same seed, same order; another seed, another order.
  EXPECT_EQ(run_detection(judge, "\"Lily\"", pos, neg, 42).truth, a.truth);
  EXPECT_NE(run_detection(judge, "\"Lily\"", pos, neg, 43).truth, a.truth);

  std::vector<ScoringSample> bad = pos;
  bad[1].acts.assign(bad[1].acts.size(), 0.0f);
  expect_error([&] { run_detection(judge, "x", bad, neg, 0); }, ErrorCode::kInvalidArgument,
               "detection: positive 1 has no activation > 0");
  expect_error([&] { run_detection(judge, "x", neg, pos, 0); }, ErrorCode::kInvalidArgument,
               "detection: positive 0 has no activation > 0");
  bad = neg;
  bad[2].acts[3] = 1.0f;
  expect_error([&] { run_detection(judge, "x", pos, bad, 0); }, ErrorCode::kInvalidArgument,
               "detection: negative 2 has an activation > 0");
  bad = neg;
  bad[0].acts.clear();  // a negative's activations may be left out
  EXPECT_EQ(run_detection(judge, "\"Lily\"", pos, bad, 0).score.n_neg, 12);
  bad[0].acts = {0.0f};
  expect_error([&] { run_detection(judge, "x", pos, bad, 0); }, ErrorCode::kInvalidArgument,
               "negative 0 has 1 activations for 21 tokens");
}

TEST(AutointerpScoring, FuzzingProtocol) {
  std::vector<ScoringSample> pos = synthetic(20, true, 8);
  // Skipped: every token activates; 2 of 3 activate (1 non-activating < 2).
  pos.push_back({{" Lily", " Lily"}, {1.0f, 2.0f}});
  pos.push_back({{" Lily", " x", " Lily"}, {1.0f, 0.0f, 2.0f}});
  RecordingJudge judge;
  const MethodResult r = run_fuzzing(judge, "\"Lily\"", pos, 9);
  ASSERT_EQ(judge.seen.size(), 40u);
  ASSERT_EQ(r.truth.size(), 40u);
  size_t n_true = 0;
  for (size_t i = 0; i < judge.seen.size(); ++i) {
    const JudgeItem& it = judge.seen[i];
    // Find the positive this item came from.
    const ScoringSample* src = nullptr;
    for (const ScoringSample& p : pos) src = p.tokens == it.tokens ? &p : src;
    ASSERT_NE(src, nullptr);
    ASSERT_EQ(it.marked.size(), it.tokens.size());
    size_t n_marked = 0, n_active = 0, n_marked_active = 0;
    for (size_t k = 0; k < it.tokens.size(); ++k) {
      n_marked += it.marked[k];
      n_active += src->acts[k] > 0;
      n_marked_active += it.marked[k] && src->acts[k] > 0;
    }
    EXPECT_EQ(n_marked, n_active);
    EXPECT_EQ(n_marked_active, r.truth[i] ? n_active : 0);
    n_true += r.truth[i];
  }
  EXPECT_EQ(n_true, 20u);
  EXPECT_DOUBLE_EQ(r.score.balanced_accuracy, 1.0);
  // The wrong markings depend on the seed (compared per context, as the order does too); the same
  // seed repeats them.
  const auto wrong_marks = [&](uint64_t seed) {
    const std::vector<bool> truth = run_fuzzing(judge, "\"Lily\"", pos, seed).truth;
    std::map<std::vector<std::string>, std::vector<bool>> out;
    for (size_t i = 0; i < truth.size(); ++i) {
      if (!truth[i]) out[judge.seen[i].tokens] = judge.seen[i].marked;
    }
    return out;
  };
  EXPECT_EQ(wrong_marks(9), wrong_marks(9));
  EXPECT_NE(wrong_marks(9), wrong_marks(10));
  EXPECT_EQ(run_fuzzing(judge, "\"Lily\"", pos, 9).truth, r.truth);
}

// ---- LLM judge
// -----------------------------------------------------------------------------------

// Answers a judge prompt like an ideal judge of the feature " Lily": detection and expression by
// the presence of "Lily", fuzzing by whether every marked span is <<Lily>>.
std::string answer_by_matching(const std::vector<ChatMessage>& messages) {
  const std::string& user = messages.at(1).content;
  const bool fuzzing = messages.at(0).content.find("marking is correct") != std::string::npos;
  const std::regex line("^Example \\d+: (.*)$", std::regex::multiline);
  std::vector<std::string> answers;
  for (std::sregex_iterator it(user.begin(), user.end(), line), end; it != end; ++it) {
    const std::string text = (*it)[1];
    bool yes = text.find("Lily") != std::string::npos;
    if (fuzzing) {
      const std::regex span("<<([^>]*)>>"), lilies("Lily( Lily)*");
      bool all_lily = true, any = false;
      for (std::sregex_iterator s(text.begin(), text.end(), span), e; s != e; ++s) {
        any = true;
        all_lily = all_lily && std::regex_match((*s)[1].str(), lilies);
      }
      yes = any && all_lily;
    }
    answers.push_back(yes ? "0.9" : "0.1");
  }
  std::string out = "Here you go: [";
  for (size_t i = 0; i < answers.size(); ++i) out += (i ? ", " : "") + answers[i];
  return out + "]";
}

TEST(AutointerpScoring, LlmJudgeByMatching) {
  int calls = 0;
  std::string last_user;
  LlmJudge judge(
      [&](const std::vector<ChatMessage>& m) {
        ++calls;
        last_user = m.at(1).content;
        return answer_by_matching(m);
      },
      "test-model", 10);
  EXPECT_EQ(judge.name(), "test-model");

  // 23 items in batches of 10: 3 calls, the probabilities back in order.
  std::vector<ScoringSample> pos = synthetic(23, true, 11), neg = synthetic(23, false, 12);
  std::vector<JudgeItem> items;
  for (size_t i = 0; i < 23; ++i) items.push_back({(i % 2 ? pos : neg)[i].tokens, {}});
  const std::vector<double> p = judge.detect("\"Lily\"", items);
  EXPECT_EQ(calls, 3);
  EXPECT_NE(last_user.find("Example 3: "), std::string::npos);
  EXPECT_EQ(last_user.find("Example 4: "), std::string::npos);
  EXPECT_NE(last_user.find("JSON list of 3 numbers"), std::string::npos);
  ASSERT_EQ(p.size(), 23u);
  for (size_t i = 0; i < 23; ++i) EXPECT_EQ(p[i], i % 2 ? 0.9 : 0.1) << i;
  EXPECT_EQ(judge.detect("x", {}), std::vector<double>{});
  EXPECT_EQ(calls, 3);

  calls = 0;
  const MethodResult det = run_detection(judge, "the token \"Lily\"", pos, neg, 1);
  EXPECT_EQ(calls, 5);  // 46 items
  EXPECT_DOUBLE_EQ(det.score.balanced_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(det.score.auroc.value_or(0), 1.0);
  const MethodResult fuzz = run_fuzzing(judge, "the token \"Lily\"", pos, 1);
  EXPECT_DOUBLE_EQ(fuzz.score.balanced_accuracy, 1.0);

  LlmJudge small([&](const std::vector<ChatMessage>& m) { return answer_by_matching(m); }, "m", 4);
  const InterventionResult r =
      intervention_score(small, "\"Lily\"", {"Lily ran", "Lily sat", "a dog", "Lily"},
                         {"a dog", "the cat", "Lily", "he ran", "she sat"});
  EXPECT_NEAR(r.steered, (0.9 * 3 + 0.1) / 4, 1e-12);
  EXPECT_NEAR(r.unsteered, (0.9 + 0.1 * 4) / 5, 1e-12);
  EXPECT_GT(r.value, 0);
  expect_error([] { LlmJudge([](const auto&) { return std::string(); }, "m", 0); },
               ErrorCode::kInvalidArgument, "batch must be > 0");
}

TEST(AutointerpScoring, LlmJudgeRetriesOnce) {
  std::vector<std::vector<ChatMessage>> requests;
  std::vector<std::string> replies;
  const ChatFn scripted = [&](const std::vector<ChatMessage>& m) {
    requests.push_back(m);
    const std::string r = replies.at(requests.size() - 1);
    return r;
  };
  const std::vector<JudgeItem> items = {item({" Lily"}), item({" dog"})};

  replies = {"I am not sure.", "[1, 0]"};
  LlmJudge judge(scripted, "test-model", 10);
  EXPECT_EQ(judge.detect("\"Lily\"", items), (std::vector<double>{1, 0}));
  ASSERT_EQ(requests.size(), 2u);
  // The retry is a follow-up turn that shows the bad reply and says what was expected.
  ASSERT_EQ(requests[1].size(), 4u);
  EXPECT_EQ(requests[1][2].role, "assistant");
  EXPECT_EQ(requests[1][2].content, "I am not sure.");
  EXPECT_EQ(requests[1][3].role, "user");
  EXPECT_NE(requests[1][3].content.find("JSON list of 2 numbers"), std::string::npos);

  requests.clear();
  replies = {"garbage", "[0.5]"};
  expect_error(
      [&] {
        judge.fuzz("\"Lily\"", {item({" Lily"}, {true}), item({" a"}, {true})});
      },
      ErrorCode::kFormat,
      "judge test-model (after one retry): judgements: expected a JSON list of 2");
  EXPECT_EQ(requests.size(), 2u);

  // Errors of the chat function itself are not retried here (the client retries those).
  int calls = 0;
  LlmJudge failing(
      [&](const std::vector<ChatMessage>&) -> std::string {
        ++calls;
        throw Error(ErrorCode::kIo, "connection refused");
      },
      "m");
  expect_error([&] { failing.expresses("x", {"a"}); }, ErrorCode::kIo, "connection refused");
  EXPECT_EQ(calls, 1);
}

// ---- intervention and details ------------------------------------------------------------------

TEST(AutointerpScoring, InterventionScoreSign) {
  OfflineJudge judge;
  const std::vector<std::string> with = {"Lily went home.", "I saw Lily", "Lily!", "a dog"};
  const std::vector<std::string> without = {"the dog ran", "a cat sat", "Lily sat", "big red"};
  InterventionResult r = intervention_score(judge, "the token \"Lily\"", with, without);
  EXPECT_DOUBLE_EQ(r.steered, 0.75);
  EXPECT_DOUBLE_EQ(r.unsteered, 0.25);
  EXPECT_DOUBLE_EQ(r.value, 0.5);
  EXPECT_EQ(r.n, 4);
  r = intervention_score(judge, "the token \"Lily\"", without, with);
  EXPECT_DOUBLE_EQ(r.value, -0.5);
  r = intervention_score(judge, "the token \"Lily\"", with, with);
  EXPECT_DOUBLE_EQ(r.value, 0.0);
  expect_error([&] { intervention_score(judge, "x", {}, with); }, ErrorCode::kInvalidArgument,
               "got 0 and 4");
}

TEST(AutointerpScoring, DetailsJson) {
  MethodResult m;
  m.truth = {true, false};
  m.prob = {0.75, 0.25};
  m.score = score_binary(m.truth, m.prob);
  const nlohmann::json j = nlohmann::json::parse(details_json(m));
  EXPECT_EQ(j.at("truth"), nlohmann::json::parse("[1, 0]"));
  EXPECT_EQ(j.at("prob"), nlohmann::json::parse("[0.75, 0.25]"));
  EXPECT_EQ(j.at("n_pos"), 1);
  InterventionResult r{0.5, 0.75, 0.25, 4};
  const nlohmann::json k = nlohmann::json::parse(details_json(r));
  EXPECT_EQ(k.at("steered"), 0.75);
  EXPECT_EQ(k.at("unsteered"), 0.25);
  EXPECT_EQ(k.at("n"), 4);
}

}  // namespace
}  // namespace glassbox::autointerp
