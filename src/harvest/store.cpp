#include "harvest/store.h"

#include <zstd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/half.h"
#include "core/sha256.h"
#include "core/test_hooks.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "io/npy.h"

namespace glassbox {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStoreFormat = "glassbox.activation_store";
constexpr int kFormatVersion = 1;
constexpr int kDocColumns = 4;

std::string shard_dir_name(int number) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "shard_%05d", number);
  return buf;
}

// The bytes of a .npy file holding `t`.
std::string npy_bytes(const Tensor& t) {
  std::string out = npy_header(t.dtype(), t.shape());
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

std::string zstd_compress(const std::string& in, const std::string& what) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  if (ZSTD_isError(n)) {
    throw Error(ErrorCode::kIo, what + ": zstd compression failed: " + ZSTD_getErrorName(n));
  }
  out.resize(n);
  return out;
}

// Writes `bytes` to `path`, returning their SHA-256.
std::string write_file(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex_digest();
}

Tensor rows_as(DType dtype, const std::vector<float>& rows, int64_t n, int64_t width) {
  Tensor t = Tensor::zeros(dtype, {n, width});
  const size_t count = rows.size();
  if (dtype == DType::kF32) {
    std::copy_n(rows.data(), count, t.mutable_data<float>());
  } else {
    auto* out = static_cast<uint16_t*>(t.mutable_raw());
    for (size_t i = 0; i < count; ++i)
      out[i] = dtype == DType::kF16 ? f32_to_f16(rows[i]) : f32_to_bf16(rows[i]);
  }
  return t;
}

Tensor int64_table(const std::vector<int64_t>& v, int64_t cols) {
  Tensor t = Tensor::zeros(DType::kI64, {static_cast<int64_t>(v.size()) / cols, cols});
  std::copy_n(v.data(), v.size(), t.mutable_data<int64_t>());
  return t;
}

json shape_json(const Shape& s) { return json(std::vector<int64_t>(s.begin(), s.end())); }

[[noreturn]] void bad_manifest(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::kFormat, path + ": " + what);
}

}  // namespace

std::string store_array_name(const std::string& name, bool zstd) {
  return name + (zstd ? ".npy.zst" : ".npy");
}

void write_manifest(const std::string& dir, const StoreManifest& m) {
  const StoreSettings& s = m.settings;
  json hooks = json::array();
  for (const StoreHook& h : s.hooks) {
    hooks.push_back({{"name", h.name}, {"row_shape", shape_json(h.row_shape)}, {"width", h.width}});
  }
  json corpus = json::array();
  for (size_t i = 0; i < s.corpus_paths.size(); ++i) {
    corpus.push_back({{"path", s.corpus_paths[i]}, {"sha256", s.corpus_sha256[i]}});
  }
  json shards = json::array();
  for (const StoreShard& sh : m.shards) {
    shards.push_back({{"dir", sh.dir},
                      {"first_row", sh.first_row},
                      {"rows", sh.rows},
                      {"next_doc", sh.next_doc},
                      {"next_window", sh.next_window},
                      {"sha256", sh.sha256}});
  }
  const json j = {
      {"format", kStoreFormat},
      {"version", kFormatVersion},
      {"model",
       {{"path", s.model_path}, {"sha256", s.model_sha256}, {"architecture", s.architecture}}},
      {"corpus", corpus},
      {"ctx", s.ctx},
      {"tokens", s.tokens},
      {"shard_tokens", s.shard_tokens},
      {"bos_id", s.bos_id},
      {"dtype", dtype_name(s.dtype)},
      {"compression", s.zstd ? "zstd" : "none"},
      {"hooks", hooks},
      {"index_columns", {"token_id", "doc_id", "doc_token_offset", "window_pos"}},
      {"documents_columns", {"doc_id", "corpus_file", "byte_offset", "byte_length"}},
      {"shards", shards},
      {"rows", m.rows},
      {"complete", m.complete},
      {"corpus_exhausted", m.corpus_exhausted},
  };
  write_file((fs::path(dir) / "manifest.json").string(), j.dump(1) + "\n");
}

