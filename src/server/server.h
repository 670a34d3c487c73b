// Server: `glassbox serve` as a library — loads the model (and optionally an SAE and a feature
// database), listens on HOST:PORT, and serves the JSON API, the OpenAI-compatible endpoints and
// the embedded web explorer (docs/server_api.md). It owns its HTTP threads and model sessions;
// it installs no signal handlers and holds no global state: the caller (tools/cmd_serve.cpp)
// decides when to call stop(). Startup problems throw glassbox::Error naming the file or option.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "steer/interventions.h"

namespace glassbox::server {

struct ServerOptions {
  std::string model_path;
  std::optional<std::string> tokenizer_path;
  std::optional<std::string> sae_path;  // SAE directory (any format load_sae reads)
  std::optional<std::string> sae_hook;  // the hook it reads, overriding its hook_name
  std::optional<std::string> db_path;   // feature database written by `glassbox analyze`
  // Probe files or directories (probe_files) that "probe" monitors may name.
  std::vector<std::string> probe_paths;
  // Monitors applied to every generation request (JSON file, the request's "monitors" format).
  std::optional<std::string> monitors_path;
  std::string host = "127.0.0.1";
  int port = 8080;              // 0 = any free port
  std::string api_key;          // empty = no authentication
  int workers = 1;              // model sessions
  int threads = 0;              // threads per session; 0 = cores / workers
  DType kv_type = DType::kF32;  // each session's KV-cache type (SessionOptions::kv_type)
  int max_queue = 16;           // requests waiting for a session beyond the running ones
  int64_t max_body = 1 << 20;   // bytes
  int64_t max_tokens = 1024;    // per request
  int64_t ctx = 0;              // context length of each session (0 = the model's)
  double timeout_s = 60;        // queue wait + generation deadline; socket read/write max(it, 5 s)
  // Interventions on every request's forward pass (llama-server's --control-vector flags), made
  // once the model's config is known; installed on every worker session for the server's life.
  std::function<std::vector<Intervention>(const ModelConfig&)> make_interventions;
  // /v1/chat/completions renders messages with the model's chat template (GGUF
  // tokenizer.chat_template, HF tokenizer_config.json); this file replaces it, and
  // no_chat_template keeps the plain joining of the contents even when the model has one.
  std::optional<std::string> chat_template_file;
  bool no_chat_template = false;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts serving on background threads; returns the bound port. Throws Error(kIo)
  // when the address cannot be bound.
  int start();
  // Blocks until the server has stopped (after stop(), all in-flight requests finished).
  void wait();
  // How chat messages become the prompt: "chat template NAME", or the plain joining; a template
  // that does not parse is named with its error (every chat request is then refused with it).
  std::string chat_prompt_format() const;
  // Stops accepting connections, refuses queued model work with 503, lets running requests
  // (streams included) finish. Safe to call from any thread, more than once.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace glassbox::server
