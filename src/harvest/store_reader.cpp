#include "harvest/store_reader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "core/error.h"

namespace glassbox {
namespace fs = std::filesystem;

namespace {

// A seed per (seed, epoch, window): splitmix64 steps, so nearby inputs give unrelated streams.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Fisher-Yates with our own index draw (std::shuffle's is implementation-defined).
template <class T>
void permute(std::vector<T>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace

StoreRowStream::StoreRowStream(const std::string& store, const std::string& hook, uint64_t seed,
                               int64_t mix_rows)
    : dir_(store), hook_(hook), seed_(seed), mix_rows_(std::max<int64_t>(1, mix_rows)) {
  manifest_ = read_manifest(store);
  if (!manifest_.complete) {
    throw Error(ErrorCode::kInvalidArgument,
                store + ": the activation store is not complete (rerun its harvest command)");
  }
  const StoreHook* h = nullptr;
  std::string names;
  for (const StoreHook& sh : manifest_.settings.hooks) {
    if (sh.name == hook) h = &sh;
    names += (names.empty() ? "" : ", ") + sh.name;
  }
  if (h == nullptr) {
    throw Error(ErrorCode::kNotFound,
                store + ": the store has no hook '" + hook + "' (it holds " + names + ")");
  }
  width_ = h->width;
  for (const StoreShard& s : manifest_.shards) {
    const Tensor index = read_store_array(
        (fs::path(store) / s.dir / store_array_name("index", manifest_.settings.zstd)).string());
    const int64_t* idx = index.data<int64_t>();
    int64_t n = 0;
    for (int64_t r = 0; r < index.dim(0); ++r)
      n += idx[r * kStoreIndexColumns + kStoreWindowPosColumn] != 0;
    shard_rows_.push_back(n);
    rows_per_epoch_ += n;
  }
  if (rows_per_epoch_ == 0) {
    throw Error(ErrorCode::kInvalidArgument, store + ": the store holds no non-BOS rows");
  }
}

std::vector<StoreRowStream::Window> StoreRowStream::windows_of_epoch(int64_t epoch) const {
  std::vector<int> order(shard_rows_.size());
  std::iota(order.begin(), order.end(), 0);
  permute(order, mix(seed_ ^ mix(static_cast<uint64_t>(epoch))));
  std::vector<Window> out;
  for (int s : order) {
    if (shard_rows_[static_cast<size_t>(s)] == 0) continue;
    if (out.empty() || out.back().rows >= mix_rows_) out.emplace_back();
    out.back().shards.push_back(s);
    out.back().rows += shard_rows_[static_cast<size_t>(s)];
  }
  return out;
}

std::vector<float> StoreRowStream::shard_rows(int shard) const {
  const StoreShard& s = manifest_.shards[static_cast<size_t>(shard)];
  const bool z = manifest_.settings.zstd;
  const fs::path base = fs::path(dir_) / s.dir;
  const Tensor index = read_store_array((base / store_array_name("index", z)).string());
  const Tensor acts = read_store_array((base / store_array_name(hook_, z)).string()).to_f32();
  if (acts.ndim() != 2 || acts.dim(0) != s.rows || acts.dim(1) != width_) {
    throw Error(ErrorCode::kFormat, (base / store_array_name(hook_, z)).string() +
                                        ": shape differs from the manifest's rows x width");
  }
  const int64_t* idx = index.data<int64_t>();
  const float* x = acts.data<float>();
  std::vector<float> out;
  out.reserve(static_cast<size_t>(shard_rows_[static_cast<size_t>(shard)] * width_));
  for (int64_t r = 0; r < s.rows; ++r) {
    if (idx[r * kStoreIndexColumns + kStoreWindowPosColumn] == 0) continue;
    const float* row = x + r * width_;
    for (int64_t j = 0; j < width_; ++j) {
      if (!std::isfinite(row[j])) {
        throw Error(ErrorCode::kFormat, (base / store_array_name(hook_, z)).string() + ": row " +
                                            std::to_string(r) + " holds a NaN or infinity");
      }
    }
    out.insert(out.end(), row, row + width_);
  }
  return out;
}

void StoreRowStream::load(int64_t epoch, size_t window) {
  if (epoch != epoch_) {
    windows_ = windows_of_epoch(epoch);
    epoch_ = epoch;
  }
  window_ = window;
  std::vector<float> rows;
  for (int s : windows_[window].shards) {
    const std::vector<float> r = shard_rows(s);
    rows.insert(rows.end(), r.begin(), r.end());
  }
  const int64_t n = windows_[window].rows;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  permute(perm, mix(seed_ ^ mix(static_cast<uint64_t>(epoch) * 0x10001u + window + 1)));
  buffer_.resize(rows.size());
  for (int64_t i = 0; i < n; ++i) {
    std::copy_n(rows.data() + perm[i] * width_, width_, buffer_.data() + i * width_);
  }
  cursor_ = 0;
}

void StoreRowStream::seek(int64_t position) {
  const int64_t epoch = position / rows_per_epoch_;
  int64_t offset = position % rows_per_epoch_;
  const std::vector<Window> w = windows_of_epoch(epoch);
  size_t i = 0;
  while (offset >= w[i].rows) offset -= w[i++].rows;
  epoch_ = -1;
  load(epoch, i);
  cursor_ = offset;
}

void StoreRowStream::next(float* out, int64_t n) {
  if (epoch_ < 0) seek(0);
  while (n > 0) {
    if (cursor_ >= windows_[window_].rows) {
      if (window_ + 1 < windows_.size()) {
        load(epoch_, window_ + 1);
      } else {
        load(epoch_ + 1, 0);
      }
    }
    const int64_t take = std::min(n, windows_[window_].rows - cursor_);
    std::copy_n(buffer_.data() + cursor_ * width_, take * width_, out);
    out += take * width_;
    cursor_ += take;
    n -= take;
  }
}

std::vector<float> StoreRowStream::mean() const {
  std::vector<double> sum(static_cast<size_t>(width_), 0.0);
  for (size_t s = 0; s < shard_rows_.size(); ++s) {
    const std::vector<float> r = shard_rows(static_cast<int>(s));
    for (size_t i = 0; i < r.size(); ++i) sum[i % static_cast<size_t>(width_)] += r[i];
  }
  std::vector<float> out(sum.size());
  for (size_t j = 0; j < sum.size(); ++j)
    out[j] = static_cast<float>(sum[j] / static_cast<double>(rows_per_epoch_));
  return out;
}

}  // namespace glassbox
