#include "server/monitor_request.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "server/steering_request.h"

namespace glassbox::server {
namespace {

int64_t token_width(HookName hook, const ModelConfig& config) {
  return shape_numel(*hook_token_shape(hook.point, config));
}

MonitorSpec parse_one(const json& e, const ModelConfig& config, const Sae* sae,
                      const std::map<std::string, Probe>& probes) {
  if (!e.is_object()) throw HttpError(400, "expected an object", {}, "invalid_value");
  MonitorSpec m;
  m.name = req_string(e, "name");
  if (m.name.empty()) bad_field("name", "expected a non-empty string");
  const std::string type = req_string(e, "type");
  if (type == "projection") {
    m.type = MonitorType::kProjection;
    m.hook = parse_entry_hook(e, config, "monitored");
    m.unit = parse_entry_vector(e, token_width(m.hook, config));
    double norm = 0;
    for (float v : m.unit) norm += static_cast<double>(v) * v;
    if (!(norm > 0) || !std::isfinite(norm)) bad_field("vector", "expected a non-zero vector");
    for (float& v : m.unit) v = static_cast<float>(v / std::sqrt(norm));
  } else if (type == "latent") {
    if (!sae) bad_field("type", "latent monitors read the server's SAE: start it with --sae DIR");
    m.type = MonitorType::kLatent;
    m.sae = sae;
    m.hook = resolve_hook_name(sae->hook_name, config);
    const auto latent = opt_int(e, "latent", 0, sae->d_sae - 1);
    if (!latent) bad_field("latent", "this field is required (a latent of the server's SAE)");
    m.latent = *latent;
  } else if (type == "probe") {
    m.type = MonitorType::kProbe;
    const std::string name = req_string(e, "probe");
    const auto it = probes.find(name);
    if (it == probes.end()) {
      std::string known;
      for (const auto& [k, v] : probes) known += (known.empty() ? "" : ", ") + k;
      bad_field("probe", "no probe '" + name + "' on this server (" +
                             (known.empty() ? "start it with --probe FILE" : "has: " + known) +
                             ")");
    }
    m.probe = &it->second;
    m.hook = resolve_hook_name(m.probe->hook, config);  // checked at startup
  } else {
    bad_field("type", "expected projection, latent or probe, got '" + type + "'");
  }
  const auto threshold = opt_number(e, "threshold", -1e30, 1e30);
  if (!threshold) bad_field("threshold", "this field is required (a number)");
  m.threshold = *threshold;
  const std::string direction = opt_string(e, "direction").value_or("above");
  if (direction != "above" && direction != "below")
    bad_field("direction", "expected above or below, got '" + direction + "'");
  m.below = direction == "below";
  const std::string action = opt_string(e, "action").value_or("flag");
  if (action == "flag") {
    m.action = MonitorAction::kFlag;
  } else if (action == "stop") {
    m.action = MonitorAction::kStop;
  } else if (action == "steer") {
    m.action = MonitorAction::kSteer;
    const auto it = e.find("steering");
    if (it == e.end() || it->is_null() || !it->is_array() || it->empty())
      bad_field("steering", "steer needs a non-empty list of interventions (as \"steering\")");
    m.steering = parse_steering(e, config, sae);
  } else {
    bad_field("action", "expected flag, stop or steer, got '" + action + "'");
  }
  if (m.action != MonitorAction::kSteer && e.contains("steering") && !e["steering"].is_null())
    bad_field("steering", "only allowed with action: steer");
  return m;
}

}  // namespace

std::vector<MonitorSpec> parse_monitors(const json& body, const ModelConfig& config, const Sae* sae,
                                        const std::map<std::string, Probe>& probes) {
  const auto it = body.find("monitors");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_array()) bad_field("monitors", "expected a list of monitors");
  if (it->size() > kMaxMonitors)
    bad_field("monitors", "at most " + std::to_string(kMaxMonitors) + " monitors");
  std::vector<MonitorSpec> out;
  std::set<std::string> names;
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string where = "monitors[" + std::to_string(i) + "]";
    try {
      out.push_back(parse_one((*it)[i], config, sae, probes));
      if (!names.insert(out.back().name).second)
        bad_field("name", "'" + out.back().name + "' names another monitor already");
    } catch (const HttpError& e) {
      rethrow_in_entry(where, e);
    }
  }
  return out;
}

std::vector<MonitorSpec> load_server_monitors(const std::string& path, const ModelConfig& config,
                                              const Sae* sae,
                                              const std::map<std::string, Probe>& probes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open the monitors file");
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded())
    throw Error(ErrorCode::kFormat, path + ": not valid JSON (expected {\"monitors\": [...]})");
  if (doc.is_array()) doc = json{{"monitors", doc}};
  if (!doc.is_object() || !doc.contains("monitors") || !doc["monitors"].is_array())
    throw Error(ErrorCode::kFormat,
                path + ": expected {\"monitors\": [...]} or a list of monitors");
  try {
    return parse_monitors(doc, config, sae, probes);
  } catch (const HttpError& e) {
    throw Error(ErrorCode::kInvalidArgument, path + ": " + e.what());
  }
}

std::vector<MonitorSpec> request_monitors(const json& body, const std::vector<MonitorSpec>& server,
                                          const ModelConfig& config, const Sae* sae,
                                          const std::map<std::string, Probe>& probes) {
  std::vector<MonitorSpec> own = parse_monitors(body, config, sae, probes);
  for (size_t i = 0; i < own.size(); ++i) {
    for (const MonitorSpec& m : server) {
      if (m.name == own[i].name) {
        throw HttpError(400,
                        "monitors[" + std::to_string(i) + "].name: '" + m.name +
                            "' is a monitor of the server's config (pick another name)",
                        "monitors[" + std::to_string(i) + "].name", "invalid_value");
      }
    }
  }
  std::vector<MonitorSpec> all = server;
  all.insert(all.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
  return all;
}

}  // namespace glassbox::server
