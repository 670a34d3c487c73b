// Fuzzes the chat-template engine (src/chat): any bytes as a Jinja template are parsed and, when
// they parse, rendered over a fixed conversation (with and without the generation prompt, with
// tools), under small limits so that each input stays fast. Every outcome must be a rendering or
// a glassbox::Error whose message names the template — never a crash, a hang, another exception
// type, a sanitizer report or a leak (reference cycles through namespaces would be one). Seeds:
// the real templates of tests/data/chat_templates.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"
#include "core/error.h"

namespace {

void expect(bool ok) {
  if (!ok) __builtin_trap();
}

const char* const kMessages = R"([
  {"role": "system", "content": "You are terse."},
  {"role": "user", "content": "Hi \"there\"\n  {{ x }}"},
  {"role": "assistant", "content": "<think>hm</think>Hello", "tool_calls": [
    {"id": "call12345", "type": "function",
     "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}}]},
  {"role": "tool", "tool_call_id": "call12345", "content": "{\"ok\": 1}"},
  {"role": "user", "content": "Ünïcödé 🦙"}
])";
const char* const kTools =
    R"([{"type": "function", "function": {"name": "f", "description": "d",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}])";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  glassbox::ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_string_bytes = 1 << 16;
  limits.max_steps = 200000;
  limits.max_alloc_bytes = 8 << 20;
  limits.max_call_depth = 16;
  const std::string name = "fuzz.jinja";
  try {
    const glassbox::ChatTemplate tmpl = glassbox::ChatTemplate::parse(source, name, limits);
    for (int variant = 0; variant < 2; ++variant) {
      glassbox::ChatRenderInput in;
      in.messages_json = kMessages;
      in.add_generation_prompt = variant == 1;
      in.bos_token = "<s>";
      in.eos_token = "</s>";
      if (variant == 1) in.tools_json = kTools;
      in.extra_json = R"({"enable_thinking": false})";
      try {
        const std::string out = glassbox::render_chat_template(tmpl, in, limits);
        expect(out.size() <= limits.max_output_bytes);
      } catch (const glassbox::Error& e) {
        expect(std::string(e.what()).rfind(name + ": line ", 0) == 0);
      }
    }
  } catch (const glassbox::Error& e) {
    expect(std::string(e.what()).rfind(name + ": ", 0) == 0);
  }
  return 0;
}
