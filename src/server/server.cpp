#include "server/server.h"

#include <algorithm>
#include <filesystem>
#include <regex>
#include <thread>

#include "core/error.h"
#include "model/hooks.h"
#include "probe/probe.h"
#include "sae/sae_io.h"
#include "server/monitor_request.h"
#include "server/server_state.h"
#include "server/web_assets.h"

namespace glassbox::server {

std::vector<int32_t> ServerState::encode_prompt(const std::string& text, const std::string& field,
                                                bool bos) const {
  return check_prompt(tokenizer->encode(text, bos && tokenizer->add_bos_by_default(), false),
                      field);
}

std::vector<int32_t> ServerState::check_prompt(std::vector<int32_t> ids,
                                               const std::string& field) const {
  if (ids.empty()) bad_field(field, "the prompt has no tokens (give some text)");
  const int64_t n_ctx = this->n_ctx();
  if (static_cast<int64_t>(ids.size()) > n_ctx) {
    bad_field(field, "the prompt has " + std::to_string(ids.size()) +
                         " tokens but the context length is " + std::to_string(n_ctx));
  }
  return ids;
}

void send_json(httplib::Response& res, const json& body, int status) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param, const std::string& code) {
  send_json(res, error_body(status, message, param, code), status);
  if (status == 429) res.set_header("Retry-After", "1");
}

namespace {

bool key_matches(const std::string& given, const std::string& key) {
  // Constant time in the key's length, so timing does not reveal a matching prefix.
  unsigned diff = given.size() == key.size() ? 0u : 1u;
  for (size_t i = 0; i < key.size(); ++i)
    diff |= static_cast<unsigned>(key[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

int status_of(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kShape:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    default:
      return 500;
  }
}

}  // namespace

httplib::Server::Handler guarded(const ServerState& state, bool auth, RouteFn fn) {
  return [&state, auth, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
    try {
      if (auth && !state.options.api_key.empty()) {
        const std::string h = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (h.compare(0, prefix.size(), prefix) != 0 ||
            !key_matches(h.substr(prefix.size()), state.options.api_key)) {
          throw HttpError(
              401,
              h.empty() ? "missing API key: send 'Authorization: Bearer KEY'" : "invalid API key",
              {}, "invalid_api_key");
        }
      }
      fn(req, res);
    } catch (const HttpError& e) {
      send_error(res, e.status(), e.what(), e.param(), e.code());
    } catch (const Error& e) {
      send_error(res, status_of(e), e.what(), {}, error_code_name(e.code()));
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what(), {}, "internal_error");
    }
  };
}

struct Server::Impl {
  ServerState state;
  httplib::Server svr;
  std::vector<RouteInfo> routes;
  std::thread listener;

  bool has_route(const std::string& method, const std::string& path) const {
    for (const auto& r : routes)
      if (r.method == method && std::regex_match(path, std::regex(r.pattern))) return true;
    return false;
  }

  // 405 with Allow when another method has this path, else 404.
  void not_found(const httplib::Request& req, httplib::Response& res) {
    std::string allow;
    for (const auto& r : routes) {
      if (r.method != req.method && std::regex_match(req.path, std::regex(r.pattern))) {
        if (allow.find(r.method) == std::string::npos)
          allow += (allow.empty() ? "" : ", ") + r.method;
      }
    }
    if (!allow.empty()) {
      send_error(
          res, 405,
          "method " + req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")",
          {}, "method_not_allowed");
      res.set_header("Allow", allow);
    } else {
      send_error(res, 404, "no route " + req.method + " " + req.path, {}, "not_found");
    }
  }

  void setup();
};

void Server::Impl::setup() {
  const ServerOptions& o = state.options;
  const size_t n_threads = static_cast<size_t>(o.workers + o.max_queue + 8);
  // More HTTP threads than model work can occupy (running + queued), so a request beyond the
  // queue reaches our 429 instead of waiting unseen in httplib's unbounded connection queue.
  // httplib owns the pool it gets from this factory (its API takes a raw pointer).
  svr.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
  svr.set_payload_max_length(static_cast<size_t>(o.max_body));
  // httplib's default sets SO_REUSEPORT, which lets a second server bind the same port silently;
  // SO_REUSEADDR alone allows quick restarts but makes a taken port an error.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Socket reads/writes get at least 5 s even under a tiny --timeout (tests use one), so a
  // request on a loaded machine is not cut off while it is still arriving.
  const auto io_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(o.timeout_s, 5.0) * 1000));
  svr.set_read_timeout(io_timeout);
  svr.set_write_timeout(io_timeout);
  svr.set_keep_alive_timeout(2);

  svr.Get("/health", guarded(state, false, [this](const httplib::Request&, httplib::Response& res) {
            send_json(res, {{"status", "ok"},
                            {"queue", state.pool->queued()},
                            {"busy", state.pool->busy()},
                            {"workers", state.pool->workers()}});
          }));
  routes.push_back({"GET", "/health"});
  for (auto& r : register_api_routes(svr, state)) routes.push_back(r);
  for (auto& r : register_openai_routes(svr, state)) routes.push_back(r);

  // Everything else a GET asks for: an embedded web asset, or 404/405.
  svr.Get(".*", [this](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/api/", 0) == 0 || req.path.rfind("/v1/", 0) == 0;
    const WebAsset* asset = api ? nullptr : find_web_asset(req.path);
    if (asset) {
      res.set_content(std::string(asset->body), std::string(asset->content_type).c_str());
    } else {
      not_found(req, res);
    }
  });
  // Anything the router did not match (other methods, bad request lines, 413) gets a JSON body.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                    httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    // httplib answers 400 when no route of the method matches (404 only for GET/HEAD).
    if (res.status == 404 || (res.status == 400 && !has_route(req.method, req.path))) {
      not_found(req, res);
    } else if (res.status == 413) {
      // httplib caps form-encoded bodies (what `curl -d` declares) at 8 KiB on its own.
      const bool form =
          req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0;
      send_error(res, 413,
                 "the request body is larger than " +
                     (form ? std::string("8192 bytes, the limit for Content-Type "
                                         "application/x-www-form-urlencoded; send "
                                         "Content-Type: application/json (up to --max-body)")
                           : std::to_string(state.options.max_body) + " bytes (--max-body)"),
                 {}, "body_too_large");
    } else {
      send_error(res, res.status, "bad request", {}, "bad_request");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        send_error(res, 500, "internal error", {}, "internal_error");
      });
}

