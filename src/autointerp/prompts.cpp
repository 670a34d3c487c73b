#include "autointerp/prompts.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "autointerp/text.h"
#include "core/error.h"

namespace glassbox::autointerp {
namespace {

constexpr size_t kMaxExplanationBytes = 200;

bool is_space(char c) { return c != '\0' && std::strchr(kSpace, c) != nullptr; }

// Keeps each example on its own line of the prompt, so the numbering stays unambiguous.
std::string one_line(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

std::string numbered(const std::vector<std::string>& texts) {
  std::string out;
  for (size_t i = 0; i < texts.size(); ++i) {
    out += "Example " + std::to_string(i + 1) + ": " + one_line(texts[i]) + "\n";
  }
  return out;
}

// ---- explainer ---------------------------------------------------------------------------------

constexpr const char* kExplainerSystem =
    "You are a meticulous AI researcher investigating a latent feature of a language model. You "
    "will be given text examples in which the tokens where the feature is active are written "
    "between delimiters <<like this>>; a run of consecutive active tokens is one span <<like "
    "this>>. Find what the marked tokens have in common (the tokens themselves, the words or "
    "concepts they belong to, or their context) and explain it.\n"
    "Guidelines:\n"
    "- Give one short, concrete explanation (a phrase or one sentence), not a list of "
    "possibilities.\n"
    "- When the feature is about specific words or tokens, quote them in double quotes, for "
    "example: the token \"Lily\".\n"
    "- Do not mention the delimiters << >> in your explanation.\n"
    "- You may reason briefly first, but the last line of your reply must be the explanation, "
    "formatted as:\n"
    "[EXPLANATION]: <your explanation>";

std::string marked_example(const FeatureExample& ex) {
  std::vector<bool> marked(ex.tokens.size(), false);
  for (size_t i = 0; i < ex.tokens.size() && i < ex.acts.size(); ++i) marked[i] = ex.acts[i] > 0;
  return mark_context(ex.tokens, marked);
}

std::vector<std::string> explainer_examples(const FeatureDetail& detail, int top, int per_band) {
  std::vector<std::string> out;
  const size_t n_top = std::min(detail.top.size(), static_cast<size_t>(top));
  for (size_t i = 0; i < n_top; ++i) out.push_back(marked_example(detail.top[i]));
  for (const QuantileBand& band : detail.quantiles) {
    const size_t n_band = std::min(band.examples.size(), static_cast<size_t>(per_band));
    for (size_t i = 0; i < n_band; ++i) out.push_back(marked_example(band.examples[i]));
  }
  return out;
}

// ---- explanation parsing -----------------------------------------------------------------------

std::string first_nonempty_line(std::string_view s) {
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string_view::npos) end = s.size();
    std::string line = trim(s.substr(start, end - start));
    if (!line.empty()) return line;
    start = end + 1;
  }
  return "";
}

std::string last_nonempty_line(std::string_view s) {
  std::string last;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string_view::npos) end = s.size();
    std::string line = trim(s.substr(start, end - start));
    if (!line.empty()) last = std::move(line);
    start = end + 1;
  }
  return last;
}

// A fallback line such as "**Explanation:** fires on names" loses its label.
std::string strip_label(std::string line) {
  size_t k = line.find_first_not_of("* \t");
  if (k == std::string::npos) return line;
  const std::string rest = ascii_lower(line.substr(k));
  if (rest.rfind("explanation", 0) != 0) return line;
  k += std::strlen("explanation");
  while (k < line.size() && line[k] == '*') ++k;
  if (k >= line.size() || line[k] != ':') return line;
  ++k;
  while (k < line.size() && line[k] == '*') ++k;
  return trim(std::string_view(line).substr(k));
}

// Whether the double quotes inside `s` pair up as quotations (an opening quote after a space or at
// the start, a closing one before a space, punctuation or the end): then "the token "Lily""
// may lose its outer quotes, but "Lily" and "Lucy" must keep them.
bool quotes_pair_up(std::string_view s) {
  bool open = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '"' || (i > 0 && s[i - 1] == '\\')) continue;
    if (!open) {
      if (i > 0 && !is_space(s[i - 1]) && std::strchr("([{", s[i - 1]) == nullptr) return false;
    } else if (i + 1 < s.size() && !is_space(s[i + 1]) &&
               std::strchr(",.;:!?)]}'", s[i + 1]) == nullptr) {
      return false;
    }
    open = !open;
  }
  return !open;
}

