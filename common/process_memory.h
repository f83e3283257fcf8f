// This process's memory as Linux reports it: a field of /proc/self/status ("VmRSS", "VmHWM"),
// and a restart of the peak (VmHWM) from the current RSS. For benches and memory tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace ps {

// The field `key` of /proc/self/status in kB, or -1 where there is none.
inline int64_t ProcStatusKb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

// The same field in bytes; 0 where there is none.
inline double ProcStatusBytes(const std::string& key) {
  const int64_t kb = ProcStatusKb(key);
  return kb > 0 ? static_cast<double>(kb) * 1024.0 : 0.0;
}

// Starts a new peak-RSS window: VmHWM restarts from the current RSS.
inline void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

}  // namespace ps