namespace {

void check_options(const ServerOptions& o) {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); };
  if (o.workers < 1) bad("--workers must be at least 1");
  if (o.max_queue < 0) bad("--max-queue must be >= 0");
  if (o.max_body < 1) bad("--max-body must be positive");
  if (o.max_tokens < 1) bad("--max-tokens must be positive");
  if (!(o.timeout_s > 0)) bad("--timeout must be positive");
  if (o.port < 0 || o.port > 65535) bad("--port must be in [0, 65535]");
}

}  // namespace

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  check_options(options);
  ServerState& s = impl_->state;
  s.options = std::move(options);
  s.model = std::make_unique<Model>(load_model(s.options.model_path));
  s.tokenizer = load_model_tokenizer(*s.model, s.options.tokenizer_path);
  s.stop_ids = generation_stop_ids(*s.model, *s.tokenizer);
  s.model_name = std::filesystem::path(s.options.model_path).stem().string();
  s.chat = std::make_unique<ChatFormatter>(
      *s.model, *s.tokenizer,
      ChatTemplateChoice{s.options.chat_template_file, s.options.no_chat_template});
  if (s.options.sae_path) {
    Sae sae = load_sae(*s.options.sae_path);
    if (s.options.sae_hook) sae.hook_name = *s.options.sae_hook;
    if (sae.hook_name.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  *s.options.sae_path +
                      ": the SAE names no hook (Gemma Scope files do not); give "
                      "--sae-hook");
    }
    const HookName hook = resolve_hook_name(sae.hook_name, s.model->config());
    const auto shape = hook_token_shape(hook.point, s.model->config());
    if (!shape || shape_numel(*shape) != sae.d_in) {
      throw Error(ErrorCode::kShape,
                  *s.options.sae_path + ": the SAE reads " + sae.hook_name + " with d_in " +
                      std::to_string(sae.d_in) + ", but the model's activation there has " +
                      (shape ? std::to_string(shape_numel(*shape)) + " values per token"
                             : std::string("no per-token rows")));
    }
    s.sae = std::move(sae);
  }
  for (const std::string& path : s.options.probe_paths) {
    for (const std::string& file : probe_files(path)) {
      Probe probe = load_probe(file);
      const HookName hook = resolve_hook_name(probe.hook, s.model->config());
      const auto shape = hook_token_shape(hook.point, s.model->config());
      if (!shape || shape_numel(*shape) != probe.d()) {
        throw Error(ErrorCode::kShape, file + ": the probe reads " + probe.hook + " with d " +
                                           std::to_string(probe.d()) +
                                           ", which does not match the model's activation there");
      }
      // Its name: the file name without ".probe.json" (or ".json").
      std::string name = std::filesystem::path(file).filename().string();
      for (const char* ext : {".probe.json", ".json"}) {
        const std::string e = ext;
        if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
          name.resize(name.size() - e.size());
          break;
        }
      }
      if (!s.probes.emplace(name, std::move(probe)).second)
        throw Error(ErrorCode::kInvalidArgument, file + ": another --probe is also named " + name);
    }
  }
  if (s.options.monitors_path) {
    s.monitors = load_server_monitors(*s.options.monitors_path, s.model->config(),
                                      s.sae ? &*s.sae : nullptr, s.probes);
  }
  if (s.options.db_path) s.db = FeatureDb::open(*s.options.db_path);
  std::vector<Intervention> interventions;
  if (s.options.make_interventions) interventions = s.options.make_interventions(s.model->config());
  s.pool = std::make_unique<ModelPool>(*s.model, s.options.workers, s.options.threads,
                                       s.options.max_queue, interventions, s.options.ctx,
                                       s.options.kv_type);
  impl_->setup();
}

Server::~Server() {
  stop();
  wait();
}

int Server::start() {
  Impl& m = *impl_;
  const ServerOptions& o = m.state.options;
  int port = o.port;
  if (port == 0) {
    port = m.svr.bind_to_any_port(o.host);
  } else if (!m.svr.bind_to_port(o.host, port)) {
    port = -1;
  }
  if (port <= 0) {
    throw Error(ErrorCode::kIo, "cannot listen on " + o.host + ":" + std::to_string(o.port) +
                                    " (address in use or not available)");
  }
  m.listener = std::thread([&m] { m.svr.listen_after_bind(); });
  while (!m.svr.is_running() && m.listener.joinable()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return port;
}

std::string Server::chat_prompt_format() const { return impl_->state.chat->describe(); }

void Server::wait() {
  if (impl_->listener.joinable()) impl_->listener.join();
}

void Server::stop() {
  impl_->state.pool->stop();
  // httplib's stop() is a no-op until listening has begun; start() waits for that.
  impl_->svr.stop();
}

}  // namespace glassbox::server
