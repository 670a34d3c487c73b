// FeatureStats against a brute-force recomputation (top examples, ties, counts, bands), resume
// through serialize/deserialize, thread independence; FeatureDb read API over a written database
// (list sort/filter/search, detail, errors, concurrent readers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <tuple>

#include "analysis/feature_db.h"
#include "analysis/feature_stats.h"
#include "expect_error.h"

namespace glassbox {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

struct Window {
  std::vector<int32_t> ids;  // BOS first
  std::vector<float> acts;   // [n, d_sae]
  int64_t doc = 0, offset = 0;
};

// Random sparse windows with many exact ties (activations on a coarse grid).
std::vector<Window> make_windows(int64_t d_sae, int n_windows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Window> out;
  for (int w = 0; w < n_windows; ++w) {
    Window win;
    win.doc = w / 3;
    win.offset = (w % 3) * 9;
    const int n = 3 + static_cast<int>(rng() % 7);
    win.ids.push_back(1);
    for (int i = 0; i < n; ++i) win.ids.push_back(static_cast<int32_t>(2 + rng() % 50));
    for (int i = 0; i < n * d_sae; ++i) {
      win.acts.push_back(rng() % 3 == 0 ? static_cast<float>(1 + rng() % 6) * 0.5f : 0.0f);
    }
    out.push_back(std::move(win));
  }
  return out;
}

void feed(FeatureStats& s, const std::vector<Window>& ws, int pass, ThreadPool& pool, size_t from,
          size_t to) {
  for (size_t i = from; i < to; ++i) {
    s.add_window(pass, ws[i].ids, ws[i].acts.data(), ws[i].doc, ws[i].offset, pool);
  }
}

FeatureStats run_all(int64_t d_sae, const StatsOptions& o, const std::vector<Window>& ws,
                     int threads) {
  ThreadPool pool(threads);
  FeatureStats s(d_sae, o);
  feed(s, ws, 1, pool, 0, ws.size());
  s.finish_pass1();
  feed(s, ws, 2, pool, 0, ws.size());
  return s;
}

void expect_same(const FeatureDetail& a, const FeatureDetail& b) {
  EXPECT_EQ(a.summary.n_fires, b.summary.n_fires);
  EXPECT_EQ(a.summary.mean_act, b.summary.mean_act);
  EXPECT_EQ(a.hist_counts, b.hist_counts);
  ASSERT_EQ(a.top.size(), b.top.size());
  for (size_t i = 0; i < a.top.size(); ++i) {
    EXPECT_EQ(std::tie(a.top[i].doc, a.top[i].pos), std::tie(b.top[i].doc, b.top[i].pos));
    EXPECT_EQ(a.top[i].acts, b.top[i].acts);
  }
  ASSERT_EQ(a.quantiles.size(), b.quantiles.size());
  for (size_t q = 0; q < a.quantiles.size(); ++q) {
    EXPECT_EQ(a.quantiles[q].lo, b.quantiles[q].lo);
    ASSERT_EQ(a.quantiles[q].examples.size(), b.quantiles[q].examples.size());
    for (size_t i = 0; i < a.quantiles[q].examples.size(); ++i) {
      EXPECT_EQ(a.quantiles[q].examples[i].pos, b.quantiles[q].examples[i].pos);
    }
  }
}

TEST(FeatureStats, MatchesBruteForce) {
  const int64_t m = 5;
  StatsOptions o;
  o.top_k = 4;
  o.context = 2;
  o.quantiles = 3;
  o.per_quantile = 2;
  o.bins = 4;
  const auto ws = make_windows(m, 24, 1);
  const FeatureStats s = run_all(m, o, ws, 2);
  int64_t tokens = 0;
  for (const Window& w : ws) tokens += static_cast<int64_t>(w.ids.size()) - 1;
  for (int64_t f = 0; f < m; ++f) {
    // brute force: per window its first maximum, then (act desc, doc asc, pos asc)
    int64_t fires = 0;
    double sum = 0;
    std::vector<std::tuple<float, int64_t, int64_t, size_t, int64_t>> cand;
    std::vector<std::tuple<float, int64_t, int64_t>> firing;
    for (size_t w = 0; w < ws.size(); ++w) {
      const int64_t n = static_cast<int64_t>(ws[w].ids.size()) - 1;
      int64_t best = -1;
      for (int64_t i = 0; i < n; ++i) {
        const float a = ws[w].acts[i * m + f];
        if (a <= 0) continue;
        ++fires;
        sum += a;
        firing.emplace_back(a, ws[w].doc, ws[w].offset + i);
        if (best < 0 || a > ws[w].acts[best * m + f]) best = i;
      }
      if (best >= 0) {
        cand.emplace_back(-ws[w].acts[best * m + f], ws[w].doc, ws[w].offset + best, w, best);
      }
    }
    std::sort(cand.begin(), cand.end());
    const FeatureDetail d = s.detail(f, tokens);
    EXPECT_EQ(d.summary.n_fires, fires);
    EXPECT_DOUBLE_EQ(d.summary.freq, static_cast<double>(fires) / static_cast<double>(tokens));
    EXPECT_NEAR(d.summary.mean_act, sum / static_cast<double>(fires), 1e-9);
    ASSERT_EQ(d.top.size(), std::min<size_t>(4, cand.size()));
    for (size_t r = 0; r < d.top.size(); ++r) {
      const auto& [na, doc, pos, w, row] = cand[r];
      EXPECT_EQ(d.top[r].act, -na);
      EXPECT_EQ(d.top[r].doc, doc);
      EXPECT_EQ(d.top[r].pos, pos);
      // context: window positions [max(1, c - 2), min(n, c + 2)] around c = row + 1
      const int64_t c = row + 1, n = static_cast<int64_t>(ws[w].ids.size()) - 1;
      const int64_t lo = std::max<int64_t>(1, c - 2), hi = std::min<int64_t>(n, c + 2);
      ASSERT_EQ(static_cast<int64_t>(d.top[r].ids.size()), hi - lo + 1);
      EXPECT_EQ(d.top[r].center, c - lo);
      for (int64_t p = lo; p <= hi; ++p) {
        EXPECT_EQ(d.top[r].ids[p - lo], ws[w].ids[p]);
        EXPECT_EQ(d.top[r].acts[p - lo], ws[w].acts[(p - 1) * m + f]);
      }
    }
    // histogram total, band samples inside their bands and the smallest keys of each band
    int64_t hist_total = 0;
    for (int64_t c : d.hist_counts) hist_total += c;
    EXPECT_EQ(hist_total, fires);
    ASSERT_EQ(d.quantiles.size(), 3u);
    EXPECT_EQ(d.quantiles.back().hi, d.summary.max_act);
    for (const QuantileBand& b : d.quantiles) {
      std::vector<uint64_t> keys;
      for (const auto& [a, doc, pos] : firing) {
        if (a > b.lo && a <= b.hi) keys.push_back(sample_key(0, f, doc, pos));
      }
      std::sort(keys.begin(), keys.end());
      ASSERT_EQ(b.examples.size(), std::min<size_t>(2, keys.size()));
      std::vector<uint64_t> got;
      for (const FeatureExample& e : b.examples) {
        EXPECT_GT(e.act, b.lo);
        EXPECT_LE(e.act, b.hi);
        got.push_back(sample_key(0, f, e.doc, e.pos));
      }
      std::sort(got.begin(), got.end());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), keys.begin()));
    }
  }
}

