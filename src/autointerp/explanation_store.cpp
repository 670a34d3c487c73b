#include "autointerp/explanation_store.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>

#include "analysis/sqlite.h"
#include "core/error.h"
#include "core/sha256.h"

namespace glassbox::autointerp {
namespace {

// docs/autointerp.md. Rowid tables (not WITHOUT ROWID): INSERT OR REPLACE gives a replaced row a
// new rowid, which breaks ties between explanations created in the same second.
constexpr const char* kTables = R"sql(
CREATE TABLE IF NOT EXISTS explanations(
  feature INTEGER NOT NULL, explainer TEXT NOT NULL, explanation TEXT NOT NULL,
  prompt TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL, created TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
  PRIMARY KEY(feature, explainer));
CREATE TABLE IF NOT EXISTS scores(
  feature INTEGER NOT NULL, explainer TEXT NOT NULL, method TEXT NOT NULL, judge TEXT NOT NULL,
  accuracy REAL, balanced_accuracy REAL, auroc REAL, value REAL NOT NULL, n INTEGER NOT NULL,
  details TEXT NOT NULL, created TEXT NOT NULL,
  PRIMARY KEY(feature, explainer, method, judge));
CREATE INDEX IF NOT EXISTS scores_by_value ON scores(method, value);
CREATE TABLE IF NOT EXISTS llm_cache(
  key TEXT PRIMARY KEY, response TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL, created TEXT NOT NULL);
)sql";

// Refuses anything but a finished glassbox feature database of schema 1 (the tables added here
// sit beside that schema). Reads only, so a foreign file is left exactly as it was.
void check_feature_db(const sqlite::Db& db) {
  std::map<std::string, std::string> meta;
  try {
    sqlite::Stmt q(db, "SELECT key, value FROM meta");
    while (q.step()) meta[q.text(0)] = q.text(1);
  } catch (const Error&) {
    throw Error(ErrorCode::kFormat,
                db.path() + ": not a glassbox feature database (" + sqlite3_errmsg(db.get()) + ")");
  }
  if (meta["format"] != "glassbox-features") {
    throw Error(ErrorCode::kFormat, db.path() + ": not a glassbox feature database (meta format '" +
                                        meta["format"] + "')");
  }
  if (meta["schema_version"] != kFeatureDbSchemaVersion) {
    throw Error(ErrorCode::kFormat, db.path() + ": feature database schema version '" +
                                        meta["schema_version"] + "', this build reads '" +
                                        kFeatureDbSchemaVersion + "'");
  }
  if (meta["status"] != "done") {
    throw Error(ErrorCode::kFormat, db.path() + ": analysis unfinished (status '" + meta["status"] +
                                        "'; finish glassbox analyze first)");
  }
}

// Columns: feature, explainer, explanation, prompt, model, endpoint, created, prompt_tokens,
// completion_tokens.
constexpr const char* kExplanationCols =
    "feature, explainer, explanation, prompt, model, endpoint, created, prompt_tokens, "
    "completion_tokens";

Explanation read_explanation(const sqlite::Stmt& q) {
  Explanation e;
  e.feature = q.i64(0);
  e.explainer = q.text(1);
  e.explanation = q.text(2);
  e.prompt = q.text(3);
  e.model = q.text(4);
  e.endpoint = q.text(5);
  e.created = q.text(6);
  e.prompt_tokens = q.i64(7);
  e.completion_tokens = q.i64(8);
  return e;
}

constexpr const char* kScoreCols =
    "feature, explainer, method, judge, accuracy, balanced_accuracy, auroc, value, n, details, "
    "created";

std::optional<double> opt_f64(const sqlite::Stmt& q, int col) {
  return q.is_null(col) ? std::nullopt : std::optional<double>(q.f64(col));
}

ScoreRecord read_score(const sqlite::Stmt& q) {
  ScoreRecord s;
  s.feature = q.i64(0);
  s.explainer = q.text(1);
  s.method = q.text(2);
  s.judge = q.text(3);
  s.accuracy = opt_f64(q, 4);
  s.balanced_accuracy = opt_f64(q, 5);
  s.auroc = opt_f64(q, 6);
  s.value = q.f64(7);
  s.n = q.i64(8);
  s.details = q.text(9);
  s.created = q.text(10);
  return s;
}

// A parameter left unbound is NULL in SQLite: that is how nullopt is written (Stmt has no
// bind_null, and each put prepares a fresh statement).
void bind_opt(sqlite::Stmt& q, int i, const std::optional<double>& v) {
  if (v) q.bind(i, *v);
}

// Exact bigram counts in bounded memory: keys are buffered, then sorted and merged into sorted
// (key, count) runs, so memory is the distinct bigrams plus one buffer, never a hash node each.
class BigramCounter {
 public:
  void add(uint64_t key) {
    buffer_.push_back(key);
    if (buffer_.size() >= kBuffer) flush();
  }
  std::vector<std::pair<uint64_t, int64_t>> finish() {
    flush();
    return std::move(counts_);
  }

