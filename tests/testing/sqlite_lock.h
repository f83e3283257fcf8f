// Holds SQLite's exclusive lock on a database, as another process locking psd's store would, until
// Release() or destruction (the transaction is rolled back: nothing is written).
#pragma once

#include <sqlite3.h>

#include <filesystem>

namespace ps::test {

class ExclusiveSqliteLock {
 public:
  explicit ExclusiveSqliteLock(const std::filesystem::path& db) {
    held_ = sqlite3_open(db.c_str(), &h_) == SQLITE_OK &&
            sqlite3_exec(h_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~ExclusiveSqliteLock() { Release(); }
  ExclusiveSqliteLock(const ExclusiveSqliteLock&) = delete;
  ExclusiveSqliteLock& operator=(const ExclusiveSqliteLock&) = delete;

  // Whether the database opened and the lock was taken.
  bool held() const { return held_; }
  void Release() {
    if (h_ == nullptr) return;
    if (held_) sqlite3_exec(h_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(h_);
    h_ = nullptr;
    held_ = false;
  }

 private:
  sqlite3* h_ = nullptr;
  bool held_ = false;
};

}  // namespace ps::test
