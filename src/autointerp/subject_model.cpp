#include "autointerp/subject_model.h"

#include <algorithm>
#include <random>

#include "analysis/window_encoder.h"
#include "chat/chat_prompt.h"
#include "core/error.h"
#include "harvest/windows.h"
#include "model/run.h"
#include "steer/interventions.h"

namespace glassbox::autointerp {

ContextPool::ContextPool(const Model& model, const Tokenizer& tokenizer, const Sae& sae,
                         const ContextOptions& o, const std::vector<std::string>& vocab_text) {
  if (o.length < 1 || o.n_contexts < 1 || o.per_window < 1 || o.ctx < 2)
    throw Error(ErrorCode::kInvalidArgument, "contexts: length, count and ctx must be positive");
  const std::optional<int32_t> bos = tokenizer.bos_id();
  if (!bos) throw Error(ErrorCode::kUnsupported, "contexts: the tokenizer has no BOS token");
  SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = o.ctx;
  Session session(model, so);
  ThreadPool pool(o.threads);
  WindowEncoder encoder(session, sae, pool);
  std::mt19937_64 rng(o.seed);
  WindowStream windows(o.corpus, tokenizer, o.ctx, *bos);
  const int64_t m = sae.d_sae;
  while (static_cast<int64_t>(tokens_.size()) < o.n_contexts) {
    const CorpusWindow* w = windows.next();
    if (w == nullptr) break;
    const int64_t n = static_cast<int64_t>(w->tokens.size()) - 1;  // rows after the BOS
    if (n < o.length) continue;
    const std::vector<float>& acts = encoder.encode(w->tokens);
    std::uniform_int_distribution<int64_t> start(0, n - o.length);
    for (int64_t k = 0; k < o.per_window && static_cast<int64_t>(tokens_.size()) < o.n_contexts;
         ++k) {
      const int64_t s = start(rng);
      std::vector<std::string> text;
      std::vector<char> fires(static_cast<size_t>(m), 0);
      for (int64_t r = s; r < s + o.length; ++r) {
        const int32_t id = w->tokens[static_cast<size_t>(r + 1)];
        text.push_back(id >= 0 && id < static_cast<int32_t>(vocab_text.size()) ? vocab_text[id]
                                                                               : std::string());
        const float* row = acts.data() + r * m;
        for (int64_t j = 0; j < m; ++j) fires[j] |= row[j] > 0.0f;
      }
      std::vector<int32_t> firing;
      for (int64_t j = 0; j < m; ++j)
        if (fires[j]) firing.push_back(static_cast<int32_t>(j));
      tokens_.push_back(std::move(text));
      firing_.push_back(std::move(firing));
    }
  }
}

std::vector<ScoringSample> ContextPool::negatives(int64_t latent, size_t n, uint64_t seed) const {
  std::vector<size_t> quiet;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (!std::binary_search(firing_[i].begin(), firing_[i].end(), static_cast<int32_t>(latent)))
      quiet.push_back(i);
  }
  std::mt19937_64 rng(seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(latent + 1)));
  std::shuffle(quiet.begin(), quiet.end(), rng);
  if (quiet.size() > n) quiet.resize(n);
  std::vector<ScoringSample> out;
  for (size_t i : quiet) {
    ScoringSample s;
    s.tokens = tokens_[i];
    s.acts.assign(s.tokens.size(), 0.0f);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> generate_texts(Session& session, const Tokenizer& tokenizer,
                                        const std::shared_ptr<const Sae>& sae, int64_t latent,
                                        float value, const SteerOptions& o) {
  std::vector<HookHandle> clamp;
  if (latent >= 0) {
    Intervention iv;
    iv.kind = InterventionKind::kClampLatent;
    iv.hook = resolve_hook_name(sae->hook_name, session.config());
    iv.value = value;
    iv.sae = sae;
    iv.latent = latent;
    clamp = add_interventions(session.hooks(), {iv});
  }
  GenerateOptions g;
  g.max_new_tokens = o.max_tokens;
  g.sampling.temperature = static_cast<float>(o.temperature);
  g.stop_ids = generation_stop_ids(session.model(), tokenizer);
  std::vector<std::string> texts;
  for (size_t p = 0; p < o.prompts.size(); ++p) {
    const std::vector<int32_t> prompt = o.chat ? encode_turn(*o.chat, tokenizer, "", o.prompts[p])
                                               : tokenizer.encode(o.prompts[p], true, false);
    for (int64_t k = 0; k < o.per_prompt; ++k) {
      g.sampling.seed = o.seed * 1000003ULL + p * 1009ULL + static_cast<uint64_t>(k);
      session.reset();
      std::vector<int32_t> out = generate(session, prompt, g);
      if (!out.empty() &&
          std::find(g.stop_ids.begin(), g.stop_ids.end(), out.back()) != g.stop_ids.end())
        out.pop_back();
      texts.push_back(tokenizer.decode(out));
    }
  }
  return texts;
}

}  // namespace glassbox::autointerp