 private:
  static constexpr size_t kBuffer = size_t{1} << 22;  // 32 MiB of keys

  void flush() {
    std::sort(buffer_.begin(), buffer_.end());
    std::vector<std::pair<uint64_t, int64_t>> merged;
    merged.reserve(counts_.size() + buffer_.size());
    size_t i = 0, j = 0;
    while (i < counts_.size() || j < buffer_.size()) {
      if (j == buffer_.size() || (i < counts_.size() && counts_[i].first < buffer_[j])) {
        merged.push_back(counts_[i++]);
        continue;
      }
      const uint64_t key = buffer_[j];
      int64_t n = 0;
      if (i < counts_.size() && counts_[i].first == key) n = counts_[i++].second;
      for (; j < buffer_.size() && buffer_[j] == key; ++j) ++n;
      merged.emplace_back(key, n);
    }
    merged.shrink_to_fit();
    counts_ = std::move(merged);
    buffer_.clear();
  }

  std::vector<uint64_t> buffer_;
  std::vector<std::pair<uint64_t, int64_t>> counts_;
};

}  // namespace

ExplanationStore::ExplanationStore(const std::string& db_path) : path_(db_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(db_path, ec)) {
    throw Error(ErrorCode::kIo, db_path + ": no such feature database");
  }
  db_ = std::make_unique<sqlite::Db>(db_path, SQLITE_OPEN_READWRITE);
  check_feature_db(*db_);
  // SQLite silently opens a write-protected file read-only; say so now, not at the first put.
  if (sqlite3_db_readonly(db_->get(), "main") == 1) {
    throw Error(ErrorCode::kIo, db_path +
                                    ": read-only (explanations and scores are written into "
                                    "the feature database)");
  }
  sqlite::Transaction t(*db_);
  db_->exec(kTables);
  t.commit();
}

ExplanationStore::~ExplanationStore() = default;

void ExplanationStore::put_explanation(const Explanation& e) { put_explanations({e}); }

void ExplanationStore::put_explanations(const std::vector<Explanation>& rows) {
  std::lock_guard lock(mu_);
  sqlite::Transaction t(*db_);
  sqlite::Stmt q(*db_, std::string("INSERT OR REPLACE INTO explanations(") + kExplanationCols +
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  for (const Explanation& e : rows) {
    q.bind(1, e.feature).bind(2, e.explainer).bind(3, e.explanation).bind(4, e.prompt);
    q.bind(5, e.model).bind(6, e.endpoint).bind(7, e.created.empty() ? now_iso8601() : e.created);
    q.bind(8, e.prompt_tokens).bind(9, e.completion_tokens).run();
  }
  t.commit();
}

std::optional<Explanation> ExplanationStore::explanation(int64_t feature,
                                                         const std::string& explainer) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, std::string("SELECT ") + kExplanationCols +
                           " FROM explanations WHERE feature = ?1 AND explainer = ?2");
  q.bind(1, feature).bind(2, explainer);
  if (!q.step()) return std::nullopt;
  return read_explanation(q);
}

std::vector<Explanation> ExplanationStore::explanations(int64_t feature) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, std::string("SELECT ") + kExplanationCols +
                           " FROM explanations WHERE feature = ?1 ORDER BY created DESC, "
                           "rowid DESC");
  q.bind(1, feature);
  std::vector<Explanation> out;
  while (q.step()) out.push_back(read_explanation(q));
  return out;
}

std::set<int64_t> ExplanationStore::explained(const std::string& explainer) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, "SELECT feature FROM explanations WHERE explainer = ?1");
  q.bind(1, explainer);
  std::set<int64_t> out;
  while (q.step()) out.insert(q.i64(0));
  return out;
}

void ExplanationStore::put_score(const ScoreRecord& s) { put_scores({s}); }

