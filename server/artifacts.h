// The published files of a job: everything under its output directory except checkpoints and
// temporary files. Downloads are looked up in this listing, never joined from the request, so
// no path can reach outside the directory (no "..", no absolute paths, no symlinks out).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ps {

struct ArtifactInfo {
  std::string path;  // relative, '/'-separated
  int64_t size = 0;
  std::string sha256;
};

std::vector<ArtifactInfo> ListArtifactFiles(const std::filesystem::path& output_dir,
                                            bool with_hashes = true);
// The file for `relative` when it is one of ListArtifactFiles' paths; nullopt otherwise.
std::optional<std::filesystem::path> ResolveArtifact(const std::filesystem::path& output_dir,
                                                     const std::string& relative);

}  // namespace ps
