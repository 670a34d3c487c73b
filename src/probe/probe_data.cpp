#include "probe/probe_data.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/hooks.h"
#include "model/run.h"
#include "model/session.h"

namespace glassbox {
namespace {

std::vector<int32_t> encode_text(const Tokenizer& tok, const ChatFormatter* chat,
                                 const std::string& text, bool* has_bos) {
  if (chat) {
    std::vector<int32_t> ids = encode_turn(*chat, tok, "", text);
    *has_bos = !ids.empty() && tok.bos_id() && ids.front() == *tok.bos_id();
    return ids;
  }
  *has_bos = tok.bos_id().has_value() && tok.add_bos_by_default();
  return tok.encode(text, *has_bos, false);
}

int64_t resolve_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

}  // namespace

const char* probe_pool_name(ProbePool pool) { return pool == ProbePool::kMean ? "mean" : "last"; }

ProbePool parse_probe_pool(const std::string& text) {
  if (text == "last") return ProbePool::kLast;
  if (text == "mean") return ProbePool::kMean;
  throw Error(ErrorCode::kInvalidArgument, "pool '" + text + "' is not 'last' or 'mean'");
}

std::vector<ProbeExample> read_probe_dataset(const std::string& path, bool require_label) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot open dataset " + path);
  std::vector<ProbeExample> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const auto bad = [&](const std::string& what) {
      return Error(ErrorCode::kFormat, where + ": " + what);
    };
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      throw bad("not valid JSON");
    }
    if (!j.is_object()) throw bad("not a JSON object");
    ProbeExample ex;
    ex.line = line_no;
    if (!j.contains("text") || !j["text"].is_string()) throw bad("no \"text\" string");
    ex.text = j["text"].get<std::string>();
    if (j.contains("label")) {
      const nlohmann::json& l = j["label"];
      if (l.is_boolean()) {
        ex.label = l.get<bool>() ? 1 : 0;
      } else if (l.is_number_integer() && (l.get<int64_t>() == 0 || l.get<int64_t>() == 1)) {
        ex.label = static_cast<int>(l.get<int64_t>());
      } else {
        throw bad("\"label\" must be 0, 1, false or true, got " + l.dump());
      }
    } else if (require_label) {
      throw bad("no \"label\"");
    }
    if (j.contains("span") && j.contains("token"))
      throw bad("give \"span\" or \"token\", not both");
    if (j.contains("span")) {
      const nlohmann::json& s = j["span"];
      if (!s.is_array() || s.size() != 2 || !s[0].is_number_integer() ||
          !s[1].is_number_integer()) {
        throw bad("\"span\" must be [start, end) token indices");
      }
      ex.start = s[0].get<int64_t>();
      ex.end = s[1].get<int64_t>();
    } else if (j.contains("token")) {
      if (!j["token"].is_number_integer()) throw bad("\"token\" must be an integer");
      ex.start = j["token"].get<int64_t>();
      ex.end = *ex.start == -1 ? std::optional<int64_t>() : std::optional<int64_t>(*ex.start + 1);
    }
    out.push_back(std::move(ex));
  }
  if (out.empty()) throw Error(ErrorCode::kInvalidArgument, "dataset " + path + " has no examples");
  return out;
}

std::vector<std::string> resolve_probe_hooks(const std::vector<std::string>& names,
                                             const ModelConfig& config) {
  if (names.empty()) throw Error(ErrorCode::kInvalidArgument, "--hooks: no hook given");
  std::vector<std::string> expanded;
  for (const std::string& name : names) {
    if (name.rfind("blocks.*.", 0) == 0) {
      for (int64_t l = 0; l < config.n_layers; ++l) {
        expanded.push_back("blocks." + std::to_string(l) + name.substr(8));
      }
    } else {
      expanded.push_back(name);
    }
  }
  std::vector<std::string> out;
  for (const std::string& name : expanded) {
    const HookName h = resolve_hook_name(name, config);
    if (!hook_token_shape(h.point, config)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--hooks: " + name + " has one row per (head, query), not per token");
    }
    const std::string canonical = hook_name_string(h);
    for (const std::string& seen : out) {
      if (seen == canonical)
        throw Error(ErrorCode::kInvalidArgument, "--hooks: " + name + " given twice");
    }
    out.push_back(canonical);
  }
  return out;
}

