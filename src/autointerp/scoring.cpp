#include "autointerp/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string_view>

#include "autointerp/prompts.h"
#include "autointerp/text.h"
#include "core/error.h"

namespace glassbox::autointerp {
namespace {

// Letters and digits; bytes of non-ASCII characters count as letters.
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z');
}

// ---- terms -------------------------------------------------------------------------------------

// Words that say nothing about where a feature fires; left out of the word fallback.
const std::set<std::string, std::less<>> kStopWords = {
    "the",      "and",        "for",         "with",     "that",       "this",    "these",
    "those",    "are",        "was",         "were",     "its",        "from",    "into",
    "onto",     "about",      "such",        "like",     "any",        "some",    "often",
    "usually",  "mostly",     "especially",  "when",     "where",      "which",   "who",
    "what",     "other",      "various",     "specific", "particular", "token",   "tokens",
    "word",     "words",      "text",        "texts",    "phrase",     "phrases", "term",
    "terms",    "feature",    "fires",       "fire",     "firing",     "active",  "activates",
    "activate", "activation", "activations", "mention",  "mentions",   "related", "references",
    "refers",   "but",        "not",         "has",      "have",       "also",    "their"};

// The literal starting at s[i] == '"': its unescaped text and the index past its closing quote, or
// nullopt when unterminated.
std::optional<std::pair<std::string, size_t>> json_literal(const std::string& s, size_t i) {
  size_t k = i + 1;
  while (k < s.size() && s[k] != '"') k += s[k] == '\\' ? 2 : 1;
  if (k >= s.size()) return std::nullopt;
  const nlohmann::json j =
      nlohmann::json::parse(std::string_view(s).substr(i, k - i + 1), nullptr, false);
  // A bad escape (\q) keeps the raw text rather than dropping the term.
  std::string text = j.is_string() ? j.get<std::string>() : s.substr(i + 1, k - i - 1);
  return std::make_pair(std::move(text), k + 1);
}

std::vector<std::string> quoted_terms(const std::string& s) {
  static constexpr std::string_view kOpen = "\xE2\x80\x9C", kClose = "\xE2\x80\x9D";  // “ ”
  std::vector<std::string> raw;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '"') {
      const auto lit = json_literal(s, i);
      if (!lit) break;
      raw.push_back(lit->first);
      i = lit->second;
    } else if (std::string_view(s).substr(i).starts_with(kOpen)) {
      const size_t end = s.find(kClose, i + kOpen.size());
      if (end == std::string::npos) break;
      raw.push_back(s.substr(i + kOpen.size(), end - i - kOpen.size()));
      i = end + kClose.size();
    } else {
      ++i;
    }
  }
  std::vector<std::string> out;
  for (const std::string& r : raw) out.push_back(trim(r));
  return out;
}

std::vector<std::string> word_terms(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!is_word_byte(s[i])) {
      ++i;
      continue;
    }
    size_t j = i, chars = 0;
    for (; j < s.size() && is_word_byte(s[j]); ++j) {
      if ((static_cast<unsigned char>(s[j]) & 0xC0) != 0x80) ++chars;  // count code points
    }
    std::string word = ascii_lower(s.substr(i, j - i));
    if (chars >= 3 && !kStopWords.contains(word)) out.push_back(std::move(word));
    i = j;
  }
  return out;
}

// ---- matching ----------------------------------------------------------------------------------

// A token's text for matching: its display text (token_display_text: spaces are spaces, not
// U+2581 or U+0120 markers), ASCII lowercased.
std::string match_text(const std::string& token) { return ascii_lower(token); }

// Which tokens lie in a token or run of tokens whose trimmed text equals a term.
class TermMatcher {
 public:
  explicit TermMatcher(const std::string& explanation) {
    for (const std::string& t : explanation_terms(explanation)) {
      terms_.insert(ascii_lower(t));
      max_len_ = std::max(max_len_, t.size());
    }
  }

  bool empty() const { return terms_.empty(); }
  const std::set<std::string, std::less<>>& terms() const { return terms_; }

  std::vector<bool> covered(const std::vector<std::string>& tokens) const {
    std::vector<std::string> text(tokens.size());
    std::transform(tokens.begin(), tokens.end(), text.begin(), match_text);
    std::vector<bool> out(tokens.size(), false);
    for (size_t i = 0; i < tokens.size() && !terms_.empty(); ++i) {
      std::string run;
      for (size_t j = i; j < tokens.size(); ++j) {
        run += text[j];
        const std::string t = trim(run);
        // The trimmed run only grows from here on: stop once it is longer than every term.
        if (t.size() > max_len_) break;
        if (t.empty() || !terms_.contains(t)) continue;
        std::fill(out.begin() + static_cast<std::ptrdiff_t>(i),
                  out.begin() + static_cast<std::ptrdiff_t>(j) + 1, true);
      }
    }
    return out;
  }

