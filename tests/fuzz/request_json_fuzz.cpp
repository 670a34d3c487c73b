// Fuzzes the server's request validation (src/server/json_request.h) and stop-string matching
// (src/server/stop_matcher.h): any bytes as a request body must end in a parsed request or an
// HttpError with a 4xx status and a message — never a crash, another exception type, or a
// 5xx. The same bytes also drive query-parameter parsing and, split at NULs, a StopMatcher whose
// output must equal the reference cut of the whole text (before the first stop string completed).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "server/json_request.h"
#include "server/stop_matcher.h"

using namespace glassbox::server;

namespace {

void expect(bool ok) {
  if (!ok) __builtin_trap();
}

template <class F>
void guarded(F f) {
  try {
    f();
  } catch (const HttpError& e) {
    expect(e.status() >= 400 && e.status() < 500 && *e.what() != '\0');
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  guarded([&] {
    const json j = parse_json_object(body);
    guarded([&] { (void)parse_sampling(j, 16, 1.0, 256, "max_completion_tokens"); });
    guarded([&] { (void)opt_string_or_list(j, "prompt", 1, false); });
    guarded([&] { (void)opt_int_list(j, "features", 0, 127, 256); });
    guarded([&] { (void)opt_int(j, "top_k", 0, 64); });
    guarded([&] { (void)opt_bool(j, "bos"); });
    guarded([&] { (void)req_string(j, "text"); });
    guarded([&] {
      (void)error_body(400, body, "x", "y").dump(-1, ' ', false, json::error_handler_t::replace);
    });
  });
  guarded([&] { (void)parse_int_param("limit", body, 1, 500); });
  guarded([&] { (void)parse_number_param("min_freq", body); });

  // Stop strings: the first two NUL-separated parts; the rest is text pushed piece by piece
  // (split at byte 0x01). The emitted text must equal the whole text cut before the first
  // stop string to be completed.
  std::vector<std::string> parts{""};
  for (char c : body) {
    if (c == '\0' && parts.size() < 3)
      parts.emplace_back();
    else
      parts.back() += c;
  }
  if (parts.size() == 3) {
    std::vector<std::string> stops{parts[0], parts[1]};
    StopMatcher m(stops);
    std::string whole, out;
    std::string piece;
    for (char c : parts[2] + '\x01') {
      if (c != '\x01') {
        piece += c;
        continue;
      }
      whole += piece;
      out += m.push(piece);
      piece.clear();
    }
    out += m.finish();
    size_t cut = std::string::npos, cut_end = std::string::npos;  // first stop completed
    for (const auto& s : stops) {
      const size_t at = s.empty() ? std::string::npos : whole.find(s);
      if (at != std::string::npos &&
          (at + s.size() < cut_end || (at + s.size() == cut_end && at < cut))) {
        cut = at;
        cut_end = at + s.size();
      }
    }
    expect(out == (cut == std::string::npos ? whole : whole.substr(0, cut)));
    expect(m.matched() == (cut != std::string::npos));
  }
  return 0;
}
