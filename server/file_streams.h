// The streaming loops behind StreamLogs and DownloadArtifact, apart from gRPC: they read a file in
// chunks and hand each to `write`, which returns false when the client went away.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

namespace ps {

enum class StreamEnd { kDone, kClientGone };

struct LogTail {
  std::filesystem::path file;
  int64_t offset = 0;  // negative: that many bytes from the end
  bool follow = false;
  std::function<bool()> finished;   // the job ended (checked before each read)
  std::function<bool()> cancelled;  // the client cancelled the call
};
// Streams the log from `offset`; when following, polls for growth until the job has finished and
// everything written before that was sent.
StreamEnd TailLog(const LogTail& tail,
                  const std::function<bool(int64_t offset, const char* data, size_t n)>& write);

// Streams a whole file in 1 MiB chunks (at least one, possibly empty). Throws ps::Error when the
// file cannot be read.
StreamEnd SendFile(
    const std::filesystem::path& file,
    const std::function<bool(int64_t offset, int64_t total, const char* data, size_t n)>& write);

}  // namespace ps