void ExplanationStore::put_scores(const std::vector<ScoreRecord>& rows) {
  std::lock_guard lock(mu_);
  sqlite::Transaction t(*db_);
  sqlite::Stmt q(*db_, std::string("INSERT OR REPLACE INTO scores(") + kScoreCols +
                           ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
  for (const ScoreRecord& s : rows) {
    q.bind(1, s.feature).bind(2, s.explainer).bind(3, s.method).bind(4, s.judge);
    bind_opt(q, 5, s.accuracy);
    bind_opt(q, 6, s.balanced_accuracy);
    bind_opt(q, 7, s.auroc);
    q.bind(8, s.value).bind(9, s.n).bind(10, s.details);
    q.bind(11, s.created.empty() ? now_iso8601() : s.created).run();
  }
  t.commit();
}

std::optional<ScoreRecord> ExplanationStore::score(int64_t feature, const std::string& explainer,
                                                   const std::string& method,
                                                   const std::string& judge) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, std::string("SELECT ") + kScoreCols +
                           " FROM scores WHERE feature = ?1 AND explainer = ?2 AND method = ?3 "
                           "AND judge = ?4");
  q.bind(1, feature).bind(2, explainer).bind(3, method).bind(4, judge);
  if (!q.step()) return std::nullopt;
  return read_score(q);
}

std::vector<ScoreRecord> ExplanationStore::scores(int64_t feature) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, std::string("SELECT ") + kScoreCols +
                           " FROM scores WHERE feature = ?1 ORDER BY explainer, method, judge");
  q.bind(1, feature);
  std::vector<ScoreRecord> out;
  while (q.step()) out.push_back(read_score(q));
  return out;
}

std::optional<CachedReply> ExplanationStore::cached(const std::string& key) const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_,
                 "SELECT response, prompt_tokens, completion_tokens FROM llm_cache WHERE key = ?1");
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return CachedReply{q.text(0), q.i64(1), q.i64(2)};
}

void ExplanationStore::put_cached(const std::string& key, const CachedReply& reply) {
  std::lock_guard lock(mu_);
  sqlite::Transaction t(*db_);
  sqlite::Stmt q(*db_,
                 "INSERT OR REPLACE INTO llm_cache(key, response, prompt_tokens, "
                 "completion_tokens, created) VALUES (?1, ?2, ?3, ?4, ?5)");
  q.bind(1, key).bind(2, reply.response).bind(3, reply.prompt_tokens);
  q.bind(4, reply.completion_tokens).bind(5, now_iso8601()).run();
  t.commit();
}

std::vector<VocabEntry> ExplanationStore::vocab() const {
  std::lock_guard lock(mu_);
  sqlite::Stmt q(*db_, "SELECT id, piece, text, display FROM vocab ORDER BY id");
  std::vector<VocabEntry> out;
  while (q.step()) {
    // Ids index the vector, so a gap would shift every later token.
    if (q.i64(0) != static_cast<int64_t>(out.size())) {
      throw Error(ErrorCode::kFormat, path_ + ": vocab table is not dense");
    }
    out.push_back({q.text(1), q.text(2), q.text(3)});
  }
  return out;
}

BaseRates ExplanationStore::base_rates() const {
  std::lock_guard lock(mu_);
  BaseRates out;
  {
    sqlite::Stmt q(*db_, "SELECT COUNT(*) FROM vocab");
    if (q.step()) out.counts.assign(static_cast<size_t>(std::max<int64_t>(q.i64(0), 0)), 0);
  }
  BigramCounter bigrams;
  sqlite::Stmt q(*db_, "SELECT ids FROM examples");
  while (q.step()) {
    const std::vector<int32_t> ids = q.vec<int32_t>(0);
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      if (id < 0) throw Error(ErrorCode::kFormat, path_ + ": negative token id in examples");
      if (static_cast<size_t>(id) >= out.counts.size()) out.counts.resize(id + size_t{1}, 0);
      ++out.counts[id];
      if (i > 0) bigrams.add(bigram_key(ids[i - 1], id));
    }
    out.total += static_cast<int64_t>(ids.size());
  }
  out.bigrams = bigrams.finish();
  return out;
}

std::string now_iso8601() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string cache_key(const std::string& request_json) {
  Sha256 h;
  h.update(request_json.data(), request_json.size());
  return h.hex_digest();
}

}  // namespace glassbox::autointerp
