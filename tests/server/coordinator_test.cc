// In-process tests of the coordinator's policy: a MemoryJobStore, a ManualClock and a scripted
// Launcher, the scheduler ticked by hand. No processes, no sleeps: each test runs in
// milliseconds. Covers retries and backoff, heartbeat and launch timeouts, relaunch from a
// checkpoint, admission, cancel, store failures (nothing half-changed), time limits across
// restarts, corrupt rows, bounded events, paging, delete and retention, the artifact manifest.
#include "server/coordinator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <map>

#include "common/file_util.h"
#include "proto/spec_convert.h"
#include "server/api_error.h"
#include "server/clock.h"
#include "server/job_store.h"
#include "server/policy.h"
#include "tests/server/service_harness.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
namespace pb = proxsparse::v1;
using State = pb::JobState;

// Launches nothing: ids "L1", "L2", ...; Poll answers what the test scripted; Terminate is
// recorded (and ends the "process").
class ScriptedLauncher : public Launcher {
 public:
  struct Shared {
    std::vector<LaunchRequest> launches;
    std::map<std::string, RunState> state;
    std::vector<std::pair<std::string, bool>> terminated;  // (id, force)
    std::function<void()> on_launch;
    bool fail_launch = false;
  };
  explicit ScriptedLauncher(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  std::string Name() const override { return "local"; }
  std::string Launch(const LaunchRequest& req) override {
    if (s_->fail_launch) throw Error("no capacity");
    s_->launches.push_back(req);
    std::string id = "L" + std::to_string(s_->launches.size());
    s_->state[id] = RunState::kRunning;
    if (s_->on_launch) s_->on_launch();
    return id;
  }
  RunStatus Poll(const std::string& id) override {
    auto it = s_->state.find(id);
    RunState st = it == s_->state.end() ? RunState::kGone : it->second;
    return {st, st == RunState::kExited ? 3 : 0, st == RunState::kExited ? "exit code 3" : "ok"};
  }
  void Terminate(const std::string& id, bool force) override {
    s_->terminated.emplace_back(id, force);
    if (force) s_->state[id] = RunState::kExited;
  }

 private:
  std::shared_ptr<Shared> s_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ps_coord_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    test::WriteJob(dir_, "model_only", "");  // the fake model and calibration text
    cfg_.data_dir = dir_ / "data";
    cfg_.max_jobs = 1;
    cfg_.heartbeat_timeout_s = 30;
    cfg_.launch_timeout_s = 60;
    cfg_.retry = {10, 80};
    Restart();
  }
  void TearDown() override { c_.reset(); }
  // A new coordinator over the same store and clock: what a psd restart sees.
  void Restart() {
    c_.reset();
    c_ = std::make_unique<Coordinator>(cfg_, store_, std::make_unique<ScriptedLauncher>(l_),
                                       &clock_, [] { return 1.0; });  // jitter factor 1: exact
    c_->Start(false);
  }
  std::string Submit(const std::string& extra = "", int max_attempts = 0) {
    pb::SubmitJobRequest req;
    req.set_yaml("model: model\ncalibration:\n  path: calib.txt\nmethod: {name: proxsparse}\n" +
                 extra);
    req.set_base_dir(dir_.string());
    req.set_max_attempts(max_attempts);
    return c_->Submit(req).id();
  }
  State StateOf(const std::string& id) { return c_->Get(id).state(); }
  pb::WorkerId Worker(const std::string& id) {
    pb::WorkerId w;
    w.set_job_id(id);
    w.set_attempt(c_->Get(id).attempt());
    return w;
  }
  void Register(const std::string& id) {
    pb::RegisterRequest r;
    *r.mutable_worker() = Worker(id);
    r.set_world_size(1);
    c_->Register(r);
  }
  // Ticks until `id` runs (launched and registered).
  void Run(const std::string& id) {
    c_->Tick();
    ASSERT_EQ(StateOf(id), pb::JOB_STATE_LAUNCHING) << c_->Get(id).message();
    Register(id);
    ASSERT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  }
  void Crash(const std::string& id) { l_->state[c_->Get(id).launcher_id()] = RunState::kExited; }
  void ReportResult(const std::string& id, bool ok) {
    pb::ReportResultRequest r;
    *r.mutable_worker() = Worker(id);
    r.set_ok(ok);
    c_->Result(r);
  }
  static grpc::StatusCode CodeOf(const std::function<void()>& f) {
    try {
      f();
    } catch (const ApiError& e) {
      return e.code();
    } catch (const Error&) {  // validation: INVALID_ARGUMENT at the API boundary
      return grpc::StatusCode::INVALID_ARGUMENT;
    }
    return grpc::StatusCode::OK;
  }

