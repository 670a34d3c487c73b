#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace glassbox {
namespace {

// How long an idle worker spins before it sleeps: long enough to span the gaps between the
// loops of one forward pass and between decode steps, short enough not to burn a core when the
// session is idle.
constexpr auto kSpin = std::chrono::microseconds(2000);

// Chunks per thread: enough for late starters to even out, few enough that each stays large.
constexpr int kChunksPerThread = 4;

// Chunk `index` of `parts` over [0, n): as equal as possible, contiguous.
void chunk(int64_t n, int parts, int index, int64_t* begin, int64_t* end) {
  const int64_t base = n / parts, extra = n % parts;
  *begin = index * base + std::min<int64_t>(index, extra);
  *end = *begin + base + (index < extra ? 1 : 0);
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0)
    n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    fn(0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunks_ = std::min<int64_t>(n, static_cast<int64_t>(size()) * kChunksPerThread);
  next_chunk_.store(0, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  // seq_cst bump then seq_cst read of sleepers_, against the worker's seq_cst increment of
  // sleepers_ then read of generation_: one of the two always sees the other.
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    wake_cv_.notify_all();
  }
  run_chunks();
  // Workers normally finish within microseconds of us; when there are more threads than cores
  // (another process, or an oversized pool) one may not be running at all, so after a short
  // spin give the core away.
  for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 4096) {
      _mm_pause();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

// Returns false when the pool is stopping.
bool ThreadPool::wait_for_job(uint64_t seen) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (generation_.load(std::memory_order_acquire) != seen) return true;
    if (stop_.load(std::memory_order_relaxed)) return false;
    if (i < 4096) {
      _mm_pause();
    } else {
      std::this_thread::yield();  // as in parallel_for: be polite when cores are oversubscribed
    }
    if ((i & 255) == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  std::unique_lock<std::mutex> lock(mu_);
  sleepers_.fetch_add(1);
  wake_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
  sleepers_.fetch_sub(1);
  return !stop_.load();
}

void ThreadPool::run_chunks() {
  for (;;) {
    const int64_t c = next_chunk_.fetch_add(1, std::memory_order_relaxed);
    if (c >= job_chunks_) return;
    int64_t begin, end;
    chunk(job_n_, static_cast<int>(job_chunks_), static_cast<int>(c), &begin, &end);
    (*job_)(begin, end);
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  while (wait_for_job(seen)) {
    seen = generation_.load(std::memory_order_acquire);
    run_chunks();
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace glassbox
