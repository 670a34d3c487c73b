// glassbox::Error — the one exception type for caller-caused failures (bad file, bad argument,
// unknown name, shape mismatch), and GLASSBOX_ASSERT for programming bugs.
// Library code throws Error and adds context at stage boundaries; only tools/ and the server
// turn errors into exit codes or HTTP statuses. Kernels never throw: callers validate first.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace glassbox {

enum class ErrorCode {
  kIo,               // file missing, unreadable, mmap failed
  kFormat,           // file content does not follow its format (bad magic, truncated, corrupt)
  kUnsupported,      // valid file, but a feature we do not implement (architecture, dtype)
  kInvalidArgument,  // bad value from the caller (token id out of range, empty prompt, ...)
  kNotFound,         // unknown name (hook, tensor, metadata key)
  kShape,            // tensor shape mismatch
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message)
      : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }

  // Returns a copy whose message is "context: original message".
  Error with_context(const std::string& context) const {
    return Error(code_, context + ": " + what());
  }

 private:
  ErrorCode code_;
};

// Shorthands used by every reader: throw Error(code, message), or Error(code, "source: what")
// so that each message names the file (or request) it is about.
[[noreturn]] inline void fail(ErrorCode code, const std::string& message) {
  throw Error(code, message);
}
[[noreturn]] inline void fail(ErrorCode code, const std::string& source, const std::string& what) {
  throw Error(code, source + ": " + what);
}

// 'name', as messages quote names, keys and values.
inline std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

[[noreturn]] inline void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "glassbox: internal error: assertion '%s' failed at %s:%d\n", expr, file,
               line);
  std::abort();
}

}  // namespace glassbox

// For invariants that only a bug can break. Never for user input: throw Error instead.
#define GLASSBOX_ASSERT(cond) \
  ((cond) ? (void)0 : ::glassbox::assert_fail(#cond, __FILE__, __LINE__))
