// The OpenAI-compatible endpoints: /v1/models, /v1/completions, /v1/chat/completions, each
// streaming (server-sent events, `data: {chunk}` ... `data: [DONE]`) or not. Requests are
// validated completely before the model is queued for, so every bad field is a 400 naming it and
// a stream, once started, only ends (with finish_reason) — never turns into an error status.
#include <chrono>
#include <random>

#include "server/generation.h"
#include "server/monitor_request.h"
#include "server/server_state.h"
#include "server/steering_request.h"

namespace glassbox::server {
namespace {

// Longest time a streamed event waits in the buffer (see stream_generation).
constexpr std::chrono::microseconds kStreamFlushInterval{1000};

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string make_id(const char* prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device rd;
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kHex[rd() % 16];
  return id;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// What both endpoints read besides their prompt.
struct CommonRequest {
  GenerationRequest gen;
  bool stream = false;
  bool include_usage = false;
};

void check_unsupported(const json& body) {
  if (auto n = opt_int(body, "n", 1, 1 << 20); n && *n != 1)
    bad_field("n", "only n = 1 is supported, got " + std::to_string(*n));
  if (auto b = opt_int(body, "best_of", 1, 1 << 20); b && *b != 1)
    bad_field("best_of", "only best_of = 1 is supported, got " + std::to_string(*b));
  // Penalties are accepted (type-checked) and ignored; see docs/server_api.md.
  (void)opt_number(body, "presence_penalty", -2.0, 2.0);
  (void)opt_number(body, "frequency_penalty", -2.0, 2.0);
  (void)opt_string(body, "user");
  (void)opt_string(body, "model");
}

CommonRequest parse_common(const ServerState& s, const json& body, int64_t default_max_tokens,
                           const std::string& alt_max_field) {
  CommonRequest c;
  check_unsupported(body);
  c.gen.sampling =
      parse_sampling(body, default_max_tokens, 1.0, s.options.max_tokens, alt_max_field);
  c.gen.stop_ids = s.stop_ids;
  c.gen.steering = parse_steering(body, s.model->config(), s.sae ? &*s.sae : nullptr);
  c.gen.monitors =
      request_monitors(body, s.monitors, s.model->config(), s.sae ? &*s.sae : nullptr, s.probes);
  c.stream = opt_bool(body, "stream").value_or(false);
  if (const auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) bad_field("stream_options", "expected an object");
    if (!c.stream) bad_field("stream_options", "only allowed with stream: true");
    c.include_usage = opt_bool(*it, "include_usage").value_or(false);
  }
  return c;
}

// Non-streamed responses: the whole trace, and which monitor stopped the generation.
void add_monitor_result(json& out, const GenerationResult& r) {
  if (r.monitors.names.empty()) return;
  out["monitors"] = monitor_trace_json(r.monitors);
  if (r.monitors.stop) out["monitor"] = monitor_event_json(*r.monitors.stop);
}

json usage_json(const GenerationResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

// Runs a streamed generation on `lease`'s session: `chunk(text, finish)` builds each event's JSON
// (finish empty while tokens come; the final event has it and empty text); `first` is sent before
// any token when set.
void stream_generation(httplib::Response& res, const ServerState& s,
                       std::shared_ptr<ModelPool::Lease> lease, GenerationRequest gen,
                       std::function<json(const std::string&, const std::string&)> chunk,
                       std::optional<json> first, bool include_usage, json usage_template) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [&s, lease, gen, chunk, first, include_usage, usage_template](
                               size_t, httplib::DataSink& sink) {
        // Events are coalesced: each sink.write is a select() plus a send(), which costs more
        // than a token of a small model, so events go out when 1 ms has passed since the last
        // write (every token of a model slower than that goes out at once) and at the end.
        std::string pending;
        auto last_write = std::chrono::steady_clock::now();
        auto flush = [&]() {
          last_write = std::chrono::steady_clock::now();
          const bool ok = pending.empty() || sink.write(pending.data(), pending.size());
          pending.clear();
          return ok;
        };
        auto send = [&](const std::string& payload, bool now = false) {
          pending += "data: " + payload + "\n\n";
          if (now || std::chrono::steady_clock::now() - last_write >= kStreamFlushInterval)
            return flush();
          return true;
        };
        bool alive = true;
        try {
          if (first) alive = send(dump(*first), true);
          if (alive) {
            std::vector<std::string> names;
            for (const MonitorSpec& m : gen.monitors) names.push_back(m.name);
            const GenerationResult r =
                run_generation(lease->session(), *s.tokenizer, gen,
                               [&](const std::string& text, const MonitorUpdate& update) {
                                 json j = chunk(text, "");
                                 add_monitor_update(j, names, update);
                                 return alive = send(dump(j));
                               });
            if (alive) {
              json j = chunk("", r.finish_reason);
              if (r.monitors.stop) j["monitor"] = monitor_event_json(*r.monitors.stop);
              alive = send(dump(j));
            }
            if (alive && include_usage) {
              json u = usage_template;
              u["choices"] = json::array();
              u["usage"] = usage_json(r);
              alive = send(dump(u));
            }
          }
        } catch (const std::exception& e) {
          // Headers are gone: report in-band, as OpenAI does for mid-stream errors.
          if (alive) alive = send(dump(error_body(500, e.what(), {}, "internal_error")));
        }
        if (alive) send("[DONE]", true);
        sink.done();
        return true;
      });
}

void models_route(const ServerState& s, const httplib::Request&, httplib::Response& res) {
  send_json(res, {{"object", "list"},
                  {"data", json::array({{{"id", s.model_name},
                                         {"object", "model"},
                                         {"created", 0},
                                         {"owned_by", "glassbox"}}})}});
}

void openai_model_route(const ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1];
  if (id != s.model_name)
    throw HttpError(404, "model: no model '" + id + "' (this server has '" + s.model_name + "')",
                    "model", "model_not_found");
  send_json(res,
            {{"id", s.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "glassbox"}});
}

