// Facts about the machine and process for benchmark reports (CPU model, peak RSS).
#pragma once

#include <cstddef>
#include <string>

namespace glassbox {

class ThreadPool;

std::string cpu_model_name();  // "model name" of /proc/cpuinfo, or "unknown"
double peak_rss_mib();         // this process's peak resident set size
// Streaming read bandwidth in GB/s (1e9 bytes/s), STREAM-like: every thread of `pool` sums its
// share of a `bytes`-long buffer (far larger than the caches); the best of three passes. What a
// memory-bound decode step can reach at most. Allocates and touches `bytes` (RSS grows by it).
double memory_read_gb_s(ThreadPool& pool, size_t bytes = size_t{512} << 20);

}  // namespace glassbox
