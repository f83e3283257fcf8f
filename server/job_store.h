// The job store: SQLite in WAL mode, one row per job holding the whole Job message, rewritten on
// every transition inside a transaction so that a crash leaves either the old or the new state.
#pragma once

#include <sqlite3.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "proxsparse/v1/job.pb.h"

namespace ps {

class JobStore {
 public:
  explicit JobStore(const std::filesystem::path& db_path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Allocates the next id ("j000001", ...) — never reused, even after a restart.
  std::string NextId();
  void Put(const proxsparse::v1::Job& job);    // insert or replace
  std::vector<proxsparse::v1::Job> LoadAll();  // oldest first

 private:
  void Exec(const std::string& sql);
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

}  // namespace ps
