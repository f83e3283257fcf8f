#include "server/job_store.h"

#include <cstdio>

#include "common/error.h"

namespace ps {

namespace pb = proxsparse::v1;

namespace {

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql, const std::filesystem::path& path) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      throw Error("job store " + path.string() + ": " + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

JobStore::JobStore(const std::filesystem::path& db_path) : path_(db_path) {
  if (db_path.has_parent_path()) std::filesystem::create_directories(db_path.parent_path());
  if (sqlite3_open(db_path.c_str(), &db_) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error("job store " + db_path.string() + ": cannot open: " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  Exec("PRAGMA journal_mode=WAL");
  Exec("PRAGMA synchronous=FULL");
  Exec(
      "CREATE TABLE IF NOT EXISTS jobs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, "
      "state INTEGER NOT NULL, job BLOB NOT NULL)");
  Exec("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
}

JobStore::~JobStore() { sqlite3_close(db_); }

void JobStore::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw Error("job store " + path_.string() + ": " + msg + " (in: " + sql + ")");
  }
}

std::string JobStore::NextId() {
  std::lock_guard lock(mu_);
  Exec("BEGIN IMMEDIATE");
  try {
    Exec("INSERT OR IGNORE INTO counters(name, value) VALUES('job_id', 0)");
    Exec("UPDATE counters SET value = value + 1 WHERE name = 'job_id'");
    Stmt q(db_, "SELECT value FROM counters WHERE name = 'job_id'", path_);
    if (sqlite3_step(q.s) != SQLITE_ROW) throw Error("job store: no id counter");
    int64_t v = sqlite3_column_int64(q.s, 0);
    Exec("COMMIT");
    char buf[32];
    std::snprintf(buf, sizeof buf, "j%06lld", static_cast<long long>(v));
    return buf;
  } catch (...) {
    Exec("ROLLBACK");
    throw;
  }
}

void JobStore::Put(const pb::Job& job) {
  std::string blob;
  job.SerializeToString(&blob);
  int64_t seq = std::stoll(job.id().substr(1));
  std::lock_guard lock(mu_);
  Stmt q(db_, "INSERT OR REPLACE INTO jobs(seq, id, state, job) VALUES(?, ?, ?, ?)", path_);
  sqlite3_bind_int64(q.s, 1, seq);
  sqlite3_bind_text(q.s, 2, job.id().c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(q.s, 3, job.state());
  sqlite3_bind_blob(q.s, 4, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(q.s) != SQLITE_DONE)
    throw Error("job store " + path_.string() + ": cannot save job " + job.id() + ": " +
                sqlite3_errmsg(db_));
}

std::vector<pb::Job> JobStore::LoadAll() {
  std::lock_guard lock(mu_);
  Stmt q(db_, "SELECT id, job FROM jobs ORDER BY seq", path_);
  std::vector<pb::Job> out;
  while (sqlite3_step(q.s) == SQLITE_ROW) {
    pb::Job j;
    const void* data = sqlite3_column_blob(q.s, 1);
    int n = sqlite3_column_bytes(q.s, 1);
    if (!j.ParseFromArray(data, n))
      throw Error("job store " + path_.string() + ": job " +
                  reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0)) + " is corrupt");
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace ps
