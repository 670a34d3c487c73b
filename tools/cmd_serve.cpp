// `glassbox serve`: the HTTP server (src/server) behind a command line. Owns the process-level
// parts the library must not: SIGTERM/SIGINT (a handler writes the signal to a pipe; a thread
// reading it calls Server::stop(), so shutdown is graceful and exits 0) and SIGPIPE.
// A pipe rather than sigwait: libraries (OpenBLAS) start threads before main() that would not
// have the signals blocked, and the kernel may deliver a process signal to any of them.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <thread>

#include "cli_common.h"
#include "server/server.h"
#include "steer_options.h"

namespace glassbox::cli {
namespace {

int g_stop_pipe[2] = {-1, -1};  // written by the signal handler, read by the stopper thread

extern "C" void on_stop_signal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_stop_pipe[1], &c, 1);
}

struct ServeArgs {
  ModelArgs model;
  SteerArgs steer;
  server::ServerOptions options;
};

int run_serve(ServeArgs& a) {
  server::ServerOptions o = a.options;
  o.model_path = a.model.model_path;
  o.tokenizer_path = a.model.tokenizer_path;
  o.threads = a.model.threads;
  o.kv_type = parse_kv_type(a.model.kv_type);
  o.make_interventions = [&a](const ModelConfig& config) {
    return build_interventions(config, a.steer);
  };

  signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not a crash
  server::Server srv(o);
  if (pipe(g_stop_pipe) != 0) throw Error(ErrorCode::kIo, "serve: cannot create a pipe");
  struct sigaction sa = {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::fprintf(stderr, "glassbox: chat prompts: %s\n", srv.chat_prompt_format().c_str());
  const int port = srv.start();
  std::printf("glassbox: serving http://%s:%d/\n", o.host.c_str(), port);
  std::fflush(stdout);

  std::atomic<bool> stopping{false};
  std::thread waiter([&] {
    char sig = 0;
    while (read(g_stop_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (!stopping.exchange(true)) {
      std::fprintf(stderr, "glassbox: %s received, finishing in-flight requests\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    srv.stop();
  });
  srv.wait();
  // The listener ended on its own (not expected): wake the waiter so it can be joined.
  if (!stopping.exchange(true)) on_stop_signal(0);
  waiter.join();
  std::fprintf(stderr, "glassbox: server stopped\n");
  return 0;
}

}  // namespace

Action register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve", "Serve the JSON API, OpenAI-compatible endpoints and the web explorer");
  auto a = std::make_shared<ServeArgs>();
  server::ServerOptions& o = a->options;
  add_model_options(*cmd, a->model);
  add_kv_type_option(*cmd, a->model.kv_type);
  add_steer_options(*cmd, a->steer);
  cmd->add_option("--sae", o.sae_path, "SAE directory for /api/run (SAELens, sparsify, ...)");
  cmd->add_option("--sae-hook", o.sae_hook,
                  "Hook the SAE reads (default: its hook_name; Gemma Scope files name none)");
  cmd->add_option("--probe", o.probe_paths,
                  "Probe file or directory of *.probe.json for \"probe\" monitors (repeatable)");
  cmd->add_option("--monitors", o.monitors_path,
                  "JSON file of monitors applied to every generation request ({\"monitors\": "
                  "[...]}, the request field's format; docs/server_api.md)");
  cmd->add_option("--db", o.db_path, "Feature database from `glassbox analyze`");
  cmd->add_option("--host", o.host, "Address to bind (default 127.0.0.1)");
  cmd->add_option("--port", o.port, "Port (default 8080; 0 = any free port)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", o.api_key,
                  "Require 'Authorization: Bearer KEY' on /api/* and /v1/* (env GLASSBOX_API_KEY)")
      ->envname("GLASSBOX_API_KEY");
  cmd->add_option("--ctx,-c", o.ctx,
                  "Context length of each session (default: the model's; rotary models may go "
                  "beyond it, as llama-server's -c)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--workers", o.workers, "Model sessions serving requests in parallel (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-queue", o.max_queue,
                  "Requests waiting for a session; one more gets 429 (default 16)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--max-body", o.max_body, "Largest request body in bytes (default 1 MiB)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--max-tokens", o.max_tokens,
                  "Most tokens one request may generate (default 1024)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  cmd->add_option("--timeout", o.timeout_s,
                  "Seconds a request may wait and run; also socket read/write timeout (default 60)")
      ->check(CLI::Range(0.001, 86400.0));
  auto* tmpl =
      cmd->add_option("--chat-template-file", o.chat_template_file,
                      "Jinja chat template for /v1/chat/completions instead of the "
                      "model's own (GGUF tokenizer.chat_template / tokenizer_config.json)");
  cmd->add_flag("--no-chat-template", o.no_chat_template,
                "Join chat messages as plain text even if the model has a chat template")
      ->excludes(tmpl);
  return [a] { return run_serve(*a); };
}

}  // namespace glassbox::cli
