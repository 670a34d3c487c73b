// `glassbox serve` (placeholder until issue #6's implementation lands).
#include "cli_common.h"

namespace glassbox::cli {

Action register_serve(CLI::App& app) {
  app.add_subcommand("serve", "(not yet implemented)");
  return [] { return 1; };
}

}  // namespace glassbox::cli