StoreManifest read_manifest(const std::string& dir) {
  const std::string path = (fs::path(dir) / "manifest.json").string();
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kIo, path + ": cannot open");
  const json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad_manifest(path, "not valid JSON");
  if (!j.is_object() || j.value("format", "") != kStoreFormat) {
    bad_manifest(path, std::string("not a glassbox activation store manifest (format is not \"") +
                           kStoreFormat + "\")");
  }
  if (j.value("version", 0) != kFormatVersion) {
    bad_manifest(path, "unsupported store version " + j["version"].dump());
  }
  StoreManifest m;
  StoreSettings& s = m.settings;
  try {
    s.model_path = j.at("model").at("path").get<std::string>();
    s.model_sha256 = j.at("model").at("sha256").get<std::string>();
    s.architecture = j.at("model").at("architecture").get<std::string>();
    for (const json& c : j.at("corpus")) {
      s.corpus_paths.push_back(c.at("path").get<std::string>());
      s.corpus_sha256.push_back(c.at("sha256").get<std::string>());
    }
    s.ctx = j.at("ctx").get<int64_t>();
    s.tokens = j.at("tokens").get<int64_t>();
    s.shard_tokens = j.at("shard_tokens").get<int64_t>();
    s.bos_id = j.at("bos_id").get<int32_t>();
    const std::string dt = j.at("dtype").get<std::string>();
    if (dt == "f32") {
      s.dtype = DType::kF32;
    } else if (dt == "f16") {
      s.dtype = DType::kF16;
    } else if (dt == "bf16") {
      s.dtype = DType::kBF16;
    } else {
      bad_manifest(path, "dtype '" + dt + "' is not f32, f16 or bf16");
    }
    s.zstd = j.at("compression").get<std::string>() == "zstd";
    for (const json& h : j.at("hooks")) {
      StoreHook hook;
      hook.name = h.at("name").get<std::string>();
      for (const json& d : h.at("row_shape")) hook.row_shape.push_back(d.get<int64_t>());
      hook.width = h.at("width").get<int64_t>();
      s.hooks.push_back(hook);
    }
    for (const json& sh : j.at("shards")) {
      StoreShard shard;
      shard.dir = sh.at("dir").get<std::string>();
      shard.first_row = sh.at("first_row").get<int64_t>();
      shard.rows = sh.at("rows").get<int64_t>();
      shard.next_doc = sh.at("next_doc").get<int64_t>();
      shard.next_window = sh.at("next_window").get<int64_t>();
      shard.sha256 = sh.at("sha256").get<std::map<std::string, std::string>>();
      m.shards.push_back(shard);
    }
    m.rows = j.at("rows").get<int64_t>();
    m.complete = j.at("complete").get<bool>();
    m.corpus_exhausted = j.value("corpus_exhausted", false);
  } catch (const json::exception& e) {
    bad_manifest(path, std::string("missing or mistyped field: ") + e.what());
  }
  int64_t rows = 0;
  for (const StoreShard& sh : m.shards) {
    if (sh.first_row != rows || sh.rows <= 0) {
      bad_manifest(path, "shard " + sh.dir + " does not continue the rows before it");
    }
    rows += sh.rows;
  }
  if (rows != m.rows)
    bad_manifest(path,
                 "shards hold " + std::to_string(rows) + " rows, not " + std::to_string(m.rows));
  return m;
}

std::vector<std::string> settings_differences(const StoreSettings& a, const StoreSettings& b) {
  std::vector<std::string> out;
  const auto cmp = [&out](const std::string& field, const std::string& x, const std::string& y) {
    if (x != y) out.push_back(field + ": store has " + x + ", this run asks for " + y);
  };
  cmp("model sha256", a.model_sha256, b.model_sha256);
  std::string ca, cb, ha, hb;
  for (size_t i = 0; i < a.corpus_paths.size(); ++i) ca += a.corpus_sha256[i] + " ";
  for (size_t i = 0; i < b.corpus_paths.size(); ++i) cb += b.corpus_sha256[i] + " ";
  cmp("corpus files (sha256)", ca, cb);
  cmp("ctx", std::to_string(a.ctx), std::to_string(b.ctx));
  cmp("tokens", std::to_string(a.tokens), std::to_string(b.tokens));
  cmp("shard tokens", std::to_string(a.shard_tokens), std::to_string(b.shard_tokens));
  cmp("dtype", dtype_name(a.dtype), dtype_name(b.dtype));
  cmp("compression", a.zstd ? "zstd" : "none", b.zstd ? "zstd" : "none");
  for (const StoreHook& h : a.hooks) ha += h.name + " ";
  for (const StoreHook& h : b.hooks) hb += h.name + " ";
  cmp("hooks", ha, hb);
  return out;
}