  ps::testing::TempDir tmp_{"coord"};
  fs::path dir_;
  CoordinatorConfig cfg_;
  MemoryJobStore store_;
  ManualClock clock_;
  std::shared_ptr<ScriptedLauncher::Shared> l_ = std::make_shared<ScriptedLauncher::Shared>();
  std::unique_ptr<Coordinator> c_;
};

TEST(RetryPolicy, DoublesPerAttemptCapsAndJittersWithinHalf) {
  RetryPolicy p{2, 10};
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 1, 1.0), 2);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 2, 1.0), 4);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 3, 1.0), 8);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 4, 1.0), 10);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 60, 1.0), 10);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 1, 0.0), 1);  // jitter never below half
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 2, 0.5), 3);
}

TEST(Admission, StrictFifoWithinCapacityAndBackoffDoesNotBlock) {
  Capacity cap{2, 0, 4};
  std::vector<Demand> queued = {{"a", 1, 4, true}, {"b", 1, 1, true}, {"c", 1, 0, true}};
  // b does not fit beside a, and c, which would, waits behind b: strict FIFO.
  EXPECT_EQ(Admit({}, queued, cap), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(Admit({{"x", 1, 4, true}}, {{"b", 1, 1, true}}, cap).empty());
  queued[0].ready = false;  // a is backing off: the rest go in order
  EXPECT_EQ(Admit({}, queued, cap), (std::vector<std::string>{"b", "c"}));
  EXPECT_TRUE(Admit({{"x", 1, 0, true}, {"y", 1, 0, true}}, queued, cap).empty());  // max_jobs
}

TEST_F(CoordinatorTest, CrashedAttemptsRetryAfterExponentialBackoffThenFail) {
  std::string id = Submit("", 3);
  Run(id);
  Crash(id);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  EXPECT_NE(c_->Get(id).message().find("in 10.0 s"), std::string::npos) << c_->Get(id).message();
  clock_.Advance(9.9);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED) << "relaunched before its backoff";
  clock_.Advance(0.2);
  Run(id);
  EXPECT_EQ(c_->Get(id).attempt(), 2);
  Crash(id);
  c_->Tick();
  clock_.Advance(19.9);  // the second delay doubles
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  clock_.Advance(0.2);
  Run(id);
  Crash(id);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_FAILED);
  EXPECT_NE(c_->Get(id).message().find("attempt 3 of 3 failed"), std::string::npos);
  EXPECT_EQ(l_->launches.size(), 3u);
  EXPECT_EQ(c_->failures_total(), 3u);
}

TEST_F(CoordinatorTest, MaxAttemptsIsCapped) {
  EXPECT_EQ(CodeOf([&] { Submit("", kMaxAttemptsCap + 1); }), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CodeOf([&] { Submit("", kMaxAttemptsCap); }), grpc::StatusCode::OK);
}

TEST_F(CoordinatorTest, SilentWorkerIsKilledWithoutGraceAndRetried) {
  std::string id = Submit();
  Run(id);
  std::string lid = c_->Get(id).launcher_id();
  clock_.Advance(20);
  c_->Heartbeat(Worker(id));
  clock_.Advance(25);  // 25 s since the last heartbeat: alive
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  clock_.Advance(6);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  EXPECT_NE(c_->Get(id).message().find("no heartbeat for 31 s"), std::string::npos);
  c_->Tick();  // the kill queue runs at the start of a tick
  ASSERT_FALSE(l_->terminated.empty());
  EXPECT_EQ(l_->terminated.back(), std::make_pair(lid, true));
}

TEST_F(CoordinatorTest, LaunchTimeoutRetriesAWorkerThatNeverRegisters) {
  std::string id = Submit();
  c_->Tick();
  clock_.Advance(59);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_LAUNCHING);
  clock_.Advance(2);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  EXPECT_NE(c_->Get(id).message().find("no worker registered within 60 s"), std::string::npos);
}

