// Fault injection against real processes (psd, psctl, the fake worker) on loopback: a store that
// cannot be written (locked database, full filesystem), a second psd on the same data directory
// or metrics port, a corrupt row, bad flags, retry backoff, a time limit across a psd restart,
// slow HTTP clients, structured logs, the artifact manifest, cancel and delete. Each test names
// the failure of issue 13 it guards against.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "common/file_util.h"
#include "tests/server/service_fixture.h"
#include "tests/testing/sqlite_lock.h"

namespace ps::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

double TimeOf(const json& t) {  // protobuf JSON timestamp "2026-01-01T00:00:00.123Z"
  std::string s = t.get<std::string>();
  std::tm tm{};
  strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  double frac = 0;
  if (auto dot = s.find('.'); dot != std::string::npos) frac = std::stod("0" + s.substr(dot, 10));
  return static_cast<double>(timegm(&tm)) + frac;
}

class FaultsTest : public ServiceFixture {
 protected:
  fs::path LongJob() {
    return WriteJob(dir_, "long",
                    "name: step_s=0.2\nmethod: {name: proxsparse, max_steps: 2000}\n");
  }
  fs::path QuickJob() {
    return WriteJob(dir_, "quick", "name: step_s=0.01\nmethod: {name: proxsparse, max_steps: 5}\n");
  }
  // psd run to completion with these flags (expected to refuse to start).
  CmdResult RunPsd(std::vector<std::string> flags, double timeout_s = 8) {
    std::vector<std::string> argv = {BinaryPath("server/psd"), "--worker-bin",
                                     BinaryPath("tests/server/fake_worker")};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return ps::test::Run(argv, {}, timeout_s);
  }
};

// #1: with the database locked, a submit is UNAVAILABLE (not "invalid") and creates nothing; a
// cancel is UNAVAILABLE and cancels nothing.
TEST_F(FaultsTest, LockedStoreRefusesSubmitAndCancelWithoutChangingAnything) {
  Psd& psd = StartPsd();
  std::string id = Submit(LongJob());
  psd.WaitState(id, "JOB_STATE_RUNNING", 20);
  ps::test::ExclusiveSqliteLock lock(dir_ / "psd/psd.db");
  ASSERT_TRUE(lock.held());
  CmdResult sub = psd.Ctl({"submit", QuickJob().string()});
  CmdResult can = psd.Ctl({"cancel", id});
  lock.Release();
  EXPECT_EQ(sub.rc, 5) << sub.out << sub.err;
  EXPECT_NE(sub.err.find("nothing was changed"), std::string::npos) << sub.err;
  EXPECT_EQ(can.rc, 5) << can.out << can.err;
  json list = json::parse(psd.Ctl({"-o", "json", "list"}).out);
  EXPECT_EQ(list["jobs"].size(), 1u) << "a submit that failed must not queue a job";
  json job = psd.GetJob(id);
  EXPECT_EQ(job["state"], "JOB_STATE_RUNNING") << "a cancel that failed cancelled";
  // The worker kept reporting through the ~10 s lock: its attempt must not have been ended.
  int queued = 0;
  for (const auto& t : job.value("history", json::array())) queued += t["to"] == "JOB_STATE_QUEUED";
  EXPECT_EQ(queued, 1) << job["message"] << "\n" << Slurp(psd.log());
  EXPECT_EQ(psd.Ctl({"cancel", id}).rc, 0);
  EXPECT_EQ(psd.GetJob(id)["state"], "JOB_STATE_CANCELLED");
}

