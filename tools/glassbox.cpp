// The glassbox command line: one binary, one subcommand per job. Library errors become one
// "glassbox: error: ..." line on stderr and exit code 1; usage errors exit with CLI11's code.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cli_common.h"

int main(int argc, char** argv) {
  using namespace glassbox;
  CLI::App app{"glassbox: look inside language models and steer them, on a CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "glassbox 0.1.0");
  std::map<CLI::App*, cli::Action> actions;
  for (auto reg : {cli::register_info,     cli::register_generate,     cli::register_logits,
                   cli::register_cache,    cli::register_tokenize,     cli::register_convert,
                   cli::register_bench,    cli::register_harvest,      cli::register_train_sae,
                   cli::register_eval_sae, cli::register_convert_sae,  cli::register_sae_encode,
                   cli::register_analyze,  cli::register_serve,        cli::register_steer_vector,
                   cli::register_probe,    cli::register_persona,      cli::register_explain,
                   cli::register_score,    cli::register_chat_template}) {
    const size_t before = app.get_subcommands({}).size();
    cli::Action action = reg(app);
    actions[app.get_subcommands({})[before]] = std::move(action);
  }
  // llama-bench's -ctk / -ctv are multi-letter short flags, which CLI11 cannot name: `bench` takes
  // them as its --cache-type-k / --cache-type-v.
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 2; argc > 1 && std::strcmp(argv[1], "bench") == 0 && i < args.size(); ++i) {
    if (args[i] == "-ctk") args[i] = "--cache-type-k";
    if (args[i] == "-ctv") args[i] = "--cache-type-v";
  }
  std::vector<char*> arg_ptrs;
  for (std::string& s : args) arg_ptrs.push_back(s.data());
  try {
    app.parse(argc, arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [cmd, action] : actions) {
      if (cmd->parsed()) return action();
    }
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "glassbox: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "glassbox: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