TEST_F(CoordinatorTest, RelaunchResumesFromTheLastCheckpoint) {
  std::string id = Submit();
  Run(id);
  pb::ReportCheckpointRequest ck;
  *ck.mutable_worker() = Worker(id);
  ck.set_step(110);
  ck.set_dir((dir_ / "ck").string());
  c_->Checkpoint(ck);
  Crash(id);
  c_->Tick();
  EXPECT_NE(c_->Get(id).message().find("retrying from the checkpoint of step 110"),
            std::string::npos);
  clock_.Advance(11);
  c_->Tick();
  ASSERT_EQ(l_->launches.size(), 2u);
  const auto& args = l_->launches[1].worker_args;
  EXPECT_NE(std::find(args.begin(), args.end(), "--resume"), args.end());
  EXPECT_EQ(
      std::find(l_->launches[0].worker_args.begin(), l_->launches[0].worker_args.end(), "--resume"),
      l_->launches[0].worker_args.end());
  EXPECT_NE(c_->Get(id).message().find("from checkpoint step 110"), std::string::npos);
}

TEST_F(CoordinatorTest, AdmissionRunsOneJobAtATimeInOrder) {
  std::string a = Submit(), b = Submit();
  c_->Tick();
  EXPECT_EQ(StateOf(a), pb::JOB_STATE_LAUNCHING);
  EXPECT_EQ(StateOf(b), pb::JOB_STATE_QUEUED);
  Register(a);
  ReportResult(a, true);
  EXPECT_EQ(StateOf(a), pb::JOB_STATE_SUCCEEDED);
  c_->Tick();
  EXPECT_EQ(StateOf(b), pb::JOB_STATE_LAUNCHING);
}