void completions_route(ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const json body = parse_json_object(req.body);
  CommonRequest c = parse_common(s, body, 16, {});
  const auto prompts = opt_string_or_list(body, "prompt", 1, false);
  if (body.contains("prompt") && body["prompt"].is_array() && body["prompt"].empty())
    bad_field("prompt", "expected one prompt, got an empty list");
  if (prompts.empty())
    throw HttpError(400, "prompt: this field is required (a string)", "prompt", "missing_field");
  const bool echo = opt_bool(body, "echo").value_or(false);
  if (const auto it = body.find("logprobs"); it != body.end() && !it->is_null())
    bad_field("logprobs", "log probabilities are not supported by this server");
  if (const auto suffix = opt_string(body, "suffix"); suffix && !suffix->empty())
    bad_field("suffix", "suffix (insertion) is not supported by this server");
  c.gen.prompt = s.encode_prompt(prompts[0], "prompt");
  c.gen.deadline = s.deadline();

  const std::string id = make_id("cmpl-");
  const int64_t created = unix_time();
  const json base = {
      {"id", id}, {"object", "text_completion"}, {"created", created}, {"model", s.model_name}};
  auto lease = std::make_shared<ModelPool::Lease>(s.pool->acquire(c.gen.deadline));
  const std::string echoed = echo ? prompts[0] : std::string();
  if (c.stream) {
    auto chunk = [base](const std::string& text, const std::string& finish) {
      return completion_chunk(base, text, finish);
    };
    std::optional<json> first;
    if (echo) first = chunk(echoed, "");
    stream_generation(res, s, lease, c.gen, chunk, first, c.include_usage, base);
    return;
  }
  const GenerationResult r = run_generation(lease->session(), *s.tokenizer, c.gen, {});
  json out = base;
  out["choices"] = json::array({{{"text", echoed + r.text},
                                 {"index", 0},
                                 {"logprobs", nullptr},
                                 {"finish_reason", r.finish_reason}}});
  out["usage"] = usage_json(r);
  add_monitor_result(out, r);
  send_json(res, out);
}

// The request's messages, validated (a 400 names the field at fault), each content's text parts
// joined into one string.
std::vector<ChatMessage> chat_messages(const json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || it->is_null())
    throw HttpError(400, "messages: this field is required (a list of {role, content})", "messages",
                    "missing_field");
  if (!it->is_array()) bad_field("messages", "expected a list of {role, content} objects");
  if (it->empty()) bad_field("messages", "expected at least one message");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad_field(where, "expected an object {role, content}");
    const auto role = opt_string(m, "role");
    if (!role) bad_field(where + ".role", "this field is required (a string)");
    if (*role != "system" && *role != "user" && *role != "assistant" && *role != "developer")
      bad_field(where + ".role",
                "expected system, developer, user or assistant, got '" + *role + "'");
    const auto c = m.find("content");
    std::string text;
    if (c == m.end() || c->is_null()) {
      bad_field(where + ".content", "this field is required (a string or a list of text parts)");
    } else if (c->is_string()) {
      text = c->get<std::string>();
    } else if (c->is_array()) {
      for (size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        const std::string pw = where + ".content[" + std::to_string(k) + "]";
        if (!part.is_object() || opt_string(part, "type").value_or("") != "text")
          bad_field(pw, "only {\"type\": \"text\", \"text\": ...} parts are supported");
        text += req_string(part, "text");
      }
    } else {
      bad_field(where + ".content", "expected a string or a list of text parts");
    }
    messages.push_back({*role, std::move(text)});
  }
  return messages;
}

