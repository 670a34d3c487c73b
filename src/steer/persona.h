// Persona vectors (Anthropic's persona-vectors recipe on the steering-vector pipeline): a trait
// definition (trait-eliciting and trait-suppressing instructions or example texts, evaluation
// prompts, optional trait words), texts generated under each side's instructions, and per layer
// the difference of the two sides' mean blocks.L.hook_resid_post over *response* tokens only.
// Owns the trait definition, the response-span activation means and the projection scores; the
// difference itself is steering_vector.h's kMeanDiff, and files are control_vector.h's. It does
// no flag handling and no file writing (tools/cmd_persona.cpp). Docs: docs/persona.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/session.h"

namespace glassbox {

struct PersonaSide {
  std::vector<std::string> instructions;  // prefixes put before each eval prompt, then generated
  std::vector<std::string> examples;      // ready texts, used whole as responses
};

struct TraitDefinition {
  std::string trait;
  PersonaSide positive, negative;
  std::vector<std::string> eval_prompts;
  std::vector<std::string> positive_words, negative_words;  // optional lexical score
};

// Parses the JSON of docs/persona.md. Throws Error(kFormat) naming `where` and the field at fault
// (missing trait, a side with neither instructions nor examples, instructions without
// eval_prompts, a non-string item).
TraitDefinition parse_trait_definition(const std::string& json_text, const std::string& where);

// One tokenized text and the start of its response: tokens [response_start, ids.size()) are the
// response, the rest (BOS, instruction, prompt) is context that is run but not averaged.
struct PersonaText {
  std::vector<int32_t> ids;
  int64_t response_start = 0;
};

// result[i] = [n_texts, d_model] float32: per text, the mean of blocks.layers[i].hook_resid_post
// over its response tokens (accumulated in double). Throws Error(kInvalidArgument) for an empty
// response span or a layer outside 0 .. n_layers - 1.
std::vector<Tensor> collect_response_means(Session& session, const std::vector<PersonaText>& texts,
                                           const std::vector<int>& layers);

// Projection x_t . u of every token t of `ids` at blocks.layer.hook_resid_post on u = v / |v|.
// Throws Error(kShape) for a width other than d_model, kInvalidArgument for a zero vector or a
// layer out of range.
std::vector<double> projection_per_token(Session& session, const std::vector<int32_t>& ids,
                                         int layer, const std::vector<float>& vector);

// Number of whole-word, case-insensitive occurrences of any of `words` in `text`.
int64_t count_words(const std::string& text, const std::vector<std::string>& words);

}  // namespace glassbox
