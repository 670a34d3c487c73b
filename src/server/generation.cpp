#include "server/generation.h"

#include <algorithm>
#include <random>

#include "core/test_hooks.h"
#include "model/run.h"

namespace glassbox::server {

void add_monitor_update(json& chunk, const std::vector<std::string>& names,
                        const MonitorUpdate& update) {
  if (update.empty()) return;
  // Built by moves, not initializer lists (which deep-copy): this runs for every token.
  json list = json::array();
  for (size_t t = 0; t < update.tokens.size(); ++t) {
    json scores = json::object();
    for (size_t m = 0; m < names.size(); ++m)
      scores[names[m]] = update.scores[t * names.size() + m];
    json entry = json::object();
    entry["token_index"] = update.tokens[t];
    entry["scores"] = std::move(scores);
    list.push_back(std::move(entry));
  }
  chunk["monitors"] = std::move(list);
  if (!update.events.empty()) {
    json events = json::array();
    for (const MonitorEvent& e : update.events) events.push_back(monitor_event_json(e));
    chunk["monitor_events"] = events;
  }
}

json monitor_event_json(const MonitorEvent& e) {
  return {{"name", e.name},
          {"token_index", e.token_index},
          {"score", e.score},
          {"action", monitor_action_name(e.action)}};
}

json monitor_trace_json(const MonitorTrace& trace) {
  json scores = json::object();
  for (size_t m = 0; m < trace.names.size(); ++m) scores[trace.names[m]] = trace.scores[m];
  json events = json::array();
  for (const MonitorEvent& e : trace.events) events.push_back(monitor_event_json(e));
  return {{"scores", scores}, {"events", events}};
}

json completion_chunk(const json& base, const std::string& text, const std::string& finish) {
  json j = base;
  j["choices"] = json::array({{{"text", text},
                               {"index", 0},
                               {"logprobs", nullptr},
                               {"finish_reason", finish.empty() ? json(nullptr) : json(finish)}}});
  return j;
}

GenerationResult run_generation(Session& session, const Tokenizer& tokenizer,
                                const GenerationRequest& request, const TextFn& on_text) {
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
  if (!s.ignore_eos) options.stop_ids = request.stop_ids;

  // The prompt primes the decoder so the first piece keeps its leading space.
  StreamDecoder decoder(tokenizer);
  for (int32_t id : request.prompt) (void)decoder.push(id);
  StopMatcher matcher(s.stop);
  bool cut = false;  // stopped by a stop string, the deadline or the client
  bool stop_string = false;
  MonitorUpdate update;  // scores not yet handed to on_text
  auto emit = [&](const std::string& piece) {
    const std::string out = matcher.push(piece);
    if (!out.empty()) {
      result.text += out;
      if (on_text && !on_text(out, update)) cut = true;
      update.clear();
    }
    if (matcher.matched()) stop_string = cut = true;
  };

  session.reset();
  const std::vector<HookHandle> steering = add_interventions(session.hooks(), request.steering);
  // After the steering, so monitors on the same hook see the steered activation.
  std::optional<MonitorSet> monitors;
  MonitorTrace& trace = result.monitors;
  if (!request.monitors.empty()) {
    monitors.emplace(session.hooks(), request.monitors);
    for (const MonitorSpec& m : request.monitors) trace.names.push_back(m.name);
    trace.scores.resize(request.monitors.size());
  }
  int64_t n_out = 0;
  std::vector<double> scores;
  std::vector<MonitorEvent> events;
  const std::vector<int32_t> out = generate(session, request.prompt, options, [&](int32_t id) {
    const int64_t index = n_out++;
    if (monitors) {
      events.clear();
      // The token is fed at position prompt + index: steering starts there.
      monitors->on_token(index, static_cast<int64_t>(request.prompt.size()) + index, scores,
                         events);
      for (size_t m = 0; m < scores.size(); ++m) trace.scores[m].push_back(scores[m]);
      trace.events.insert(trace.events.end(), events.begin(), events.end());
      update.tokens.push_back(index);
      update.scores.insert(update.scores.end(), scores.begin(), scores.end());
      update.events.insert(update.events.end(), events.begin(), events.end());
      if (monitors->stopped()) {
        trace.stop = monitors->stop_event();
        cut = true;
      }
    }
    emit(decoder.push(id));
    hold_point("serve.token");
    if (std::chrono::steady_clock::now() >= request.deadline) cut = true;
    return !cut;
  });
  if (!stop_string) {
    emit(decoder.flush());
    const std::string rest = matcher.finish();
    if (!rest.empty()) {
      result.text += rest;
      if (on_text) (void)on_text(rest, update);
      update.clear();
    }
  }
  if (on_text && !update.empty()) (void)on_text("", update);
  result.completion_tokens = static_cast<int64_t>(out.size());
  const bool stop_id = !out.empty() && std::find(options.stop_ids.begin(), options.stop_ids.end(),
                                                 out.back()) != options.stop_ids.end();
  result.finish_reason = trace.stop ? "monitor" : (stop_string || stop_id) ? "stop" : "length";
  return result;
}

}  // namespace glassbox::server