TEST_F(CoordinatorTest, GpuJobsBeyondTheOfferAreRejectedAtSubmit) {
  EXPECT_EQ(CodeOf([&] { Submit("resources: {gpus_per_rank: 1}\n"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CoordinatorTest, CancelStopsWorkersRefusesTheResultAndFreezesArtifacts) {
  std::string id = Submit();
  Run(id);
  WriteFileAtomic(c_->OutputDir(id) / "early.txt", "before the cancel");
  std::string lid = c_->Get(id).launcher_id();
  EXPECT_EQ(c_->Cancel(id, "test").state(), pb::JOB_STATE_CANCELLED);
  c_->Tick();
  ASSERT_FALSE(l_->terminated.empty());
  EXPECT_EQ(l_->terminated.front(), std::make_pair(lid, false));  // SIGTERM first
  // A worker that goes on: told to stop, its result refused, its late files never published.
  pb::HeartbeatResponse hb = c_->Heartbeat(Worker(id));
  EXPECT_TRUE(hb.cancel_requested());
  EXPECT_EQ(CodeOf([&] { ReportResult(id, true); }), grpc::StatusCode::FAILED_PRECONDITION);
  WriteFileAtomic(c_->OutputDir(id) / "late.txt", "after the cancel");
  auto arts = c_->ListArtifacts(id);
  ASSERT_EQ(arts.artifacts_size(), 1);
  EXPECT_EQ(arts.artifacts(0).path(), "early.txt");
  EXPECT_FALSE(arts.artifacts(0).sha256().empty());
  EXPECT_FALSE(c_->ResolveArtifact(id, "late.txt"));
  EXPECT_TRUE(c_->ResolveArtifact(id, "early.txt"));
  EXPECT_EQ(c_->Cancel(id, "again").state(), pb::JOB_STATE_CANCELLED);  // idempotent
}

// Issue 13 #1: a store that fails leaves memory and disk agreeing.
TEST_F(CoordinatorTest, StoreErrorsAreUnavailableAndChangeNothing) {
  std::string id = Submit();
  Run(id);
  store_.FailWith("disk I/O error");
  int writes = store_.writes();
  EXPECT_EQ(CodeOf([&] { Submit(); }), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(c_->List({}).jobs_size(), 1) << "a submit that was not stored must not exist";
  EXPECT_EQ(std::distance(fs::directory_iterator(cfg_.data_dir / "jobs"), fs::directory_iterator()),
            1);
  EXPECT_EQ(CodeOf([&] { c_->Cancel(id, ""); }), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  EXPECT_FALSE(c_->Get(id).cancel_requested());
  c_->Tick();
  EXPECT_TRUE(l_->terminated.empty()) << "workers of a job whose cancel was not recorded";
  Crash(id);
  c_->Tick();  // supervision cannot record the failure: it stays as it was, and tries again
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  EXPECT_EQ(store_.writes(), writes);
  store_.FailWith("");
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  // What a restarted psd sees is what this one answered.
  Restart();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  EXPECT_EQ(c_->List({}).jobs_size(), 1);
}

// Issue 13 #1: a launch whose launcher id cannot be recorded is undone, and the queue goes on.
TEST_F(CoordinatorTest, LaunchThatCannotBeRecordedIsUndoneAndTheQueueMovesOn) {
  cfg_.launch_timeout_s = 5;
  Restart();
  std::string a = Submit(), b = Submit();
  l_->on_launch = [&] { store_.FailWith("database is locked"); };
  c_->Tick();
  l_->on_launch = nullptr;
  EXPECT_EQ(StateOf(a), pb::JOB_STATE_LAUNCHING);
  EXPECT_TRUE(c_->Get(a).launcher_id().empty());
  c_->Tick();
  ASSERT_FALSE(l_->terminated.empty());
  EXPECT_EQ(l_->terminated.front().first, "L1");  // the unrecorded workers are stopped
  store_.FailWith("");
  clock_.Advance(6);
  c_->Tick();
  EXPECT_EQ(StateOf(a), pb::JOB_STATE_QUEUED) << c_->Get(a).message();
  c_->Tick();
  EXPECT_EQ(StateOf(b), pb::JOB_STATE_LAUNCHING) << "a job in backoff must not stall the queue";
}

TEST_F(CoordinatorTest, AFailedLaunchIsRetried) {
  std::string id = Submit();
  l_->fail_launch = true;
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_QUEUED);
  EXPECT_NE(c_->Get(id).message().find("launch failed: no capacity"), std::string::npos);
}

// Issue 13 #8: the time limit counts from the first start, across attempts and psd restarts.
TEST_F(CoordinatorTest, TimeLimitCountsFromTheFirstStartAcrossAttemptsAndRestarts) {
  std::string id = Submit("resources: {time_limit_minutes: 1}\n", 5);
  Run(id);
  clock_.Advance(30);
  Crash(id);
  c_->Tick();
  clock_.Advance(11);
  Run(id);    // attempt 2 at 41 s
  Restart();  // psd restarts; the workers are still running
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  clock_.Advance(15);
  c_->Heartbeat(Worker(id));
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);  // 56 s
  clock_.Advance(5);
  c_->Heartbeat(Worker(id));
  c_->Tick();  // 61 s since the first start
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_FAILED);
  EXPECT_NE(c_->Get(id).message().find("time limit of 1 minutes exceeded"), std::string::npos);
}

TEST_F(CoordinatorTest, RestartReattachesRunningWorkersAndRelaunchesGoneOnes) {
  std::string a = Submit();
  Run(a);
  cfg_.max_jobs = 2;
  Restart();
  std::string b = Submit();
  Run(b);
  Crash(b);
  Restart();
  EXPECT_EQ(StateOf(a), pb::JOB_STATE_RUNNING);
  EXPECT_NE(c_->Get(a).message().find("re-attached"), std::string::npos);
  EXPECT_EQ(StateOf(b), pb::JOB_STATE_QUEUED);
  EXPECT_NE(c_->Get(b).message().find("while psd was down"), std::string::npos);
}

TEST_F(CoordinatorTest, SuccessReportedBeforeAnOutageSurvivesIt) {
  std::string id = Submit();
  Run(id);
  store_.FailWith("disk full");
  EXPECT_EQ(CodeOf([&] { ReportResult(id, true); }), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);  // the worker retries the report
  store_.FailWith("");
  ReportResult(id, true);
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_SUCCEEDED);
}

// A store write waiting on a locked database (SQLite's busy wait, up to 5 s) must not hold up the
// running worker's heartbeats and progress, nor reads: were they held, psd would find a live
// worker silent for the length of the wait, end its attempt and run the job again.
TEST_F(CoordinatorTest, WorkerReportsDoNotWaitForAStoreWriteAndTheAttemptStaysAlive) {
  cfg_.heartbeat_timeout_s = 3;
  Restart();
  std::string id = Submit();
  Run(id);
  const pb::WorkerId w = Worker(id);
  store_.HoldWrites();  // another process holds the database
  auto cancel = std::async(std::launch::async, [&] { return CodeOf([&] { c_->Cancel(id, ""); }); });
  ASSERT_TRUE(test::WaitFor([&] { return store_.waiting() == 1; }, 10, 0.001));
  for (int step = 1; step <= 3; ++step) {  // 6 s of reports while the cancel waits
    clock_.Advance(2);
    pb::ReportProgressRequest p;
    *p.mutable_worker() = w;
    p.mutable_event()->set_step(step);
    auto report = std::async(std::launch::async, [&] {
      c_->Heartbeat(w);
      c_->Progress(p);
      return c_->Get(id).progress().step();
    });
    bool prompt = report.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    if (!prompt) store_.ReleaseWrites("database is locked");  // let the test end
    ASSERT_TRUE(prompt) << "step " << step << ": a worker report waited for another job write";
    EXPECT_EQ(report.get(), step);
  }
  store_.ReleaseWrites("database is locked");  // the busy timeout expires
  EXPECT_EQ(cancel.get(), grpc::StatusCode::UNAVAILABLE);
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING) << c_->Get(id).message();
  EXPECT_EQ(c_->Get(id).attempt(), 1);
  EXPECT_FALSE(c_->Get(id).cancel_requested());
  EXPECT_EQ(l_->launches.size(), 1u) << "the job ran twice";
  EXPECT_TRUE(l_->terminated.empty());
}

// A progress report arriving while the store cannot be written is kept (and counts as a sign of
// life); the worker is not told it failed, and the progress is written once the store takes it.
TEST_F(CoordinatorTest, ProgressTheStoreCannotTakeIsKeptAndWrittenLater) {
  cfg_.heartbeat_timeout_s = 3;
  Restart();
  std::string id = Submit();
  Run(id);
  store_.FailWith("database is locked");
  clock_.Advance(6);  // long enough since the last write that this progress is written through
  pb::ReportProgressRequest p;
  *p.mutable_worker() = Worker(id);
  p.mutable_event()->set_step(7);
  EXPECT_EQ(CodeOf([&] { c_->Progress(p); }), grpc::StatusCode::OK);
  EXPECT_EQ(c_->Get(id).progress().step(), 7);
  clock_.Advance(2);
  c_->Tick();  // the write still fails: tried again later
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
  store_.FailWith("");
  c_->Tick();
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING) << c_->Get(id).message();
  EXPECT_EQ(l_->launches.size(), 1u) << "the job ran twice";
  clock_.Advance(5);
  c_->Heartbeat(Worker(id));
  c_->Tick();
  Restart();  // what the store holds now
  EXPECT_EQ(c_->Get(id).progress().step(), 7) << "the kept progress was never written";
  EXPECT_EQ(StateOf(id), pb::JOB_STATE_RUNNING);
}

