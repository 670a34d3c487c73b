#include "analysis/feature_db.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "analysis/sqlite.h"
#include "core/error.h"

namespace glassbox {
namespace {

constexpr const char* kFeatureDbFormat = "glassbox-features";

// The schema (docs/analysis.md). Example rows: band -1 = top examples, band b >= 0 = samples of
// quantile band b. Blobs are little-endian arrays (ids int32, acts float32, hist_edges float64,
// hist_counts int64).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS vocab(id INTEGER PRIMARY KEY, piece TEXT NOT NULL, text TEXT NOT NULL,
                                 display TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS vocab_by_piece ON vocab(piece);
CREATE INDEX IF NOT EXISTS vocab_by_text ON vocab(text);
CREATE INDEX IF NOT EXISTS vocab_by_display ON vocab(display);
CREATE TABLE IF NOT EXISTS features(
  id INTEGER PRIMARY KEY, n_fires INTEGER NOT NULL, freq REAL NOT NULL, mean_act REAL NOT NULL,
  max_act REAL NOT NULL, max_token TEXT NOT NULL, hist_edges BLOB NOT NULL,
  hist_counts BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS features_by_freq ON features(freq);
CREATE INDEX IF NOT EXISTS features_by_mean ON features(mean_act);
CREATE INDEX IF NOT EXISTS features_by_max ON features(max_act);
CREATE TABLE IF NOT EXISTS bands(
  feature INTEGER NOT NULL, band INTEGER NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
  PRIMARY KEY(feature, band)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS examples(
  id INTEGER PRIMARY KEY, feature INTEGER NOT NULL, band INTEGER NOT NULL, rank INTEGER NOT NULL,
  act REAL NOT NULL, doc INTEGER NOT NULL, pos INTEGER NOT NULL, center INTEGER NOT NULL,
  center_id INTEGER NOT NULL, ids BLOB NOT NULL, acts BLOB NOT NULL, text TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS examples_by_feature ON examples(feature, band, rank);
CREATE INDEX IF NOT EXISTS examples_by_token ON examples(center_id, band, feature);
CREATE VIRTUAL TABLE IF NOT EXISTS examples_fts USING fts5(text, content='examples',
  content_rowid='id');
CREATE TABLE IF NOT EXISTS logit_effects(
  feature INTEGER NOT NULL, sign INTEGER NOT NULL, rank INTEGER NOT NULL,
  token_id INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY(feature, sign, rank)) WITHOUT ROWID;
)sql";

std::map<std::string, std::string> read_meta(const sqlite::Db& db) {
  std::map<std::string, std::string> out;
  sqlite::Stmt q(db, "SELECT key, value FROM meta");
  while (q.step()) out[q.text(0)] = q.text(1);
  return out;
}

// Checks format and schema version; an unreadable or foreign file gives one kFormat error.
std::map<std::string, std::string> check_format(const sqlite::Db& db) {
  std::map<std::string, std::string> meta;
  try {
    meta = read_meta(db);
  } catch (const Error&) {
    throw Error(ErrorCode::kFormat,
                db.path() + ": not a glassbox feature database (" + sqlite3_errmsg(db.get()) + ")");
  }
  if (meta["format"] != kFeatureDbFormat) {
    throw Error(ErrorCode::kFormat, db.path() + ": not a glassbox feature database");
  }
  if (meta["schema_version"] != kFeatureDbSchemaVersion) {
    throw Error(ErrorCode::kFormat, db.path() + ": feature database schema version '" +
                                        meta["schema_version"] + "', this build reads '" +
                                        kFeatureDbSchemaVersion + "'");
  }
  return meta;
}

// Whitespace-separated words of a search box's text.
std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// FTS5 query from free text: each word becomes a quoted prefix term (all must match; "want"
// finds "wanted", as a search box should), so user input can never be an FTS5 syntax error.
std::string fts_query(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words) {
    std::string quoted = "\"";
    for (char c : word) {
      quoted += c;
      if (c == '"') quoted += '"';
    }
    quoted += "\"*";
    if (!out.empty()) out += ' ';
    out += quoted;
  }
  return out;
}

// LIKE pattern matching `word` anywhere, its wildcards and backslashes escaped (ESCAPE '\').
std::string like_pattern(const std::string& word) {
  std::string out = "%";
  for (char c : word) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}

// ---- the autointerp tables (docs/autointerp.md), read only ----
// A feature's primary explanation is its newest LLM explanation, else the 'offline' one; an
// explanation's score for a method is the newest judge's row. "Newest" is `created`, ties by
// name. The per-feature queries below order rows by these rules directly; the bulk forms (sort
// by score, search in explanations over every feature) are written so that SQLite decides from
// the tables' key indexes alone in the common case (one LLM explainer, one judge), because
// `created` is stored after the large `prompt` / `details` columns and reading it means reading
// their overflow pages.

constexpr const char* kScoreMethods[] = {"detection", "fuzzing", "intervention"};
// Explanations of one feature, the primary first (the same rule as primary_rule below).
constexpr const char* kExplanationOrder = "(explainer = 'offline'), created DESC, explainer";
// Score rows of one explanation by method, the row that counts first (the rule of score_key_cte).
constexpr const char* kScoreOrder =
    "CASE method WHEN 'detection' THEN 0 WHEN 'fuzzing' THEN 1 WHEN 'intervention' THEN 2 "
    "ELSE 3 END, method, created DESC, judge";

bool is_score_method(const std::string& s) {
  return std::find(std::begin(kScoreMethods), std::end(kScoreMethods), s) !=
         std::end(kScoreMethods);
}

// The primary explainer of feature `f` (an SQL expression) as an aggregate over its rows
// `explanations pe`: only a feature with several LLM explanations needs `created`.
std::string primary_rule(const std::string& f) {
  return "CASE WHEN count(*) FILTER (WHERE pe.explainer <> 'offline') > 1 THEN "
         "(SELECT pn.explainer FROM explanations pn WHERE pn.feature = " +
         f +
         " AND pn.explainer <> 'offline' ORDER BY pn.created DESC, pn.explainer LIMIT 1) ELSE "
         "coalesce(max(pe.explainer) FILTER (WHERE pe.explainer <> 'offline'), "
         "min(pe.explainer)) END";
}

// SQL expression: the primary explainer of feature `f`, NULL when it has no explanation.
std::string primary_explainer_sql(const std::string& f) {
  return "(SELECT " + primary_rule(f) + " FROM explanations pe WHERE pe.feature = " + f + ")";
}

// CTE `sort_key(feature, value)`: the primary explanation's score for the method bound to ?7,
// one row per scored feature.
std::string score_key_cte() {
  return "WITH primary_x(feature, explainer) AS (SELECT pe.feature, " + primary_rule("pe.feature") +
         " FROM explanations pe GROUP BY pe.feature), "
         "score_x(feature, explainer, value) AS (SELECT ps.feature, ps.explainer, CASE WHEN "
         "count(*) > 1 THEN (SELECT sn.value FROM scores sn WHERE sn.feature = ps.feature AND "
         "sn.explainer = ps.explainer AND sn.method = ?7 ORDER BY sn.created DESC, sn.judge "
         "LIMIT 1) ELSE max(ps.value) END FROM scores ps WHERE ps.method = ?7 GROUP BY "
         "ps.feature, ps.explainer), "
         "sort_key(feature, value) AS (SELECT p.feature, s.value FROM primary_x p JOIN score_x s "
         "ON s.feature = p.feature AND s.explainer = p.explainer) ";
}

std::optional<double>* score_slot(FeatureSummary& s, const std::string& method) {
  if (method == "detection") return &s.detection;
  if (method == "fuzzing") return &s.fuzzing;
  if (method == "intervention") return &s.intervention;
  return nullptr;
}

std::optional<double> opt_f64(const sqlite::Stmt& q, int col) {
  return q.is_null(col) ? std::nullopt : std::optional<double>(q.f64(col));
}

}  // namespace

struct FeatureDb::Impl {
  explicit Impl(const std::string& path) : db(path, SQLITE_OPEN_READONLY) {}
  sqlite::Db db;
  std::map<std::string, std::string> meta;
  std::vector<std::string> display;  // vocab id -> the token's text as shown to people
  int64_t d_sae = 0;

