// Labelled text datasets for probes and the features a model's activations give them. Reads the
// JSONL, tokenizes, runs one forward per text with run_with_cache over every requested hook, and
// pools each hook's rows into one feature vector per text. Knows nothing of fitting (logistic.h)
// or probe files (probe.h).
//
// Dataset format: JSONL, one object per non-blank line:
//   "text":  string, required, non-empty after tokenization
//   "label": 0, 1, false or true; required for training and evaluation
//   "span":  optional [start, end): the text tokens whose activations are averaged
//   "token": optional index of the one text token to use (same as span [k, k+1))
// Token indices count the text's own tokens (0 = the first token after BOS; BOS is never part of
// a feature); negative values count from the end, as in Python (-1 = the last token). Without
// span/token the pooling rule decides: last (the last text token, the default) or mean (all text
// tokens). Texts are encoded with BOS in front when the vocabulary has one and wants it.
// With a chat formatter (probe --chat) each text is the user message of a chat turn rendered
// with the generation prompt (format_turn, encode_turn): token indices and pooling then count
// the rendered prompt's tokens, so "last" is the generation prompt's last token, where the
// model is about to answer.
// Features are float64 copies of the float32 activations; hooks with a head axis are flattened
// ([n_heads, d_head] -> n_heads * d_head).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_prompt.h"
#include "model/model.h"
#include "probe/logistic.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

enum class ProbePool { kLast, kMean };
const char* probe_pool_name(ProbePool pool);
// "last" | "mean"; throws Error(kInvalidArgument) otherwise.
ProbePool parse_probe_pool(const std::string& text);

struct ProbeExample {
  std::string text;
  int label = -1;                     // -1 = none given
  std::optional<int64_t> start, end;  // span in text tokens (may be negative until resolved)
  int64_t line = 0;                   // 1-based line in the file
};

// Throws Error(kIo) when the file cannot be read, Error(kFormat) naming file:line for a line that
// is not a JSON object, lacks "text", has a label other than 0/1/true/false or a malformed span,
// and Error(kInvalidArgument) for a file without examples. With require_label, a missing label
// is Error(kFormat) too.
std::vector<ProbeExample> read_probe_dataset(const std::string& path, bool require_label);

// Expands and checks hook names: "blocks.*.<rest>" stands for that hook at every layer, in layer
// order. Each hook must exist (Error kNotFound) and have one row per token (Error
// kInvalidArgument for attention scores/patterns); duplicates are refused.
std::vector<std::string> resolve_probe_hooks(const std::vector<std::string>& names,
                                             const ModelConfig& config);

struct ProbeFeatures {
  std::vector<std::string> hooks;
  std::vector<Matrix> x;  // per hook: [n_examples, width]
  std::vector<int> labels;
  std::vector<int64_t> n_tokens;  // text tokens per example
};

// One forward per example. `on_progress(done, total)` is called after each. Throws
// Error(kInvalidArgument) naming the line for a text with no tokens, longer than the context, or
// whose span is empty or out of range.
ProbeFeatures extract_probe_features(const Model& model, const Tokenizer& tokenizer,
                                     const std::vector<ProbeExample>& examples,
                                     const std::vector<std::string>& hooks, ProbePool pool,
                                     int threads,
                                     const std::function<void(int64_t, int64_t)>& on_progress = {},
                                     const ChatFormatter* chat = nullptr);

// Per-token activations of one text at each hook ([n_text_tokens, width] each), for scoring every
// position; BOS excluded. Same tokenization as above.
std::vector<Matrix> token_activations(const Model& model, const Tokenizer& tokenizer,
                                      const std::string& text,
                                      const std::vector<std::string>& hooks, int threads,
                                      std::vector<int32_t>* text_ids = nullptr,
                                      const ChatFormatter* chat = nullptr);

}  // namespace glassbox
