// Reading small metadata files (config.json, index files, tokenizer configs, job files) that a
// job names: only regular files, and only up to a size bound. A FIFO would block the reader for
// ever and /dev/zero would never end; both are refused at once with an error naming the file.
// The file is opened non-blocking and checked with fstat on the open descriptor, so a path that
// is swapped for a FIFO after a check cannot block either.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace ps {

inline constexpr int64_t kMaxMetadataBytes = 64ll << 20;  // config.json, index.json, ...
inline constexpr int64_t kMaxJobFileBytes = 1ll << 20;    // job files (docs/job-file.md)

// The whole file. Throws ps::Error "WHAT: PATH is not a regular file (a FIFO)" or "... is
// larger than N bytes" or "cannot read PATH: reason". `what` names the setting ("model").
std::string ReadRegularFileBounded(const std::filesystem::path& path, int64_t max_bytes,
                                   const std::string& what);
// Throws the same errors when `path` is not an existing, readable regular file (symlinks are
// followed). Opens nothing that could block.
void CheckRegularFile(const std::filesystem::path& path, const std::string& what);

}  // namespace ps