  std::string token_text(int64_t id) const {
    return id >= 0 && id < static_cast<int64_t>(display.size()) ? display[id] : std::string();
  }
  FeatureExample example(const sqlite::Stmt& q) const {
    // columns: act, doc, pos, center, ids, acts, text
    FeatureExample e;
    e.act = q.f64(0);
    e.doc = q.i64(1);
    e.pos = q.i64(2);
    e.center = static_cast<int32_t>(q.i64(3));
    e.ids = q.vec<int32_t>(4);
    e.acts = q.vec<float>(5);
    e.text = q.text(6);
    for (int32_t id : e.ids) e.tokens.push_back(token_text(id));
    return e;
  }

  // Which autointerp tables exist. Asked per query, not once at open: `glassbox explain` may
  // add them while a server reads the database.
  struct Tables {
    bool explanations = false, scores = false;
  };
  Tables tables() const {
    Tables t;
    sqlite::Stmt q(db,
                   "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                   "name IN ('explanations', 'scores')");
    while (q.step()) (q.text(0) == "scores" ? t.scores : t.explanations) = true;
    t.scores = t.scores && t.explanations;  // scores of explanations that are not there: none
    return t;
  }

  // Fills the primary explanation and its scores into each summary.
  void fill_primary(std::vector<FeatureSummary>& list, const Tables& t) const {
    if (!t.explanations || list.empty()) return;
    sqlite::Stmt e(db, std::string("SELECT explainer, explanation FROM explanations WHERE "
                                   "feature = ?1 ORDER BY ") +
                           kExplanationOrder + " LIMIT 1");
    std::optional<sqlite::Stmt> sc;
    if (t.scores) {
      sc.emplace(db, std::string("SELECT method, value FROM scores WHERE feature = ?1 AND "
                                 "explainer = ?2 ORDER BY ") +
                         kScoreOrder);
    }
    for (FeatureSummary& f : list) {
      e.bind(1, f.id);
      if (e.step()) {
        f.explainer = e.text(0);
        f.explanation = e.text(1);
      }
      e.reset();
      if (!sc || f.explainer.empty()) continue;
      sc->bind(1, f.id).bind(2, f.explainer);
      while (sc->step()) {
        std::optional<double>* slot = score_slot(f, sc->text(0));
        if (slot && !*slot) *slot = sc->f64(1);  // the first row of a method is the newest
      }
      sc->reset();
    }
  }

  // Every explanation of feature `id` with its scores, the primary first.
  std::vector<ExplanationInfo> explanations(int64_t id, const Tables& t) const {
    std::vector<ExplanationInfo> out;
    if (!t.explanations) return out;
    {
      sqlite::Stmt q(db, std::string("SELECT explainer, explanation, model, endpoint, created, "
                                     "prompt_tokens, completion_tokens FROM explanations "
                                     "WHERE feature = ?1 ORDER BY ") +
                             kExplanationOrder);
      q.bind(1, id);
      while (q.step()) {
        ExplanationInfo x;
        x.explainer = q.text(0);
        x.explanation = q.text(1);
        x.model = q.text(2);
        x.endpoint = q.text(3);
        x.created = q.text(4);
        x.prompt_tokens = q.i64(5);
        x.completion_tokens = q.i64(6);
        out.push_back(std::move(x));
      }
    }
    if (!t.scores) return out;
    sqlite::Stmt q(db, std::string("SELECT method, judge, accuracy, balanced_accuracy, auroc, "
                                   "value, n, created FROM scores WHERE feature = ?1 AND "
                                   "explainer = ?2 ORDER BY ") +
                           kScoreOrder);
    for (ExplanationInfo& x : out) {
      q.bind(1, id).bind(2, x.explainer);
      while (q.step()) {
        ScoreInfo s;
        s.method = q.text(0);
        s.judge = q.text(1);
        s.accuracy = opt_f64(q, 2);
        s.balanced_accuracy = opt_f64(q, 3);
        s.auroc = opt_f64(q, 4);
        s.value = q.f64(5);
        s.n = q.i64(6);
        s.created = q.text(7);
        x.scores.push_back(std::move(s));
      }
      q.reset();
    }
    return out;
  }
};

FeatureDb::FeatureDb(std::string path, std::unique_ptr<Impl> impl)
    : path_(std::move(path)), impl_(std::move(impl)) {}
FeatureDb::~FeatureDb() = default;

std::unique_ptr<FeatureDb> FeatureDb::open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kIo, path + ": no such feature database");
  }
  auto impl = std::make_unique<Impl>(path);
  impl->meta = check_format(impl->db);
  if (impl->meta["status"] != "done") {
    throw Error(ErrorCode::kFormat,
                path + ": analysis unfinished (rerun the same glassbox analyze command to resume)");
  }
  try {
    impl->d_sae = std::stoll(impl->meta["d_sae"]);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kFormat, path + ": bad meta field 'd_sae'");
  }
  sqlite::Stmt q(impl->db, "SELECT id, display FROM vocab ORDER BY id");
  while (q.step()) {
    const int64_t id = q.i64(0);
    if (id != static_cast<int64_t>(impl->display.size())) {
      throw Error(ErrorCode::kFormat, path + ": vocab table is not dense");
    }
    impl->display.push_back(q.text(1));
  }
  return std::unique_ptr<FeatureDb>(new FeatureDb(path, std::move(impl)));
}

