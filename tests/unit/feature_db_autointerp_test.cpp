// FeatureDb reading the autointerp tables (docs/autointerp.md) that `glassbox explain` / `score`
// add to a feature database: the primary explanation (newest LLM one over offline), the scores of
// the primary per method (newest judge), sorting by score with missing ones last, text search
// over explanation text OR'ed with the example FTS, and a database without the tables reading
// as before. The tables and rows are written here with raw SQL, exactly per the design doc, so
// the test does not depend on the writer under construction.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "expect_error.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

// docs/autointerp.md, "Tables".
constexpr const char* kExplanationsTable = R"sql(
CREATE TABLE explanations(feature INTEGER NOT NULL, explainer TEXT NOT NULL,
  explanation TEXT NOT NULL, prompt TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL,
  created TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
  PRIMARY KEY(feature, explainer));
)sql";
constexpr const char* kScoresTables = R"sql(
CREATE TABLE scores(feature INTEGER NOT NULL, explainer TEXT NOT NULL, method TEXT NOT NULL,
  judge TEXT NOT NULL, accuracy REAL, balanced_accuracy REAL, auroc REAL, value REAL NOT NULL,
  n INTEGER NOT NULL, details TEXT NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY(feature, explainer, method, judge));
CREATE TABLE llm_cache(key TEXT PRIMARY KEY, response TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created TEXT NOT NULL);
)sql";

// Rows inserted in an order that differs from `created`, so "newest" cannot come from rowids.
constexpr const char* kExplanationRows = R"sql(
INSERT INTO explanations VALUES
  (0, 'gpt-m', 'Feline whiskers, kitten and sky', 'p', 'gpt-m', 'http://127.0.0.1:1/v1',
   '2024-03-01T00:00:00Z', 120, 9),
  (0, 'gpt-z', 'ancient quokka', 'p', 'gpt-z', 'http://127.0.0.1:1/v1', '2024-01-15T00:00:00Z',
   100, 8),
  (0, 'offline', 'fires on "cat" (90% of activations, 5x base rate)', '', 'offline', '',
   '2024-01-01T00:00:00Z', 0, 0),
  (0, 'gpt-a', 'zebra stripes', 'p', 'gpt-a', 'http://127.0.0.1:1/v1', '2024-02-01T00:00:00Z',
   100, 8),
  (1, 'offline', 'fires on "dog" (50%, 3x); the hound', '', 'offline', '',
   '2024-01-01T00:00:00Z', 0, 0),
  (2, 'offline', 'fires on "tree" (newer than the LLM one)', '', 'offline', '',
   '2024-05-01T00:00:00Z', 0, 0),
  (2, 'gpt-a', 'tree_house and 2000 words', 'p', 'gpt-a', 'http://127.0.0.1:1/v1',
   '2024-02-01T00:00:00Z', 90, 7),
  (4, 'offline', 'fires on nothing', '', 'offline', '', '2024-01-01T00:00:00Z', 0, 0);
)sql";
constexpr const char* kScoreRows = R"sql(
INSERT INTO scores VALUES
  (0, 'gpt-m', 'detection', 'offline', 0.97, 0.97, 0.97, 0.97, 40, '{}', '2024-03-02T00:00:00Z'),
  (0, 'gpt-m', 'detection', 'gpt-j', 0.75, 0.8, 0.85, 0.8, 40, '{}', '2024-03-05T00:00:00Z'),
  (0, 'gpt-m', 'detection', 'aaa-judge', 0.99, 0.99, 0.99, 0.99, 40, '{}',
   '2024-03-01T12:00:00Z'),
  (0, 'gpt-m', 'fuzzing', 'offline', 0.7, 0.7, NULL, 0.7, 20, '{}', '2024-03-02T00:00:00Z'),
  (0, 'gpt-m', 'intervention', 'offline', NULL, NULL, NULL, -0.25, 8, '{}',
   '2024-03-03T00:00:00Z'),
  (0, 'gpt-a', 'detection', 'offline', 0.99, 0.99, 0.99, 0.99, 40, '{}', '2024-02-02T00:00:00Z'),
  (0, 'gpt-z', 'detection', 'offline', 0.98, 0.98, 0.98, 0.98, 40, '{}', '2024-01-16T00:00:00Z'),
  (0, 'offline', 'detection', 'offline', 0.1, 0.1, 0.1, 0.1, 40, '{}', '2024-01-02T00:00:00Z'),
  (1, 'offline', 'detection', 'offline', 0.5, 0.5, NULL, 0.5, 40, '{}', '2024-01-02T00:00:00Z'),
  (1, 'offline', 'fuzzing', 'offline', 0.9, 0.9, 0.95, 0.9, 40, '{}', '2024-01-02T00:00:00Z'),
  (1, 'offline', 'intervention', 'offline', NULL, NULL, NULL, 0.4, 8, '{}',
   '2024-01-03T00:00:00Z'),
  (2, 'gpt-a', 'detection', 'offline', 0.95, 0.95, 0.97, 0.95, 40, '{}',
   '2024-02-02T00:00:00Z'),
  (2, 'offline', 'fuzzing', 'offline', 0.99, 0.99, 0.99, 0.99, 40, '{}', '2024-05-02T00:00:00Z'),
  (3, 'ghost', 'detection', 'offline', 1.0, 1.0, 1.0, 1.0, 40, '{}', '2024-01-02T00:00:00Z');
)sql";