 private:
  std::set<std::string, std::less<>> terms_;
  size_t max_len_ = 0;
};

bool contains_word(const std::string& lowered_text, const std::string& term) {
  for (size_t pos = lowered_text.find(term); pos != std::string::npos;
       pos = lowered_text.find(term, pos + 1)) {
    const size_t end = pos + term.size();
    const bool start_ok =
        pos == 0 || !is_word_byte(lowered_text[pos - 1]) || !is_word_byte(term.front());
    const bool end_ok = end == lowered_text.size() || !is_word_byte(lowered_text[end]) ||
                        !is_word_byte(term.back());
    if (start_ok && end_ok) return true;
  }
  return false;
}

void check_marks(const JudgeItem& item) {
  if (!item.marked.empty() && item.marked.size() != item.tokens.size()) {
    throw Error(ErrorCode::kInvalidArgument, "judge item: " + std::to_string(item.marked.size()) +
                                                 " marks for " +
                                                 std::to_string(item.tokens.size()) + " tokens");
  }
}

std::vector<std::string> item_texts(const std::vector<JudgeItem>& items) {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const JudgeItem& item : items) out.push_back(mark_context(item.tokens, item.marked));
  return out;
}

// ---- protocols ---------------------------------------------------------------------------------

// Fisher-Yates with a fixed recipe (std::shuffle's is implementation-defined), so a seed gives
// the same order with every standard library.
template <typename T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

bool fires(const ScoringSample& s) {
  return std::any_of(s.acts.begin(), s.acts.end(), [](float a) { return a > 0; });
}

void check_sample(const ScoringSample& s, bool positive, const char* method, size_t index) {
  const std::string what =
      std::string(method) + ": " + (positive ? "positive " : "negative ") + std::to_string(index);
  if (s.acts.size() != s.tokens.size() && (positive || !s.acts.empty())) {
    throw Error(ErrorCode::kInvalidArgument, what + " has " + std::to_string(s.acts.size()) +
                                                 " activations for " +
                                                 std::to_string(s.tokens.size()) + " tokens");
  }
  if (positive && !fires(s)) {
    throw Error(ErrorCode::kInvalidArgument, what + " has no activation > 0");
  }
  if (!positive && fires(s)) {
    throw Error(ErrorCode::kInvalidArgument, what + " has an activation > 0");
  }
}

void check_count(const Judge& judge, size_t got, size_t expected) {
  if (got != expected) {
    throw Error(ErrorCode::kFormat, "judge " + judge.name() + " returned " + std::to_string(got) +
                                        " probabilities for " + std::to_string(expected) +
                                        " items");
  }
}

MethodResult judged(std::vector<bool> truth, std::vector<double> prob) {
  MethodResult r;
  r.score = score_binary(truth, prob);
  r.truth = std::move(truth);
  r.prob = std::move(prob);
  return r;
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0.0 : sum / static_cast<double>(v.size());
}

}  // namespace

std::vector<std::string> explanation_terms(const std::string& explanation) {
  std::vector<std::string> found = quoted_terms(explanation);
  std::erase(found, std::string());
  if (found.empty()) found = word_terms(explanation);
  std::vector<std::string> out;
  for (std::string& t : found) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(std::move(t));
  }
  return out;
}

// ---- OfflineJudge ------------------------------------------------------------------------------

std::vector<double> OfflineJudge::detect(const std::string& explanation,
                                         const std::vector<JudgeItem>& items) {
  const TermMatcher matcher(explanation);
  std::vector<double> out;
  for (const JudgeItem& item : items) {
    check_marks(item);
    const std::vector<bool> cov = matcher.covered(item.tokens);
    out.push_back(std::find(cov.begin(), cov.end(), true) != cov.end() ? 1.0 : 0.0);
  }
  return out;
}

std::vector<double> OfflineJudge::fuzz(const std::string& explanation,
                                       const std::vector<JudgeItem>& items) {
  const TermMatcher matcher(explanation);
  std::vector<double> out;
  for (const JudgeItem& item : items) {
    check_marks(item);
    const std::vector<bool> cov = matcher.covered(item.tokens);
    size_t n_marked = 0, n_hit = 0;
    for (size_t i = 0; i < item.marked.size(); ++i) {
      n_marked += item.marked[i] ? 1 : 0;
      n_hit += item.marked[i] && cov[i] ? 1 : 0;
    }
    out.push_back(n_marked > 0 && 2 * n_hit >= n_marked ? 1.0 : 0.0);
  }
  return out;
}

