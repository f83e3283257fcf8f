#include "server/file_streams.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "common/error.h"

namespace ps {

namespace fs = std::filesystem;

StreamEnd TailLog(const LogTail& tail,
                  const std::function<bool(int64_t, const char*, size_t)>& write) {
  int64_t offset = tail.offset;
  if (offset < 0) {
    std::error_code ec;
    auto size = static_cast<int64_t>(fs::file_size(tail.file, ec));
    offset = ec ? 0 : std::max<int64_t>(0, size + offset);
  }
  std::vector<char> buf(64 * 1024);
  for (;;) {
    if (tail.cancelled && tail.cancelled()) return StreamEnd::kClientGone;
    bool finished = tail.finished && tail.finished();
    std::ifstream f(tail.file, std::ios::binary);
    bool sent = false;
    if (f) {
      f.seekg(offset);
      while (f.read(buf.data(), static_cast<std::streamsize>(buf.size())) || f.gcount() > 0) {
        auto n = static_cast<size_t>(f.gcount());
        if (!write(offset, buf.data(), n)) return StreamEnd::kClientGone;
        offset += static_cast<int64_t>(n);
        sent = true;
      }
    }
    // Done when not following, or the job had finished before this last read.
    if (!tail.follow || (finished && !sent)) return StreamEnd::kDone;
    if (!sent) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

StreamEnd SendFile(const fs::path& file,
                   const std::function<bool(int64_t, int64_t, const char*, size_t)>& write) {
  std::ifstream f(file, std::ios::binary);
  std::error_code ec;
  auto total = static_cast<int64_t>(fs::file_size(file, ec));
  if (!f || ec) throw Error("cannot read " + file.string());
  std::vector<char> buf(1 << 20);
  int64_t offset = 0;
  do {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(f.gcount());
    if (!write(offset, total, buf.data(), n)) return StreamEnd::kClientGone;
    offset += static_cast<int64_t>(n);
  } while (f);
  return StreamEnd::kDone;
}

}  // namespace ps