class FeatureDbAutointerp : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("feature_db_autointerp_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "f.db").string();
    write_analysis();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Five latents as `glassbox analyze` writes them; 4 is dead, 3 is never explained.
  void write_analysis() {
    FeatureDbWriter w(path_);
    w.begin();
    w.set_meta("d_sae", "5");
    w.put_vocab({{"<s>", "<s>", "<s>"},
                 {"\u2581cat", "cat", " cat"},
                 {"\u2581dog", "dog", " dog"},
                 {"\u2581tree", "tree", " tree"},
                 {"\u2581sky", "sky", " sky"}});
    const char* texts[5] = {"the cat sat", "a dog ran", "big tree", "blue sky", ""};
    for (int64_t f = 0; f < 5; ++f) {
      FeatureDetail d;
      d.summary.id = f;
      d.summary.freq = f == 4 ? 0.0 : 0.5 - 0.1 * static_cast<double>(f);
      d.summary.n_fires = f == 4 ? 0 : 10 - f;
      d.summary.mean_act = d.summary.max_act = 1.0;
      d.hist_edges = {0, 1};
      d.hist_counts = {1};
      if (f < 4) {
        FeatureExample e;
        e.act = 1.0;
        e.ids = {static_cast<int32_t>(f + 1)};
        e.acts = {1.0f};
        e.text = texts[f];
        d.top.push_back(e);
      }
      w.put_feature(d);
    }
    w.set_meta("status", "done");
    w.commit();
  }

  // Runs SQL on the database through the SQLite C API (as another process would).
  void exec(const std::vector<const char*>& statements) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    for (const char* sql : statements) {
      char* err = nullptr;
      EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
      sqlite3_free(err);
    }
    sqlite3_close(db);
  }
  // What `glassbox explain` and `glassbox score` add.
  void add_autointerp() { exec({kExplanationsTable, kExplanationRows, kScoresTables, kScoreRows}); }

  static std::vector<int64_t> ids(const FeatureList& l) {
    std::vector<int64_t> out;
    for (const auto& f : l.features) out.push_back(f.id);
    return out;
  }
  std::vector<int64_t> sorted(const FeatureDb& db, const std::string& key, bool descending) {
    FeatureQuery q;
    q.sort = key;
    q.descending = descending;
    return ids(db.list(q));
  }
  std::vector<int64_t> search(const FeatureDb& db, const std::string& text) {
    FeatureQuery q;
    q.sort = "id";
    q.descending = false;
    q.text = text;
    const FeatureList l = db.list(q);
    EXPECT_EQ(l.total, static_cast<int64_t>(l.features.size())) << text;
    return ids(l);
  }

  fs::path dir_;
  std::string path_;
};

using Ids64 = std::vector<int64_t>;

TEST_F(FeatureDbAutointerp, WithoutTablesReadsAsBefore) {
  const auto db = FeatureDb::open(path_);
  const FeatureList l = db->list(FeatureQuery());
  EXPECT_FALSE(l.has_explanations);
  EXPECT_FALSE(l.has_scores);
  EXPECT_EQ(ids(l), (Ids64{0, 1, 2, 3, 4}));
  for (const auto& f : l.features) {
    EXPECT_TRUE(f.explanation.empty() && f.explainer.empty());
    EXPECT_FALSE(f.detection || f.fuzzing || f.intervention);
  }
  EXPECT_EQ(search(*db, "ran"), (Ids64{1}));
  EXPECT_EQ(search(*db, "feline"), (Ids64{}));
  const auto d = db->detail(0);
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->explanations.empty());
  EXPECT_TRUE(d->summary.explanation.empty());
  for (const char* key : {"detection", "fuzzing", "intervention"}) {
    FeatureQuery q;
    q.sort = key;
    expect_error([&] { db->list(q); }, ErrorCode::kInvalidArgument,
                 "sort: no scores in this database (run glassbox score)");
  }
  FeatureQuery q;
  q.sort = "accuracy";
  expect_error([&] { db->list(q); }, ErrorCode::kInvalidArgument,
               "(id, freq, mean_act, max_act, detection, fuzzing, intervention)");
}