StoreShard write_shard(const std::string& dir, int number, const StoreSettings& s,
                       const ShardData& data) {
  StoreShard shard;
  shard.dir = shard_dir_name(number);
  shard.rows = data.rows;
  const fs::path final_dir = fs::path(dir) / shard.dir;
  const fs::path tmp = fs::path(dir) / (shard.dir + ".tmp");
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) throw Error(ErrorCode::kIo, tmp.string() + ": cannot create: " + ec.message());
  const auto put = [&](const std::string& name, const Tensor& t) {
    std::string bytes = npy_bytes(t);
    const std::string file = store_array_name(name, s.zstd);
    if (s.zstd) bytes = zstd_compress(bytes, (tmp / file).string());
    shard.sha256[file] = write_file((tmp / file).string(), bytes);
    kill_point("harvest.shard_file", number);  // a shard directory half written
  };
  put("index", int64_table(data.index, kStoreIndexColumns));
  put("documents", int64_table(data.documents, kDocColumns));
  for (size_t h = 0; h < s.hooks.size(); ++h) {
    put(s.hooks[h].name, rows_as(s.dtype, data.hook_rows[h], data.rows, s.hooks[h].width));
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec)
    throw Error(ErrorCode::kIo, final_dir.string() + ": cannot rename into place: " + ec.message());
  kill_point("harvest.shard_renamed", number);  // in place, not yet in the manifest
  return shard;
}

Tensor read_store_array(const std::string& path) {
  if (!path.ends_with(".zst")) return read_npy(path);
  const auto map = MappedFile::open(path);
  const unsigned long long size = ZSTD_getFrameContentSize(map->data(), map->size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ull << 40)) {
    throw Error(ErrorCode::kFormat, path + ": not a zstd frame with a known content size");
  }
  std::vector<uint8_t> out(static_cast<size_t>(size));
  const size_t n = ZSTD_decompress(out.data(), out.size(), map->data(), map->size());
  if (ZSTD_isError(n) || n != out.size()) {
    throw Error(ErrorCode::kFormat, path + ": corrupt zstd data");
  }
  return decode_npy(out.data(), out.size(), path);
}

void verify_shards(const std::string& dir, const StoreManifest& m) {
  for (const StoreShard& sh : m.shards) {
    for (const auto& [file, digest] : sh.sha256) {
      const std::string path = (fs::path(dir) / sh.dir / file).string();
      if (!fs::exists(path)) {
        throw Error(ErrorCode::kFormat, path + ": listed in the store manifest but missing");
      }
      if (sha256_file(path) != digest) {
        throw Error(ErrorCode::kFormat,
                    path + ": checksum differs from the manifest (the shard is corrupt)");
      }
    }
  }
}

void remove_unlisted_shards(const std::string& dir, const StoreManifest& m) {
  std::vector<fs::path> doomed;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("shard_")) continue;
    bool listed = false;
    for (const StoreShard& sh : m.shards) listed = listed || sh.dir == name;
    if (!listed) doomed.push_back(entry.path());
  }
  for (const fs::path& p : doomed) fs::remove_all(p);
}

std::string compute_store_stats(const std::string& dir) {
  const StoreManifest m = read_manifest(dir);
  json out = json::object();
  for (const StoreHook& h : m.settings.hooks) {
    const auto w = static_cast<size_t>(h.width);
    std::vector<double> sum(w, 0.0), sumsq(w, 0.0);
    double norm_sum = 0.0, sqnorm_sum = 0.0;
    int64_t count = 0;
    for (const StoreShard& sh : m.shards) {
      const fs::path base = fs::path(dir) / sh.dir;
      const Tensor index =
          read_store_array((base / store_array_name("index", m.settings.zstd)).string());
      const Tensor acts =
          read_store_array((base / store_array_name(h.name, m.settings.zstd)).string());
      const Tensor f = acts.to_f32();
      const float* x = f.data<float>();
      const int64_t* idx = index.data<int64_t>();
      for (int64_t r = 0; r < sh.rows; ++r) {
        if (idx[r * kStoreIndexColumns + kStoreWindowPosColumn] == 0) continue;  // a window's BOS
        double sq = 0.0;
        for (size_t j = 0; j < w; ++j) {
          const double v = x[static_cast<size_t>(r) * w + j];
          sum[j] += v;
          sumsq[j] += v * v;
          sq += v * v;
        }
        norm_sum += std::sqrt(sq);
        sqnorm_sum += sq;
        ++count;
      }
    }
    std::vector<double> mean(w), var(w);
    for (size_t j = 0; j < w; ++j) {
      mean[j] = count > 0 ? sum[j] / static_cast<double>(count) : 0.0;
      var[j] = count > 0 ? std::max(0.0, sumsq[j] / static_cast<double>(count) - mean[j] * mean[j])
                         : 0.0;
    }
    out[h.name] = {{"rows", count},
                   {"mean_norm", count > 0 ? norm_sum / static_cast<double>(count) : 0.0},
                   {"mean_squared_norm", count > 0 ? sqnorm_sum / static_cast<double>(count) : 0.0},
                   {"mean", mean},
                   {"var", var}};
  }
  const std::string text = out.dump(1) + "\n";
  write_file((fs::path(dir) / "stats.json").string(), text);
  return text;
}

}  // namespace glassbox
