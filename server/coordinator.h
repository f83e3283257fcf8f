// The coordinator's core: jobs in memory mirrored to the JobStore on every transition, the FIFO
// scheduler, supervision (exit codes, heartbeats, launch and time limits, retries from the last
// checkpoint) and the state the gRPC services and /metrics read. One mutex guards it all; the
// scheduler thread polls launchers without holding it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxsparse/v1/job_service.pb.h"
#include "proxsparse/v1/worker_service.pb.h"
#include "server/job_store.h"
#include "server/launcher.h"
#include "server/metrics.h"

namespace ps {

struct CoordinatorConfig {
  std::filesystem::path data_dir;  // jobs/<id>/ live here
  std::string worker_bin = "psworker";
  std::string advertise = "127.0.0.1:50051";  // address workers use to reach psd
  std::string worker_token_file;              // passed to workers as --token-file
  std::string worker_tls_ca;                  // passed to workers as --tls-ca
  int max_jobs = 1;                           // concurrently LAUNCHING or RUNNING
  int max_cpus = 0;                           // 0: no limit
  int max_gpus = 0;  // jobs asking for more GPUs than this never start (0 and a GPU job:
                     // rejected at submit)
  int max_attempts = 3;
  double heartbeat_timeout_s = 30;
  double launch_timeout_s = 300;  // from launch to Register, not counting a Slurm queue wait
  int heartbeat_interval_ms = 2000;
  double kill_grace_s = 5;          // SIGTERM, then SIGKILL after this
  double finished_metrics_s = 600;  // finished jobs keep their per-job series this long
  double tick_s = 0.2;
};

class Coordinator {
 public:
  Coordinator(CoordinatorConfig cfg, JobStore& store, std::unique_ptr<Launcher> launcher);
  ~Coordinator();
  // Loads every job from the store, re-attaches or re-queues unfinished ones, starts scheduling.
  void Start();
  void Stop();

  proxsparse::v1::Job Submit(const proxsparse::v1::SubmitJobRequest& req);
  proxsparse::v1::Job Get(const std::string& id);
  proxsparse::v1::ListJobsResponse List(const proxsparse::v1::ListJobsRequest& req);
  proxsparse::v1::Job Cancel(const std::string& id, const std::string& reason);
  // Events of job `id` after `version` (updated); waits up to `timeout` when there are none.
  // Returns false when the job is finished and every event has been delivered.
  bool Watch(const std::string& id, uint64_t& version,
             std::vector<proxsparse::v1::WatchJobResponse>& out, std::chrono::milliseconds timeout);

  proxsparse::v1::RegisterResponse Register(const proxsparse::v1::RegisterRequest& req);
  proxsparse::v1::HeartbeatResponse Heartbeat(const proxsparse::v1::WorkerId& w);
  proxsparse::v1::HeartbeatResponse Progress(const proxsparse::v1::ReportProgressRequest& req);
  proxsparse::v1::HeartbeatResponse Checkpoint(const proxsparse::v1::ReportCheckpointRequest& req);
  void Result(const proxsparse::v1::ReportResultRequest& req);

  // Recomputes the job gauges of docs/metrics.md into `m`.
  void FillMetrics(MetricsRegistry& m);
  std::filesystem::path JobDir(const std::string& id) const;
  std::filesystem::path OutputDir(const std::string& id) const { return JobDir(id) / "output"; }
  std::filesystem::path LogFile(const std::string& id) const {
    return JobDir(id) / "logs" / "worker.log";
  }
  const CoordinatorConfig& config() const { return cfg_; }
  std::string LauncherName() const { return launcher_->Name(); }
  uint64_t failures_total() const { return failures_total_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    proxsparse::v1::Job job;
    uint64_t version = 0;
    std::deque<std::pair<uint64_t, proxsparse::v1::WatchJobResponse>> events;
    Clock::time_point heartbeat{};  // last sign of life
    Clock::time_point launched{};   // when the current attempt was launched
    Clock::time_point last_persist{};
    bool pending_in_queue = false;  // launcher says the attempt waits in an external queue
  };
  // Workers being stopped: SIGTERM (or scancel / delete) at term_at, SIGKILL at force_at.
  struct Kill {
    std::string launcher_id;
    Clock::time_point term_at;
    Clock::time_point force_at;
    bool termed = false;
    bool forced = false;
  };

  Entry& Find(const std::string& id);
  Entry& FindWorker(const proxsparse::v1::WorkerId& w, bool allow_cancelled);
  void Changed(Entry& e, proxsparse::v1::WatchJobResponse::Kind kind, bool persist);
  void Transition(Entry& e, proxsparse::v1::JobState to, const std::string& message);
  void AttemptFailed(Entry& e, const std::string& reason, bool retry = true);
  void LaunchLocked(Entry& e);
  void StopWorkersLocked(Entry& e, double grace_s);
  void Loop();
  void Tick();

  CoordinatorConfig cfg_;
  JobStore& store_;
  std::unique_ptr<Launcher> launcher_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Entry> jobs_;
  std::vector<Kill> kills_;
  std::atomic<uint64_t> failures_total_{0};
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ps