// Removes one layer of wrapping quotes or markdown; false when `s` is not wrapped.
bool unwrap_once(std::string& s) {
  struct Wrapper {
    std::string_view open, close;
  };
  static constexpr Wrapper kWrappers[] = {
      {"**", "**"}, {"*", "*"}, {"`", "`"}, {"'", "'"}, {"\xE2\x80\x9C", "\xE2\x80\x9D"},
      {"\"", "\""}};
  for (const Wrapper& w : kWrappers) {
    if (s.size() < w.open.size() + w.close.size()) continue;
    if (!std::string_view(s).starts_with(w.open) || !std::string_view(s).ends_with(w.close)) {
      continue;
    }
    const std::string_view inner =
        std::string_view(s).substr(w.open.size(), s.size() - w.open.size() - w.close.size());
    const bool ok = w.open == "\"" ? quotes_pair_up(inner)
                                   : inner.find(w.open) == std::string_view::npos &&
                                         inner.find(w.close) == std::string_view::npos;
    if (!ok) continue;
    s = trim(inner);
    return true;
  }
  return false;
}

// At most `max_bytes`, never splitting a UTF-8 character (continuation bytes are 10xxxxxx).
std::string cut_utf8(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t k = max_bytes;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  return s.substr(0, k);
}

// ---- judges ------------------------------------------------------------------------------------

constexpr const char* kAnswerFormat =
    "Answer with only a JSON list of numbers between 0 and 1, one per example, in the order "
    "given, for example [0.9, 0.05, 0.4]. Write nothing else.";

const std::string kDetectionSystem =
    std::string(
        "You are a meticulous interpretability researcher. You are given an explanation of a "
        "latent feature of a language model and a numbered list of text examples. The feature is "
        "active on some tokens of some examples and inactive everywhere in the others; the "
        "explanation describes where it is active. For each example, estimate the probability that "
        "the feature is active on at least one of its tokens, judging by the explanation.\n") +
    kAnswerFormat;

const std::string kFuzzingSystem =
    std::string(
        "You are a meticulous interpretability researcher. You are given an explanation of a "
        "latent feature of a language model and a numbered list of text examples in which some "
        "tokens are marked between delimiters <<like this>>. In some examples the marked tokens "
        "are exactly the ones where the feature is active; in the others the same number of tokens "
        "was marked at random. For each example, estimate the probability that the marking is "
        "correct, i.e. that the marked tokens are what the explanation describes.\n") +
    kAnswerFormat;

const std::string kExpressionSystem =
    std::string(
        "You are a meticulous interpretability researcher. You are given an explanation of a "
        "latent feature of a language model and a numbered list of texts. For each text, estimate "
        "the probability that it expresses what the explanation describes: it uses those words or "
        "tokens, or is about that concept.\n") +
    kAnswerFormat;

std::vector<ChatMessage> judge_prompt(const std::string& system, const std::string& explanation,
                                      const std::vector<std::string>& texts) {
  std::string user = "Explanation: " + one_line(explanation) + "\n\nExamples:\n" + numbered(texts) +
                     "\nAnswer with a JSON list of " + std::to_string(texts.size()) + " numbers.";
  return {{"system", system}, {"user", std::move(user)}};
}

