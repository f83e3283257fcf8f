// The SQLite backend of JobStore. Schema history (PRAGMA user_version):
//   0: jobs(seq, id, state, job BLOB), counters(name, value) — the first release, unversioned.
//   2: jobs gains end_time (unix seconds, 0 while unfinished) so operators can query finished
//      jobs with the sqlite3 shell; filled from each row's Job on migration.
// Each migration runs in one transaction; a database newer than this build is refused.
#include <sqlite3.h>

#include <cstdio>
#include <functional>

#include "server/job_store.h"

namespace ps {

namespace pb = proxsparse::v1;
namespace fs = std::filesystem;

namespace {

double EndSeconds(const pb::Job& j) {
  return static_cast<double>(j.end_time().seconds()) + j.end_time().nanos() * 1e-9;
}

class SqliteJobStore final : public JobStore {
 public:
  explicit SqliteJobStore(const fs::path& path);
  ~SqliteJobStore() override { sqlite3_close(db_); }
  std::string NextId() override;
  void Put(const pb::Job& job) override;
  void Delete(const std::string& id) override;
  StoredJobs LoadAll() override;

 private:
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(SqliteJobStore& st, const char* sql) {
      if (sqlite3_prepare_v2(st.db_, sql, -1, &s, nullptr) != SQLITE_OK) st.Fail("prepare");
    }
    ~Stmt() { sqlite3_finalize(s); }
  };
  [[noreturn]] void Fail(const std::string& what) const {
    throw StoreError(
        path_.string() + ": " + what + ": " + sqlite3_errmsg(db_) +
        (sqlite3_errcode(db_) == SQLITE_FULL ? " (free space on its filesystem)" : "") +
        (sqlite3_errcode(db_) == SQLITE_BUSY ? " (another process holds it)" : ""));
  }
  void Exec(const std::string& sql);
  void Transaction(const std::function<void()>& body);
  int UserVersion();
  void Migrate();

  fs::path path_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

SqliteJobStore::SqliteJobStore(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError(path.string() + ": cannot open: " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  Exec("PRAGMA journal_mode=WAL");
  Exec("PRAGMA synchronous=FULL");
  Migrate();
}

void SqliteJobStore::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);
    Fail(sql.substr(0, sql.find(' ')));
  }
}

void SqliteJobStore::Transaction(const std::function<void()>& body) {
  Exec("BEGIN IMMEDIATE");
  try {
    body();
    Exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

int SqliteJobStore::UserVersion() {
  Stmt q(*this, "PRAGMA user_version");
  if (sqlite3_step(q.s) != SQLITE_ROW) Fail("PRAGMA user_version");
  return sqlite3_column_int(q.s, 0);
}

void SqliteJobStore::Migrate() {
  int v = UserVersion();
  if (v > kStoreSchemaVersion)
    throw StoreError(path_.string() + ": schema version " + std::to_string(v) +
                     " is newer than this psd understands (" + std::to_string(kStoreSchemaVersion) +
                     "); run the psd release that wrote it, or restore a backup "
                     "(docs/operations.md)");
  Transaction([&] {
    Exec(
        "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
        "state INTEGER NOT NULL, job BLOB NOT NULL)");
    Exec("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
    if (v < 2) {
      Exec("ALTER TABLE jobs ADD COLUMN end_time REAL NOT NULL DEFAULT 0");
      Stmt q(*this, "SELECT seq, job FROM jobs");
      Stmt u(*this, "UPDATE jobs SET end_time = ? WHERE seq = ?");
      while (sqlite3_step(q.s) == SQLITE_ROW) {
        pb::Job j;
        if (!j.ParseFromArray(sqlite3_column_blob(q.s, 1), sqlite3_column_bytes(q.s, 1)))
          continue;  // LoadAll reports it
        sqlite3_bind_double(u.s, 1, EndSeconds(j));
        sqlite3_bind_int64(u.s, 2, sqlite3_column_int64(q.s, 0));
        if (sqlite3_step(u.s) != SQLITE_DONE) Fail("migrate end_time");
        sqlite3_reset(u.s);
      }
    }
    Exec("PRAGMA user_version = " + std::to_string(kStoreSchemaVersion));
  });
}

std::string SqliteJobStore::NextId() {
  std::lock_guard lock(mu_);
  int64_t v = 0;
  Transaction([&] {
    Exec("INSERT OR IGNORE INTO counters(name, value) VALUES('job_id', 0)");
    Exec("UPDATE counters SET value = value + 1 WHERE name = 'job_id'");
    Stmt q(*this, "SELECT value FROM counters WHERE name = 'job_id'");
    if (sqlite3_step(q.s) != SQLITE_ROW) Fail("read the id counter");
    v = sqlite3_column_int64(q.s, 0);
  });
  char buf[32];
  std::snprintf(buf, sizeof buf, "j%06lld", static_cast<long long>(v));
  return buf;
}

void SqliteJobStore::Put(const pb::Job& job) {
  std::string blob;
  job.SerializeToString(&blob);
  int64_t seq = std::stoll(job.id().substr(1));
  std::lock_guard lock(mu_);
  Stmt q(*this, "INSERT OR REPLACE INTO jobs(seq, id, state, job, end_time) VALUES(?, ?, ?, ?, ?)");
  sqlite3_bind_int64(q.s, 1, seq);
  sqlite3_bind_text(q.s, 2, job.id().c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(q.s, 3, job.state());
  sqlite3_bind_blob(q.s, 4, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  sqlite3_bind_double(q.s, 5, EndSeconds(job));
  if (sqlite3_step(q.s) != SQLITE_DONE) Fail("cannot save job " + job.id());
}

void SqliteJobStore::Delete(const std::string& id) {
  std::lock_guard lock(mu_);
  Stmt q(*this, "DELETE FROM jobs WHERE id = ?");
  sqlite3_bind_text(q.s, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(q.s) != SQLITE_DONE) Fail("cannot delete job " + id);
}

StoredJobs SqliteJobStore::LoadAll() {
  std::lock_guard lock(mu_);
  Stmt q(*this, "SELECT id, job FROM jobs ORDER BY seq");
  StoredJobs out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    const unsigned char* id = sqlite3_column_text(q.s, 0);
    std::string sid = id ? reinterpret_cast<const char*>(id) : "";
    pb::Job j;
    if (sqlite3_column_type(q.s, 1) != SQLITE_BLOB && sqlite3_column_type(q.s, 1) != SQLITE_TEXT) {
      out.corrupt.push_back({sid, "the stored record is not a blob"});
    } else if (!j.ParseFromArray(sqlite3_column_blob(q.s, 1), sqlite3_column_bytes(q.s, 1))) {
      out.corrupt.push_back({sid, "the stored record does not parse as a Job"});
    } else if (j.id() != sid) {
      out.corrupt.push_back({sid, "the stored record names job '" + j.id() + "'"});
    } else {
      out.jobs.push_back(std::move(j));
    }
  }
  if (rc != SQLITE_DONE) Fail("cannot read the jobs");
  return out;
}

}  // namespace

std::unique_ptr<JobStore> OpenSqliteJobStore(const fs::path& db_path) {
  return std::make_unique<SqliteJobStore>(db_path);
}

}  // namespace ps