// Issue 13 #7: one unreadable row fails that job only, and the coordinator starts.
TEST_F(CoordinatorTest, CorruptRowMarksThatJobFailedAndTheRestRun) {
  std::string good = Submit();
  store_.PutCorrupt("j000009", "the stored record does not parse as a Job");
  Restart();
  EXPECT_EQ(StateOf("j000009"), pb::JOB_STATE_FAILED);
  EXPECT_NE(c_->Get("j000009").message().find("cannot read this job's record"), std::string::npos);
  Run(good);
  pb::DeleteJobRequest del;
  del.set_id("j000009");
  c_->Delete(del);
  EXPECT_EQ(CodeOf([&] { c_->Get("j000009"); }), grpc::StatusCode::NOT_FOUND);
}

// Issue 13 #6: finished jobs keep a bounded event history without the job file.
TEST_F(CoordinatorTest, EventsAreBoundedAndCarryNoJobFile) {
  std::string id = Submit("# " + std::string(100000, 'c'));
  Run(id);
  for (int i = 0; i < 400; ++i) {
    pb::ReportProgressRequest p;
    *p.mutable_worker() = Worker(id);
    p.mutable_event()->set_step(i);
    c_->Progress(p);
  }
  EXPECT_EQ(c_->jobs().EventCount(), JobManager::kActiveEvents);
  uint64_t version = 1;
  std::vector<pb::WatchJobResponse> events;
  c_->Watch(id, version, events, std::chrono::milliseconds(0));
  ASSERT_FALSE(events.empty());
  for (const auto& e : events) EXPECT_TRUE(e.job().original_yaml().empty());
  ReportResult(id, true);
  EXPECT_LE(c_->jobs().EventCount(), JobManager::kFinishedEvents);
}

