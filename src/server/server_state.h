// What the route handlers share: the loaded model, tokenizer, SAE and feature database, the
// model pool, the options; plus the helpers every handler uses (JSON responses, the error
// boundary, auth). Internal to src/server (includes <httplib.h>, whose compile flags only
// src/server's sources carry).
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "chat/chat_prompt.h"
#include "model/model.h"
#include "probe/probe.h"
#include "sae/sae.h"
#include "server/json_request.h"
#include "server/model_pool.h"
#include "server/monitors.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::server {

struct ServerState {
  ServerOptions options;
  std::unique_ptr<Model> model;  // owned here; sessions keep references to it
  std::unique_ptr<Tokenizer> tokenizer;
  std::string model_name;  // file name without extension: the OpenAI model id
  std::optional<Sae> sae;
  std::map<std::string, Probe> probes;  // --probe files by name (file name less .probe.json)
  std::vector<MonitorSpec> monitors;    // --monitors: on every generation request
  std::unique_ptr<FeatureDb> db;
  std::unique_ptr<ModelPool> pool;
  std::unique_ptr<ChatFormatter> chat;  // messages -> prompt text (template or plain joining)
  std::vector<int32_t> stop_ids;        // generation_stop_ids of the model and tokenizer

  std::chrono::steady_clock::time_point deadline() const {
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  }
  // The sessions' context length: --ctx, else the model's.
  int64_t n_ctx() const { return options.ctx > 0 ? options.ctx : model->config().n_ctx; }
  // Encodes a prompt (BOS in front when the vocabulary wants it) and checks it fits the context;
  // 400 naming `field` otherwise.
  std::vector<int32_t> encode_prompt(const std::string& text, const std::string& field,
                                     bool bos = true) const;
  // The same checks (non-empty, fits the context) on ids made elsewhere (a chat template's text
  // tokenized with its special tokens).
  std::vector<int32_t> check_prompt(std::vector<int32_t> ids, const std::string& field) const;
};

using RouteFn = std::function<void(const httplib::Request&, httplib::Response&)>;

void send_json(httplib::Response& res, const json& body, int status = 200);
void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}, const std::string& code = {});
// Wraps a handler: checks the API key when `auth`, and turns every exception into the JSON
// error response (HttpError as is, glassbox::Error by code, anything else 500).
httplib::Server::Handler guarded(const ServerState& state, bool auth, RouteFn fn);

// Each registers its routes and returns the (method, path pattern) pairs for the 405 check.
struct RouteInfo {
  std::string method;
  std::string pattern;  // regex, as registered
};
std::vector<RouteInfo> register_api_routes(httplib::Server& svr, ServerState& state);
std::vector<RouteInfo> register_openai_routes(httplib::Server& svr, ServerState& state);

}  // namespace glassbox::server