std::map<std::string, std::string> FeatureDb::meta() const { return impl_->meta; }
int64_t FeatureDb::d_sae() const { return impl_->d_sae; }

FeatureList FeatureDb::list(const FeatureQuery& query) const {
  static const std::map<std::string, std::string> kSort = {
      {"id", "id"}, {"freq", "freq"}, {"mean_act", "mean_act"}, {"max_act", "max_act"}};
  const auto sort = kSort.find(query.sort);
  const bool by_score = is_score_method(query.sort);
  if (sort == kSort.end() && !by_score) {
    throw Error(ErrorCode::kInvalidArgument,
                "sort: unknown key '" + query.sort +
                    "' (id, freq, mean_act, max_act, detection, fuzzing, intervention)");
  }
  if (query.offset < 0) throw Error(ErrorCode::kInvalidArgument, "offset: must be >= 0");
  if (query.limit < 0) throw Error(ErrorCode::kInvalidArgument, "limit: must be >= 0");
  if (query.min_freq && query.max_freq && *query.min_freq > *query.max_freq) {
    throw Error(ErrorCode::kInvalidArgument, "min_freq: greater than max_freq");
  }
  const Impl::Tables tables = impl_->tables();
  if (by_score && !tables.scores) {
    throw Error(ErrorCode::kInvalidArgument,
                "sort: no scores in this database (run glassbox score)");
  }
  // Parameters: ?1 min_freq, ?2 max_freq, ?3 FTS query, ?4 token, ?5 limit, ?6 offset, ?7 the
  // score method sorted by, ?8... the search words as LIKE patterns.
  constexpr int kFirstWord = 8;
  std::string where = " WHERE 1";
  if (query.min_freq) where += " AND freq >= ?1";
  if (query.max_freq) where += " AND freq <= ?2";
  if (!query.include_dead) where += " AND n_fires > 0";
  const std::vector<std::string> words = words_of(query.text);
  if (!words.empty()) {
    std::string match =
        "id IN (SELECT feature FROM examples WHERE band = -1 AND id IN "
        "(SELECT rowid FROM examples_fts WHERE examples_fts MATCH ?3))";
    if (tables.explanations) {
      // The LIKE terms come first: only the few matching rows need their primary checked.
      std::string like;
      for (size_t i = 0; i < words.size(); ++i) {
        like += "x.explanation LIKE ?" + std::to_string(kFirstWord + i) + " ESCAPE '\\' AND ";
      }
      match = "(" + match + " OR id IN (SELECT x.feature FROM explanations x WHERE " + like +
              "x.explainer = " + primary_explainer_sql("x.feature") + "))";
    }
    where += " AND " + match;
  }
  if (!query.token.empty()) {
    where +=
        " AND id IN (SELECT feature FROM examples WHERE band = -1 AND center_id IN "
        "(SELECT id FROM vocab WHERE piece = ?4 OR text = ?4 OR display = ?4))";
  }
  auto bind = [&](sqlite::Stmt& q) {
    if (query.min_freq) q.bind(1, *query.min_freq);
    if (query.max_freq) q.bind(2, *query.max_freq);
    if (!words.empty()) {
      q.bind(3, fts_query(words));
      if (tables.explanations) {
        for (size_t i = 0; i < words.size(); ++i) {
          q.bind(kFirstWord + static_cast<int>(i), like_pattern(words[i]));
        }
      }
    }
    if (!query.token.empty()) q.bind(4, query.token);
  };
  FeatureList out;
  out.has_explanations = tables.explanations;
  out.has_scores = tables.scores;
  {
    sqlite::Stmt q(impl_->db, "SELECT COUNT(*) FROM features" + where);
    bind(q);
    if (q.step()) out.total = q.i64(0);
  }
  const char* dir = query.descending ? " DESC" : " ASC";
  std::string sql;
  if (by_score) {  // missing scores last in either direction
    sql = score_key_cte() +
          "SELECT id, n_fires, freq, mean_act, max_act, max_token FROM features "
          "LEFT JOIN sort_key ON sort_key.feature = features.id" +
          where + " ORDER BY sort_key.value" + dir + " NULLS LAST, id ASC";
  } else {
    sql = "SELECT id, n_fires, freq, mean_act, max_act, max_token FROM features" + where +
          " ORDER BY " + sort->second + dir + ", id ASC";
  }
  sqlite::Stmt q(impl_->db, sql + " LIMIT ?5 OFFSET ?6");
  bind(q);
  q.bind(5, query.limit).bind(6, query.offset);
  if (by_score) q.bind(7, query.sort);
  while (q.step()) {
    FeatureSummary s;
    s.id = q.i64(0);
    s.n_fires = q.i64(1);
    s.freq = q.f64(2);
    s.mean_act = q.f64(3);
    s.max_act = q.f64(4);
    s.max_token = q.text(5);
    out.features.push_back(std::move(s));
  }
  impl_->fill_primary(out.features, tables);
  return out;
}

