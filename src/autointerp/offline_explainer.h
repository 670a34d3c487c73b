// The offline (statistical) explainer of issue #8 (docs/autointerp.md): which tokens and bigrams a
// feature fires on, and how much more often than they occur in every context stored in the feature
// database. Pure functions of their inputs: no SQLite, no model, no LLM here (ExplanationStore
// computes BaseRates and stores the result; the CLI drives both).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/feature_db.h"

namespace glassbox::autointerp {

// Packs a bigram (previous token id, token id) into one sortable key.
uint64_t bigram_key(int32_t prev, int32_t token);

// How often each token id and each bigram occurs over the ids of all stored example contexts
// (ExplanationStore::base_rates()). A bigram is counted at the position of its second token, so
// both kinds of rate are count / total over the same positions.
struct BaseRates {
  std::vector<int64_t> counts;  // counts[token id]
  int64_t total = 0;            // positions in all contexts
  // (bigram_key, occurrences), sorted by key. Empty when not computed: bigram lifts then fall back
  // to the second token's base rate (an upper bound on the bigram's, so lifts come out smaller).
  std::vector<std::pair<uint64_t, int64_t>> bigrams;

  int64_t bigram_count(int32_t prev, int32_t token) const;  // 0 when absent
};

// One token or bigram among the feature's firing positions.
struct TermStat {
  std::string text;   // term_text of the token; bigrams: both joined (see explain_offline)
  int64_t count = 0;  // firing positions holding the term
  double share = 0;   // count / firing positions
  double lift = 0;    // share / base rate
};

struct OfflineExplanation {
  std::string text;               // what is stored as the explanation
  std::vector<TermStat> tokens;   // lift > 1, best first, each text once, at most 10
  std::vector<TermStat> bigrams;  // same for bigrams
};

// The text a token is quoted by (and what a judge should match it against): its decoded text
// trimmed, else its display text trimmed (control tokens decode to nothing but display as "<s>"),
// else the line breaks and tabs of a whitespace-only token; "" (spaces only, or nothing) means
// the token is never quoted. Never a raw piece ("\u2581", "<0x0A>").
std::string term_text(const VocabEntry& entry);

// JSON string literal of `s` ("..." with ", \ and control bytes escaped; other bytes as they are),
// so a judge can parse quoted terms back exactly.
std::string json_quote(const std::string& s);

// Counts, over the feature's top examples and band samples, the token at each firing position
// (act > 0) and the bigram ending there (when the previous token is inside the context), compares
// each with its base rate, ranks terms with lift > 1 by count * log(lift), and writes e.g.
//   fires on "Lily" (62% of activations, 41x base rate), "Lucy" (20%, 35x); often in "Lily was"
//   (55%, 120x)
// quoting up to 3 tokens (the 2nd and 3rd only with share >= 5%) and the best bigram with share
// >= 20%. A bigram's base rate is its own count in `base.bigrams` (second token's when empty); its
// text joins the two term texts with a space when the second piece starts a word ("▁", "Ġ" or
// whitespace). Base counts below the feature's own count are raised to it (a base from another
// database must not divide by zero). nullopt for a dead feature (no firing position at all).
std::optional<OfflineExplanation> explain_offline(const FeatureDetail& detail,
                                                  const BaseRates& base,
                                                  const std::vector<VocabEntry>& vocab);

}  // namespace glassbox::autointerp