std::vector<Matrix> token_activations(const Model& model, const Tokenizer& tokenizer,
                                      const std::string& text,
                                      const std::vector<std::string>& hooks, int threads,
                                      std::vector<int32_t>* text_ids, const ChatFormatter* chat) {
  bool bos = false;
  const std::vector<int32_t> ids = encode_text(tokenizer, chat, text, &bos);
  const int64_t skip = bos ? 1 : 0, n = static_cast<int64_t>(ids.size()) - skip;
  if (n <= 0) throw Error(ErrorCode::kInvalidArgument, "the text has no tokens");
  if (static_cast<int64_t>(ids.size()) > model.config().n_ctx) {
    throw Error(ErrorCode::kInvalidArgument, "the text has " + std::to_string(ids.size()) +
                                                 " tokens, more than the context " +
                                                 std::to_string(model.config().n_ctx));
  }
  if (text_ids) text_ids->assign(ids.begin() + skip, ids.end());
  SessionOptions so;
  so.n_threads = threads;
  Session session(model, so);
  const CacheRun run = run_with_cache(session, ids, hooks);
  std::vector<Matrix> out;
  for (const std::string& h : hooks) {
    const Tensor t = run.cache.at(h).to_f32();
    const int64_t width = t.numel() / static_cast<int64_t>(ids.size());
    Matrix m;
    m.n = n;
    m.d = width;
    m.data.assign(t.data<float>() + skip * width, t.data<float>() + t.numel());
    out.push_back(std::move(m));
  }
  return out;
}

ProbeFeatures extract_probe_features(const Model& model, const Tokenizer& tokenizer,
                                     const std::vector<ProbeExample>& examples,
                                     const std::vector<std::string>& hooks, ProbePool pool,
                                     int threads,
                                     const std::function<void(int64_t, int64_t)>& on_progress,
                                     const ChatFormatter* chat) {
  ProbeFeatures f;
  f.hooks = hooks;
  f.x.resize(hooks.size());
  const int64_t n_ex = static_cast<int64_t>(examples.size());
  SessionOptions so;
  so.n_threads = threads;
  Session session(model, so);
  for (int64_t e = 0; e < n_ex; ++e) {
    const ProbeExample& ex = examples[e];
    const std::string where = "line " + std::to_string(ex.line);
    bool bos = false;
    const std::vector<int32_t> ids = encode_text(tokenizer, chat, ex.text, &bos);
    const int64_t skip = bos ? 1 : 0, n = static_cast<int64_t>(ids.size()) - skip;
    if (n <= 0) throw Error(ErrorCode::kInvalidArgument, where + ": the text has no tokens");
    if (static_cast<int64_t>(ids.size()) > model.config().n_ctx) {
      throw Error(ErrorCode::kInvalidArgument, where + ": the text has " +
                                                   std::to_string(ids.size()) +
                                                   " tokens with BOS, more than the context " +
                                                   std::to_string(model.config().n_ctx));
    }
    int64_t start = pool == ProbePool::kLast ? n - 1 : 0, end = n;
    if (ex.start) {
      start = resolve_index(*ex.start, n);
      end = ex.end ? resolve_index(*ex.end, n) : n;
    }
    if (start < 0 || end > n || start >= end) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": span [" + std::to_string(start) + ", " + std::to_string(end) +
                      ") is empty or outside the text's " + std::to_string(n) + " tokens");
    }
    const CacheRun run = run_with_cache(session, ids, hooks);
    for (size_t h = 0; h < hooks.size(); ++h) {
      const Tensor t = run.cache.at(hooks[h]).to_f32();
      const int64_t width = t.numel() / static_cast<int64_t>(ids.size());
      Matrix& m = f.x[h];
      if (e == 0) {
        m.n = n_ex;
        m.d = width;
        m.data.assign(static_cast<size_t>(n_ex * width), 0.0);
      }
      double* row = m.row(e);
      const float* a = t.data<float>();
      for (int64_t p = start; p < end; ++p) {
        const float* r = a + (p + skip) * width;
        for (int64_t k = 0; k < width; ++k) row[k] += r[k];
      }
      const double inv = 1.0 / static_cast<double>(end - start);
      for (int64_t k = 0; k < width; ++k) row[k] *= inv;
    }
    f.labels.push_back(ex.label);
    f.n_tokens.push_back(n);
    if (on_progress) on_progress(e + 1, n_ex);
  }
  return f;
}

}  // namespace glassbox
