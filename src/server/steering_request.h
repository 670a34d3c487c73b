// Per-request steering: the "steering" field a client may add to /v1/completions,
// /v1/chat/completions, /api/generate and /api/run (an extension, ignored by other servers), read
// into Interventions (steer/interventions.h) that are hooked into the leased session for that
// request only. Clients send vectors inline and may edit latents of the server's own SAE; they
// never name files on the server. Spec in docs/server_api.md ("Steering per request").
#pragma once

#include <vector>

#include "model/config.h"
#include "sae/sae.h"
#include "server/json_request.h"
#include "steer/interventions.h"

namespace glassbox::server {

// At most this many interventions per request.
inline constexpr size_t kMaxSteering = 16;

// One list entry's hook: "layer" (a block index, meaning blocks.N.hook_resid_post) or "hook" (a
// name), exactly one of them; attention scores and patterns are refused ("cannot be " + use).
// Throws HttpError 400 naming the field. Shared by steering and monitors.
HookName parse_entry_hook(const json& e, const ModelConfig& config, const std::string& use);
// The entry's "vector": exactly `width` finite numbers. Throws HttpError 400 naming "vector".
std::vector<float> parse_entry_vector(const json& e, int64_t width);

// The interventions of body["steering"] (none when absent or null), each checked by building its
// hook. `sae` (may be null) must outlive the request. Throws HttpError 400 naming
// "steering[i].field" and what was expected.
std::vector<Intervention> parse_steering(const json& body, const ModelConfig& config,
                                         const Sae* sae);

}  // namespace glassbox::server
