// Training rows from an activation store (store.h): one hook's non-BOS rows, in a shuffled
// order that is a pure function of (seed, position), so a resumed run sees exactly the batches
// an uninterrupted one would, and memory stays bounded whatever the store's size.
//
// Order: epoch after epoch over the store. In epoch e the shards are permuted (seeded by seed,
// e) and taken in consecutive groups of at least `mix_rows` rows ("mixing windows"); the rows of
// a window are permuted (seeded by seed, e, window) and served in that order. Memory: one
// window, i.e. about mix_rows + one shard of rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harvest/store.h"

namespace glassbox {

class StoreRowStream {
 public:
  // Throws Error naming the store when it is incomplete, lacks `hook`, or has no usable rows.
  StoreRowStream(const std::string& store, const std::string& hook, uint64_t seed,
                 int64_t mix_rows = 262144);
  int64_t width() const { return width_; }
  int64_t rows_per_epoch() const { return rows_per_epoch_; }
  const StoreManifest& manifest() const { return manifest_; }
  // Positions the stream `position` rows after its start (rows served since the first batch).
  void seek(int64_t position);
  // Copies the next n rows (f32, [n, width]) into out, crossing window and epoch boundaries.
  void next(float* out, int64_t n);
  // Mean of the hook over every non-BOS row of the store, accumulated in double (one pass).
  std::vector<float> mean() const;

 private:
  struct Window {
    std::vector<int> shards;
    int64_t rows = 0;
  };
  std::vector<Window> windows_of_epoch(int64_t epoch) const;
  void load(int64_t epoch, size_t window);
  // The non-BOS rows of one shard, as f32.
  std::vector<float> shard_rows(int shard) const;

  std::string dir_, hook_;
  uint64_t seed_;
  int64_t mix_rows_;
  StoreManifest manifest_;
  int64_t width_ = 0, rows_per_epoch_ = 0;
  std::vector<int64_t> shard_rows_;  // non-BOS rows per shard
  // Current window.
  int64_t epoch_ = -1;
  size_t window_ = 0;
  std::vector<Window> windows_;
  std::vector<float> buffer_;  // rows of the window, permuted
  int64_t cursor_ = 0;
};

}  // namespace glassbox
