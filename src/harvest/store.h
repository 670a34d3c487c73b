// The activation store written by `glassbox harvest`: a directory of shards plus a manifest.
//
//   STORE/manifest.json            settings, hooks, shards (rows, checksums, resume point)
//   STORE/shard_00000/index.npy    int64 [rows, 4]: token id, document id, token offset in the
//                                  document (-1 for the BOS that starts every window), position
//                                  in the window
//   STORE/shard_00000/documents.npy int64 [docs, 4]: document id, corpus file, byte offset, byte
//                                  length — every document the shard's rows come from
//   STORE/shard_00000/<hook>.npy   [rows, width] f32 / f16 / bf16 ('<V2'), one per hook;
//                                  `.npy.zst` when compressed (the whole .npy file, one zstd frame)
//
// A shard holds whole context windows. It is written as shard_NNNNN.tmp/ and renamed, then the
// manifest is replaced atomically; so after a crash the store holds exactly the shards its
// manifest lists (anything else is removed on resume) and harvesting restarts after the last.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace glassbox {

struct StoreHook {
  std::string name;
  Shape row_shape;    // TL shape of one position's activation, e.g. {d_model} or {heads, d_head}
  int64_t width = 0;  // product of row_shape
};

// Everything a resumed run must agree with.
struct StoreSettings {
  std::string model_path, model_sha256, architecture;
  std::vector<std::string> corpus_paths, corpus_sha256;
  int64_t ctx = 0, tokens = 0, shard_tokens = 0;
  int32_t bos_id = 0;
  DType dtype = DType::kF32;
  bool zstd = false;
  std::vector<StoreHook> hooks;
};

struct StoreShard {
  std::string dir;  // "shard_00000"
  int64_t first_row = 0, rows = 0;
  int64_t next_doc = 0, next_window = 0;      // where harvesting continues after this shard
  std::map<std::string, std::string> sha256;  // file name -> hex digest
};

struct StoreManifest {
  StoreSettings settings;
  std::vector<StoreShard> shards;
  int64_t rows = 0;
  bool complete = false;
  bool corpus_exhausted = false;  // complete with fewer rows than asked: the corpus ran out
};

// index.npy: columns per row, and the one that is 0 for the BOS starting every window.
constexpr int kStoreIndexColumns = 4;
constexpr int kStoreWindowPosColumn = 3;

// The file name of an array in a shard: a hook's ("blocks.2.hook_resid_post.npy[.zst]") or
// "index" / "documents".
std::string store_array_name(const std::string& name, bool zstd);

// JSON <-> manifest. read_manifest throws Error(kIo/kFormat) naming STORE/manifest.json.
StoreManifest read_manifest(const std::string& dir);
void write_manifest(const std::string& dir, const StoreManifest& manifest);
// The settings that differ between two runs, as "field: stored vs requested" lines (empty when
// they agree).
std::vector<std::string> settings_differences(const StoreSettings& stored,
                                              const StoreSettings& requested);

// One shard's contents before writing: rows of every hook (f32, [rows, width]) and the index.
struct ShardData {
  std::vector<std::vector<float>> hook_rows;  // per hook
  std::vector<int64_t> index;                 // rows x 4
  std::vector<int64_t> documents;             // docs x 4
  int64_t rows = 0;
};

// Writes `data` as shard number `number` (via a .tmp directory and a rename) and returns its
// manifest entry (checksums filled). Throws Error(kIo) naming the path.
StoreShard write_shard(const std::string& dir, int number, const StoreSettings& settings,
                       const ShardData& data);

// Reads one array file of a shard (.npy or .npy.zst) as stored.
Tensor read_store_array(const std::string& path);

// Checks the shard files listed in the manifest against their checksums; throws Error(kFormat)
// naming the first file that is missing or differs.
void verify_shards(const std::string& dir, const StoreManifest& manifest);

// Removes whatever a crash may have left that the manifest does not list (shard_*.tmp, shards
// written but not yet recorded).
void remove_unlisted_shards(const std::string& dir, const StoreManifest& manifest);

// Per hook over every non-BOS row: count, mean [width], variance [width], mean L2 norm and
// mean squared norm (accumulated in double); written to STORE/stats.json and returned as JSON
// text.
std::string compute_store_stats(const std::string& dir);

}  // namespace glassbox
