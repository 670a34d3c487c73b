// `glassbox harvest`: runs a model over a corpus in fixed context windows and stores chosen hook
// activations in a sharded, resumable activation store (store.h).
//
// Windows: each document is tokenized without BOS and cut into pieces of ctx - 1 tokens; every
// window is BOS + one piece (the last piece of a document may be shorter). Windows never span
// documents. Rows are every position of every window, the BOS included (index column
// window_pos = 0 marks it; SAE training and the statistics skip those rows). The run stops after
// exactly `tokens` rows (the last window cut short if needed) or when the corpus ends.
//
// Resuming: rerunning with the same settings on an existing store continues after its last
// complete shard and ends with exactly the rows an uninterrupted run writes (each window is run
// alone from an empty cache, so its activations do not depend on what ran before). A store made
// with other settings is refused, naming what differs, and left untouched.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "harvest/store.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace glassbox {

struct HarvestOptions {
  std::vector<std::string> corpus;
  std::vector<std::string> hooks;
  int64_t ctx = 128;
  int64_t tokens = 0;
  int64_t shard_tokens = 0;  // 0: about 32 MiB of f32 activations per shard
  DType dtype = DType::kF32;
  bool zstd = false;
  int threads = 0;
  std::string out;
};

struct HarvestResult {
  int64_t rows = 0;      // in the store now
  int64_t new_rows = 0;  // harvested by this call
  int64_t shards = 0;
  bool resumed = false;
  bool was_complete = false;
  bool corpus_exhausted = false;
  double seconds = 0.0;
};

// progress(rows in store, rows wanted) after every window.
using HarvestProgressFn = std::function<void(int64_t, int64_t)>;

// Throws Error naming the option, file or store field at fault; never overwrites a store made
// with other settings.
HarvestResult harvest(const Model& model, const std::string& model_path, const Tokenizer& tokenizer,
                      const HarvestOptions& options, const HarvestProgressFn& progress = nullptr);

// SHA-256 identifying a model: the file's, or for a directory (HF checkpoint) the hash of its
// *.json and *.safetensors files' names and hashes in name order.
std::string model_sha256(const std::string& path);

}  // namespace glassbox