// A JSON list of numbers or booleans, else nullopt.
std::optional<std::vector<double>> number_list(std::string_view text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  std::vector<double> out;
  for (const nlohmann::json& v : j) {
    if (v.is_boolean()) {
      out.push_back(v.get<bool>() ? 1.0 : 0.0);
    } else if (v.is_number()) {
      out.push_back(std::clamp(v.get<double>(), 0.0, 1.0));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace

std::string mark_context(const std::vector<std::string>& tokens, const std::vector<bool>& marked) {
  if (!marked.empty() && marked.size() != tokens.size()) {
    throw Error(ErrorCode::kInvalidArgument, "mark_context: " + std::to_string(marked.size()) +
                                                 " marks for " + std::to_string(tokens.size()) +
                                                 " tokens");
  }
  std::string out;
  size_t i = 0;
  while (i < tokens.size()) {
    if (marked.empty() || !marked[i]) {
      out += tokens[i++];
      continue;
    }
    std::string span;
    while (i < tokens.size() && marked[i]) span += tokens[i++];
    const size_t b = span.find_first_not_of(kSpace);
    if (b == std::string::npos) {
      out += "<<" + span + ">>";
      continue;
    }
    const size_t e = span.find_last_not_of(kSpace);
    out += span.substr(0, b) + "<<" + span.substr(b, e - b + 1) + ">>" + span.substr(e + 1);
  }
  return out;
}

std::vector<ChatMessage> explainer_prompt(const FeatureDetail& detail, int top, int per_band) {
  if (top < 0 || per_band < 0) {
    throw Error(ErrorCode::kInvalidArgument, "explainer_prompt: top and per_band must be >= 0");
  }
  const std::vector<std::string> examples = explainer_examples(detail, top, per_band);
  if (examples.empty()) {
    throw Error(
        ErrorCode::kInvalidArgument,
        "explainer_prompt: feature " + std::to_string(detail.summary.id) + " has no examples");
  }
  std::string user = "Examples of text where the feature is active:\n\n" + numbered(examples) +
                     "\nWhat do the marked tokens have in common? End your reply with the line\n"
                     "[EXPLANATION]: <your explanation>";
  return {{"system", kExplainerSystem}, {"user", std::move(user)}};
}

std::string parse_explanation(const std::string& reply) {
  static constexpr std::string_view kMarker = "[explanation]";
  const size_t pos = ascii_lower(reply).rfind(kMarker);
  std::string text;
  if (pos != std::string::npos) {
    // Skip the colon and the markdown closing the marker ("**[EXPLANATION]:** ..."), not the
    // markdown opening the text ("[EXPLANATION]: **...**").
    size_t k = pos + kMarker.size();
    while (k < reply.size() && reply[k] == '*') ++k;
    if (k < reply.size() && reply[k] == ':') ++k;
    while (k < reply.size() && reply[k] == '*') ++k;
    text = first_nonempty_line(std::string_view(reply).substr(k));
  } else {
    text = strip_label(last_nonempty_line(reply));
  }
  text = trim(text);
  while (unwrap_once(text)) {
  }
  text = trim(cut_utf8(text, kMaxExplanationBytes));
  if (text.empty()) throw Error(ErrorCode::kFormat, "explanation: the reply has no text");
  return text;
}

std::vector<ChatMessage> detection_prompt(const std::string& explanation,
                                          const std::vector<std::string>& contexts) {
  return judge_prompt(kDetectionSystem, explanation, contexts);
}

std::vector<ChatMessage> fuzzing_prompt(const std::string& explanation,
                                        const std::vector<std::string>& marked_contexts) {
  return judge_prompt(kFuzzingSystem, explanation, marked_contexts);
}

std::vector<ChatMessage> expression_prompt(const std::string& explanation,
                                           const std::vector<std::string>& texts) {
  return judge_prompt(kExpressionSystem, explanation, texts);
}

std::vector<double> parse_judgements(const std::string& reply, size_t n) {
  // Innermost [...] pairs, found in one pass; judged from the last one back.
  std::vector<std::pair<size_t, size_t>> lists;
  size_t open = std::string::npos;
  for (size_t i = 0; i < reply.size(); ++i) {
    if (reply[i] == '[') {
      open = i;
    } else if (reply[i] == ']' && open != std::string::npos) {
      lists.emplace_back(open, i);
      open = std::string::npos;
    }
  }
  std::optional<size_t> last_size;
  for (auto it = lists.rbegin(); it != lists.rend(); ++it) {
    const auto values =
        number_list(std::string_view(reply).substr(it->first, it->second - it->first + 1));
    if (!values) continue;
    if (values->size() == n) return *values;
    if (!last_size) last_size = values->size();
  }
  const std::string found =
      last_size ? "the last list of numbers in the reply has " + std::to_string(*last_size)
                : std::string("the reply has no list of numbers");
  throw Error(ErrorCode::kFormat, "judgements: expected a JSON list of " + std::to_string(n) +
                                      " numbers in [0, 1], one per example; " + found);
}

}  // namespace glassbox::autointerp
