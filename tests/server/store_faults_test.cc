// psd's own defences, in-process: the SQLite store's schema migrations and corrupt rows, the
// data-directory lock, the HTTP endpoints under slow clients, address validation and the log
// format.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "server/data_dir_lock.h"
#include "server/http_endpoints.h"
#include "server/job_store.h"
#include "server/log.h"
#include "tests/testing/sqlite_lock.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
namespace pb = proxsparse::v1;

using ps::testing::TempDir;

void Sql(const fs::path& db, const std::string& sql, const std::string& blob = "") {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(h);
  if (!blob.empty()) sqlite3_bind_blob(s, 1, blob.data(), static_cast<int>(blob.size()), nullptr);
  EXPECT_EQ(sqlite3_step(s), SQLITE_DONE) << sqlite3_errmsg(h);
  sqlite3_finalize(s);
  sqlite3_close(h);
}

int UserVersion(const fs::path& db) {
  sqlite3* h = nullptr;
  sqlite3_open(db.c_str(), &h);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &s, nullptr);
  sqlite3_step(s);
  int v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

// The first release's database: no user_version, no end_time column.
void WriteVersion0Database(const fs::path& db) {
  Sql(db,
      "CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, state INTEGER NOT "
      "NULL, job BLOB NOT NULL)");
  Sql(db, "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)");
  Sql(db, "INSERT INTO counters VALUES('job_id', 2)");
  pb::Job j;
  j.set_id("j000002");
  j.set_state(pb::JOB_STATE_SUCCEEDED);
  j.mutable_end_time()->set_seconds(1700000000);
  j.set_message("finished");
  Sql(db, "INSERT INTO jobs(seq, id, state, job) VALUES(2, 'j000002', 4, ?)",
      j.SerializeAsString());
}

TEST(StoreSchema, OpensAndMigratesThePreviousVersionsDatabase) {
  TempDir d("v0");
  fs::path db = d.path() / "psd.db";
  WriteVersion0Database(db);
  ASSERT_EQ(UserVersion(db), 0);
  {
    auto store = OpenSqliteJobStore(db);
    StoredJobs all = store->LoadAll();
    ASSERT_EQ(all.jobs.size(), 1u);
    EXPECT_EQ(all.jobs[0].message(), "finished");
    EXPECT_EQ(store->NextId(), "j000003");
  }
  EXPECT_EQ(UserVersion(db), kStoreSchemaVersion);
  Sql(db, "UPDATE jobs SET id = id WHERE end_time = 1700000000");  // the migrated column
  auto again = OpenSqliteJobStore(db);                             // migrating twice is a no-op
  EXPECT_EQ(again->LoadAll().jobs.size(), 1u);
}

TEST(StoreSchema, RefusesANewerSchemaWithAClearMessage) {
  TempDir d("newer");
  fs::path db = d.path() / "psd.db";
  { OpenSqliteJobStore(db); }
  Sql(db, "PRAGMA user_version = 99");
  try {
    OpenSqliteJobStore(db);
    FAIL() << "opened a schema from the future";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99 is newer"), std::string::npos)
        << e.what();
  }
}

TEST(StoreSchema, CorruptRowsAreReportedNotFatal) {
  TempDir d("corrupt");
  fs::path db = d.path() / "psd.db";
  {
    auto store = OpenSqliteJobStore(db);
    for (int i = 0; i < 3; ++i) {
      pb::Job j;
      j.set_id(store->NextId());
      store->Put(j);
    }
  }
  Sql(db, "UPDATE jobs SET job = ? WHERE id = 'j000002'", std::string("\xff\xff\xff\x01", 4));
  auto store = OpenSqliteJobStore(db);
  StoredJobs all = store->LoadAll();
  EXPECT_EQ(all.jobs.size(), 2u);
  ASSERT_EQ(all.corrupt.size(), 1u);
  EXPECT_EQ(all.corrupt[0].id, "j000002");
}

TEST(StoreErrors, ALockedDatabaseIsUnavailableNotInvalid) {
  TempDir d("locked");
  fs::path db = d.path() / "psd.db";
  auto store = OpenSqliteJobStore(db);
  ps::test::ExclusiveSqliteLock lock(db);
  ASSERT_TRUE(lock.held());
  pb::Job j;
  j.set_id("j000001");
  try {
    store->Put(j);  // waits the busy timeout (5 s), then gives up
    FAIL() << "wrote through an exclusive lock";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code(), grpc::StatusCode::UNAVAILABLE);
  }
  lock.Release();
  store->Put(j);
  EXPECT_EQ(store->LoadAll().jobs.size(), 1u);
}

TEST(DataDirLock, ASecondHolderIsRefusedUntilTheFirstLetsGo) {
  TempDir d("lock");
  auto first = std::make_unique<DataDirLock>(d.path());
  try {
    DataDirLock second(d.path());
    FAIL() << "two locks on one data directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another psd (pid " +
                                         std::to_string(::getpid()) + ")"),
              std::string::npos)
        << e.what();
  }
  first.reset();
  DataDirLock third(d.path());
}

TEST(HttpEndpoints, PortsAreValidated) {
  EXPECT_EQ(SplitHostPort("127.0.0.1:9464", "--x"), std::make_pair(std::string("127.0.0.1"), 9464));
  EXPECT_EQ(SplitHostPort("[::1]:0", "--x").first, "::1");
  for (const char* bad : {"127.0.0.1:70000", "127.0.0.1:-1", "host", "h:12ab", "h:"})
    EXPECT_THROW(SplitHostPort(bad, "--x"), Error) << bad;
}

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string Get(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2);
  cli.set_read_timeout(2);
  auto res = cli.Get(path.c_str());
  return res ? res->body : "";
}

TEST(HttpEndpoints, SixteenSlowClientsDoNotStarveHealthz) {
  HttpEndpoints http({"127.0.0.1:0", 64, 5, 5, 5}, [] { return std::string("m 1\n"); });
  std::string addr = http.Start();
  int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  std::vector<int> slow;
  for (int i = 0; i < 16; ++i) {  // each sends half a request and then nothing
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    ASSERT_GT(write(fd, "GET /metrics HTTP/1.1\r\nHo", 25), 0);
    slow.push_back(fd);
  }
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Get(port, "/healthz"), "ok\n");
  EXPECT_EQ(Get(port, "/metrics"), "m 1\n");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2);
  for (int fd : slow) close(fd);
}

TEST(HttpEndpoints, ASecondServerOnThePortIsRefused) {
  HttpEndpoints first({"127.0.0.1:0", 4, 5, 5, 5}, [] { return std::string(); });
  std::string addr = first.Start();
  HttpEndpoints second({addr, 4, 5, 5, 5}, [] { return std::string(); });
  EXPECT_THROW(second.Start(), Error);
}

TEST(Log, TextEscapesControlCharactersAndJsonParses) {
  LogFields f = {{"job_id", "j000001"}, {"name", "evil\n\x1b[31mred \"q\""}};
  std::string text = FormatLogLine(LogFormat::kText, "job.state", f);
  EXPECT_EQ(text.find('\n'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_NE(text.find("job_id=j000001"), std::string::npos);
  EXPECT_NE(text.find(R"(name="evil\x0a\x1b[31mred \"q\"")"), std::string::npos) << text;
  auto j = nlohmann::json::parse(FormatLogLine(LogFormat::kJson, "job.state", f));
  EXPECT_EQ(j["event"], "job.state");
  EXPECT_EQ(j["name"], "evil\n\x1b[31mred \"q\"");
}

}  // namespace
}  // namespace ps
