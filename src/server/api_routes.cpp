// The explorer's JSON API: /api/model, /api/features, /api/features/{id}, /api/run,
// /api/generate (docs/server_api.md). Feature queries read the database directly (thread-safe,
// no model); run and generate go through the model pool.
#include <algorithm>
#include <numeric>
#include <string_view>

#include "model/hooks.h"
#include "model/run.h"
#include "sae/sae_io.h"
#include "server/generation.h"
#include "server/monitor_request.h"
#include "server/server_state.h"
#include "server/steering_request.h"
#include "tokenizer/tokenizer.h"

namespace glassbox::server {
namespace {

constexpr int64_t kMaxListLimit = 500;
constexpr int64_t kMaxRunTopK = 64;
constexpr size_t kMaxRunFeatures = 256;

json opt_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
json opt_text(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json summary_json(const FeatureSummary& f) {
  return {{"id", f.id},
          {"n_fires", f.n_fires},
          {"freq", f.freq},
          {"mean_act", f.mean_act},
          {"max_act", f.max_act},
          {"max_token", f.max_token},
          {"explanation", opt_text(f.explanation)},
          {"explainer", opt_text(f.explainer)},
          {"scores",
           {{"detection", opt_json(f.detection)},
            {"fuzzing", opt_json(f.fuzzing)},
            {"intervention", opt_json(f.intervention)}}}};
}

json explanations_json(const std::vector<ExplanationInfo>& v) {
  json out = json::array();
  for (const auto& x : v) {
    json scores = json::array();
    for (const auto& s : x.scores) {
      scores.push_back({{"method", s.method},
                        {"judge", s.judge},
                        {"accuracy", opt_json(s.accuracy)},
                        {"balanced_accuracy", opt_json(s.balanced_accuracy)},
                        {"auroc", opt_json(s.auroc)},
                        {"value", s.value},
                        {"n", s.n},
                        {"created", s.created}});
    }
    out.push_back({{"explainer", x.explainer},
                   {"explanation", x.explanation},
                   {"model", x.model},
                   {"endpoint", x.endpoint},
                   {"created", x.created},
                   {"prompt_tokens", x.prompt_tokens},
                   {"completion_tokens", x.completion_tokens},
                   {"scores", scores}});
  }
  return out;
}

json example_json(const FeatureExample& e) {
  return {{"act", e.act}, {"doc", e.doc},       {"pos", e.pos},  {"center", e.center},
          {"ids", e.ids}, {"tokens", e.tokens}, {"acts", e.acts}};
}

json examples_json(const std::vector<FeatureExample>& v) {
  json out = json::array();
  for (const auto& e : v) out.push_back(example_json(e));
  return out;
}

json logits_json(const std::vector<LogitEffect>& v) {
  json out = json::array();
  for (const auto& l : v) out.push_back({{"id", l.id}, {"token", l.token}, {"value", l.value}});
  return out;
}

const FeatureDb& need_db(const ServerState& s) {
  if (!s.db) {
    throw HttpError(404, "no feature database: start the server with --db FILE", {}, "no_db");
  }
  return *s.db;
}

std::string query_param(const httplib::Request& req, const char* name) {
  return req.has_param(name) ? req.get_param_value(name) : std::string();
}

bool parse_bool_param(const std::string& field, const std::string& text) {
  if (text == "1" || text == "true") return true;
  if (text == "0" || text == "false") return false;
  bad_field(field, "expected true or false, got '" + text + "'");
}

FeatureQuery parse_feature_query(const httplib::Request& req) {
  FeatureQuery q;
  if (req.has_param("sort")) {
    q.sort = req.get_param_value("sort");
    static const char* kSorts[] = {"id",        "freq",    "mean_act",    "max_act",
                                   "detection", "fuzzing", "intervention"};
    if (std::none_of(std::begin(kSorts), std::end(kSorts),
                     [&](const char* k) { return q.sort == k; }))
      bad_field("sort",
                "expected one of id, freq, mean_act, max_act, detection, fuzzing, intervention, "
                "got '" +
                    q.sort + "'");
  }
  if (req.has_param("order")) {
    const std::string o = req.get_param_value("order");
    if (o != "asc" && o != "desc") bad_field("order", "expected asc or desc, got '" + o + "'");
    q.descending = o == "desc";
  }
  q.text = query_param(req, "q");
  q.token = query_param(req, "token");
  if (req.has_param("min_freq"))
    q.min_freq = parse_number_param("min_freq", req.get_param_value("min_freq"));
  if (req.has_param("max_freq"))
    q.max_freq = parse_number_param("max_freq", req.get_param_value("max_freq"));
  if (req.has_param("include_dead"))
    q.include_dead = parse_bool_param("include_dead", req.get_param_value("include_dead"));
  if (req.has_param("offset"))
    q.offset = parse_int_param("offset", req.get_param_value("offset"), 0, int64_t{1} << 40);
  if (req.has_param("limit"))
    q.limit = parse_int_param("limit", req.get_param_value("limit"), 1, kMaxListLimit);
  return q;
}

void api_model_route(const ServerState& s, const httplib::Request&, httplib::Response& res) {
  const ModelConfig& c = s.model->config();
  json sae = nullptr;
  if (s.sae) {
    sae = {{"hook", s.sae->hook_name},
           {"d_sae", s.sae->d_sae},
           {"d_in", s.sae->d_in},
           {"arch", sae_arch_name(s.sae->arch)},
           {"path", *s.options.sae_path}};
  }
  json db = nullptr;
  if (s.db) {
    db = json::object();
    for (const auto& [k, v] : s.db->meta()) db[k] = v;
    db["path"] = s.db->path();
  }
  send_json(res, {{"model", s.options.model_path},
                  {"name", s.model_name},
                  {"arch", c.architecture},
                  {"n_layers", c.n_layers},
                  {"d_model", c.d_model},
                  {"n_heads", c.n_heads},
                  {"d_mlp", c.d_mlp},
                  {"n_ctx", s.n_ctx()},
                  {"d_vocab", c.d_vocab},
                  {"hooks", available_hooks(c)},
                  {"sae", sae},
                  {"db", db},
                  {"limits",
                   {{"max_tokens", s.options.max_tokens},
                    {"max_body", s.options.max_body},
                    {"workers", s.options.workers},
                    {"max_queue", s.options.max_queue}}}});
}

void features_route(const ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const FeatureDb& db = need_db(s);
  const FeatureQuery q = parse_feature_query(req);
  FeatureList list;
  try {
    list = db.list(q);
  } catch (const Error& e) {
    // "sort: no scores in this database (run glassbox score)": a 400 naming the field.
    if (e.code() == ErrorCode::kInvalidArgument && std::string_view(e.what()).starts_with("sort:"))
      throw HttpError(400, e.what(), "sort", "invalid_value");
    throw;
  }
  json features = json::array();
  for (const auto& f : list.features) features.push_back(summary_json(f));
  send_json(res, {{"total", list.total},
                  {"offset", q.offset},
                  {"has_explanations", list.has_explanations},
                  {"has_scores", list.has_scores},
                  {"features", features}});
}

void feature_route(const ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const FeatureDb& db = need_db(s);
  const std::string text = req.matches[1];
  const int64_t id = parse_int_param("id", text, 0, std::numeric_limits<int64_t>::max());
  const auto d = db.detail(id);
  if (!d) {
    throw HttpError(404,
                    "id: no feature " + std::to_string(id) + " (the SAE has " +
                        std::to_string(db.d_sae()) + " latents)",
                    "id", "feature_not_found");
  }
  json body = summary_json(d->summary);
  body["histogram"] = {{"edges", d->hist_edges}, {"counts", d->hist_counts}};
  body["top_examples"] = examples_json(d->top);
  json bands = json::array();
  for (const auto& b : d->quantiles)
    bands.push_back({{"lo", b.lo}, {"hi", b.hi}, {"examples", examples_json(b.examples)}});
  body["quantiles"] = bands;
  body["logits"] = {{"positive", logits_json(d->positive)}, {"negative", logits_json(d->negative)}};
  body["explanations"] = explanations_json(d->explanations);
  send_json(res, body);
}

void run_route(ServerState& s, const httplib::Request& req, httplib::Response& res) {
  if (!s.sae) throw HttpError(400, "no SAE loaded: start the server with --sae DIR", {}, "no_sae");
  const Sae& sae = *s.sae;
  const json body = parse_json_object(req.body);
  const std::string text = req_string(body, "text");
  const std::vector<int64_t> features =
      opt_int_list(body, "features", 0, sae.d_sae - 1, kMaxRunFeatures);
  const int64_t top_k = opt_int(body, "top_k", 0, kMaxRunTopK).value_or(5);
  const bool bos = opt_bool(body, "bos").value_or(true);
  const std::vector<int32_t> ids = s.encode_prompt(text, "text", bos);
  const std::vector<Intervention> steering = parse_steering(body, s.model->config(), &sae);

  Tensor act;
  {
    auto lease = s.pool->acquire(s.deadline());
    const auto hooks = add_interventions(lease.session().hooks(), steering);
    CacheRun run = run_with_cache(lease.session(), ids, {sae.hook_name});
    act = run.cache.at(sae.hook_name);
  }
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<float> acts(static_cast<size_t>(n * sae.d_sae));
  sae.encode(act.floats().data(), n, acts.data());

  json tokens = json::array();
  StreamDecoder decoder(*s.tokenizer);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = ids[static_cast<size_t>(t)];
    tokens.push_back(
        {{"id", id}, {"token", token_display_text(*s.tokenizer, id)}, {"text", decoder.push(id)}});
  }
  if (n > 0) tokens.back()["text"] = tokens.back()["text"].get<std::string>() + decoder.flush();

  json chosen = json::object();
  for (int64_t f : features) {
    std::vector<float> col(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t) col[static_cast<size_t>(t)] = acts[t * sae.d_sae + f];
    chosen[std::to_string(f)] = col;
  }
  json top = json::array();
  std::vector<int32_t> order(static_cast<size_t>(sae.d_sae));
  for (int64_t t = 0; t < n; ++t) {
    const float* row = acts.data() + t * sae.d_sae;
    std::iota(order.begin(), order.end(), 0);
    const auto k = static_cast<size_t>(std::min<int64_t>(top_k, sae.d_sae));
    std::partial_sort(
        order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
        [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    json list = json::array();
    for (size_t i = 0; i < k && row[order[i]] > 0; ++i)
      list.push_back({{"id", order[i]}, {"act", row[order[i]]}});
    top.push_back(list);
  }
  send_json(res, {{"hook", sae.hook_name}, {"tokens", tokens}, {"features", chosen}, {"top", top}});
}

void generate_route(ServerState& s, const httplib::Request& req, httplib::Response& res) {
  const json body = parse_json_object(req.body);
  GenerationRequest g;
  g.sampling = parse_sampling(body, 64, 0.8, s.options.max_tokens);
  g.steering = parse_steering(body, s.model->config(), s.sae ? &*s.sae : nullptr);
  g.monitors =
      request_monitors(body, s.monitors, s.model->config(), s.sae ? &*s.sae : nullptr, s.probes);
  g.prompt = s.encode_prompt(req_string(body, "prompt"), "prompt");
  g.deadline = s.deadline();
  g.stop_ids = s.stop_ids;
  auto lease = s.pool->acquire(g.deadline);
  const GenerationResult r = run_generation(lease.session(), *s.tokenizer, g, {});
  json out = {{"text", r.text},
              {"prompt_tokens", r.prompt_tokens},
              {"completion_tokens", r.completion_tokens},
              {"finish_reason", r.finish_reason},
              {"seed", r.seed}};
  if (!r.monitors.names.empty()) {
    out["monitors"] = monitor_trace_json(r.monitors);
    if (r.monitors.stop) out["monitor"] = monitor_event_json(*r.monitors.stop);
  }
  send_json(res, out);
}

}  // namespace

std::vector<RouteInfo> register_api_routes(httplib::Server& svr, ServerState& state) {
  ServerState* s = &state;
  svr.Get("/api/model",
          guarded(state, true, [s](const auto& q, auto& r) { api_model_route(*s, q, r); }));
  svr.Get("/api/features",
          guarded(state, true, [s](const auto& q, auto& r) { features_route(*s, q, r); }));
  svr.Get("/api/features/([^/]+)",
          guarded(state, true, [s](const auto& q, auto& r) { feature_route(*s, q, r); }));
  svr.Post("/api/run", guarded(state, true, [s](const auto& q, auto& r) { run_route(*s, q, r); }));
  svr.Post("/api/generate",
           guarded(state, true, [s](const auto& q, auto& r) { generate_route(*s, q, r); }));
  return {{"GET", "/api/model"},
          {"GET", "/api/features"},
          {"GET", "/api/features/([^/]+)"},
          {"POST", "/api/run"},
          {"POST", "/api/generate"}};
}

}  // namespace glassbox::server