std::vector<double> OfflineJudge::expresses(const std::string& explanation,
                                            const std::vector<std::string>& texts) {
  const TermMatcher matcher(explanation);
  std::vector<double> out;
  for (const std::string& text : texts) {
    const std::string lowered = ascii_lower(text);
    const bool hit = std::any_of(matcher.terms().begin(), matcher.terms().end(),
                                 [&](const std::string& t) { return contains_word(lowered, t); });
    out.push_back(hit ? 1.0 : 0.0);
  }
  return out;
}

// ---- LlmJudge ----------------------------------------------------------------------------------

LlmJudge::LlmJudge(ChatFn chat, std::string model_name, size_t batch)
    : chat_(std::move(chat)), model_name_(std::move(model_name)), batch_(batch) {
  if (batch_ == 0) throw Error(ErrorCode::kInvalidArgument, "judge: batch must be > 0");
  if (!chat_) throw Error(ErrorCode::kInvalidArgument, "judge: no chat function");
}

std::vector<double> LlmJudge::detect(const std::string& explanation,
                                     const std::vector<JudgeItem>& items) {
  return judge(&detection_prompt, explanation, item_texts(items));
}

std::vector<double> LlmJudge::fuzz(const std::string& explanation,
                                   const std::vector<JudgeItem>& items) {
  return judge(&fuzzing_prompt, explanation, item_texts(items));
}

std::vector<double> LlmJudge::expresses(const std::string& explanation,
                                        const std::vector<std::string>& texts) {
  return judge(&expression_prompt, explanation, texts);
}

std::vector<double> LlmJudge::judge(PromptFn prompt, const std::string& explanation,
                                    const std::vector<std::string>& texts) {
  std::vector<double> out;
  out.reserve(texts.size());
  for (size_t start = 0; start < texts.size(); start += batch_) {
    const size_t end = std::min(texts.size(), start + batch_);
    const std::vector<std::string> batch(texts.begin() + static_cast<std::ptrdiff_t>(start),
                                         texts.begin() + static_cast<std::ptrdiff_t>(end));
    const std::vector<double> probs = judge_batch(prompt, explanation, batch);
    out.insert(out.end(), probs.begin(), probs.end());
  }
  return out;
}

std::vector<double> LlmJudge::judge_batch(PromptFn prompt, const std::string& explanation,
                                          const std::vector<std::string>& texts) {
  std::vector<ChatMessage> messages = prompt(explanation, texts);
  const std::string reply = chat_(messages);
  std::string problem;
  try {
    return parse_judgements(reply, texts.size());
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kFormat) throw;
    problem = e.what();
  }
  messages.push_back({"assistant", reply});
  messages.push_back({"user", "Your reply could not be read (" + problem +
                                  "). Answer with only a JSON list of " +
                                  std::to_string(texts.size()) +
                                  " numbers between 0 and 1, one per example, in order."});
  try {
    return parse_judgements(chat_(messages), texts.size());
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kFormat) throw;
    throw e.with_context("judge " + model_name_ + " (after one retry)");
  }
}

// ---- metrics and protocols ---------------------------------------------------------------------

BinaryScore score_binary(const std::vector<bool>& truth, const std::vector<double>& prob) {
  if (truth.size() != prob.size()) {
    throw Error(ErrorCode::kInvalidArgument, "score_binary: " + std::to_string(truth.size()) +
                                                 " labels for " + std::to_string(prob.size()) +
                                                 " probabilities");
  }
  BinaryScore s;
  int64_t tp = 0, tn = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    if (std::isnan(prob[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  "score_binary: probability " + std::to_string(i) + " is NaN");
    }
    const bool predicted = prob[i] >= 0.5;
    (truth[i] ? s.n_pos : s.n_neg) += 1;
    tp += truth[i] && predicted ? 1 : 0;
    tn += !truth[i] && !predicted ? 1 : 0;
  }
  if (truth.empty()) return s;
  s.accuracy = static_cast<double>(tp + tn) / static_cast<double>(truth.size());
  const double tpr = s.n_pos > 0 ? static_cast<double>(tp) / static_cast<double>(s.n_pos) : 0;
  const double tnr = s.n_neg > 0 ? static_cast<double>(tn) / static_cast<double>(s.n_neg) : 0;
  if (s.n_pos == 0 || s.n_neg == 0) {
    s.balanced_accuracy = s.n_pos > 0 ? tpr : tnr;
    return s;
  }
  s.balanced_accuracy = (tpr + tnr) / 2;
  // Mann-Whitney through mid-ranks: tied probabilities share the mean of their ranks, which is
  // the same as counting each tied positive/negative pair as 1/2.
  std::vector<size_t> order(prob.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return prob[a] < prob[b]; });
  double rank_sum_pos = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && prob[order[j]] == prob[order[i]]) ++j;
    const double mid_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t k = i; k < j; ++k) rank_sum_pos += truth[order[k]] ? mid_rank : 0;
    i = j;
  }
  const double np = static_cast<double>(s.n_pos), nn = static_cast<double>(s.n_neg);
  s.auroc = (rank_sum_pos - np * (np + 1) / 2) / (np * nn);
  return s;
}

