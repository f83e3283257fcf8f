// What psd checks at submit beyond the job file's own rules (common/job_spec.h): the inputs lie
// under directories the operator allows (so a job cannot probe or read arbitrary files of psd's
// machine: the check runs before anything about the file is looked at, and says the same for a
// path that exists and one that does not), and the resources fit what this psd's launcher offers.
#pragma once

#include <filesystem>
#include <vector>

#include "common/job_spec.h"

namespace ps {

struct SubmitLimits {
  // Job inputs (model, calibration, evaluation files) must lie under one of these after symbolic
  // links are resolved. Empty: no restriction.
  std::vector<std::filesystem::path> allowed_roots;
  int max_ranks = 256;       // psd --max-ranks
  double max_memory_gb = 0;  // psd --max-memory-gb; 0: only the job file's own bound
};

// Throws ps::Error naming the key ("model: ...", "resources.ranks: ...").
void CheckSubmitLimits(const JobSpec& spec, const SubmitLimits& limits);

// The machine's physical memory in GB (the local launcher's default --max-memory-gb).
double PhysicalMemoryGb();

}  // namespace ps
