#include "core/test_hooks.h"

#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

namespace glassbox {
namespace {

// The part after "SITE:" when the variable `env` names `site`; empty otherwise (also when unset
// or malformed: a test hook never fails the program it is compiled into).
std::string_view argument_for(const char* env, std::string_view site) {
  const char* v = std::getenv(env);
  if (v == nullptr) return {};
  const std::string_view s(v);
  const size_t colon = s.find(':');  // sites hold no ':'; a PATH may
  if (colon == std::string_view::npos || s.substr(0, colon) != site) return {};
  return s.substr(colon + 1);
}

}  // namespace

void kill_point(std::string_view site, int64_t value) {
  const std::string_view arg = argument_for("GLASSBOX_KILL_AT", site);
  if (arg.empty()) return;
  char* end = nullptr;
  const std::string n(arg);
  const long long at = std::strtoll(n.c_str(), &end, 10);
  if (end == n.c_str() || *end != '\0' || value < at) return;
  std::raise(SIGKILL);
}

void hold_point(std::string_view site) {
  const std::string_view arg = argument_for("GLASSBOX_HOLD_AT", site);
  if (arg.empty()) return;
  const std::string path(arg);
  struct stat st {};
  while (::stat(path.c_str(), &st) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace glassbox