std::optional<FeatureDetail> FeatureDb::detail(int64_t id) const {
  if (id < 0 || id >= impl_->d_sae) return std::nullopt;
  FeatureDetail d;
  {
    sqlite::Stmt q(impl_->db,
                   "SELECT n_fires, freq, mean_act, max_act, max_token, hist_edges, hist_counts "
                   "FROM features WHERE id = ?1");
    q.bind(1, id);
    if (!q.step()) return std::nullopt;
    d.summary.id = id;
    d.summary.n_fires = q.i64(0);
    d.summary.freq = q.f64(1);
    d.summary.mean_act = q.f64(2);
    d.summary.max_act = q.f64(3);
    d.summary.max_token = q.text(4);
    d.hist_edges = q.vec<double>(5);
    d.hist_counts = q.vec<int64_t>(6);
  }
  {
    sqlite::Stmt q(impl_->db, "SELECT band, lo, hi FROM bands WHERE feature = ?1 ORDER BY band");
    q.bind(1, id);
    while (q.step()) {
      QuantileBand b;
      b.lo = q.f64(1);
      b.hi = q.f64(2);
      d.quantiles.push_back(std::move(b));
    }
  }
  {
    sqlite::Stmt q(impl_->db,
                   "SELECT act, doc, pos, center, ids, acts, text, band FROM examples "
                   "WHERE feature = ?1 ORDER BY band, rank");
    q.bind(1, id);
    while (q.step()) {
      const int64_t band = q.i64(7);
      if (band < 0) {
        d.top.push_back(impl_->example(q));
      } else if (band < static_cast<int64_t>(d.quantiles.size())) {
        d.quantiles[band].examples.push_back(impl_->example(q));
      }
    }
  }
  {
    sqlite::Stmt q(impl_->db,
                   "SELECT sign, token_id, value FROM logit_effects WHERE feature = ?1 "
                   "ORDER BY sign DESC, rank");
    q.bind(1, id);
    while (q.step()) {
      LogitEffect e;
      e.id = static_cast<int32_t>(q.i64(1));
      e.token = impl_->token_text(e.id);
      e.value = q.f64(2);
      (q.i64(0) > 0 ? d.positive : d.negative).push_back(std::move(e));
    }
  }
  d.explanations = impl_->explanations(id, impl_->tables());
  if (!d.explanations.empty()) {
    const ExplanationInfo& primary = d.explanations.front();
    d.summary.explainer = primary.explainer;
    d.summary.explanation = primary.explanation;
    for (const ScoreInfo& s : primary.scores) {  // newest row of each method first
      std::optional<double>* slot = score_slot(d.summary, s.method);
      if (slot && !*slot) *slot = s.value;
    }
  }
  return d;
}

