#include "harvest/harvest.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "core/sha256.h"
#include "core/test_hooks.h"
#include "harvest/windows.h"
#include "model/hooks.h"
#include "model/session.h"

namespace glassbox {
namespace fs = std::filesystem;

namespace {

constexpr int64_t kShardBytes = int64_t{32} << 20;

// The hooks with their per-position shapes; positional hooks only (attention scores and
// patterns have a key axis, not one row per token).
std::vector<StoreHook> resolve_hooks(const std::vector<std::string>& names, const ModelConfig& c) {
  if (names.empty()) throw Error(ErrorCode::kInvalidArgument, "--hooks: no hook given");
  std::vector<StoreHook> out;
  for (const std::string& name : names) {
    const HookName h = resolve_hook_name(name, c);
    const std::optional<Shape> row_shape = hook_token_shape(h.point, c);
    if (!row_shape) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--hooks: " + name +
                      " has one row per (head, query), not per token; harvest "
                      "stores per-token activations");
    }
    for (const StoreHook& seen : out) {
      if (seen.name == hook_name_string(h)) {
        throw Error(ErrorCode::kInvalidArgument, "--hooks: " + name + " given twice");
      }
    }
    StoreHook sh;
    sh.name = hook_name_string(h);
    sh.row_shape = *row_shape;
    sh.width = shape_numel(sh.row_shape);
    out.push_back(sh);
  }
  return out;
}

StoreSettings settings_for(const Model& model, const std::string& model_path, const Tokenizer& tok,
                           const HarvestOptions& o) {
  if (o.ctx < 2) throw Error(ErrorCode::kInvalidArgument, "--ctx must be at least 2 (BOS + 1)");
  if (o.tokens <= 0) throw Error(ErrorCode::kInvalidArgument, "--tokens must be positive");
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16) {
    throw Error(ErrorCode::kInvalidArgument, "--dtype must be f32, f16 or bf16");
  }
  const std::optional<int32_t> bos = tok.bos_id();
  if (!bos) {
    throw Error(ErrorCode::kUnsupported,
                "the tokenizer has no BOS token, which every harvest window starts with");
  }
  StoreSettings s;
  s.model_path = fs::weakly_canonical(fs::absolute(model_path)).string();
  s.model_sha256 = model_sha256(model_path);
  s.architecture = model.config().architecture;
  for (const std::string& p : o.corpus) {
    s.corpus_paths.push_back(fs::weakly_canonical(fs::absolute(p)).string());
    s.corpus_sha256.push_back(sha256_file(p));
  }
  s.ctx = o.ctx;
  s.tokens = o.tokens;
  s.bos_id = *bos;
  s.dtype = o.dtype;
  s.zstd = o.zstd;
  s.hooks = resolve_hooks(o.hooks, model.config());
  int64_t width = 0;
  for (const StoreHook& h : s.hooks) width += h.width;
  s.shard_tokens =
      o.shard_tokens > 0 ? o.shard_tokens : std::max<int64_t>(o.ctx, kShardBytes / (4 * width));
  return s;
}

// Opens or creates the store; returns the manifest to continue from.
StoreManifest open_store(const std::string& dir, const StoreSettings& s, bool* resumed) {
  *resumed = false;
  if (fs::exists(dir) && !fs::is_directory(dir)) {
    throw Error(ErrorCode::kInvalidArgument, dir + ": exists and is not a directory");
  }
  const fs::path manifest = fs::path(dir) / "manifest.json";
  if (fs::exists(manifest)) {
    StoreManifest m = read_manifest(dir);
    const std::vector<std::string> diff = settings_differences(m.settings, s);
    if (!diff.empty()) {
      std::string msg = dir +
                        ": an activation store made with other settings (left untouched; "
                        "choose another --out):";
      for (const std::string& d : diff) msg += "\n  " + d;
      throw Error(ErrorCode::kInvalidArgument, msg);
    }
    verify_shards(dir, m);
    remove_unlisted_shards(dir, m);
    *resumed = true;
    return m;
  }
  if (fs::exists(dir) && !fs::is_empty(dir)) {
    throw Error(ErrorCode::kInvalidArgument,
                dir +
                    ": a non-empty directory without an activation store manifest (left "
                    "untouched; choose another --out)");
  }
  fs::create_directories(dir);
  StoreManifest m;
  m.settings = s;
  write_manifest(dir, m);
  return m;
}