TEST(FeatureStats, ResumeAndThreadsGiveTheSameResult) {
  const int64_t m = 9;
  StatsOptions o;
  o.top_k = 3;
  const auto ws = make_windows(m, 30, 2);
  const FeatureStats ref = run_all(m, o, ws, 1);
  const FeatureStats threaded = run_all(m, o, ws, 3);
  // interrupted in pass 1 and in pass 2, resumed from the serialized state
  ThreadPool pool(2);
  FeatureStats a(m, o);
  feed(a, ws, 1, pool, 0, 11);
  FeatureStats b(m, o);
  b.deserialize(a.serialize());
  feed(b, ws, 1, pool, 11, ws.size());
  b.finish_pass1();
  feed(b, ws, 2, pool, 0, 7);
  FeatureStats c(m, o);
  c.deserialize(b.serialize());
  feed(c, ws, 2, pool, 7, ws.size());
  for (int64_t f = 0; f < m; ++f) {
    expect_same(ref.detail(f, 100), threaded.detail(f, 100));
    expect_same(ref.detail(f, 100), c.detail(f, 100));
  }
  std::vector<uint8_t> blob = a.serialize();
  blob.resize(blob.size() - 3);
  FeatureStats d(m, o);
  expect_error([&] { d.deserialize(blob); }, ErrorCode::kFormat, "resume state");
  FeatureStats other(m + 1, o);
  expect_error([&] { other.deserialize(a.serialize()); }, ErrorCode::kFormat, "resume state");
}

class FeatureDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("feature_db_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "f.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static FeatureExample example(double act, int64_t doc, std::vector<int32_t> ids, int32_t center,
                                std::string text) {
    FeatureExample e;
    e.act = act;
    e.doc = doc;
    e.pos = 7;
    e.center = center;
    e.ids = std::move(ids);
    e.acts.assign(e.ids.size(), 0.5f);
    e.text = std::move(text);
    return e;
  }

  void write(bool finish) {
    FeatureDbWriter w(path_);
    w.begin();
    w.set_meta("d_sae", "3");
    w.set_meta("hook", "blocks.0.hook_resid_post");
    w.put_vocab({{"<s>", "<s>", "<s>"}, {"\u2581cat", "cat", " cat"}, {"\u2581dog", "dog", " dog"},
                 {"s", "s", "s"}});
    const double freqs[3] = {0.5, 0.0, 0.1};
    for (int64_t f = 0; f < 3; ++f) {
      FeatureDetail d;
      d.summary.id = f;
      d.summary.freq = freqs[f];
      d.summary.n_fires = static_cast<int64_t>(freqs[f] * 100);
      d.summary.mean_act = 1.0 + static_cast<double>(f);
      d.summary.max_act = 3.0 - static_cast<double>(f);
      d.hist_edges = {0, 1, 2};
      d.hist_counts = {3, 4};
      if (f == 0) {
        d.summary.max_token = "\u2581cat";
        d.top = {example(2.5, 1, {3, 1, 3}, 1, "s cat s"), example(2.0, 2, {1}, 0, "cat")};
        d.quantiles.push_back({0.0, 1.5, {example(1.0, 4, {2, 3}, 0, "dogs")}});
        d.positive = {{2, "", 0.75}};
        d.negative = {{1, "", -0.25}, {3, "", -0.125}};
      } else if (f == 2) {
        d.summary.max_token = "\u2581dog";
        d.top = {example(1.0, 3, {2}, 0, "dog")};
      }
      w.put_feature(d);
    }
    if (finish) w.set_meta("status", "done");
    w.commit();
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(FeatureDbTest, ListAndDetail) {
  write(true);
  const auto db = FeatureDb::open(path_);
  EXPECT_EQ(db->d_sae(), 3);
  EXPECT_EQ(db->meta().at("hook"), "blocks.0.hook_resid_post");
  FeatureQuery q;
  FeatureList l = db->list(q);  // freq desc
  ASSERT_EQ(l.total, 3);
  EXPECT_EQ(l.features[0].id, 0);
  EXPECT_EQ(l.features[1].id, 2);
  EXPECT_EQ(l.features[0].max_token, "\u2581cat");
  q.include_dead = false;
  EXPECT_EQ(db->list(q).total, 2);
  q = FeatureQuery();
  q.sort = "max_act";
  q.descending = false;
  q.limit = 1;
  q.offset = 1;
  l = db->list(q);
  EXPECT_EQ(l.total, 3);
  ASSERT_EQ(l.features.size(), 1u);
  EXPECT_EQ(l.features[0].id, 1);
  q = FeatureQuery();
  q.min_freq = 0.05;
  q.max_freq = 0.2;
  l = db->list(q);
  ASSERT_EQ(l.total, 1);
  EXPECT_EQ(l.features[0].id, 2);
  q = FeatureQuery();
  q.text = "dog";  // FTS over top examples only (the band sample "dogs" does not count)
  l = db->list(q);
  ASSERT_EQ(l.total, 1);
  EXPECT_EQ(l.features[0].id, 2);
  q.text = "\"cat AND";  // user text is quoted, never an FTS syntax error
  EXPECT_EQ(db->list(q).total, 0);
  q = FeatureQuery();
  q.token = "cat";  // decoded text of a top example's centre token
  l = db->list(q);
  ASSERT_EQ(l.total, 1);
  EXPECT_EQ(l.features[0].id, 0);
  q.token = "\u2581dog";  // display piece
  EXPECT_EQ(db->list(q).features.at(0).id, 2);

  const auto d = db->detail(0);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->top.size(), 2u);
  EXPECT_EQ(d->top[0].act, 2.5);
  EXPECT_EQ(d->top[0].tokens, (std::vector<std::string>{"s", " cat", "s"}));  // display text
  EXPECT_EQ(d->top[0].text, "s cat s");
  EXPECT_EQ(d->hist_counts, (std::vector<int64_t>{3, 4}));
  ASSERT_EQ(d->quantiles.size(), 1u);
  EXPECT_EQ(d->quantiles[0].hi, 1.5);
  ASSERT_EQ(d->quantiles[0].examples.size(), 1u);
  ASSERT_EQ(d->positive.size(), 1u);
  EXPECT_EQ(d->positive[0].token, " dog");
  ASSERT_EQ(d->negative.size(), 2u);
  EXPECT_EQ(d->negative[1].value, -0.125);
  EXPECT_FALSE(db->detail(3).has_value());
  EXPECT_FALSE(db->detail(-1).has_value());

  q = FeatureQuery();
  q.sort = "nope";
  expect_error([&] { db->list(q); }, ErrorCode::kInvalidArgument, "sort");
  q = FeatureQuery();
  q.limit = -1;
  expect_error([&] { db->list(q); }, ErrorCode::kInvalidArgument, "limit");

  // concurrent readers on one FeatureDb
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (db->list(FeatureQuery()).total == 3 && db->detail(i % 3).has_value()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
}

TEST_F(FeatureDbTest, OpenErrors) {
  expect_error([&] { FeatureDb::open(path_); }, ErrorCode::kIo, "f.db");
  { std::ofstream(path_) << std::string(3000, 'x'); }
  expect_error([&] { FeatureDb::open(path_); }, ErrorCode::kFormat,
               "not a glassbox feature database");
  expect_error([&] { FeatureDbWriter w(path_); }, ErrorCode::kFormat,
               "not a glassbox feature database");
  fs::remove(path_);
  write(false);
  expect_error([&] { FeatureDb::open(path_); }, ErrorCode::kFormat, "unfinished");
}

}  // namespace
}  // namespace glassbox
