// StopMatcher: OpenAI `stop` strings over streamed text. Text that may still turn out to be the
// start of a stop string is held back; the first stop string completed cuts the text before it.
// Pure string work (no model, no HTTP), so streamed and non-streamed completions cut at the same
// place.
#pragma once

#include <string>
#include <vector>

namespace glassbox::server {

// Holds back text that may be the start of a stop string; reports a match.
class StopMatcher {
 public:
  // Empty stop strings are ignored (they would match everywhere).
  explicit StopMatcher(std::vector<std::string> stops);
  // Adds decoded text; returns what may be emitted now. After a match, matched() is true and
  // nothing more is returned.
  std::string push(const std::string& text);
  // The text still held back (no stop string can match any more).
  std::string finish();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace glassbox::server
