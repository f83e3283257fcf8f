// An exclusive lock on psd's data directory (flock on DATA_DIR/psd.lock), held for the process's
// life, so that a second psd on the same directory refuses to start instead of running every job
// twice. The lock file holds the owner's pid for the error message. The kernel drops the lock when
// the process dies, however it dies. (flock is local to a host on NFS: run one psd per store.)
#pragma once

#include <filesystem>

namespace ps {

class DataDirLock {
 public:
  // Throws ps::Error naming the holder when another process has the lock.
  explicit DataDirLock(const std::filesystem::path& data_dir);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ps
