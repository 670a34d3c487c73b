// Text generation for the server's routes: prompt ids in, text pieces out as they are decoded,
// with OpenAI stop strings (held back while they might still match, cut from the output), the
// model's stop ids (EOS, end-of-turn tokens, and BOS for llama2.c vocabularies, as
// `glassbox generate`), a deadline,
// and a callback that can stop early (a client gone). Streaming and non-streaming responses both
// come from here, so their texts are equal by construction. No HTTP here.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/session.h"
#include "server/json_request.h"
#include "server/monitors.h"
#include "server/stop_matcher.h"
#include "steer/interventions.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::server {

struct GenerationRequest {
  std::vector<int32_t> prompt;  // non-empty, at most the context length
  SamplingRequest sampling;
  std::chrono::steady_clock::time_point deadline;
  std::vector<Intervention> steering;  // hooked into the session for this generation only
  std::vector<MonitorSpec> monitors;   // scored on every generated token (docs: "Monitors")
  std::vector<int32_t> stop_ids;       // the model's (generation_stop_ids); unused with ignore_eos
};

// What the monitors saw: scores[m][t] of monitor m for generated token t, and the firings.
struct MonitorTrace {
  std::vector<std::string> names;
  std::vector<std::vector<double>> scores;
  std::vector<MonitorEvent> events;
  std::optional<MonitorEvent> stop;  // the event that ended the generation (finish "monitor")
};

struct GenerationResult {
  std::string text;  // the whole completion (also when streamed)
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  std::string finish_reason;  // "stop" (stop id or string) or "length" (max_tokens, context, time)
  uint64_t seed = 0;
  MonitorTrace monitors;  // empty without monitors
};

// Monitor output that goes with one piece of text: the tokens decoded since the last piece
// (token_index, score per monitor) and the events among them.
struct MonitorUpdate {
  std::vector<int64_t> tokens;
  std::vector<double> scores;  // [token][monitor], flat: filled per token, so no allocation each
  std::vector<MonitorEvent> events;
  bool empty() const { return tokens.empty(); }
  // Empties it, keeping the capacity (it is refilled for every piece of text).
  void clear() {
    tokens.clear();
    scores.clear();
    events.clear();
  }
};

// Resets `session` and generates. `on_text` receives each non-empty piece of completion text and
// returns false to stop (the caller is gone; finish_reason is then "length"). With monitors it
// also receives the scores of the tokens since the previous call (a last call with empty text
// carries those of tokens that produced no text). A stop monitor ends the generation after the
// token it fired on, with finish_reason "monitor".
using TextFn = std::function<bool(const std::string& text, const MonitorUpdate& update)>;
GenerationResult run_generation(Session& session, const Tokenizer& tokenizer,
                                const GenerationRequest& request, const TextFn& on_text);

// JSON forms (docs/server_api.md, "Monitors"): per-chunk {"monitors": [...], "monitor_events"}
// added to `chunk`, and the whole trace of a non-streamed response.
void add_monitor_update(json& chunk, const std::vector<std::string>& names,
                        const MonitorUpdate& update);
json monitor_event_json(const MonitorEvent& e);
json monitor_trace_json(const MonitorTrace& trace);

// One streamed /v1/completions event: `base` (id, object, created, model) with one choice
// carrying `text`, and `finish` as finish_reason (null while empty).
json completion_chunk(const json& base, const std::string& text, const std::string& finish);

}  // namespace glassbox::server
