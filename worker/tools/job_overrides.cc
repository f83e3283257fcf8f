#include "worker/tools/job_overrides.h"

#include "common/error.h"
#include "common/file_util.h"
#include "common/yaml_overrides.h"

namespace ps {

JobSpec LoadJobSpecWithOverrides(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides) {
  if (overrides.empty()) return LoadJobSpec(file);
  if (!std::filesystem::is_regular_file(file)) throw Error(file.string() + ": job file not found");
  std::string yaml = ApplyYamlOverrides(ReadFile(file), overrides, file.string());
  std::filesystem::path abs = std::filesystem::absolute(file);
  return ParseJobSpec(yaml, abs.parent_path(), file.string() + " (with --set)");
}

}  // namespace ps