TEST_F(FeatureDbAutointerp, ExplainedNotScored) {
  exec({kExplanationsTable, kExplanationRows});  // explain ran, score did not
  const auto db = FeatureDb::open(path_);
  FeatureList l = db->list(FeatureQuery());
  EXPECT_TRUE(l.has_explanations);
  EXPECT_FALSE(l.has_scores);
  EXPECT_EQ(l.features.at(0).explainer, "gpt-m");
  EXPECT_FALSE(l.features.at(0).detection.has_value());
  EXPECT_EQ(search(*db, "kitten"), (Ids64{0}));
  const auto d = db->detail(0);
  ASSERT_EQ(d->explanations.size(), 4u);
  EXPECT_TRUE(d->explanations[0].scores.empty());
  FeatureQuery q;
  q.sort = "fuzzing";
  expect_error([&] { db->list(q); }, ErrorCode::kInvalidArgument, "no scores in this database");
  exec({kScoresTables});  // score created its tables, wrote nothing yet: sorting works
  l = db->list(q);
  EXPECT_TRUE(l.has_scores);
  EXPECT_EQ(ids(l), (Ids64{0, 1, 2, 3, 4}));
}

TEST_F(FeatureDbAutointerp, PrimaryExplanationAndScores) {
  const auto db = FeatureDb::open(path_);  // opened before explain ran, as a running server
  add_autointerp();
  FeatureQuery q;
  q.sort = "id";
  q.descending = false;
  const FeatureList l = db->list(q);
  EXPECT_TRUE(l.has_explanations);
  EXPECT_TRUE(l.has_scores);
  ASSERT_EQ(l.features.size(), 5u);
  const FeatureSummary& f0 = l.features[0];
  EXPECT_EQ(f0.explainer, "gpt-m");  // the newest LLM explanation (neither first nor last name)
  EXPECT_EQ(f0.explanation, "Feline whiskers, kitten and sky");
  // The newest judge (gpt-j; not the highest value, first or last judge), and none of the
  // other explainers' scores.
  EXPECT_EQ(f0.detection, 0.8);
  EXPECT_EQ(f0.fuzzing, 0.7);
  EXPECT_EQ(f0.intervention, -0.25);
  const FeatureSummary& f1 = l.features[1];
  EXPECT_EQ(f1.explainer, "offline");  // no LLM explanation
  EXPECT_EQ(f1.detection, 0.5);
  EXPECT_EQ(f1.fuzzing, 0.9);
  EXPECT_EQ(f1.intervention, 0.4);
  const FeatureSummary& f2 = l.features[2];
  EXPECT_EQ(f2.explainer, "gpt-a");  // an LLM explanation wins over a newer offline one
  EXPECT_EQ(f2.explanation, "tree_house and 2000 words");
  EXPECT_EQ(f2.detection, 0.95);
  EXPECT_FALSE(f2.fuzzing.has_value());  // only the offline explanation has a fuzzing score
  EXPECT_FALSE(f2.intervention.has_value());
  const FeatureSummary& f3 = l.features[3];
  EXPECT_TRUE(f3.explainer.empty() && f3.explanation.empty());
  EXPECT_FALSE(f3.detection.has_value());  // a score of no explanation does not count
  EXPECT_EQ(l.features[4].explainer, "offline");
  EXPECT_FALSE(l.features[4].detection.has_value());

  // The detail carries every explanation, primary first, with all scores.
  const auto d = db->detail(0);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->summary.explainer, "gpt-m");
  EXPECT_EQ(d->summary.detection, 0.8);
  EXPECT_EQ(d->summary.intervention, -0.25);
  ASSERT_EQ(d->explanations.size(), 4u);
  EXPECT_EQ(d->explanations[0].explainer, "gpt-m");
  EXPECT_EQ(d->explanations[1].explainer, "gpt-a");
  EXPECT_EQ(d->explanations[2].explainer, "gpt-z");
  EXPECT_EQ(d->explanations[3].explainer, "offline");
  const ExplanationInfo& x = d->explanations[0];
  EXPECT_EQ(x.model, "gpt-m");
  EXPECT_EQ(x.endpoint, "http://127.0.0.1:1/v1");
  EXPECT_EQ(x.created, "2024-03-01T00:00:00Z");
  EXPECT_EQ(x.prompt_tokens, 120);
  EXPECT_EQ(x.completion_tokens, 9);
  ASSERT_EQ(x.scores.size(), 5u);
  EXPECT_EQ(x.scores[0].method, "detection");
  EXPECT_EQ(x.scores[0].judge, "gpt-j");
  EXPECT_EQ(x.scores[0].accuracy, 0.75);
  EXPECT_EQ(x.scores[0].balanced_accuracy, 0.8);
  EXPECT_EQ(x.scores[0].auroc, 0.85);
  EXPECT_EQ(x.scores[0].n, 40);
  EXPECT_EQ(x.scores[0].created, "2024-03-05T00:00:00Z");
  EXPECT_EQ(x.scores[1].judge, "offline");
  EXPECT_EQ(x.scores[2].judge, "aaa-judge");
  EXPECT_EQ(x.scores[3].method, "fuzzing");
  EXPECT_FALSE(x.scores[3].auroc.has_value());
  EXPECT_EQ(x.scores[4].method, "intervention");
  EXPECT_EQ(x.scores[4].value, -0.25);
  EXPECT_FALSE(x.scores[4].accuracy.has_value());
  EXPECT_EQ(d->explanations[3].endpoint, "");
  ASSERT_EQ(d->explanations[3].scores.size(), 1u);
  EXPECT_EQ(d->explanations[3].scores[0].value, 0.1);
  const auto d2 = db->detail(2);
  ASSERT_EQ(d2->explanations.size(), 2u);
  EXPECT_EQ(d2->explanations[0].explainer, "gpt-a");
  EXPECT_EQ(d2->summary.fuzzing, std::nullopt);
  EXPECT_TRUE(db->detail(3)->explanations.empty());
}

