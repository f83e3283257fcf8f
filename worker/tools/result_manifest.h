// The result manifest: OUTPUT/.result-manifest.json, written by psworker after a job's outputs
// are published and before the result is reported. It names the job (the hash of its canonical
// spec) and every published file with its size and SHA-256. When psd never acknowledged the
// result (an outage past the worker's reporting budget, the allocation ended), the next attempt
// verifies the outputs against it and reports them instead of running the job again.
#pragma once

#include <filesystem>
#include <string>

namespace ps {

inline constexpr const char* kResultManifestName = ".result-manifest.json";

// Lists the published files under `out` (not checkpoints/, progress.jsonl, hidden or temporary
// files; symlinks are not followed), hashes them and writes the manifest atomically.
void WriteResultManifest(const std::filesystem::path& out, const std::string& job_hash);

struct AdoptionCheck {
  bool present = false;  // a manifest exists
  bool valid = false;    // it is for this job and every file matches it
  int files = 0;
  std::string why;  // when present && !valid: what did not match
};
// Verifies the manifest in `out` against `job_hash` and the files on disk.
AdoptionCheck CheckResultManifest(const std::filesystem::path& out, const std::string& job_hash);

}  // namespace ps
