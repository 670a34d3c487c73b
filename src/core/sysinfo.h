// Facts about the machine and process for benchmark reports (CPU model, peak RSS).
#pragma once

#include <string>

namespace glassbox {

std::string cpu_model_name();  // "model name" of /proc/cpuinfo, or "unknown"
double peak_rss_mib();         // this process's peak resident set size

}  // namespace glassbox
