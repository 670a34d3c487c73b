#include "analysis/analyze.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "analysis/logit_effects.h"
#include "analysis/window_encoder.h"
#include "core/error.h"
#include "core/sha256.h"
#include "core/test_hooks.h"
#include "core/thread_pool.h"
#include "harvest/harvest.h"
#include "harvest/windows.h"
#include "model/hooks.h"
#include "model/session.h"

namespace glassbox {
namespace fs = std::filesystem;

namespace {

// Where the run stands; stored as the `progress` state blob (plain bytes of this struct).
struct RunState {
  int64_t version = 1;
  int64_t pass = 1;  // 1, 2; 3 = both passes done
  int64_t next_doc = 0, next_window = 0;
  int64_t seen = 0;  // window tokens (BOS included) done in this pass
  int64_t rows = 0;  // non-BOS tokens done in this pass
  int64_t windows = 0;
  int64_t pass1_seen = 0, pass1_rows = 0, pass1_windows = 0;
};

void validate(const AnalyzeOptions& o) {
  const auto positive = [](int64_t v, const char* name, int64_t min) {
    if (v < min) {
      throw Error(ErrorCode::kInvalidArgument, std::string(name) + " must be at least " +
                                                   std::to_string(min) + " (got " +
                                                   std::to_string(v) + ")");
    }
  };
  if (o.corpus.empty()) throw Error(ErrorCode::kInvalidArgument, "--corpus: no file given");
  for (const std::string& p : o.corpus) {
    if (!fs::is_regular_file(p)) throw Error(ErrorCode::kIo, "--corpus: " + p + ": no such file");
  }
  if (o.out.empty()) throw Error(ErrorCode::kInvalidArgument, "--out: no path given");
  positive(o.tokens, "--tokens", 1);
  positive(o.ctx, "--ctx", 2);
  positive(o.stats.top_k, "--top-k", 0);
  positive(o.stats.context, "--context", 0);
  positive(o.stats.quantiles, "--quantiles", 1);
  positive(o.stats.per_quantile, "--per-quantile", 0);
  positive(o.stats.bins, "--bins", 1);
  positive(o.logits, "--logits", 0);
  positive(o.checkpoint_every, "--checkpoint-every", 1);
  if (o.stats.top_k > 100000 || o.stats.context > 100000 || o.stats.quantiles > 1000 ||
      o.stats.per_quantile > 100000 || o.stats.bins > 100000) {
    throw Error(ErrorCode::kInvalidArgument, "--top-k/--context/--quantiles/--bins: too large");
  }
}

// The settings a database is made with; a rerun must match every one.
std::vector<std::pair<std::string, std::string>> settings_meta(const Sae& sae,
                                                               const AnalyzeOptions& o) {
  std::string corpus_sha, corpus_paths;
  for (const std::string& p : o.corpus) {
    if (!corpus_sha.empty()) corpus_sha += ',';
    if (!corpus_paths.empty()) corpus_paths += ',';
    corpus_sha += sha256_file(p);
    corpus_paths += fs::absolute(p).lexically_normal().string();
  }
  const StatsOptions& s = o.stats;
  return {{"model_sha256", model_sha256(o.model_path)},
          {"sae_sha256", sae_sha256(o.sae_path)},
          {"corpus_sha256", corpus_sha},
          {"hook", sae.hook_name},
          {"d_sae", std::to_string(sae.d_sae)},
          {"d_in", std::to_string(sae.d_in)},
          {"ctx", std::to_string(o.ctx)},
          {"tokens", std::to_string(o.tokens)},
          {"top_k", std::to_string(s.top_k)},
          {"context", std::to_string(s.context)},
          {"quantiles", std::to_string(s.quantiles)},
          {"per_quantile", std::to_string(s.per_quantile)},
          {"bins", std::to_string(s.bins)},
          {"logits", std::to_string(o.logits)},
          {"seed", std::to_string(s.seed)},
          // informational, not compared:
          {"model", fs::absolute(o.model_path).lexically_normal().string()},
          {"sae", fs::absolute(o.sae_path).lexically_normal().string()},
          {"sae_arch", sae_arch_name(sae.arch)},
          {"corpus", corpus_paths}};
}
constexpr size_t kComparedSettings = 15;

void remove_db(const std::string& path) {
  {
    FeatureDbWriter check(path);  // refuses to delete anything that is not a feature database
  }
  for (const char* suffix : {"", "-journal", "-wal", "-shm"}) fs::remove(path + suffix);
}

int64_t meta_int(std::map<std::string, std::string>& meta, const std::string& key,
                 const std::string& path) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(meta[key], &used);
    if (used == meta[key].size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::kFormat, path + ": bad meta field '" + key + "'");
}

std::string trim(std::string s) {
  const auto sp = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!s.empty() && sp(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && sp(s[i])) ++i;
  return s.substr(i);
}

}  // namespace

