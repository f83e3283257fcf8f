// The coordinator: the API's verbs over a set of managers, in the manner of a cluster control
// plane — JobManager (records, state machine, watch events, persisted to a JobStore before memory
// changes), WorkerSupervisor (stopping workers), ArtifactManager (job directories, manifests),
// the pure policy of policy.h (retries, supervision, admission) and the job metrics. Time comes
// from an injected Clock and the scheduler can be ticked by hand, so tests drive the whole policy
// in-process with a MemoryJobStore and a scripted Launcher.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxsparse/v1/job_service.pb.h"
#include "proxsparse/v1/worker_service.pb.h"
#include "server/artifact_manager.h"
#include "server/clock.h"
#include "server/job_manager.h"
#include "server/job_store.h"
#include "server/launcher.h"
#include "server/metrics.h"
#include "server/policy.h"
#include "server/submit_checks.h"
#include "server/worker_supervisor.h"

namespace ps {

struct CoordinatorConfig {
  std::filesystem::path data_dir;  // jobs/<id>/ live here
  std::string worker_bin = "psworker";
  std::string advertise = "127.0.0.1:50051";  // address workers use to reach psd
  std::string worker_token_file;              // passed to workers as --token-file
  std::string worker_tls_ca;                  // passed to workers as --tls-ca
  int max_jobs = 1;                           // concurrently LAUNCHING or RUNNING
  int max_cpus = 0;                           // 0: no limit
  int max_gpus = 0;      // jobs asking for more GPUs than this never start (0 and a GPU job:
                         // rejected at submit)
  int max_attempts = 3;  // default for submits; at most kMaxAttemptsCap
  // GiB per GPU; > 0: cuda jobs whose planned peak (common/memory_plan.h) exceeds it are refused.
  double gpu_memory_gib = 0;
  double heartbeat_timeout_s = 30;
  double launch_timeout_s = 300;  // from launch to Register, not counting a Slurm queue wait
  int heartbeat_interval_ms = 2000;
  double kill_grace_s = 5;          // SIGTERM, then SIGKILL after this
  double finished_metrics_s = 600;  // finished jobs keep their per-job series this long
  double tick_s = 0.2;
  RetryPolicy retry;
  double retain_finished_s = 0;  // finished jobs older than this are deleted; 0: kept
  SubmitLimits submit_limits;    // allowed input roots, ranks and memory (server/submit_checks.h)
};

class Coordinator {
 public:
  // `clock` (default: the system clock) must outlive the coordinator; `random` returns values
  // in [0, 1) for the retry jitter (default: a seeded generator).
  Coordinator(CoordinatorConfig cfg, JobStore& store, std::unique_ptr<Launcher> launcher,
              const Clock* clock = nullptr, std::function<double()> random = {});
  ~Coordinator();
  // Loads every job from the store, re-attaches or re-queues unfinished ones; with `run_loop`
  // starts the scheduler thread (tests call Tick() themselves).
  void Start(bool run_loop = true);
  void Stop();
  // One round: stop workers that are due, supervise unfinished jobs, admit queued ones, apply
  // the retention policy, write unsaved progress.
  void Tick();

  proxsparse::v1::Job Submit(const proxsparse::v1::SubmitJobRequest& req);
  proxsparse::v1::Job Get(const std::string& id) { return jobs_.Get(id); }
  proxsparse::v1::ListJobsResponse List(const proxsparse::v1::ListJobsRequest& req) {
    return jobs_.List(req);
  }
  proxsparse::v1::Job Cancel(const std::string& id, const std::string& reason);
  proxsparse::v1::DeleteJobResponse Delete(const proxsparse::v1::DeleteJobRequest& req);
  // Events of job `id` after `version` (updated); waits up to `timeout` when there are none.
  // Returns false when the job is finished and every event has been delivered.
  bool Watch(const std::string& id, uint64_t& version,
             std::vector<proxsparse::v1::WatchJobResponse>& out,
             std::chrono::milliseconds timeout) {
    return jobs_.Watch(id, version, out, timeout);
  }
  proxsparse::v1::ListArtifactsResponse ListArtifacts(const std::string& id);
  std::optional<std::filesystem::path> ResolveArtifact(const std::string& id,
                                                       const std::string& relative);

  proxsparse::v1::RegisterResponse Register(const proxsparse::v1::RegisterRequest& req);
  proxsparse::v1::HeartbeatResponse Heartbeat(const proxsparse::v1::WorkerId& w);
  proxsparse::v1::HeartbeatResponse Progress(const proxsparse::v1::ReportProgressRequest& req);
  proxsparse::v1::HeartbeatResponse Checkpoint(const proxsparse::v1::ReportCheckpointRequest& req);
  void Result(const proxsparse::v1::ReportResultRequest& req);

  // Recomputes the job gauges of docs/metrics.md into `m`.
  void FillMetrics(MetricsRegistry& m);
  std::filesystem::path JobDir(const std::string& id) const { return artifacts_.JobDir(id); }
  std::filesystem::path OutputDir(const std::string& id) const { return artifacts_.OutputDir(id); }
  std::filesystem::path LogFile(const std::string& id) const { return artifacts_.LogFile(id); }
  const CoordinatorConfig& config() const { return cfg_; }
  std::string LauncherName() const { return launcher_->Name(); }
  void SetAdvertise(const std::string& addr) { cfg_.advertise = addr; }  // before Start()
  uint64_t failures_total() const { return failures_total_; }
  const JobManager& jobs() const { return jobs_; }
  const WorkerSupervisor& supervisor() const { return supervisor_; }

 private:
  void Loop();
  void Recover(const std::string& id);
  void Launch(const std::string& id);
  void SuperviseActive();
  void AdmitQueued();
  void ApplyRetention();
  // Writes the progress that in-memory reports left unsaved, at most every kProgressWriteSeconds
  // per job; a write the store refuses is tried again as long after.
  void SaveProgress();
  static constexpr double kProgressWriteSeconds = 5;
  // Ends attempt `attempt` of job `id` if it is still current: back to QUEUED (after a backoff)
  // while attempts remain and `retry`, else FAILED; then stops its workers.
  void EndAttempt(const std::string& id, int attempt, const std::string& reason, bool retry,
                  bool kill_now = false);
  // The part of EndAttempt that changes the record (inside a JobManager::Update).
  void FailAttemptIn(proxsparse::v1::Job& j, JobRuntime& rt, const std::string& reason, bool retry);
  void Succeed(const std::string& id, int attempt, const std::string& message);
  JobSpec ValidateSubmission(const proxsparse::v1::SubmitJobRequest& req) const;
  // The job as submitted (spec, texts, hash, attempts, launcher); no id, time or directories.
  proxsparse::v1::Job JobFromSubmission(const JobSpec& spec,
                                        const proxsparse::v1::SubmitJobRequest& req) const;
  proxsparse::v1::Job NewJobRecord(const JobSpec& spec,
                                   const proxsparse::v1::SubmitJobRequest& req);
  LaunchRequest MakeLaunchRequest(const proxsparse::v1::Job& job) const;
  double Random();

  CoordinatorConfig cfg_;
  JobStore& store_;
  std::unique_ptr<Launcher> launcher_;
  const Clock& clock_;
  std::function<double()> random_;
  std::mutex random_mu_;
  std::mt19937_64 rng_;
  JobManager jobs_;
  WorkerSupervisor supervisor_;
  ArtifactManager artifacts_;
  std::atomic<uint64_t> failures_total_{0};
  Clock::Steady last_retention_{};
  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ps
