// `--set KEY.PATH=VALUE` overrides for a job file (psworker), applied to the YAML tree before the
// job is parsed and validated, so an override is checked exactly like the file itself. VALUE is
// YAML (`2.5`, `cuda`, `[a.txt, b.txt]`).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/job_spec.h"

namespace ps {

JobSpec LoadJobSpecWithOverrides(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides);

}  // namespace ps
