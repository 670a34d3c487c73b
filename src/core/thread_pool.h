// ThreadPool: a fixed set of worker threads for data-parallel loops in the forward pass.
// The calling thread takes part in every loop, so a pool of n threads starts n-1 workers.
// One pool is created by the owner of a model session and passed in; there is no global pool.
// Functions given to parallel_for must not throw (kernels never do).
//
// Decode runs dozens of small loops per token (tens of microseconds each), so waking sleeping
// threads through a condition variable (~5-20 us per wake) would cost as much as the work:
// workers spin on an atomic generation counter for a short while after each loop and only then
// sleep. The caller spins until its workers are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace glassbox {

class ThreadPool {
 public:
  // n_threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, n) into contiguous chunks (a few per thread, taken in order by whichever thread is
  // free, so a thread that starts late or runs slow takes fewer) and runs fn(begin, end) on
  // each, returning when all are done. Runs inline when n is 1 or the pool has one thread.
  // Not reentrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop();
  bool wait_for_job(uint64_t seen);
  void run_chunks();

  std::vector<std::thread> workers_;
  // The job: written by the caller before generation_ is bumped (release), read by workers
  // after they see the bump (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // only for sleeping and waking
  std::condition_variable wake_cv_;
};

}  // namespace glassbox