std::string sae_sha256(const std::string& path) {
  return sha256_path(path, {".json", ".safetensors", ".npz"});
}

AnalyzeResult analyze(const Model& model, const Tokenizer& tok, const Sae& sae,
                      const AnalyzeOptions& o, const AnalyzeProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(o);
  const ModelConfig& c = model.config();
  if (sae.hook_name.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "--sae " + o.sae_path + ": the SAE names no hook (Gemma Scope files do not); give --hook");
  }
  const HookName hn = resolve_hook_name(sae.hook_name, c);
  const std::optional<Shape> row_shape = hook_token_shape(hn.point, c);
  if (!row_shape) {
    throw Error(ErrorCode::kInvalidArgument, "--sae " + o.sae_path + ": hook " + sae.hook_name +
                                                 " has one row per (head, query), not per token");
  }
  const int64_t d = shape_numel(*row_shape), m = sae.d_sae;
  if (d != sae.d_in) {
    throw Error(ErrorCode::kShape, "--sae " + o.sae_path + ": hook " + sae.hook_name + " has " +
                                       std::to_string(d) + " values per token but the SAE's " +
                                       "d_in is " + std::to_string(sae.d_in));
  }
  const std::optional<int32_t> bos = tok.bos_id();
  if (!bos) throw Error(ErrorCode::kUnsupported, "the tokenizer has no BOS token");

  const auto settings = settings_meta(sae, o);
  if (o.overwrite && fs::exists(o.out)) remove_db(o.out);
  FeatureDbWriter db(o.out);
  AnalyzeResult result;
  {
    auto meta = db.meta();
    if (meta.count("model_sha256") != 0) {
      std::string diff;
      for (size_t i = 0; i < kComparedSettings; ++i) {
        const auto& [key, value] = settings[i];
        if (meta[key] != value)
          diff += "\n  " + key + ": '" + meta[key] + "' here, '" + value + "' now";
      }
      if (!diff.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    o.out +
                        ": a feature database made with other settings (left untouched; "
                        "choose another --out or pass --overwrite):" +
                        diff);
      }
    } else {
      db.begin();
      for (const auto& [key, value] : settings) db.set_meta(key, value);
      db.commit();
    }
    if (meta["status"] == "done") {
      result.was_complete = true;
      result.tokens = meta_int(meta, "tokens_analysed", o.out);
      result.windows = meta_int(meta, "windows", o.out);
      result.alive = meta_int(meta, "alive", o.out);
      return result;
    }
  }

  // The model's forward is not bitwise thread-invariant: record the count, warn on a change.
  const std::string threads = std::to_string(
      o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()));
  if (const auto meta = db.meta(); meta.count("threads") != 0 && meta.at("threads") != threads) {
    result.note = "resuming with " + threads + " threads; the run began with " +
                  meta.at("threads") +
                  ": activations can differ in the last bits between thread counts";
  }
  db.set_meta("threads", threads);
  FeatureStats stats(m, o.stats);
  RunState st;
  if (const auto blob = db.state("progress")) {
    const auto sblob = db.state("stats");
    if (blob->size() != sizeof(RunState) || !sblob) {
      throw Error(ErrorCode::kFormat, o.out + ": resume state: corrupt or from another build");
    }
    std::memcpy(&st, blob->data(), sizeof(RunState));
    if (st.version != 1 || st.pass < 1 || st.pass > 3 || st.seen < 0 || st.rows < 0 ||
        st.next_doc < 0 || st.next_window < 0) {
      throw Error(ErrorCode::kFormat, o.out + ": resume state: corrupt or from another build");
    }
    try {
      stats.deserialize(*sblob);
    } catch (const Error& e) {
      throw e.with_context(o.out);
    }
    result.resumed = true;
  }
  const auto checkpoint = [&] {
    std::vector<uint8_t> blob(sizeof(RunState));
    std::memcpy(blob.data(), &st, sizeof(RunState));
    db.begin();
    db.set_state("progress", blob);
    db.set_state("stats", stats.serialize());
    db.commit();
  };

  SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = o.ctx;
  Session session(model, so);
  ThreadPool pool(o.threads);
  WindowEncoder encoder(session, sae, pool);
  while (st.pass <= 2) {
    const int pass = static_cast<int>(st.pass);
    const int64_t limit = pass == 1 ? o.tokens : st.pass1_seen;
    WindowStream windows(o.corpus, tok, o.ctx, *bos, st.next_doc, st.next_window);
    while (st.seen < limit) {
      const CorpusWindow* w = windows.next();
      if (w == nullptr) break;
      std::vector<int32_t> window = w->tokens;
      if (static_cast<int64_t>(window.size()) > limit - st.seen) {
        window.resize(static_cast<size_t>(limit - st.seen));
      }
      const int64_t n = static_cast<int64_t>(window.size()) - 1;
      if (n > 0) {
        const std::vector<float>& acts = encoder.encode(window);
        stats.add_window(pass, window, acts.data(), w->doc->id, w->doc_offset, pool);
      }
      st.seen += static_cast<int64_t>(window.size());
      result.processed += static_cast<int64_t>(window.size());
      st.rows += std::max<int64_t>(n, 0);
      ++st.windows;
      st.next_doc = w->last_of_doc ? w->doc->id + 1 : w->doc->id;
      st.next_window = w->last_of_doc ? 0 : w->index + 1;
      if (st.windows % o.checkpoint_every == 0) checkpoint();
      if (progress) progress(pass, st.seen, limit);
      kill_point(pass == 1 ? "analyze.pass1" : "analyze.pass2", st.windows);
    }
    if (pass == 1) {
      if (st.rows == 0) {
        throw Error(ErrorCode::kInvalidArgument, "--corpus: the corpus gave no tokens to analyse");
      }
      if (st.seen < o.tokens) result.note = "the corpus ran out before --tokens";
      st.pass1_seen = st.seen;
      st.pass1_rows = st.rows;
      st.pass1_windows = st.windows;
      stats.finish_pass1();
    }
    st.pass += 1;
    st.next_doc = st.next_window = st.seen = st.rows = st.windows = 0;
    checkpoint();
  }

  // Finish: logit effects, vocabulary, every latent; one transaction.
  const std::optional<std::string> skip = logit_effects_skip_reason(model, sae);
  std::vector<LatentEffects> effects;
  if (!skip && o.logits > 0) effects = logit_effects(model, sae, o.logits, o.threads);
  result.logit_note = skip ? *skip : o.logits == 0 ? "--logits 0" : "";
  std::vector<VocabEntry> vocab(static_cast<size_t>(tok.vocab_size()));
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    vocab[id].piece = tok.piece(id);
    const int32_t one[1] = {id};
    vocab[id].text = trim(tok.decode(one));
    vocab[id].display = token_display_text(tok, id);
  }
  const auto display = [&](int32_t id) {
    return id >= 0 && id < static_cast<int32_t>(vocab.size()) ? vocab[id].display : std::string();
  };
  db.begin();
  db.put_vocab(vocab);
  for (int64_t f = 0; f < m; ++f) {
    FeatureDetail dt = stats.detail(f, st.pass1_rows);
    if (!dt.top.empty()) dt.summary.max_token = display(dt.top[0].ids[dt.top[0].center]);
    if (dt.summary.n_fires > 0) ++result.alive;
    const auto fill = [&](FeatureExample& e) { e.text = tok.decode(e.ids); };
    for (FeatureExample& e : dt.top) fill(e);
    for (QuantileBand& b : dt.quantiles) {
      for (FeatureExample& e : b.examples) fill(e);
    }
    if (!effects.empty()) {
      dt.positive = std::move(effects[f].positive);
      dt.negative = std::move(effects[f].negative);
    }
    db.put_feature(dt);
  }
  db.set_meta("tokens_analysed", std::to_string(st.pass1_rows));
  db.set_meta("window_tokens", std::to_string(st.pass1_seen));
  db.set_meta("windows", std::to_string(st.pass1_windows));
  db.set_meta("alive", std::to_string(result.alive));
  db.set_meta("logit_effects", skip ? "skipped: " + *skip : "W_dec * ln_final.w @ W_U");
  db.set_meta("status", "done");
  db.clear_state();
  db.commit();
  db.vacuum();  // the checkpoints' pages; content unchanged
  result.tokens = st.pass1_rows;
  result.windows = st.pass1_windows;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace glassbox
