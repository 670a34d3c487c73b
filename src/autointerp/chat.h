// What the explainer and the judges need from a language model: a chat turn in, reply text out.
// The HTTP client (llm_client.h) provides one; tests pass scripted functions. No HTTP here.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace glassbox::autointerp {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Sends `messages` and returns the reply's text; throws glassbox::Error when no reply came.
using ChatFn = std::function<std::string(const std::vector<ChatMessage>& messages)>;

}  // namespace glassbox::autointerp