// ---- writer ----

struct FeatureDbWriter::Impl {
  explicit Impl(const std::string& path) : db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {}
  sqlite::Db db;
};

FeatureDbWriter::FeatureDbWriter(const std::string& path) {
  std::error_code ec;
  const bool fresh =
      !std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0;
  impl_ = std::make_unique<Impl>(path);
  if (fresh) {
    sqlite::Transaction t(impl_->db);
    impl_->db.exec(kSchema);
    sqlite::Stmt q(impl_->db, "INSERT INTO meta(key, value) VALUES (?1, ?2)");
    q.bind(1, std::string("format")).bind(2, std::string(kFeatureDbFormat)).run();
    q.bind(1, std::string("schema_version")).bind(2, std::string(kFeatureDbSchemaVersion)).run();
    q.bind(1, std::string("status")).bind(2, std::string("running")).run();
    t.commit();
  }
  check_format(impl_->db);
}

FeatureDbWriter::~FeatureDbWriter() = default;

std::map<std::string, std::string> FeatureDbWriter::meta() const { return read_meta(impl_->db); }

void FeatureDbWriter::set_meta(const std::string& key, const std::string& value) {
  sqlite::Stmt q(impl_->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)");
  q.bind(1, key).bind(2, value).run();
}

std::optional<std::vector<uint8_t>> FeatureDbWriter::state(const std::string& key) const {
  sqlite::Stmt q(impl_->db, "SELECT value FROM state WHERE key = ?1");
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return q.vec<uint8_t>(0);
}

