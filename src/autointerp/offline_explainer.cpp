#include "autointerp/offline_explainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "autointerp/text.h"

namespace glassbox::autointerp {
namespace {

constexpr size_t kMaxQuotedTokens = 3;
// A 2nd or 3rd token seen at a handful of firing positions is noise to a reader and makes the
// term-matching judge fire on unrelated contexts.
constexpr double kMinExtraTokenShare = 0.05;
// A bigram is worth quoting only when it describes a sizeable part of the activations.
constexpr double kMinBigramShare = 0.2;
constexpr size_t kMaxListed = 10;

// Whether a display piece begins a new word: SentencePiece's "▁", byte-level BPE's "Ġ", or plain
// whitespace. Decoded texts are trimmed, so this is the only trace of the space between tokens.
bool starts_word(const std::string& piece) {
  return piece.starts_with("\xE2\x96\x81") || piece.starts_with("\xC4\xA0") ||
         (!piece.empty() && (piece[0] == ' ' || piece[0] == '\n' || piece[0] == '\t'));
}

// Firing-position counts of one feature, keyed by token id and by bigram_key.
struct Counts {
  std::map<int32_t, int64_t> tokens;
  std::map<uint64_t, int64_t> bigrams;
  int64_t firing = 0;
};

void count_context(const FeatureExample& e, Counts& c) {
  const size_t n = std::min(e.ids.size(), e.acts.size());
  for (size_t i = 0; i < n; ++i) {
    if (!(e.acts[i] > 0)) continue;
    ++c.firing;
    ++c.tokens[e.ids[i]];
    if (i > 0) ++c.bigrams[bigram_key(e.ids[i - 1], e.ids[i])];
  }
}

Counts count_firing(const FeatureDetail& d) {
  Counts c;
  for (const FeatureExample& e : d.top) count_context(e, c);
  for (const QuantileBand& b : d.quantiles) {
    for (const FeatureExample& e : b.examples) count_context(e, c);
  }
  return c;
}

struct Ranked {
  TermStat stat;
  double score = 0;
  uint64_t key = 0;  // token id or bigram key: the last tie-break, for a deterministic order
};

// TermStat of a term seen `count` times among `firing` positions whose base count is `base_count`
// out of `total`; nullopt unless it is over-represented (lift > 1).
std::optional<Ranked> rank_term(std::string text, int64_t count, int64_t firing, int64_t base_count,
                                int64_t total, uint64_t key) {
  // The base counts every stored context, this feature's included, so it cannot be below the
  // feature's own counts; a base that disagrees is floored rather than divided by zero.
  const double base_rate = static_cast<double>(std::max(base_count, count)) /
                           static_cast<double>(std::max(total, firing));
  Ranked r;
  r.stat.text = std::move(text);
  r.stat.count = count;
  r.stat.share = static_cast<double>(count) / static_cast<double>(firing);
  r.stat.lift = r.stat.share / base_rate;
  if (!(r.stat.lift > 1)) return std::nullopt;
  r.score = static_cast<double>(count) * std::log(r.stat.lift);
  r.key = key;
  return r;
}

// Best first, each text once (two ids may decode alike; the judge matches by text), at most
// kMaxListed.
std::vector<TermStat> best_first(std::vector<Ranked> terms) {
  std::sort(terms.begin(), terms.end(), [](const Ranked& a, const Ranked& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.stat.count != b.stat.count) return a.stat.count > b.stat.count;
    return a.key < b.key;
  });
  std::vector<TermStat> out;
  std::set<std::string> seen;
  for (Ranked& r : terms) {
    if (out.size() == kMaxListed) break;
    if (seen.insert(r.stat.text).second) out.push_back(std::move(r.stat));
  }
  return out;
}

const VocabEntry* entry(const std::vector<VocabEntry>& vocab, int32_t id) {
  return id >= 0 && static_cast<size_t>(id) < vocab.size() ? &vocab[id] : nullptr;
}

std::vector<TermStat> token_terms(const Counts& c, const BaseRates& base,
                                  const std::vector<VocabEntry>& vocab) {
  std::vector<Ranked> terms;
  for (const auto& [id, count] : c.tokens) {
    const VocabEntry* v = entry(vocab, id);
    std::string text = v ? term_text(*v) : std::string();
    if (text.empty()) continue;
    const int64_t b = static_cast<size_t>(id) < base.counts.size() ? base.counts[id] : 0;
    auto r = rank_term(std::move(text), count, c.firing, b, base.total, static_cast<uint32_t>(id));
    if (r) terms.push_back(std::move(*r));
  }
  return best_first(std::move(terms));
}

std::vector<TermStat> bigram_terms(const Counts& c, const BaseRates& base,
                                   const std::vector<VocabEntry>& vocab) {
  std::vector<Ranked> terms;
  for (const auto& [key, count] : c.bigrams) {
    const auto prev = static_cast<int32_t>(key >> 32);
    const auto token = static_cast<int32_t>(key & 0xffffffffu);
    const VocabEntry* a = entry(vocab, prev);
    const VocabEntry* b = entry(vocab, token);
    if (!a || !b) continue;
    const std::string ta = term_text(*a), tb = term_text(*b);
    if (ta.empty() || tb.empty()) continue;
    int64_t bc = base.bigram_count(prev, token);
    if (base.bigrams.empty()) {
      bc = static_cast<size_t>(token) < base.counts.size() ? base.counts[token] : 0;
    }
    std::string text = ta + (starts_word(b->piece) ? " " : "") + tb;
    auto r = rank_term(std::move(text), count, c.firing, bc, base.total, key);
    if (r) terms.push_back(std::move(*r));
  }
  return best_first(std::move(terms));
}

std::string percent(double share) {
  const long p = std::lround(share * 100);
  return p == 0 ? std::string("<1%") : std::to_string(p) + "%";
}

std::string times(double lift) {
  char buf[32];
  std::snprintf(buf, sizeof buf, lift >= 9.95 ? "%.0fx" : "%.1fx", lift);
  return buf;
}

// The first quoted term carries the long labels, later ones only the numbers.
std::string quote(const TermStat& t, bool first) {
  return json_quote(t.text) + " (" + percent(t.share) + (first ? " of activations, " : ", ") +
         times(t.lift) + (first ? " base rate)" : ")");
}

std::string compose(const std::vector<TermStat>& tokens, const std::vector<TermStat>& bigrams) {
  std::string out;
  for (size_t i = 0; i < tokens.size() && i < kMaxQuotedTokens; ++i) {
    if (i > 0 && tokens[i].share < kMinExtraTokenShare) break;
    out += i == 0 ? "fires on " : ", ";
    out += quote(tokens[i], i == 0);
  }
  const auto bigram = std::find_if(bigrams.begin(), bigrams.end(),
                                   [](const TermStat& t) { return t.share >= kMinBigramShare; });
  if (bigram != bigrams.end()) {
    out += out.empty() ? "fires in " + quote(*bigram, true) : "; often in " + quote(*bigram, false);
  }
  // Alive but nothing over-represented (a dense feature): say so without quoting anything.
  return out.empty() ? "no token above its base rate" : out;
}

}  // namespace

