#include "common/bounded_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace ps {
namespace {

std::string KindOf(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string Prefix(const std::string& what, const std::filesystem::path& path) {
  return (what.empty() ? "" : what + ": ") + path.string();
}

// Opens without blocking (O_NONBLOCK: a FIFO without a writer would block open itself) and
// checks the descriptor's type; returns it or throws.
int OpenRegular(const std::filesystem::path& path, const std::string& what, struct stat* st) {
  if (::stat(path.c_str(), st) != 0)
    throw Error(Prefix(what, path) +
                (errno == ENOENT ? " does not exist" : ": " + std::string(std::strerror(errno))));
  if (!S_ISREG(st->st_mode))
    throw Error(Prefix(what, path) + " is " + KindOf(st->st_mode) + ", expected a regular file");
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw Error(Prefix(what, path) + " is not readable: " + std::strerror(errno));
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    throw Error(Prefix(what, path) + " changed type while being opened; expected a regular file");
  }
  return fd;
}

}  // namespace

std::string ReadRegularFileBounded(const std::filesystem::path& path, int64_t max_bytes,
                                   const std::string& what) {
  struct stat st {};
  int fd = OpenRegular(path, what, &st);
  auto too_big = [&] {
    return Error(Prefix(what, path) + " is larger than " + std::to_string(max_bytes) +
                 " bytes; this file is read whole, so it must be small");
  };
  if (st.st_size > max_bytes) {
    ::close(fd);
    throw too_big();
  }
  // Read to the bound + 1 whatever st_size said (files such as /proc entries report 0).
  std::string out;
  out.resize(static_cast<size_t>(std::min<int64_t>(max_bytes + 1, st.st_size + 4096)));
  size_t n = 0;
  for (;;) {
    if (n == out.size()) {
      if (static_cast<int64_t>(n) > max_bytes) break;
      out.resize(static_cast<size_t>(std::min<int64_t>(max_bytes + 1, 2 * n + 4096)));
    }
    ssize_t r = ::read(fd, out.data() + n, out.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      ::close(fd);
      throw Error(Prefix(what, path) + ": cannot read it: " + std::strerror(e));
    }
    if (r == 0) break;
    n += static_cast<size_t>(r);
  }
  ::close(fd);
  if (static_cast<int64_t>(n) > max_bytes) throw too_big();
  out.resize(n);
  return out;
}

void CheckRegularFile(const std::filesystem::path& path, const std::string& what) {
  struct stat st {};
  ::close(OpenRegular(path, what, &st));
}

}  // namespace ps
