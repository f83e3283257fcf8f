// Where jobs persist. The coordinator writes a job here before it changes its own copy, so a write
// that fails leaves the job as it was, and the caller gets a StoreError (UNAVAILABLE). Two
// backends: SQLite (psd) and memory (tests; it can be told to fail, or to hold a corrupt row).
#pragma once

#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proxsparse/v1/job.pb.h"
#include "server/api_error.h"

namespace ps {

// The store could not do what was asked (I/O error, disk full, database locked). Nothing changed.
class StoreError : public ApiError {
 public:
  explicit StoreError(const std::string& msg)
      : ApiError(grpc::StatusCode::UNAVAILABLE, "job store: " + msg) {}
};

// A row that no longer parses as a Job; the coordinator shows it as a FAILED job.
struct CorruptRow {
  std::string id;
  std::string reason;
};

struct StoredJobs {
  std::vector<proxsparse::v1::Job> jobs;  // oldest first
  std::vector<CorruptRow> corrupt;
};

class JobStore {
 public:
  virtual ~JobStore() = default;
  // Allocates the next id ("j000001", ...): never reused, even after a restart or a delete.
  virtual std::string NextId() = 0;
  virtual void Put(const proxsparse::v1::Job& job) = 0;  // insert or replace, atomically
  virtual void Delete(const std::string& id) = 0;        // absent ids are not an error
  virtual StoredJobs LoadAll() = 0;
};

// SQLite in WAL mode, one row per job holding the whole Job message. Opening migrates an older
// schema (PRAGMA user_version) and refuses a newer one.
std::unique_ptr<JobStore> OpenSqliteJobStore(const std::filesystem::path& db_path);
// The schema version this build writes; 0 is the unversioned layout of the first release.
inline constexpr int kStoreSchemaVersion = 2;

class MemoryJobStore final : public JobStore {
 public:
  std::string NextId() override;
  void Put(const proxsparse::v1::Job& job) override;
  void Delete(const std::string& id) override;
  StoredJobs LoadAll() override;

  // Test hooks: every call from now on fails with `why` (empty: heal); a row that won't parse.
  void FailWith(const std::string& why);
  void PutCorrupt(const std::string& id, const std::string& reason);
  int writes() const;
  // A database locked by another process, as SQLite's busy wait sees it: from HoldWrites() on,
  // Put and Delete wait until ReleaseWrites(), then fail with `why` (the busy timeout expired)
  // or, when `why` is empty, go ahead. waiting(): writes waiting now.
  void HoldWrites();
  void ReleaseWrites(const std::string& why);
  int waiting() const;

 private:
  void Check() const;
  void WaitWhileHeld(std::unique_lock<std::mutex>& lock);
  mutable std::mutex mu_;
  std::condition_variable released_;
  int64_t next_ = 0;
  int writes_ = 0;
  bool held_ = false;
  int waiting_ = 0;
  std::string fail_;
  std::string held_fail_;
  std::map<std::string, proxsparse::v1::Job> jobs_;
  std::map<std::string, std::string> corrupt_;
};

}  // namespace ps
