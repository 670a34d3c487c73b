// The "monitors" field a client may add to /v1/completions, /v1/chat/completions and
// /api/generate (an extension): read into MonitorSpecs (monitors.h), checked completely before
// any model work. Vectors come inline; latents name the server's --sae, probes one of the
// server's --probe files, never a path. Spec in docs/server_api.md ("Monitors").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/config.h"
#include "probe/probe.h"
#include "sae/sae.h"
#include "server/json_request.h"
#include "server/monitors.h"

namespace glassbox::server {

// At most this many monitors per request.
inline constexpr size_t kMaxMonitors = 8;

// The monitors of body["monitors"] (none when absent or null). `sae` and `probes` (may be null /
// empty) must outlive the request. Throws HttpError 400 naming "monitors[i].field".
std::vector<MonitorSpec> parse_monitors(const json& body, const ModelConfig& config, const Sae* sae,
                                        const std::map<std::string, Probe>& probes);

// Monitors from a server config file (`serve --monitors FILE`): {"monitors": [...]} or the list
// itself, in the request's format. Throws Error naming the file and the entry's field.
std::vector<MonitorSpec> load_server_monitors(const std::string& path, const ModelConfig& config,
                                              const Sae* sae,
                                              const std::map<std::string, Probe>& probes);

// A request's monitors: the server's (from its config, on every request) followed by those of
// body["monitors"]; a request monitor may not reuse a server monitor's name (400).
std::vector<MonitorSpec> request_monitors(const json& body, const std::vector<MonitorSpec>& server,
                                          const ModelConfig& config, const Sae* sae,
                                          const std::map<std::string, Probe>& probes);

}  // namespace glassbox::server