// #1: a locked store must not end a live worker's attempt. The lock is held until psd's periodic
// progress write has waited out SQLite's busy timeout (5 s, longer than this psd's 3 s heartbeat
// timeout) and failed, then released while psd's next write waits: were the worker's heartbeats
// held up behind the store, that next write would be the retry of its attempt, and the job would
// run twice.
TEST_F(FaultsTest, LockedStoreDoesNotEndALiveWorkersAttempt) {
  Psd& psd = StartPsd();
  std::string id = Submit(LongJob());
  psd.WaitState(id, "JOB_STATE_RUNNING", 20);
  ps::test::ExclusiveSqliteLock lock(dir_ / "psd/psd.db");
  ASSERT_TRUE(lock.held());
  bool failed =
      WaitFor([&] { return Slurp(psd.log()).find("store.write_failed") != std::string::npos; }, 30);
  std::this_thread::sleep_for(1s);
  lock.Release();
  ASSERT_TRUE(failed) << "psd wrote nothing while the store was locked:\n" << Slurp(psd.log());
  std::this_thread::sleep_for(1s);
  json job = psd.GetJob(id);
  int queued = 0;
  for (const auto& t : job.value("history", json::array())) queued += t["to"] == "JOB_STATE_QUEUED";
  EXPECT_EQ(queued, 1) << job["message"] << "\n" << Slurp(psd.log());
  EXPECT_EQ(job.value("attempt", 0), 1);
  EXPECT_EQ(psd.Ctl({"cancel", id}).rc, 0);
}

// #1: the data directory on a full filesystem (a small tmpfs, filled up).
TEST_F(FaultsTest, FullFilesystemRefusesSubmitsAndRecoversWhenSpaceReturns) {
  fs::path mnt = dir_ / "tmpfs";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno)
                 << "); the store double covers this in coordinator_test";
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  // The job inputs lie outside the tmpfs: allow them where they are.
  Psd& psd = StartPsd({"--allowed-roots", dir_.string()}, 0, mnt / "psd");
  std::string first = Submit(QuickJob());
  psd.WaitState(first, "JOB_STATE_SUCCEEDED", 30);
  {
    std::ofstream fill(mnt / "filler", std::ios::binary);
    std::string block(64 * 1024, 'x');
    while (fill.write(block.data(), static_cast<std::streamsize>(block.size())) && fill.flush()) {
    }
  }
  CmdResult sub = psd.Ctl({"submit", QuickJob().string()});
  EXPECT_EQ(sub.rc, 5) << sub.out << sub.err;
  EXPECT_EQ(sub.err.find("invalid"), std::string::npos) << sub.err;
  EXPECT_EQ(json::parse(psd.Ctl({"-o", "json", "list"}).out)["jobs"].size(), 1u);
  fs::remove(mnt / "filler");
  std::string second = Submit(QuickJob());
  json j = psd.WaitState(second, "JOB_STATE_SUCCEEDED", 30);
  EXPECT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump() << Slurp(psd.log());
  psd_.reset();
}

// #2: a second psd on the same data directory refuses to start.
TEST_F(FaultsTest, SecondPsdOnTheSameDataDirectoryRefusesToStart) {
  StartPsd();
  CmdResult r = RunPsd(
      {"--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", (dir_ / "psd").string()});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("is in use by another psd (pid " + std::to_string(psd_->pid()) + ")"),
            std::string::npos)
      << r.err;
}

// #2: a second psd on the same --metrics-listen port refuses to start (no SO_REUSEPORT sharing).
TEST_F(FaultsTest, SecondPsdOnTheSameMetricsPortRefusesToStart) {
  Psd& psd = StartPsd();
  CmdResult r = RunPsd({"--listen", "127.0.0.1:0", "--metrics-listen", psd.metrics_address(),
                        "--data-dir", (dir_ / "other").string()});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("cannot serve metrics on " + psd.metrics_address()), std::string::npos)
      << r.err;
}

