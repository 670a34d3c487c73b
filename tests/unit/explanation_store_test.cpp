// ExplanationStore over a real feature database written by FeatureDbWriter: tables created beside
// the analysis schema (which FeatureDb still reads), round trips and upserts of explanations,
// scores and cached replies, base rates against a brute-force count, refusal of foreign and
// unfinished files, durability across reopening, and concurrent writers.
#include "autointerp/explanation_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "analysis/sqlite.h"
#include "expect_error.h"

namespace glassbox::autointerp {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

FeatureExample ctx(std::vector<int32_t> ids, std::vector<float> acts) {
  FeatureExample e;
  e.ids = std::move(ids);
  e.acts = std::move(acts);
  e.act = *std::max_element(e.acts.begin(), e.acts.end());
  e.text = "text";
  return e;
}

class ExplanationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("explanation_store_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "f.db").string();
    vocab_ = {{"<s>", ""},          {"\u2581Lily", "Lily"}, {"\u2581was", "was"},
              {"\u2581the", "the"}, {"\u2581Lucy", "Lucy"}, {".", "."},
              {"<0x0A>", ""}};
    // Feature 0 fires on Lily; 1 is dead; 2 has two bands; 3 one top example.
    FeatureDetail f0, f1, f2, f3;
    f0.top = {ctx({3, 1, 2}, {0, 2, 0}), ctx({1, 2, 5}, {1.5f, 0, 0})};
    f0.quantiles.push_back({0, 1, {ctx({3, 1}, {0, 1})}});
    f2.top = {ctx({3, 3, 4, 5}, {0, 0, 1, 0})};
    f2.quantiles.push_back({0, 0.5f, {ctx({6, 4}, {0, 0.5f})}});
    f2.quantiles.push_back({0.5f, 1, {ctx({4, 2, 3, 1}, {1, 0, 0, 0})}});
    f3.top = {ctx({5, 3, 5, 3}, {0, 1, 0, 0})};
    details_ = {f0, f1, f2, f3};
    for (size_t f = 0; f < details_.size(); ++f) details_[f].summary.id = static_cast<int64_t>(f);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(bool finish) {
    FeatureDbWriter w(path_);
    w.begin();
    w.set_meta("d_sae", std::to_string(details_.size()));
    w.put_vocab(vocab_);
    for (const FeatureDetail& d : details_) w.put_feature(d);
    if (finish) w.set_meta("status", "done");
    w.commit();
  }

  std::set<std::string> tables() const {
    sqlite::Db db(path_, SQLITE_OPEN_READONLY);
    sqlite::Stmt q(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
    std::set<std::string> out;
    while (q.step()) out.insert(q.text(0));
    return out;
  }

  fs::path dir_;
  std::string path_;
  std::vector<VocabEntry> vocab_;
  std::vector<FeatureDetail> details_;
};

// "YYYY-MM-DDTHH:MM:SSZ" (std::regex would drag g++ 12's false warnings into ASan builds).
bool is_iso8601(const std::string& s) {
  const std::string shape = "dddd-dd-ddTdd:dd:ddZ";
  if (s.size() != shape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) {
      return false;
    }
  }
  return true;
}

Explanation make_explanation(int64_t feature, std::string explainer, std::string text) {
  Explanation e;
  e.feature = feature;
  e.explainer = std::move(explainer);
  e.explanation = std::move(text);
  e.prompt = "prompt";
  e.model = e.explainer;
  e.endpoint = "http://127.0.0.1:8080/v1";
  e.prompt_tokens = 120;
  e.completion_tokens = 7;
  return e;
}

ScoreRecord make_score(int64_t feature, std::string method, double value) {
  ScoreRecord s;
  s.feature = feature;
  s.explainer = "offline";
  s.method = std::move(method);
  s.judge = "offline";
  s.value = value;
  s.n = 40;
  s.details = "{\"p\":[1,0]}";
  return s;
}

TEST_F(ExplanationStoreTest, CreatesTablesBesideTheAnalysisSchema) {
  write(true);
  EXPECT_EQ(tables().count("explanations"), 0u);
  { ExplanationStore store(path_); }
  const auto t = tables();
  EXPECT_EQ(t.count("explanations"), 1u);
  EXPECT_EQ(t.count("scores"), 1u);
  EXPECT_EQ(t.count("llm_cache"), 1u);
  ExplanationStore again(path_);  // tables exist: opens as well
  const auto db = FeatureDb::open(path_);
  ASSERT_TRUE(db->detail(0).has_value());
  EXPECT_EQ(db->detail(0)->top.size(), 2u);
}

TEST_F(ExplanationStoreTest, ExplanationsRoundTripAndUpsert) {
  write(true);
  ExplanationStore store(path_);
  Explanation old = make_explanation(0, "offline", "fires on \"Lily\"");
  old.endpoint = "";
  old.created = "2000-01-01T00:00:00Z";
  store.put_explanation(old);
  store.put_explanation(make_explanation(0, "gpt-x", "names of girls"));
  store.put_explanation(make_explanation(2, "gpt-x", "Lucy"));

  const auto got = store.explanation(0, "offline");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->explanation, "fires on \"Lily\"");
  EXPECT_EQ(got->endpoint, "");
  EXPECT_EQ(got->created, "2000-01-01T00:00:00Z");
  EXPECT_EQ(got->prompt_tokens, 120);
  EXPECT_EQ(got->completion_tokens, 7);
  const auto llm = store.explanation(0, "gpt-x");
  ASSERT_TRUE(llm.has_value());
  EXPECT_TRUE(is_iso8601(llm->created)) << llm->created;
  EXPECT_TRUE(is_iso8601(now_iso8601()));
  EXPECT_FALSE(is_iso8601("2026-11-27 21:40:00Z"));
  EXPECT_FALSE(store.explanation(1, "offline").has_value());
  EXPECT_FALSE(store.explanation(0, "other").has_value());

