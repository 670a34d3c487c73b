// FeatureDb: the SQLite feature database `glassbox analyze` writes and `glassbox serve` reads
// (schema in docs/analysis.md). One concern: storing and querying per-latent analysis results;
// it knows nothing about models or SAEs beyond the ids and strings it stores.
// Read queries are safe to call from several threads at once (the server does).
// The reader also shows the autointerp tables (explanations, scores; docs/autointerp.md) that
// `glassbox explain` / `glassbox score` add to the same file; it never writes them, and a
// database without them reads as one with no explanations.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace glassbox {

struct FeatureSummary {
  int64_t id = 0;
  int64_t n_fires = 0;  // tokens with activation > 0
  double freq = 0;      // n_fires / tokens analysed
  double mean_act = 0;  // mean over firing tokens
  double max_act = 0;
  std::string max_token;  // display text of the token at the top example's maximum ("" if none)
  // The primary explanation (docs/autointerp.md): the newest LLM one, else the 'offline' one;
  // both empty when the feature has none.
  std::string explanation, explainer;
  // The primary explanation's score `value` per method (the newest row when several judges
  // scored it); nullopt when not scored.
  std::optional<double> detection, fuzzing, intervention;
};

// One row of the `scores` table (docs/autointerp.md).
struct ScoreInfo {
  std::string method;                                        // detection | fuzzing | intervention
  std::string judge;                                         // 'offline' or a model name
  std::optional<double> accuracy, balanced_accuracy, auroc;  // auroc: none with one class
  double value = 0;     // detection/fuzzing: balanced accuracy; intervention: effect in [-1, 1]
  int64_t n = 0;        // samples judged
  std::string created;  // ISO 8601 UTC
};

// One row of the `explanations` table with its scores.
struct ExplanationInfo {
  std::string explainer;  // 'offline' or the LLM's model name
  std::string explanation, model, endpoint /* '' offline */, created;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  // Method order detection, fuzzing, intervention (then any other), newest judge first.
  std::vector<ScoreInfo> scores;
};

// One context window around a token where the latent fired.
struct FeatureExample {
  double act = 0;                   // activation at the centre token
  int64_t doc = 0;                  // corpus document id
  int64_t pos = 0;                  // document token index of the centre token
  int32_t center = 0;               // index of the centre token in `ids`
  std::vector<int32_t> ids;         // token ids of the window
  std::vector<std::string> tokens;  // their display texts (token_display_text)
  std::vector<float> acts;          // the latent's activation at each of them
  std::string text;                 // the window decoded (what text search matches)
};

struct QuantileBand {
  double lo = 0, hi = 0;  // activation interval (lo, hi]
  std::vector<FeatureExample> examples;
};

struct LogitEffect {
  int32_t id = 0;
  std::string token;  // display text
  double value = 0;  // (W_dec[f] after the final norm's scale) . W_U[:, id]
};

struct FeatureDetail {
  FeatureSummary summary;
  std::vector<double> hist_edges;    // n_bins + 1 edges of firing activations
  std::vector<int64_t> hist_counts;  // n_bins counts
  std::vector<FeatureExample> top;   // descending activation
  std::vector<QuantileBand> quantiles;
  std::vector<LogitEffect> positive, negative;  // most positive / most negative first
  // Every explanation of the feature, the primary first (then LLM ones newest first, offline
  // last); empty without the autointerp tables.
  std::vector<ExplanationInfo> explanations;
};

struct FeatureQuery {
  // "id", "freq", "mean_act", "max_act", or a score method ("detection", "fuzzing",
  // "intervention": the primary explanation's score; features without one last either way)
  std::string sort = "freq";
  bool descending = true;
  std::optional<double> min_freq, max_freq;
  // Words, all required: FTS5 prefix match over one top example's text, or case-insensitive
  // substrings of the primary explanation (empty = any)
  std::string text;
  std::string token;  // a top example's centre token: its piece, display text or trimmed text
  bool include_dead = true;
  int64_t offset = 0, limit = 50;
};

struct FeatureList {
  int64_t total = 0;  // matches before offset/limit
  std::vector<FeatureSummary> features;
  // Whether the database holds the autointerp tables (`glassbox explain` / `score` have run).
  bool has_explanations = false, has_scores = false;
};

class FeatureDb {
 public:
  // Opens read-only; Error(kIo) if missing, Error(kFormat) naming the file if not a glassbox
  // feature database or of another schema version, or if the analysis is unfinished.
  static std::unique_ptr<FeatureDb> open(const std::string& path);
  ~FeatureDb();

  const std::string& path() const { return path_; }
  // meta table: model, sae, hook, d_sae, tokens, ctx, ... (docs/analysis.md).
  std::map<std::string, std::string> meta() const;
  int64_t d_sae() const;
  // Error(kInvalidArgument) naming the field for an unknown sort key or bad range, or for a
  // sort by score in a database without scores.
  FeatureList list(const FeatureQuery& query) const;
  // nullopt when id is out of range.
  std::optional<FeatureDetail> detail(int64_t id) const;

 private:
  struct Impl;
  FeatureDb(std::string path, std::unique_ptr<Impl> impl);
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

// One vocabulary entry as stored in the database: the piece as the vocabulary spells it
// ("\u2581On", "\u0120the"), the token decoded on its own with surrounding whitespace trimmed
// (what a search by token matches besides the piece), and the text shown to people
// (token_display_text: " On", " the").
// The schema this build writes and reads (docs/analysis.md); 2 added vocab.display.
inline constexpr const char* kFeatureDbSchemaVersion = "2";

struct VocabEntry {
  std::string piece, text, display;
};

// The writing side, used by `glassbox analyze` only; one thread. Writes go into the transaction
// opened by begin() (or autocommit outside one).
class FeatureDbWriter {
 public:
  // Opens `path` read-write, creating the file and the schema when missing or empty.
  // Error(kFormat) naming the file if it exists but is not a glassbox feature database of this
  // schema version.
  explicit FeatureDbWriter(const std::string& path);
  ~FeatureDbWriter();

  std::map<std::string, std::string> meta() const;
  void set_meta(const std::string& key, const std::string& value);
  // Resume state blobs (table `state`); nullopt when absent.
  std::optional<std::vector<uint8_t>> state(const std::string& key) const;
  void set_state(const std::string& key, const std::vector<uint8_t>& blob);
  void clear_state();

  void begin();
  void commit();
  // Returns the pages freed by the resume state to the file system (outside a transaction).
  void vacuum();

  void put_vocab(const std::vector<VocabEntry>& vocab);
  // Writes one latent's row, examples (top and quantile bands, with the FTS text) and effects.
  void put_feature(const FeatureDetail& detail);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace glassbox