MethodResult run_detection(Judge& judge, const std::string& explanation,
                           const std::vector<ScoringSample>& positives,
                           const std::vector<ScoringSample>& negatives, uint64_t seed) {
  const size_t k = std::min(positives.size(), negatives.size());
  std::vector<std::pair<const ScoringSample*, bool>> samples;
  for (size_t i = 0; i < k; ++i) {
    check_sample(positives[i], true, "detection", i);
    check_sample(negatives[i], false, "detection", i);
    samples.emplace_back(&positives[i], true);
    samples.emplace_back(&negatives[i], false);
  }
  std::mt19937_64 rng(seed);
  shuffle(samples, rng);
  std::vector<JudgeItem> items;
  std::vector<bool> truth;
  for (const auto& [sample, positive] : samples) {
    items.push_back({sample->tokens, {}});
    truth.push_back(positive);
  }
  std::vector<double> prob = judge.detect(explanation, items);
  check_count(judge, prob.size(), items.size());
  return judged(std::move(truth), std::move(prob));
}

MethodResult run_fuzzing(Judge& judge, const std::string& explanation,
                         const std::vector<ScoringSample>& positives, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::pair<JudgeItem, bool>> samples;
  for (size_t p = 0; p < positives.size(); ++p) {
    const ScoringSample& s = positives[p];
    check_sample(s, true, "fuzzing", p);
    std::vector<size_t> off;
    std::vector<bool> right(s.tokens.size(), false), wrong(s.tokens.size(), false);
    for (size_t i = 0; i < s.tokens.size(); ++i) {
      right[i] = s.acts[i] > 0;
      if (!right[i]) off.push_back(i);
    }
    const auto n_on = static_cast<size_t>(std::count(right.begin(), right.end(), true));
    if (off.size() < n_on) continue;
    // Partial Fisher-Yates: the first n_on entries of `off` become a uniform random subset.
    for (size_t t = 0; t < n_on; ++t) {
      std::swap(off[t], off[t + rng() % (off.size() - t)]);
      wrong[off[t]] = true;
    }
    samples.push_back({{s.tokens, std::move(right)}, true});
    samples.push_back({{s.tokens, std::move(wrong)}, false});
  }
  shuffle(samples, rng);
  std::vector<JudgeItem> items;
  std::vector<bool> truth;
  for (auto& [item, correct] : samples) {
    items.push_back(std::move(item));
    truth.push_back(correct);
  }
  std::vector<double> prob = judge.fuzz(explanation, items);
  check_count(judge, prob.size(), items.size());
  return judged(std::move(truth), std::move(prob));
}

InterventionResult intervention_score(Judge& judge, const std::string& explanation,
                                      const std::vector<std::string>& steered,
                                      const std::vector<std::string>& unsteered) {
  if (steered.empty() || unsteered.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "intervention: needs steered and unsteered texts (got " +
                    std::to_string(steered.size()) + " and " + std::to_string(unsteered.size()) +
                    ")");
  }
  const std::vector<double> a = judge.expresses(explanation, steered);
  check_count(judge, a.size(), steered.size());
  const std::vector<double> b = judge.expresses(explanation, unsteered);
  check_count(judge, b.size(), unsteered.size());
  InterventionResult r;
  r.steered = mean(a);
  r.unsteered = mean(b);
  r.value = r.steered - r.unsteered;
  r.n = static_cast<int64_t>(steered.size());
  return r;
}

std::string details_json(const MethodResult& r) {
  nlohmann::json truth = nlohmann::json::array();
  for (bool t : r.truth) truth.push_back(t ? 1 : 0);
  nlohmann::json j;
  j["truth"] = std::move(truth);
  j["prob"] = r.prob;
  j["n_pos"] = r.score.n_pos;
  j["n_neg"] = r.score.n_neg;
  return j.dump();
}

std::string details_json(const InterventionResult& r) {
  nlohmann::json j;
  j["steered"] = r.steered;
  j["unsteered"] = r.unsteered;
  j["n"] = r.n;
  return j.dump();
}

}  // namespace glassbox::autointerp