// The prompt's ids: the messages rendered with the model's chat template and tokenized with its
// special tokens, or (no template) their contents joined with "\n" as before. A template that
// fails is a 400 naming it and what went wrong. Sets the reply's prompt_format fields in `info`.
std::vector<int32_t> chat_prompt_ids(const ServerState& s, const json& body, json& info) {
  const std::vector<ChatMessage> messages = chat_messages(body);
  const bool add_generation_prompt = opt_bool(body, "add_generation_prompt").value_or(true);
  std::string extra = "{}";
  if (const auto it = body.find("chat_template_kwargs"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) bad_field("chat_template_kwargs", "expected an object of variables");
    extra = dump(*it);
  }
  std::string text;
  try {
    text = s.chat->format(chat_messages_json(messages), add_generation_prompt, extra);
  } catch (const Error& e) {
    throw HttpError(400, e.what(), "messages", "chat_template_error");
  }
  if (!s.chat->uses_template()) {
    info = {{"prompt_format", "plain"}, {"chat_template", nullptr}};
    return s.encode_prompt(text, "messages");
  }
  info = {{"prompt_format", "chat_template"}, {"chat_template", s.chat->template_name()}};
  return s.check_prompt(encode_chat_prompt(*s.tokenizer, text), "messages");
}

void chat_route(ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const json body = parse_json_object(req.body);
  CommonRequest c = parse_common(s, body, s.options.max_tokens, "max_completion_tokens");
  if (auto lp = opt_bool(body, "logprobs"); lp && *lp)
    bad_field("logprobs", "log probabilities are not supported by this server");
  if (const auto it = body.find("tools"); it != body.end() && !it->is_null())
    bad_field("tools", "tool calls are not supported by this server");
  json prompt_info;
  c.gen.prompt = chat_prompt_ids(s, body, prompt_info);
  c.gen.deadline = s.deadline();

  const json base = {{"id", make_id("chatcmpl-")},
                     {"object", "chat.completion.chunk"},
                     {"created", unix_time()},
                     {"model", s.model_name}};
  auto lease = std::make_shared<ModelPool::Lease>(s.pool->acquire(c.gen.deadline));
  if (c.stream) {
    auto chunk = [base](const std::string& text, const std::string& finish) {
      json j = base;
      j["choices"] =
          json::array({{{"index", 0},
                        {"delta", finish.empty() ? json{{"content", text}} : json::object()},
                        {"logprobs", nullptr},
                        {"finish_reason", finish.empty() ? json(nullptr) : json(finish)}}});
      return j;
    };
    json first = base;
    first.update(prompt_info);
    first["choices"] = json::array({{{"index", 0},
                                     {"delta", {{"role", "assistant"}, {"content", ""}}},
                                     {"logprobs", nullptr},
                                     {"finish_reason", nullptr}}});
    stream_generation(res, s, lease, c.gen, chunk, first, c.include_usage, base);
    return;
  }
  const GenerationResult r = run_generation(lease->session(), *s.tokenizer, c.gen, {});
  json out = base;
  out["object"] = "chat.completion";
  out.update(prompt_info);
  out["choices"] = json::array({{{"index", 0},
                                 {"message", {{"role", "assistant"}, {"content", r.text}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", r.finish_reason}}});
  out["usage"] = usage_json(r);
  add_monitor_result(out, r);
  send_json(res, out);
}

}  // namespace

std::vector<RouteInfo> register_openai_routes(httplib::Server& svr, ServerState& state) {
  ServerState* s = &state;
  svr.Get("/v1/models",
          guarded(state, true, [s](const auto& q, auto& r) { models_route(*s, q, r); }));
  svr.Get("/v1/models/([^/]+)",
          guarded(state, true, [s](const auto& q, auto& r) { openai_model_route(*s, q, r); }));
  svr.Post("/v1/completions",
           guarded(state, true, [s](const auto& q, auto& r) { completions_route(*s, q, r); }));
  svr.Post("/v1/chat/completions",
           guarded(state, true, [s](const auto& q, auto& r) { chat_route(*s, q, r); }));
  return {{"GET", "/v1/models"},
          {"GET", "/v1/models/([^/]+)"},
          {"POST", "/v1/completions"},
          {"POST", "/v1/chat/completions"}};
}

}  // namespace glassbox::server
