// ExplanationStore: the autointerp tables inside a finished feature database (explanations,
// scores, llm_cache; schema in docs/autointerp.md) and the reads the explainer needs (vocab, base
// rates over stored contexts). It never touches the tables `glassbox analyze` writes, refuses any
// file that is not a finished glassbox feature database before writing anything, and knows nothing
// about HTTP, prompts or judging.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "autointerp/offline_explainer.h"

namespace glassbox::sqlite {
class Db;
}

namespace glassbox::autointerp {

struct Explanation {
  int64_t feature = 0;
  std::string explainer;    // "offline" or the LLM's model name
  std::string explanation;  // the text shown and judged
  std::string prompt;       // what was sent ("" offline)
  std::string model;
  std::string endpoint;  // "" offline
  std::string created;   // ISO 8601 UTC; empty on put -> now_iso8601()
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

struct ScoreRecord {
  int64_t feature = 0;
  std::string explainer, method, judge;  // method: detection | fuzzing | intervention
  std::optional<double> accuracy, balanced_accuracy, auroc;  // auroc: nullopt with one class
  double value = 0;  // detection/fuzzing: balanced accuracy; intervention: signed effect [-1, 1]
  int64_t n = 0;     // samples judged
  std::string details = "{}";  // JSON: per-sample predictions
  std::string created;         // empty on put -> now_iso8601()
};

struct CachedReply {
  std::string response;
  int64_t prompt_tokens = 0, completion_tokens = 0;
};

class ExplanationStore {
 public:
  // Opens an existing finished glassbox feature database read-write and creates the three tables
  // when missing. Error(kIo) for a missing or write-protected file; Error(kFormat) naming the file
  // and what is wrong for a foreign file, another schema version or an unfinished analysis.
  explicit ExplanationStore(const std::string& db_path);
  ~ExplanationStore();
  ExplanationStore(const ExplanationStore&) = delete;
  ExplanationStore& operator=(const ExplanationStore&) = delete;

  const std::string& path() const { return path_; }

  // Every method is thread-safe (the CLI calls from worker threads). Each put is one transaction
  // (INSERT OR REPLACE), committed - durable - when it returns.
  void put_explanation(const Explanation& e);
  // Many rows in one transaction: for cheap results (offline), where a commit per row would cost
  // more than computing them.
  void put_explanations(const std::vector<Explanation>& rows);
  std::optional<Explanation> explanation(int64_t feature, const std::string& explainer) const;
  std::vector<Explanation> explanations(int64_t feature) const;     // every explainer, newest first
  std::set<int64_t> explained(const std::string& explainer) const;  // features it explained

  void put_score(const ScoreRecord& s);
  void put_scores(const std::vector<ScoreRecord>& rows);
  std::optional<ScoreRecord> score(int64_t feature, const std::string& explainer,
                                   const std::string& method, const std::string& judge) const;
  std::vector<ScoreRecord> scores(int64_t feature) const;  // by explainer, method, judge

  std::optional<CachedReply> cached(const std::string& key) const;
  void put_cached(const std::string& key, const CachedReply& reply);

  std::vector<VocabEntry> vocab() const;  // index = token id
  // Token and bigram counts over the ids of every stored example context (all features, top and
  // bands). One scan of the examples table; call once per run.
  BaseRates base_rates() const;

 private:
  std::string path_;
  std::unique_ptr<sqlite::Db> db_;
  mutable std::mutex mu_;  // one connection; a transaction must not interleave with other calls
};

std::string now_iso8601();  // UTC, seconds: "2026-11-27T21:40:00Z"
// Cache key of an LLM request: lowercase hex SHA-256 of its canonical JSON.
std::string cache_key(const std::string& request_json);

}  // namespace glassbox::autointerp