TEST_F(FeatureDbAutointerp, SortByScoreMissingLast) {
  add_autointerp();
  const auto db = FeatureDb::open(path_);
  EXPECT_EQ(sorted(*db, "detection", true), (Ids64{2, 0, 1, 3, 4}));
  EXPECT_EQ(sorted(*db, "detection", false), (Ids64{1, 0, 2, 3, 4}));
  EXPECT_EQ(sorted(*db, "fuzzing", true), (Ids64{1, 0, 2, 3, 4}));
  EXPECT_EQ(sorted(*db, "fuzzing", false), (Ids64{0, 1, 2, 3, 4}));
  EXPECT_EQ(sorted(*db, "intervention", false), (Ids64{0, 1, 2, 3, 4}));
  EXPECT_EQ(sorted(*db, "intervention", true), (Ids64{1, 0, 2, 3, 4}));
  FeatureQuery q;  // paging and filters apply to the score order
  q.sort = "detection";
  q.offset = 1;
  q.limit = 2;
  FeatureList l = db->list(q);
  EXPECT_EQ(l.total, 5);
  EXPECT_EQ(ids(l), (Ids64{0, 1}));
  EXPECT_EQ(l.features[0].detection, 0.8);  // page rows still carry their explanation
  q = FeatureQuery();
  q.sort = "detection";
  q.descending = false;
  q.include_dead = false;
  q.max_freq = 0.45;
  l = db->list(q);
  EXPECT_EQ(l.total, 3);
  EXPECT_EQ(ids(l), (Ids64{1, 2, 3}));
  q.text = "tree";
  EXPECT_EQ(ids(db->list(q)), (Ids64{2}));
}

TEST_F(FeatureDbAutointerp, TextSearchesExplanationsAndExamples) {
  add_autointerp();
  const auto db = FeatureDb::open(path_);
  EXPECT_EQ(search(*db, "FELINE"), (Ids64{0}));         // case-insensitive
  EXPECT_EQ(search(*db, "itten"), (Ids64{0}));          // any substring
  EXPECT_EQ(search(*db, "feline kitten"), (Ids64{0}));  // all words
  EXPECT_EQ(search(*db, "feline hound"), (Ids64{}));    // ... in the same explanation
  EXPECT_EQ(search(*db, "zebra"), (Ids64{}));           // not the primary explanation
  EXPECT_EQ(search(*db, "quokka"), (Ids64{}));
  EXPECT_EQ(search(*db, "newer"), (Ids64{}));      // nor an offline one behind an LLM one
  EXPECT_EQ(search(*db, "hound"), (Ids64{1}));     // an offline primary
  EXPECT_EQ(search(*db, "ran"), (Ids64{1}));       // example text still matches
  EXPECT_EQ(search(*db, "sky"), (Ids64{0, 3}));    // explanation of 0 OR example of 3
  EXPECT_EQ(search(*db, "e_h"), (Ids64{2}));       // '_' literal ("the hound" has "e h")
  EXPECT_EQ(search(*db, "0%"), (Ids64{1}));        // '%' literal ("2000 words" has "0 w")
  EXPECT_EQ(search(*db, "\"cat AND"), (Ids64{}));  // never an SQL or FTS syntax error
  EXPECT_EQ(search(*db, "\\"), (Ids64{}));
}

}  // namespace
}  // namespace glassbox