// Issue 13 #6: lists page, and by default carry summaries without the job file.
TEST_F(CoordinatorTest, ListPagesSummaries) {
  for (int i = 0; i < 5; ++i) Submit("# " + std::string(1000, 'c'));
  pb::ListJobsRequest req;
  req.set_page_size(2);
  std::vector<std::string> ids;
  do {
    auto page = c_->List(req);
    for (const auto& j : page.jobs()) {
      ids.push_back(j.id());
      EXPECT_TRUE(j.original_yaml().empty());
      EXPECT_TRUE(j.spec_yaml().empty());
      EXPECT_EQ(j.history_size(), 0);
      EXPECT_EQ(j.spec().method().name(), "proxsparse");
      EXPECT_TRUE(j.spec().calibration().path().empty());
    }
    req.set_page_token(page.next_page_token());
  } while (!req.page_token().empty());
  EXPECT_EQ(ids, (std::vector<std::string>{"j000001", "j000002", "j000003", "j000004", "j000005"}));
  req.set_full(true);
  req.set_page_size(1);
  EXPECT_FALSE(c_->List(req).jobs(0).spec().calibration().path().empty());
}

TEST_F(CoordinatorTest, DeleteRemovesAFinishedJobsRecordAndFiles) {
  std::string id = Submit();
  pb::DeleteJobRequest del;
  del.set_id(id);
  EXPECT_EQ(CodeOf([&] { c_->Delete(del); }), grpc::StatusCode::FAILED_PRECONDITION);
  c_->Cancel(id, "");
  store_.FailWith("disk I/O error");
  EXPECT_EQ(CodeOf([&] { c_->Delete(del); }), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(fs::exists(c_->JobDir(id)));
  store_.FailWith("");
  c_->Delete(del);
  EXPECT_FALSE(fs::exists(c_->JobDir(id)));
  EXPECT_EQ(CodeOf([&] { c_->Get(id); }), grpc::StatusCode::NOT_FOUND);
  Restart();
  EXPECT_EQ(CodeOf([&] { c_->Get(id); }), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Submit(), "j000002");  // ids are never reused

  std::string kept = "j000002";
  WriteFileAtomic(c_->OutputDir(kept) / "model.bin", "weights");
  c_->Cancel(kept, "");
  del.set_id(kept);
  del.set_keep_artifacts(true);
  EXPECT_EQ(c_->Delete(del).kept_dir(), c_->OutputDir(kept).string());
  EXPECT_TRUE(fs::exists(c_->OutputDir(kept) / "model.bin"));
  EXPECT_FALSE(fs::exists(c_->JobDir(kept) / "job.yaml"));
}

TEST_F(CoordinatorTest, RetentionDeletesFinishedJobsPastTheirAge) {
  cfg_.retain_finished_s = 600;
  Restart();
  std::string old_job = Submit(), running = Submit();
  c_->Cancel(old_job, "");
  Run(running);
  clock_.Advance(500);
  c_->Heartbeat(Worker(running));
  c_->Tick();
  EXPECT_EQ(StateOf(old_job), pb::JOB_STATE_CANCELLED);
  clock_.Advance(150);
  c_->Heartbeat(Worker(running));
  c_->Tick();
  EXPECT_EQ(CodeOf([&] { c_->Get(old_job); }), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(StateOf(running), pb::JOB_STATE_RUNNING);
}

// Issue 13 #8: hashes are computed once, when the job publishes, and kept in its manifest.
TEST_F(CoordinatorTest, ArtifactHashesAreComputedOnceAtPublish) {
  std::string id = Submit();
  Run(id);
  WriteFileAtomic(c_->OutputDir(id) / "masks.bin", "mask bytes");
  fs::create_directories(c_->OutputDir(id) / "checkpoints/step-5");
  WriteFileAtomic(c_->OutputDir(id) / "checkpoints/step-5/x", "not published");
  EXPECT_TRUE(c_->ListArtifacts(id).artifacts(0).sha256().empty()) << "running: sizes only";
  ReportResult(id, true);
  auto first = c_->ListArtifacts(id);
  ASSERT_EQ(first.artifacts_size(), 1);
  EXPECT_EQ(first.artifacts(0).sha256(), Sha256File(c_->OutputDir(id) / "masks.bin"));
  EXPECT_TRUE(fs::exists(c_->JobDir(id) / "manifest.json"));
  // Were it hashed again, the listing would change with the bytes.
  WriteFileAtomic(c_->OutputDir(id) / "masks.bin", "other byte");
  EXPECT_EQ(c_->ListArtifacts(id).artifacts(0).sha256(), first.artifacts(0).sha256());
}

TEST_F(CoordinatorTest, StaleAttemptsAreRefused) {
  std::string id = Submit();
  Run(id);
  pb::WorkerId w = Worker(id);
  w.set_attempt(7);
  EXPECT_EQ(CodeOf([&] { c_->Heartbeat(w); }), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace ps
