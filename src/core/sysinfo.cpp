#include "core/sysinfo.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <vector>

#include "core/thread_pool.h"

namespace glassbox {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

double memory_read_gb_s(ThreadPool& pool, size_t bytes) {
  std::vector<uint64_t> buf(bytes / sizeof(uint64_t), 1);  // written once: pages are resident
  const int64_t n = static_cast<int64_t>(buf.size()), parts = pool.size();
  std::vector<uint64_t> sums(static_cast<size_t>(parts));
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(parts, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const uint64_t* x = buf.data() + p * n / parts;
        const int64_t len = (p + 1) * n / parts - p * n / parts;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent chains: vectorized adds
        int64_t i = 0;
        for (; i + 4 <= len; i += 4) s0 += x[i], s1 += x[i + 1], s2 += x[i + 2], s3 += x[i + 3];
        for (; i < len; ++i) s0 += x[i];
        sums[static_cast<size_t>(p)] = s0 + s1 + s2 + s3;
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n) * sizeof(uint64_t) / s / 1e9);
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  // Every word is 1: a sum that disagrees means the reads were not all made.
  return total == static_cast<uint64_t>(n) ? best : 0.0;
}

}  // namespace glassbox