void FeatureDbWriter::set_state(const std::string& key, const std::vector<uint8_t>& blob) {
  sqlite::Stmt q(impl_->db, "INSERT OR REPLACE INTO state(key, value) VALUES (?1, ?2)");
  q.bind(1, key).bind_vec(2, blob).run();
}

void FeatureDbWriter::clear_state() { impl_->db.exec("DELETE FROM state"); }

void FeatureDbWriter::begin() { impl_->db.exec("BEGIN IMMEDIATE"); }
void FeatureDbWriter::commit() { impl_->db.exec("COMMIT"); }
void FeatureDbWriter::vacuum() { impl_->db.exec("VACUUM"); }

void FeatureDbWriter::put_vocab(const std::vector<VocabEntry>& vocab) {
  impl_->db.exec("DELETE FROM vocab");
  sqlite::Stmt q(impl_->db,
                 "INSERT INTO vocab(id, piece, text, display) VALUES (?1, ?2, ?3, ?4)");
  for (size_t i = 0; i < vocab.size(); ++i) {
    q.bind(1, static_cast<int64_t>(i)).bind(2, vocab[i].piece).bind(3, vocab[i].text);
    q.bind(4, vocab[i].display).run();
  }
}

void FeatureDbWriter::put_feature(const FeatureDetail& d) {
  const int64_t f = d.summary.id;
  auto& db = impl_->db;
  {
    sqlite::Stmt q(db,
                   "INSERT OR REPLACE INTO features(id, n_fires, freq, mean_act, max_act, "
                   "max_token, hist_edges, hist_counts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    q.bind(1, f).bind(2, d.summary.n_fires).bind(3, d.summary.freq).bind(4, d.summary.mean_act);
    q.bind(5, d.summary.max_act).bind(6, d.summary.max_token);
    q.bind_vec(7, d.hist_edges).bind_vec(8, d.hist_counts).run();
  }
  {
    sqlite::Stmt q(db, "INSERT OR REPLACE INTO bands(feature, band, lo, hi) VALUES (?1,?2,?3,?4)");
    for (size_t b = 0; b < d.quantiles.size(); ++b) {
      q.bind(1, f).bind(2, static_cast<int64_t>(b)).bind(3, d.quantiles[b].lo);
      q.bind(4, d.quantiles[b].hi).run();
    }
  }
  sqlite::Stmt ex(db,
                  "INSERT INTO examples(feature, band, rank, act, doc, pos, center, center_id, "
                  "ids, acts, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  sqlite::Stmt fts(db, "INSERT INTO examples_fts(rowid, text) VALUES (?1, ?2)");
  auto put = [&](int64_t band, const std::vector<FeatureExample>& list) {
    for (size_t r = 0; r < list.size(); ++r) {
      const FeatureExample& e = list[r];
      const int64_t center_id =
          e.center >= 0 && e.center < static_cast<int32_t>(e.ids.size()) ? e.ids[e.center] : -1;
      ex.bind(1, f).bind(2, band).bind(3, static_cast<int64_t>(r)).bind(4, e.act);
      ex.bind(5, e.doc).bind(6, e.pos).bind(7, static_cast<int64_t>(e.center));
      ex.bind(8, center_id).bind_vec(9, e.ids).bind_vec(10, e.acts).bind(11, e.text).run();
      fts.bind(1, static_cast<int64_t>(sqlite3_last_insert_rowid(db.get()))).bind(2, e.text).run();
    }
  };
  put(-1, d.top);
  for (size_t b = 0; b < d.quantiles.size(); ++b) {
    put(static_cast<int64_t>(b), d.quantiles[b].examples);
  }
  sqlite::Stmt lq(db,
                  "INSERT OR REPLACE INTO logit_effects(feature, sign, rank, token_id, value) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)");
  auto put_effects = [&](int64_t sign, const std::vector<LogitEffect>& list) {
    for (size_t r = 0; r < list.size(); ++r) {
      lq.bind(1, f).bind(2, sign).bind(3, static_cast<int64_t>(r)).bind(4, int64_t{list[r].id});
      lq.bind(5, list[r].value).run();
    }
  };
  put_effects(1, d.positive);
  put_effects(-1, d.negative);
}

}  // namespace glassbox
