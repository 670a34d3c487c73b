// Scoring explanations (docs/autointerp.md, delphi's protocols): the detection and fuzzing sample
// sets, the judges (a deterministic term matcher and an LLM judge over a ChatFn), the binary
// metrics (accuracy, balanced accuracy, AUROC) and the intervention score.
// Pure logic: the caller brings the contexts, their activations and the generations; no HTTP, no
// database, no model here. Every random choice comes from the caller's seed, so a score is
// reproducible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "autointerp/chat.h"

namespace glassbox::autointerp {

// One context with the feature's activation at each token (all 0, or empty, for a negative).
struct ScoringSample {
  std::vector<std::string> tokens;
  std::vector<float> acts;
};

// What a judge sees of one context. `marked` empty = unmarked (detection); otherwise one flag per
// token, written <<...>> in LLM prompts.
struct JudgeItem {
  std::vector<std::string> tokens;
  std::vector<bool> marked;
};

class Judge {
 public:
  virtual ~Judge() = default;
  // "offline" or the LLM's model name (stored as scores.judge).
  virtual std::string name() const = 0;
  // Probabilities in [0, 1], one per item: that the feature fires somewhere in it (detection) /
  // that its marking is the feature's activating tokens (fuzzing).
  virtual std::vector<double> detect(const std::string& explanation,
                                     const std::vector<JudgeItem>& items) = 0;
  virtual std::vector<double> fuzz(const std::string& explanation,
                                   const std::vector<JudgeItem>& items) = 0;
  // How much each text expresses the explanation, in [0, 1] (intervention scoring).
  virtual std::vector<double> expresses(const std::string& explanation,
                                        const std::vector<std::string>& texts) = 0;
};

// The terms the offline judge looks for: the explanation's JSON-style quoted literals ("...",
// escapes undone; also “...”), trimmed of whitespace, empty ones dropped; if it quotes nothing, its
// words (runs of letters and digits) of 3+ characters, lowercased, minus a small stop list
// ("the", "token", "words", ...). Without duplicates, in order of appearance.
std::vector<std::string> explanation_terms(const std::string& explanation);

// Deterministic judge. A term matches a token when it equals the token's trimmed text, ASCII
// case-insensitively, or the trimmed concatenated text of a run of consecutive tokens; the display
// space markers of raw pieces (U+2581, U+0120, U+010A) read as whitespace.
//   detect:    1 if any term matches a token or run, else 0;
//   fuzz:      1 if at least half of the marked tokens are covered by matches, else 0 (0 when none
//              is marked);
//   expresses: 1 if the text contains a term as a whole word (case-insensitive), else 0.
class OfflineJudge : public Judge {
 public:
  std::string name() const override { return "offline"; }
  std::vector<double> detect(const std::string& explanation,
                             const std::vector<JudgeItem>& items) override;
  std::vector<double> fuzz(const std::string& explanation,
                           const std::vector<JudgeItem>& items) override;
  std::vector<double> expresses(const std::string& explanation,
                                const std::vector<std::string>& texts) override;
};

// Judge over a language model: items go in batches of `batch` per prompt (prompts.h). A reply that
// cannot be parsed is retried once, as a follow-up turn that quotes the problem (so a reply cache
// keyed by the request does not hand back the same reply); a second failure throws
// Error(kFormat) naming the model. Errors of `chat` propagate. Not thread-safe: one per thread.
class LlmJudge : public Judge {
 public:
  // Error(kInvalidArgument) when batch is 0.
  LlmJudge(ChatFn chat, std::string model_name, size_t batch = 10);
  std::string name() const override { return model_name_; }
  std::vector<double> detect(const std::string& explanation,
                             const std::vector<JudgeItem>& items) override;
  std::vector<double> fuzz(const std::string& explanation,
                           const std::vector<JudgeItem>& items) override;
  std::vector<double> expresses(const std::string& explanation,
                                const std::vector<std::string>& texts) override;

 private:
  using PromptFn = std::vector<ChatMessage> (*)(const std::string&,
                                                const std::vector<std::string>&);
  std::vector<double> judge(PromptFn prompt, const std::string& explanation,
                            const std::vector<std::string>& texts);
  std::vector<double> judge_batch(PromptFn prompt, const std::string& explanation,
                                  const std::vector<std::string>& texts);

  ChatFn chat_;
  std::string model_name_;
  size_t batch_;
};

struct BinaryScore {
  double accuracy = 0, balanced_accuracy = 0;
  std::optional<double> auroc;  // nullopt when a class is missing
  int64_t n_pos = 0, n_neg = 0;
};

// Predicted positive = prob >= 0.5. Balanced accuracy = (TPR + TNR) / 2, or the present class's
// rate alone when the other is missing; AUROC by Mann-Whitney, ties counting 1/2. All 0 for no
// samples. Error(kInvalidArgument) when the sizes differ or a probability is NaN.
BinaryScore score_binary(const std::vector<bool>& truth, const std::vector<double>& prob);

// Truth and judged probability per sample, in the order judged.
struct MethodResult {
  BinaryScore score;
  std::vector<bool> truth;
  std::vector<double> prob;
};

// Detection: the first min(#positives, #negatives) of each, unmarked, shuffled together with
// `seed`, judged; truth = the sample is a positive. Error(kInvalidArgument) for a positive with no
// activation > 0, a negative with one, or acts of the wrong size (a negative's may be empty).
MethodResult run_detection(Judge& judge, const std::string& explanation,
                           const std::vector<ScoringSample>& positives,
                           const std::vector<ScoringSample>& negatives, uint64_t seed);

// Fuzzing: each positive twice, once with its activating tokens (act > 0) marked (truth 1) and
// once with as many of its non-activating tokens marked, chosen with `seed` (truth 0); a context
// with fewer non-activating than activating tokens is skipped. The pairs are shuffled with `seed`
// before judging. Same argument errors as run_detection.
MethodResult run_fuzzing(Judge& judge, const std::string& explanation,
                         const std::vector<ScoringSample>& positives, uint64_t seed);

// value = mean expresses(steered) - mean expresses(unsteered), in [-1, 1]; n = #steered.
// Error(kInvalidArgument) when either list is empty.
struct InterventionResult {
  double value = 0, steered = 0, unsteered = 0;
  int64_t n = 0;
};
InterventionResult intervention_score(Judge& judge, const std::string& explanation,
                                      const std::vector<std::string>& steered,
                                      const std::vector<std::string>& unsteered);

// JSON text for scores.details: {"truth": [1, 0, ...], "prob": [...], "n_pos", "n_neg"} /
// {"steered": mean, "unsteered": mean, "n"}.
std::string details_json(const MethodResult& r);
std::string details_json(const InterventionResult& r);

}  // namespace glassbox::autointerp
