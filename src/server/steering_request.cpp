#include "server/steering_request.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "model/hooks.h"

namespace glassbox::server {

HookName parse_entry_hook(const json& e, const ModelConfig& config, const std::string& use) {
  const bool has_hook = e.contains("hook") && !e["hook"].is_null();
  const std::optional<int64_t> layer = opt_int(e, "layer", 0, config.n_layers - 1);
  if (has_hook == layer.has_value())
    bad_field("hook", "give exactly one of hook (a hook name) or layer (a block index)");
  HookName hook;
  if (layer) {
    hook = resolve_hook_name("blocks." + std::to_string(*layer) + ".hook_resid_post", config);
  } else {
    try {
      hook = resolve_hook_name(req_string(e, "hook"), config);
    } catch (const Error& err) {
      bad_field("hook", err.what());
    }
  }
  if (!hook_token_shape(hook.point, config))
    bad_field("hook", "attention scores and patterns cannot be " + use);
  return hook;
}

std::vector<float> parse_entry_vector(const json& e, int64_t width) {
  const auto it = e.find("vector");
  if (it == e.end() || !it->is_array())
    bad_field("vector", "expected an array of " + std::to_string(width) + " numbers");
  if (static_cast<int64_t>(it->size()) != width) {
    bad_field("vector", "expected " + std::to_string(width) + " numbers (the hook's width), got " +
                            std::to_string(it->size()));
  }
  std::vector<float> v;
  v.reserve(it->size());
  for (const json& x : *it) {
    if (!x.is_number() || !std::isfinite(x.get<double>()))
      bad_field("vector", "expected finite numbers");
    v.push_back(x.get<float>());
  }
  return v;
}

namespace {

Intervention parse_one(const json& e, const ModelConfig& config, const Sae* sae) {
  if (!e.is_object()) throw HttpError(400, "expected an object", {}, "invalid_value");
  const std::string type = req_string(e, "type");
  Intervention iv;
  iv.pos_from = opt_int(e, "from", 0, int64_t{1} << 40).value_or(0);
  constexpr double kBig = 1e6;
  if (type == "add" || type == "ablate" || type == "cap") {
    iv.kind = type == "add"      ? InterventionKind::kAdd
              : type == "ablate" ? InterventionKind::kAblate
                                 : InterventionKind::kCap;
    iv.hook = parse_entry_hook(e, config, "steered");
    const Shape shape = *hook_token_shape(iv.hook.point, config);  // parse_entry_hook checked it
    int64_t width = 1;
    for (int64_t d : shape) width *= d;
    iv.vector = parse_entry_vector(e, width);
    if (type == "add")
      iv.value = static_cast<float>(opt_number(e, "alpha", -kBig, kBig).value_or(1));
    if (type == "cap") {
      const auto max = opt_number(e, "max", -kBig, kBig);
      if (!max) bad_field("max", "this field is required for cap (the largest projection)");
      iv.value = static_cast<float>(*max);
    }
  } else if (type == "clamp" || type == "scale") {
    if (!sae) bad_field("type", type + " edits an SAE latent: start the server with --sae DIR");
    iv.kind = type == "clamp" ? InterventionKind::kClampLatent : InterventionKind::kScaleLatent;
    // Non-owning: the server's SAE outlives every request.
    iv.sae = std::shared_ptr<const Sae>(std::shared_ptr<const Sae>(), sae);
    iv.hook = resolve_hook_name(sae->hook_name, config);
    const auto latent = opt_int(e, "latent", 0, sae->d_sae - 1);
    if (!latent) bad_field("latent", "this field is required (a latent of the server's SAE)");
    iv.latent = *latent;
    const char* field = type == "clamp" ? "value" : "factor";
    const auto value = opt_number(e, field, -kBig, kBig);
    if (!value) bad_field(field, std::string("this field is required for ") + type);
    iv.value = static_cast<float>(*value);
  } else {
    bad_field("type", "expected add, ablate, cap, clamp or scale, got '" + type + "'");
  }
  try {
    (void)make_intervention_hook(iv);  // zero vectors and the like, before any model work
  } catch (const Error& err) {
    bad_field(type == "clamp" || type == "scale" ? "latent" : "vector", err.what());
  }
  return iv;
}

}  // namespace

std::vector<Intervention> parse_steering(const json& body, const ModelConfig& config,
                                         const Sae* sae) {
  const auto it = body.find("steering");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_array()) bad_field("steering", "expected a list of interventions");
  if (it->size() > kMaxSteering)
    bad_field("steering", "at most " + std::to_string(kMaxSteering) + " interventions");
  std::vector<Intervention> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string where = "steering[" + std::to_string(i) + "]";
    try {
      out.push_back(parse_one((*it)[i], config, sae));
    } catch (const HttpError& e) {
      rethrow_in_entry(where, e);
    }
  }
  return out;
}

}  // namespace glassbox::server