uint64_t bigram_key(int32_t prev, int32_t token) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(prev)) << 32) | static_cast<uint32_t>(token);
}

int64_t BaseRates::bigram_count(int32_t prev, int32_t token) const {
  const uint64_t key = bigram_key(prev, token);
  const auto it = std::lower_bound(bigrams.begin(), bigrams.end(), key,
                                   [](const auto& p, uint64_t k) { return p.first < k; });
  return it != bigrams.end() && it->first == key ? it->second : 0;
}

std::string term_text(const VocabEntry& entry) {
  std::string t = trim(entry.text);
  if (t.empty()) t = trim(entry.display);
  if (t.empty()) {  // whitespace only: line breaks and tabs are worth naming, spaces are not
    for (const char c : entry.display) {
      if (c == '\n' || c == '\t') t += c;
    }
  }
  return t;
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::optional<OfflineExplanation> explain_offline(const FeatureDetail& detail,
                                                  const BaseRates& base,
                                                  const std::vector<VocabEntry>& vocab) {
  const Counts counts = count_firing(detail);
  if (counts.firing == 0) return std::nullopt;
  OfflineExplanation out;
  out.tokens = token_terms(counts, base, vocab);
  out.bigrams = bigram_terms(counts, base, vocab);
  out.text = compose(out.tokens, out.bigrams);
  return out;
}

}  // namespace glassbox::autointerp
