#include "server/generation.h"

#include <algorithm>
#include <random>

#include "model/run.h"

namespace glassbox::server {

std::vector<int32_t> default_stop_ids(const Tokenizer& tokenizer) {
  std::vector<int32_t> ids;
  // llama2.c models separate stories with BOS, so it ends a generation as EOS does.
  for (auto id : {tokenizer.eos_id(), tokenizer.bos_id()})
    if (id) ids.push_back(*id);
  return ids;
}

GenerationResult run_generation(Session& session, const Tokenizer& tokenizer,
                                const GenerationRequest& request,
                                const std::function<bool(const std::string&)>& on_text) {
  const SamplingRequest& s = request.sampling;
  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(request.prompt.size());
  result.seed = s.seed ? *s.seed : std::random_device{}();

  GenerateOptions options;
  options.max_new_tokens = s.max_tokens;
  options.sampling.temperature = static_cast<float>(s.temperature);
  options.sampling.top_p = static_cast<float>(s.top_p);
  options.sampling.top_k = static_cast<int>(s.top_k);
  options.sampling.seed = result.seed;
  if (!s.ignore_eos) options.stop_ids = default_stop_ids(tokenizer);

  // The prompt primes the decoder so the first piece keeps its leading space.
  StreamDecoder decoder(tokenizer);
  for (int32_t id : request.prompt) (void)decoder.push(id);
  StopMatcher matcher(s.stop);
  bool cut = false;  // stopped by a stop string, the deadline or the client
  bool stop_string = false;
  auto emit = [&](const std::string& piece) {
    const std::string out = matcher.push(piece);
    if (!out.empty()) {
      result.text += out;
      if (on_text && !on_text(out)) cut = true;
    }
    if (matcher.matched()) stop_string = cut = true;
  };

  session.reset();
  const std::vector<HookHandle> steering = add_interventions(session.hooks(), request.steering);
  const std::vector<int32_t> out = generate(session, request.prompt, options, [&](int32_t id) {
    emit(decoder.push(id));
    if (std::chrono::steady_clock::now() >= request.deadline) cut = true;
    return !cut;
  });
  if (!stop_string) {
    emit(decoder.flush());
    const std::string rest = matcher.finish();
    if (!rest.empty()) {
      result.text += rest;
      if (on_text) (void)on_text(rest);
    }
  }
  result.completion_tokens = static_cast<int64_t>(out.size());
  const bool stop_id = !out.empty() && std::find(options.stop_ids.begin(), options.stop_ids.end(),
                                                 out.back()) != options.stop_ids.end();
  result.finish_reason = (stop_string || stop_id) ? "stop" : "length";
  return result;
}

}  // namespace glassbox::server
