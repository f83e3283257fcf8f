#include "server/submit_checks.h"

#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/error.h"

namespace ps {

namespace fs = std::filesystem;

namespace {

bool Under(const fs::path& p, const fs::path& root) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (r->empty()) continue;  // a trailing separator
    if (q == p.end() || *q != *r) return false;
  }
  return true;
}

void CheckUnderRoots(const fs::path& p, const std::string& key, const SubmitLimits& limits) {
  if (limits.allowed_roots.empty()) return;
  std::error_code ec;
  fs::path real = fs::weakly_canonical(p, ec);
  if (!ec)
    for (const auto& root : limits.allowed_roots)
      if (Under(real, root)) return;
  std::string roots;
  for (const auto& r : limits.allowed_roots) roots += (roots.empty() ? "" : ", ") + r.string();
  throw Error(key + ": " + p.string() +
              " is not under a directory this psd accepts job inputs from (" + roots +
              "; the operator sets them with psd --allowed-roots)");
}

}  // namespace

void CheckSubmitLimits(const JobSpec& s, const SubmitLimits& limits) {
  CheckUnderRoots(s.model, "model", limits);
  if (!s.calibration.path.empty()) CheckUnderRoots(s.calibration.path, "calibration.path", limits);
  for (size_t i = 0; i < s.evaluation.ppl.size(); ++i)
    CheckUnderRoots(s.evaluation.ppl[i], "evaluation.ppl[" + std::to_string(i) + "]", limits);
  for (size_t i = 0; i < s.evaluation.tasks.size(); ++i)
    CheckUnderRoots(s.evaluation.tasks[i], "evaluation.tasks[" + std::to_string(i) + "]", limits);
  if (limits.max_ranks > 0 && s.resources.ranks > limits.max_ranks)
    throw Error("resources.ranks: the job asks for " + std::to_string(s.resources.ranks) +
                " ranks, this psd offers at most " + std::to_string(limits.max_ranks) +
                " (psd --max-ranks)");
  if (limits.max_memory_gb > 0 && s.resources.memory_gb > limits.max_memory_gb) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "the job asks for %.6g GB, this psd offers at most %.6g GB",
                  s.resources.memory_gb, limits.max_memory_gb);
    throw Error(std::string("resources.memory_gb: ") + buf + " (psd --max-memory-gb)");
  }
}

double PhysicalMemoryGb() {
  long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || size <= 0) return 0;
  return static_cast<double>(pages) * static_cast<double>(size) / 1073741824.0;
}

}  // namespace ps