  auto all = store.explanations(0);  // newest first
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].explainer, "gpt-x");
  EXPECT_EQ(all[1].explainer, "offline");

  old.explanation = "fires on \"Lucy\"";  // upsert replaces, and is now the newest
  old.created = "";
  store.put_explanation(old);
  all = store.explanations(0);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].explainer, "offline");
  EXPECT_EQ(all[0].explanation, "fires on \"Lucy\"");

  EXPECT_EQ(store.explained("gpt-x"), (std::set<int64_t>{0, 2}));
  EXPECT_EQ(store.explained("offline"), (std::set<int64_t>{0}));
  EXPECT_TRUE(store.explained("nobody").empty());
}

TEST_F(ExplanationStoreTest, ScoresRoundTripWithNullsAndUpsert) {
  write(true);
  ExplanationStore store(path_);
  ScoreRecord det = make_score(0, "detection", 0.75);
  det.accuracy = 0.8;
  det.balanced_accuracy = 0.75;
  det.auroc = std::nullopt;  // one class only
  store.put_score(det);
  ScoreRecord fuzz = make_score(0, "fuzzing", 0.5);
  fuzz.auroc = 0.25;
  store.put_score(fuzz);
  store.put_score(make_score(0, "intervention", -0.5));

  auto got = store.score(0, "offline", "detection", "offline");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->accuracy, std::optional<double>(0.8));
  EXPECT_EQ(got->balanced_accuracy, std::optional<double>(0.75));
  EXPECT_FALSE(got->auroc.has_value());
  EXPECT_EQ(got->value, 0.75);
  EXPECT_EQ(got->n, 40);
  EXPECT_EQ(got->details, "{\"p\":[1,0]}");
  EXPECT_FALSE(got->created.empty());
  got = store.score(0, "offline", "fuzzing", "offline");
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->accuracy.has_value());
  EXPECT_EQ(got->auroc, std::optional<double>(0.25));
  EXPECT_FALSE(store.score(0, "offline", "detection", "gpt-x").has_value());
  EXPECT_FALSE(store.score(1, "offline", "detection", "offline").has_value());

  det.value = 0.9;  // upsert
  det.auroc = 0.95;
  store.put_score(det);
  const auto all = store.scores(0);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].method, "detection");
  EXPECT_EQ(all[0].value, 0.9);
  EXPECT_EQ(all[0].auroc, std::optional<double>(0.95));
  EXPECT_EQ(all[1].method, "fuzzing");
  EXPECT_EQ(all[2].value, -0.5);
  EXPECT_TRUE(store.scores(3).empty());
}

