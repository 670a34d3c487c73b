// A progress line on stderr for long jobs: done/total, rate, ETA. Redrawn in place at most every
// 0.2 s on a terminal; elsewhere (CI logs, pipes) one line every 10 s, so logs stay short.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace glassbox::cli {

class Progress {
 public:
  Progress(std::string label, std::string unit)
      : label_(std::move(label)),
        unit_(std::move(unit)),
        tty_(isatty(STDERR_FILENO) != 0),
        start_(Clock::now()),
        last_(start_) {}

  // Text shown after the ETA from the next redraw on (e.g. tokens used and cost so far).
  void set_note(std::string note) { note_ = note.empty() ? note : "  " + note; }

  // `base` = units already done before this run (a resume): excluded from the rate.
  void update(int64_t done, int64_t total, int64_t base = 0) {
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (done < total && since < (tty_ ? 0.2 : 10.0)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done - base) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
    constexpr int kWidth = 24;
    std::string bar(kWidth, ' ');
    for (int i = 0; i < static_cast<int>(frac * kWidth) && i < kWidth; ++i) bar[i] = '#';
    std::fprintf(stderr, "%s%s %3.0f%% [%s] %lld/%lld %s  %.*f %s/s  ETA %s%s%s", tty_ ? "\r" : "",
                 label_.c_str(), 100.0 * frac, bar.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), unit_.c_str(), rate < 10 ? 2 : 0, rate,
                 unit_.c_str(), clock(eta).c_str(), note_.c_str(), tty_ ? "\x1b[K" : "\n");
    if (done >= total && tty_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string clock(double s) {
    const auto t = static_cast<long long>(s + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
    return buf;
  }

  std::string label_, unit_, note_;
  bool tty_;
  Clock::time_point start_, last_;
};

}  // namespace glassbox::cli
