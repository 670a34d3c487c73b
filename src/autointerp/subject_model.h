// The subject model's side of scoring: what a judge is shown besides the feature database's own
// examples. (1) Random contexts of the analysed corpus with the set of latents firing in each, so
// a latent's detection negatives are contexts where it is zero everywhere (delphi's "not
// activating" samples). (2) Generations from neutral prompts with a latent clamped, and the
// same generations unsteered (the intervention score). Runs the model and the SAE; knows nothing
// of judges, prompts or the database.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "autointerp/scoring.h"
#include "chat/chat_prompt.h"
#include "model/model.h"
#include "model/session.h"
#include "sae/sae.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::autointerp {

struct ContextOptions {
  std::vector<std::string> corpus;
  int64_t ctx = 128;    // window length with the BOS (analyze's --ctx)
  int64_t length = 21;  // tokens per context (analyze's 2 * context + 1)
  int64_t n_contexts = 400;
  int64_t per_window = 2;  // contexts cut from each window, so they spread over the corpus
  uint64_t seed = 0;
  int threads = 0;
};

class ContextPool {
 public:
  // Runs the model over the corpus's windows (analyze's windows, in order) until n_contexts
  // contexts are cut, at seeded random positions after the BOS. `vocab_text[id]` is the
  // display text of each token (token_display_text; the database's vocab.display).
  ContextPool(const Model& model, const Tokenizer& tokenizer, const Sae& sae,
              const ContextOptions& options, const std::vector<std::string>& vocab_text);

  size_t size() const { return tokens_.size(); }
  // Up to `n` contexts where `latent` is zero at every token, chosen with `seed` (acts all 0).
  std::vector<ScoringSample> negatives(int64_t latent, size_t n, uint64_t seed) const;

 private:
  std::vector<std::vector<std::string>> tokens_;
  std::vector<std::vector<int32_t>> firing_;  // sorted latents with an activation > 0
};

struct SteerOptions {
  std::vector<std::string> prompts = {"Once upon a time", "One day", "There was a", "The"};
  int64_t per_prompt = 4;  // seeds per prompt
  int64_t max_tokens = 32;
  double temperature = 0.8;
  uint64_t seed = 0;
  // score --chat: each prompt is the user message of a chat turn (encode_turn), else plain text
  // with BOS.
  std::shared_ptr<const ChatFormatter> chat;
};

// Generations (the new text only) from every prompt and seed; with `latent` >= 0 that SAE latent
// is clamped to `value` at every position (SAE error term kept), else unsteered. Same seeds for
// both, so the difference is the clamp's doing.
std::vector<std::string> generate_texts(Session& session, const Tokenizer& tokenizer,
                                        const std::shared_ptr<const Sae>& sae, int64_t latent,
                                        float value, const SteerOptions& options);

}  // namespace glassbox::autointerp
