// Prompts of automated interpretability (docs/autointerp.md): the explainer prompt (delphi's
// format: numbered contexts with the activating tokens written <<...>>) and the judge prompts
// (detection, fuzzing, expression), and the parsers of their replies.
// Pure text in, text out: no HTTP, no database, no model. Parsers throw Error(kFormat) for replies
// they cannot read, so callers can retry.
#pragma once

#include <string>
#include <vector>

#include "analysis/feature_db.h"
#include "autointerp/chat.h"

namespace glassbox::autointerp {

// One context's tokens (display text, concatenated as they are: pieces carry their own leading
// spaces) with each run of consecutive marked tokens written as one <<...>> span. Whitespace at the
// ends of a span stays outside the markers (" met <<Lily>> and"), unless the span is whitespace
// only ("<<\n>>"). `marked` empty means nothing is marked; otherwise Error(kInvalidArgument) when
// its size differs from the tokens'.
std::string mark_context(const std::vector<std::string>& tokens, const std::vector<bool>& marked);

// Explainer prompt: a system message and one user message with numbered examples: the first `top`
// top examples, then the first `per_band` examples of each quantile band (empty bands skipped),
// activating tokens (act > 0) marked. It asks for one short explanation ending with a line
// "[EXPLANATION]: ...". Newlines inside an example are written "\n" so each example is one line.
std::vector<ChatMessage> explainer_prompt(const FeatureDetail& detail, int top, int per_band);

// The explanation in an explainer reply: the first non-empty line after the last "[EXPLANATION]:"
// (case-insensitive), else the reply's last non-empty line; trimmed of whitespace and of wrapping
// quotes or markdown ("...", '...', “...”, **...**, *...*, `...`) and cut to at most 200 bytes at
// a UTF-8 character boundary. Error(kFormat) "explanation: the reply has no text" when empty.
std::string parse_explanation(const std::string& reply);

// Judge prompts: the explanation and the numbered contexts; the judge answers with a JSON list of
// numbers, one per context, each the probability (0..1) that the feature fires somewhere in it
// (detection), that the <<...>> marking is correct (fuzzing), or that the text expresses the
// explanation (expression, for intervention scoring).
std::vector<ChatMessage> detection_prompt(const std::string& explanation,
                                          const std::vector<std::string>& contexts);
std::vector<ChatMessage> fuzzing_prompt(const std::string& explanation,
                                        const std::vector<std::string>& marked_contexts);
std::vector<ChatMessage> expression_prompt(const std::string& explanation,
                                           const std::vector<std::string>& texts);

// The last [...] JSON list in the reply that holds exactly n numbers (true/false read as 1/0), each
// clamped to [0, 1]. Error(kFormat) saying what was expected and what the reply held otherwise.
std::vector<double> parse_judgements(const std::string& reply, size_t n);

}  // namespace glassbox::autointerp