// #7: an unreadable row fails that job with a clear message; psd starts and runs the others.
TEST_F(FaultsTest, CorruptRowFailsThatJobAndPsdStillStarts) {
  Psd& psd = StartPsd();
  std::string bad = Submit(QuickJob());
  psd.WaitState(bad, "JOB_STATE_SUCCEEDED", 30);
  psd.Terminate();
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "psd/psd.db").c_str(), &h), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(h, ("UPDATE jobs SET job = x'ffffffff01' WHERE id = '" + bad + "'").c_str(),
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(h);
  psd.Start();
  json j = psd.GetJob(bad);
  EXPECT_EQ(j["state"], "JOB_STATE_FAILED");
  EXPECT_NE(j.value("message", "").find("cannot read this job's record"), std::string::npos);
  std::string good = Submit(QuickJob());
  EXPECT_EQ(psd.WaitState(good, "JOB_STATE_SUCCEEDED", 30)["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(psd.Ctl({"delete", bad}).rc, 0);
}

// #8: flags out of range exit 2 with a message naming the flag.
TEST_F(FaultsTest, BadFlagsExitTwoNamingTheFlag) {
  struct Case {
    std::vector<std::string> flags;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"--max-attempts", "2147483647"}, "--max-attempts"},
      {{"--heartbeat-timeout", "-5"}, "--heartbeat-timeout"},
      {{"--launch-timeout", "-1"}, "--launch-timeout"},
      {{"--listen", "127.0.0.1:70000"}, "--listen: port must be a number from 0 to 65535"},
      {{"--metrics-listen", "127.0.0.1:99999"}, "--metrics-listen: port must be"},
      {{"--retain-finished", "forever"}, "--retain-finished"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> flags = {"--data-dir",  (dir_ / "flags").string(), "--listen",
                                      "127.0.0.1:0", "--metrics-listen",        ""};
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    CmdResult r = RunPsd(flags);
    EXPECT_EQ(r.rc, 2) << c.flags[0] << " " << c.flags[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  }
}

// #8: retries back off exponentially (with jitter of at most half) instead of relaunching at once.
TEST_F(FaultsTest, RetriesBackOffExponentially) {
  Psd& psd = StartPsd({"--max-attempts", "3"});  // the default backoff: 1 s, doubling
  fs::path job = WriteJob(dir_, "crash",
                          "name: crash_at=2,crash_always,step_s=0.01\n"
                          "method: {name: proxsparse, max_steps: 10}\n");
  std::string id = Submit(job);
  json j = psd.WaitState(id, "JOB_STATE_FAILED", 60);
  ASSERT_EQ(j["state"], "JOB_STATE_FAILED");
  std::vector<double> queued, launching;
  for (const auto& t : j["history"]) {
    if (t.value("to", "") == "JOB_STATE_QUEUED" && t.contains("from"))
      queued.push_back(TimeOf(t["time"]));
    if (t.value("to", "") == "JOB_STATE_LAUNCHING") launching.push_back(TimeOf(t["time"]));
  }
  ASSERT_EQ(queued.size(), 2u);
  ASSERT_EQ(launching.size(), 3u);
  EXPECT_GE(launching[1] - queued[0], 0.5);  // base 1 s, jitter factor >= 0.5
  EXPECT_GE(launching[2] - queued[1], 1.0);  // doubled
  bool said = false;
  for (const auto& t : j["history"])
    said |= t.value("message", "").find("; retrying from the start in ") != std::string::npos;
  EXPECT_TRUE(said) << j["history"].dump();
}

// #8: the time limit counts from the first start, across a psd restart.
TEST_F(FaultsTest, TimeLimitCountsAcrossAPsdRestart) {
  Psd& psd = StartPsd();
  fs::path job = WriteJob(dir_, "limited",
                          "name: step_s=0.2\nmethod: {name: proxsparse, max_steps: 2000}\n"
                          "resources: {time_limit_minutes: 1}\n");
  std::string id = Submit(job);
  json j = psd.WaitState(id, "JOB_STATE_RUNNING", 20);
  double start = TimeOf(j["start_time"]);
  std::this_thread::sleep_for(30s);
  psd.Kill9();  // the worker keeps running; the restarted psd re-attaches
  std::this_thread::sleep_for(2s);
  psd.Start();
  j = psd.WaitState(id, "JOB_STATE_FAILED", 45);
  ASSERT_EQ(j["state"], "JOB_STATE_FAILED") << j.dump();
  EXPECT_NE(j.value("message", "").find("time limit of 1 minutes exceeded"), std::string::npos)
      << j.dump();
  ASSERT_TRUE(j.contains("end_time")) << j.dump();
  EXPECT_LT(TimeOf(j["end_time"]) - start, 70) << "the limit restarted with psd: " << j.dump();
}

std::string RawGet(const std::string& addr, const std::string& path, double timeout_s) {
  int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{static_cast<time_t>(timeout_s), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) > 0) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

// #8: sixteen clients that send half a request and stall cannot block /healthz or /metrics.
TEST_F(FaultsTest, SlowHttpClientsDoNotStarveHealthz) {
  Psd& psd = StartPsd();
  std::string addr = psd.metrics_address();
  int port = std::stoi(addr.substr(addr.rfind(':') + 1));
  std::vector<int> slow;
  for (int i = 0; i < 16; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_GT(write(fd, "GET /metrics HTTP/1.1\r\nHo", 25), 0);
    slow.push_back(fd);
  }
  std::this_thread::sleep_for(200ms);
  EXPECT_NE(RawGet(addr, "/healthz", 2).find("ok"), std::string::npos);
  EXPECT_NE(RawGet(addr, "/metrics", 2).find("proxsparse_up 1"), std::string::npos);
  for (int fd : slow) close(fd);
}

// #8: every job event and auth rejection is logged.
TEST_F(FaultsTest, JobEventsAndAuthRejectionsAreLogged) {
  WriteFileAtomic(dir_ / "token", "s3cret\n");
  Psd& psd = StartPsd({"--token-file", (dir_ / "token").string()});
  psd.ctl_prefix = {"--token-file", (dir_ / "token").string()};
  std::string id = Submit(QuickJob());
  psd.WaitState(id, "JOB_STATE_SUCCEEDED", 30);
  psd.ctl_prefix.clear();
  EXPECT_EQ(psd.Ctl({"get", id}).rc, 6);
  std::this_thread::sleep_for(300ms);
  std::string log = Slurp(psd.log());
  EXPECT_NE(log.find("job.submitted job_id=" + id + " name=\"step_s=0.01\" state=QUEUED"),
            std::string::npos)
      << log;
  for (const char* s : {"LAUNCHING", "RUNNING", "SUCCEEDED"})
    EXPECT_NE(log.find("job.state job_id=" + id + " name=\"step_s=0.01\" state=" + s),
              std::string::npos)
        << s << " missing from:\n"
        << log;
  EXPECT_NE(log.find("auth.rejected method=JobService/GetJob"), std::string::npos) << log;
}

// #8: --log-format json writes one JSON object a line.
TEST_F(FaultsTest, JsonLogsAreOneObjectPerLine) {
  Psd& psd = StartPsd({"--log-format", "json"});
  std::string id = Submit(QuickJob());
  psd.WaitState(id, "JOB_STATE_SUCCEEDED", 30);
  std::string log = Slurp(psd.log());
  std::set<std::string> events, states;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    json j = json::parse(line);
    EXPECT_TRUE(j.contains("ts") && j.contains("level")) << line;
    events.insert(j.value("event", ""));
    if (j.value("job_id", "") == id && j.contains("state")) states.insert(j["state"]);
  }
  for (const char* e : {"psd.started", "job.submitted", "job.state"})
    EXPECT_TRUE(events.count(e)) << e << " missing from:\n" << log;
  for (const char* s : {"QUEUED", "LAUNCHING", "RUNNING", "SUCCEEDED"})
    EXPECT_TRUE(states.count(s)) << s << " missing from:\n" << log;
}

// #8: ListArtifacts serves the hashes taken at publish; it does not hash the files again.
TEST_F(FaultsTest, ListArtifactsServesTheManifestWithoutRehashing) {
  Psd& psd = StartPsd();
  std::string id = Submit(QuickJob());
  json j = psd.WaitState(id, "JOB_STATE_SUCCEEDED", 30);
  json first = json::parse(psd.Ctl({"-o", "json", "artifacts", id}).out);
  ASSERT_FALSE(first["artifacts"].empty());
  fs::path file = fs::path(j["output_dir"].get<std::string>()) / "masks.bin";
  ASSERT_TRUE(fs::exists(file));
  WriteFileAtomic(file, "changed after publishing");
  json second = json::parse(psd.Ctl({"-o", "json", "artifacts", id}).out);
  EXPECT_EQ(first, second);
}

// #8: after a cancel is recorded nothing new is published.
TEST_F(FaultsTest, CancelledJobPublishesNothingNew) {
  Psd& psd = StartPsd();
  std::string id = Submit(LongJob());
  json j = psd.WaitState(id, "JOB_STATE_RUNNING", 20);
  ASSERT_EQ(psd.Ctl({"cancel", id}).rc, 0);
  fs::path out = j["output_dir"].get<std::string>();
  WriteFileAtomic(out / "late.bin", "written after the cancel");
  json arts = json::parse(psd.Ctl({"-o", "json", "artifacts", id}).out);
  for (const auto& a : arts.value("artifacts", json::array())) EXPECT_NE(a["path"], "late.bin");
  CmdResult dl =
      psd.Ctl({"artifacts", id, "--download", (dir_ / "dl").string(), "--path", "late.bin"});
  EXPECT_NE(dl.rc, 0);
  EXPECT_FALSE(fs::exists(dir_ / "dl/late.bin"));
}

// #6: jobs can be deleted (record and files), and lists carry summaries without the job file.
TEST_F(FaultsTest, DeleteRemovesFinishedJobsAndListsCarrySummaries) {
  Psd& psd = StartPsd();
  std::string id = Submit(LongJob());
  psd.WaitState(id, "JOB_STATE_RUNNING", 20);
  json list = json::parse(psd.Ctl({"-o", "json", "list"}).out);
  ASSERT_EQ(list["jobs"].size(), 1u);
  EXPECT_FALSE(list["jobs"][0].contains("spec_yaml"));
  EXPECT_FALSE(list["jobs"][0].contains("original_yaml"));
  CmdResult early = psd.Ctl({"delete", id});
  EXPECT_NE(early.rc, 0);
  EXPECT_NE(early.err.find("cancel it first"), std::string::npos) << early.err;
  ASSERT_EQ(psd.Ctl({"cancel", id}).rc, 0);
  fs::path job_dir = psd.GetJob(id)["job_dir"].get<std::string>();
  CmdResult del;  // refused while the cancelled workers are still being stopped
  WaitFor([&] { return (del = psd.Ctl({"delete", id})).rc == 0; }, 15, 0.2);
  EXPECT_EQ(del.rc, 0) << del.err;
  EXPECT_FALSE(fs::exists(job_dir));
  EXPECT_EQ(psd.Ctl({"get", id}).rc, 4);

  std::string kept = Submit(QuickJob());
  psd.WaitState(kept, "JOB_STATE_SUCCEEDED", 30);
  fs::path out = psd.GetJob(kept)["output_dir"].get<std::string>();
  EXPECT_TRUE(WaitFor(
      [&] {
        return psd.Ctl({"delete", kept, "--keep-artifacts"}).rc == 0;
      },
      15, 0.2));
  EXPECT_TRUE(fs::exists(out / "masks.bin"));
  EXPECT_EQ(psd.Ctl({"get", kept}).rc, 4);
}

}  // namespace
}  // namespace ps::test