class ShardBuffer {
 public:
  explicit ShardBuffer(const StoreSettings& s) : settings_(s) { clear(); }
  void clear() {
    data_ = ShardData();
    data_.hook_rows.resize(settings_.hooks.size());
    last_doc_ = -1;
  }
  void add_rows(size_t hook, const float* x, int64_t n) {
    const auto w = static_cast<size_t>(settings_.hooks[hook].width);
    auto& v = data_.hook_rows[hook];
    v.insert(v.end(), x, x + static_cast<size_t>(n) * w);
  }
  void add_window(const CorpusDocument& doc, const std::vector<int32_t>& window,
                  int64_t doc_offset) {
    for (size_t p = 0; p < window.size(); ++p) {
      const int64_t off = p == 0 ? -1 : doc_offset + static_cast<int64_t>(p) - 1;
      data_.index.insert(data_.index.end(), {window[p], doc.id, off, static_cast<int64_t>(p)});
    }
    data_.rows += static_cast<int64_t>(window.size());
    if (doc.id != last_doc_) {
      data_.documents.insert(data_.documents.end(),
                             {doc.id, doc.file, doc.byte_offset, doc.byte_length});
      last_doc_ = doc.id;
    }
  }
  const ShardData& data() const { return data_; }
  int64_t rows() const { return data_.rows; }

 private:
  const StoreSettings& settings_;
  ShardData data_;
  int64_t last_doc_ = -1;
};

}  // namespace

std::string model_sha256(const std::string& path) {
  return sha256_path(path, {".json", ".safetensors"});
}

HarvestResult harvest(const Model& model, const std::string& model_path, const Tokenizer& tok,
                      const HarvestOptions& o, const HarvestProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const StoreSettings settings = settings_for(model, model_path, tok, o);
  HarvestResult result;
  StoreManifest m = open_store(o.out, settings, &result.resumed);
  result.rows = m.rows;
  result.shards = static_cast<int64_t>(m.shards.size());
  if (m.complete) {
    result.was_complete = true;
    result.corpus_exhausted = m.corpus_exhausted;
    return result;
  }
  const int64_t next_doc = m.shards.empty() ? 0 : m.shards.back().next_doc;
  const int64_t next_window = m.shards.empty() ? 0 : m.shards.back().next_window;

  SessionOptions so;
  so.n_threads = o.threads;
  so.n_ctx = settings.ctx;
  Session session(model, so);
  ShardBuffer buffer(settings);
  std::vector<HookHandle> handles;
  for (size_t h = 0; h < settings.hooks.size(); ++h) {
    handles.push_back(
        session.hooks().add(settings.hooks[h].name, [&buffer, h](const HookEvent&, Tensor& t) {
          buffer.add_rows(h, t.data<float>(), t.dim(0));
        }));
  }
  // Blocks after the last hooked one are not run (nothing of theirs is stored).
  int stop_at_layer = 0;
  for (const StoreHook& h : settings.hooks) {
    const HookName hn = resolve_hook_name(h.name, model.config());
    const bool before_blocks = hn.point == HookPoint::kEmbed || hn.point == HookPoint::kPosEmbed;
    const int need = is_block_hook(hn.point) ? hn.layer + 1
                     : before_blocks         ? 0
                                             : static_cast<int>(model.config().n_layers);
    stop_at_layer = std::max(stop_at_layer, need);
  }
  const auto flush = [&](int64_t doc, int64_t window) {
    StoreShard shard =
        write_shard(o.out, static_cast<int>(m.shards.size()), settings, buffer.data());
    shard.first_row = m.rows;
    shard.next_doc = doc;
    shard.next_window = window;
    m.rows += shard.rows;
    m.shards.push_back(shard);
    write_manifest(o.out, m);  // the shard counts from here on
    kill_point("harvest.shard_recorded", static_cast<int64_t>(m.shards.size()));
    buffer.clear();
  };

  WindowStream windows(o.corpus, tok, settings.ctx, settings.bos_id, next_doc, next_window);
  bool done = m.rows >= settings.tokens;
  while (!done) {
    const CorpusWindow* w = windows.next();
    if (w == nullptr) break;
    std::vector<int32_t> window = w->tokens;
    const int64_t left = settings.tokens - m.rows - buffer.rows();
    if (static_cast<int64_t>(window.size()) > left) window.resize(static_cast<size_t>(left));
    session.reset();
    session.forward_partial(window, stop_at_layer);
    buffer.add_window(*w->doc, window, w->doc_offset);
    result.new_rows += static_cast<int64_t>(window.size());
    done = m.rows + buffer.rows() >= settings.tokens;
    if (buffer.rows() >= settings.shard_tokens || done) {
      flush(w->last_of_doc ? w->doc->id + 1 : w->doc->id, w->last_of_doc ? 0 : w->index + 1);
    }
    if (progress) progress(m.rows + buffer.rows(), settings.tokens);
    kill_point("harvest.rows", m.rows + buffer.rows());
  }
  if (buffer.rows() > 0) flush(std::numeric_limits<int64_t>::max(), 0);  // corpus ended
  m.complete = true;
  m.corpus_exhausted = m.rows < settings.tokens;
  write_manifest(o.out, m);
  result.rows = m.rows;
  result.shards = static_cast<int64_t>(m.shards.size());
  result.corpus_exhausted = m.corpus_exhausted;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace glassbox