TEST_F(ExplanationStoreTest, CacheRoundTripAndKey) {
  write(true);
  ExplanationStore store(path_);
  EXPECT_EQ(cache_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string key = cache_key("{\"model\":\"m\"}");
  EXPECT_FALSE(store.cached(key).has_value());
  store.put_cached(key, {"[EXPLANATION]: girls' names", 300, 12});
  auto got = store.cached(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->response, "[EXPLANATION]: girls' names");
  EXPECT_EQ(got->prompt_tokens, 300);
  EXPECT_EQ(got->completion_tokens, 12);
  store.put_cached(key, {"again", 1, 2});
  got = store.cached(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->response, "again");
  EXPECT_FALSE(store.cached(cache_key("other")).has_value());
}

TEST_F(ExplanationStoreTest, VocabAndBaseRatesMatchBruteForce) {
  write(true);
  ExplanationStore store(path_);
  const auto vocab = store.vocab();
  ASSERT_EQ(vocab.size(), vocab_.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    EXPECT_EQ(vocab[i].piece, vocab_[i].piece);
    EXPECT_EQ(vocab[i].text, vocab_[i].text);
  }

  std::vector<int64_t> counts(vocab_.size(), 0);
  std::map<uint64_t, int64_t> bigrams;
  int64_t total = 0;
  auto add = [&](const FeatureExample& e) {
    for (size_t i = 0; i < e.ids.size(); ++i) {
      ++counts[e.ids[i]];
      ++total;
      if (i > 0) ++bigrams[bigram_key(e.ids[i - 1], e.ids[i])];
    }
  };
  for (const FeatureDetail& d : details_) {
    for (const auto& e : d.top) add(e);
    for (const auto& b : d.quantiles) {
      for (const auto& e : b.examples) add(e);
    }
  }
  const BaseRates base = store.base_rates();
  EXPECT_EQ(base.total, total);
  EXPECT_EQ(base.total, 22);
  EXPECT_EQ(base.counts, counts);
  EXPECT_EQ(base.bigrams,
            (std::vector<std::pair<uint64_t, int64_t>>(bigrams.begin(), bigrams.end())));
  EXPECT_EQ(base.bigram_count(3, 1), 3);  // f0 twice, and f2's second band ends in "the Lily"
}

TEST_F(ExplanationStoreTest, ExplainsAStoredFeature) {
  write(true);
  ExplanationStore store(path_);
  const BaseRates base = store.base_rates();
  const auto detail = FeatureDb::open(path_)->detail(0);
  ASSERT_TRUE(detail.has_value());
  const auto x = explain_offline(*detail, base, store.vocab());
  ASSERT_TRUE(x.has_value());
  // Firing: Lily x3 of 3 positions; Lily is 4 of the 22 stored positions: lift 22 / 4 = 5.5.
  ASSERT_FALSE(x->tokens.empty());
  EXPECT_EQ(x->tokens[0].text, "Lily");
  EXPECT_NEAR(x->tokens[0].lift, 5.5, 1e-12);
  EXPECT_EQ(x->text.rfind("fires on \"Lily\" (100% of activations, 5.5x base rate)", 0), 0u)
      << x->text;
  EXPECT_FALSE(explain_offline(*FeatureDb::open(path_)->detail(1), base, store.vocab()));
}

TEST_F(ExplanationStoreTest, RefusesWhatIsNotAFinishedFeatureDatabase) {
  expect_error([&] { ExplanationStore s(path_); }, ErrorCode::kIo, path_);
  { std::ofstream(path_) << std::string(3000, 'x'); }
  expect_error([&] { ExplanationStore s(path_); }, ErrorCode::kFormat,
               path_ + ": not a glassbox feature database");
  fs::remove(path_);
  {
    sqlite::Db other(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    other.exec("CREATE TABLE t(x); CREATE TABLE meta(key TEXT, value TEXT);");
    other.exec("INSERT INTO meta VALUES ('format', 'something-else')");
  }
  expect_error([&] { ExplanationStore s(path_); }, ErrorCode::kFormat,
               path_ + ": not a glassbox feature database (meta format 'something-else')");
  EXPECT_EQ(tables(), (std::set<std::string>{"t", "meta"}));  // left untouched
  fs::remove(path_);
  write(false);
  expect_error([&] { ExplanationStore s(path_); }, ErrorCode::kFormat,
               path_ + ": analysis unfinished (status 'running'");
  EXPECT_EQ(tables().count("explanations"), 0u);
}

TEST_F(ExplanationStoreTest, WritesAreDurableWhenPutReturns) {
  write(true);
  {
    ExplanationStore store(path_);
    store.put_explanation(make_explanation(3, "offline", "dots"));
    store.put_score(make_score(3, "detection", 0.5));
    store.put_cached("k", {"reply", 1, 2});
    // Another connection sees the rows while the store is still open: committed, not buffered.
    sqlite::Db other(path_, SQLITE_OPEN_READONLY);
    sqlite::Stmt q(other,
                   "SELECT (SELECT COUNT(*) FROM explanations) + (SELECT COUNT(*) FROM scores) + "
                   "(SELECT COUNT(*) FROM llm_cache)");
    ASSERT_TRUE(q.step());
    EXPECT_EQ(q.i64(0), 3);
  }
  ExplanationStore reopened(path_);
  ASSERT_TRUE(reopened.explanation(3, "offline").has_value());
  EXPECT_EQ(reopened.explanation(3, "offline")->explanation, "dots");
  EXPECT_TRUE(reopened.score(3, "offline", "detection", "offline").has_value());
  ASSERT_TRUE(reopened.cached("k").has_value());
  EXPECT_EQ(reopened.cached("k")->response, "reply");
}

TEST_F(ExplanationStoreTest, FourThreadsWriteDistinctRows) {
  write(true);
  ExplanationStore store(path_);
  constexpr int kThreads = 4, kEach = 10;  // each put is a synced commit
  std::vector<std::thread> threads;
  std::mutex errors_mu;
  std::string errors;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, &errors, &errors_mu, t] {
      try {
        for (int i = 0; i < kEach; ++i) {
          const int64_t f = t * kEach + i;
          store.put_explanation(make_explanation(f, "gpt-x", "feature " + std::to_string(f)));
          store.put_score(make_score(f, "detection", 0.01 * static_cast<double>(i)));
          store.put_cached("key" + std::to_string(f), {"reply " + std::to_string(f), f, 1});
          store.explained("gpt-x");  // readers interleave with the writers
        }
      } catch (const Error& e) {  // e.g. two transactions interleaved on the one connection
        const std::lock_guard lock(errors_mu);
        errors += std::string(e.what()) + "\n";
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors, "");
  const std::set<int64_t> done = store.explained("gpt-x");
  ASSERT_EQ(done.size(), static_cast<size_t>(kThreads * kEach));
  for (int64_t f = 0; f < kThreads * kEach; ++f) {
    ASSERT_EQ(done.count(f), 1u) << f;
    EXPECT_EQ(store.explanation(f, "gpt-x")->explanation, "feature " + std::to_string(f));
    EXPECT_TRUE(store.score(f, "offline", "detection", "offline").has_value());
    EXPECT_EQ(store.cached("key" + std::to_string(f))->response, "reply " + std::to_string(f));
  }
}

}  // namespace
}  // namespace glassbox::autointerp
