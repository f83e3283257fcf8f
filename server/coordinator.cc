#include "server/coordinator.h"

#include <algorithm>

#include "common/error.h"
#include "common/job_spec.h"
#include "common/memory_plan.h"
#include "proto/spec_convert.h"
#include "server/api_error.h"
#include "server/job_metrics.h"
#include "server/job_state.h"
#include "server/log.h"

namespace ps {

namespace pb = proxsparse::v1;
namespace fs = std::filesystem;
using grpc::StatusCode;

namespace {

const Clock& DefaultClock() {
  static SystemClock clock;
  return clock;
}

Clock::Steady After(Clock::Steady t, double s) {
  return t + std::chrono::duration_cast<Clock::Steady::duration>(std::chrono::duration<double>(s));
}

// Throws unless `w` is the current attempt of `j`, and `j` is unfinished (or, when
// `allow_cancelled`, cancelled: the reply then tells the worker to stop).
void CheckWorker(const pb::Job& j, const pb::WorkerId& w, bool allow_cancelled) {
  if (w.attempt() != j.attempt())
    throw ApiError(StatusCode::FAILED_PRECONDITION,
                   "job " + w.job_id() + " attempt " + std::to_string(w.attempt()) +
                       " is not current (attempt " + std::to_string(j.attempt()) + ")");
  if (!IsActive(j.state()) && !(allow_cancelled && j.state() == pb::JOB_STATE_CANCELLED))
    throw ApiError(StatusCode::FAILED_PRECONDITION,
                   "job " + w.job_id() + " is " + JobStateName(j.state()));
}

pb::HeartbeatResponse Reply(const pb::Job& j) {
  pb::HeartbeatResponse resp;
  resp.set_cancel_requested(j.cancel_requested());
  return resp;
}

}  // namespace

Coordinator::Coordinator(CoordinatorConfig cfg, JobStore& store, std::unique_ptr<Launcher> launcher,
                         const Clock* clock, std::function<double()> random)
    : cfg_(std::move(cfg)),
      store_(store),
      launcher_(std::move(launcher)),
      clock_(clock ? *clock : DefaultClock()),
      random_(std::move(random)),
      rng_(std::random_device{}()),
      jobs_(store_, clock_),
      supervisor_(*launcher_, clock_),
      artifacts_(cfg_.data_dir) {}

Coordinator::~Coordinator() { Stop(); }

void Coordinator::Start(bool run_loop) {
  jobs_.Load(store_.LoadAll());
  // Unfinished attempts: re-attach when the workers still run, otherwise relaunch (the next
  // attempt resumes from the last checkpoint).
  for (const auto& id : jobs_.Ids([](const pb::Job& j) { return IsActive(j.state()); })) {
    try {
      Recover(id);
    } catch (const std::exception& e) {  // a store error: supervision tries again each tick
      LogEvent(spdlog::level::err, "job.recover_failed", {{"job_id", id}, {"error", e.what()}});
    }
  }
  last_retention_ = clock_.SteadyNow();
  if (run_loop) thread_ = std::thread([this] { Loop(); });
}

void Coordinator::Stop() {
  {
    std::lock_guard lock(loop_mu_);
    if (stop_) return;
    stop_ = true;
  }
  loop_cv_.notify_all();
  jobs_.WakeWatchers();
  if (thread_.joinable()) thread_.join();
  artifacts_.Stop();
}

void Coordinator::Recover(const std::string& id) {
  pb::Job j = jobs_.Get(id);
  RunStatus st = j.launcher_id().empty() ? RunStatus{RunState::kGone, 0, "never launched"}
                                         : launcher_->Poll(j.launcher_id());
  if (st.state == RunState::kRunning || st.state == RunState::kPending) {
    jobs_.Update(id, [&](pb::Job& job, JobRuntime& rt) -> std::optional<Commit> {
      rt.heartbeat = rt.launched = clock_.SteadyNow();
      job.set_message("psd restarted; re-attached to attempt " + std::to_string(job.attempt()) +
                      ": " + st.detail);
      return Commit{};
    });
  } else if (j.result_ok()) {
    Succeed(id, j.attempt(), "finished while psd was down");
  } else {
    EndAttempt(id, j.attempt(), "workers ended while psd was down (" + st.detail + ")", true);
  }
}

double Coordinator::Random() {
  if (random_) return random_();
  std::lock_guard lock(random_mu_);
  return std::uniform_real_distribution<double>(0, 1)(rng_);
}

void Coordinator::FailAttemptIn(pb::Job& j, JobRuntime& rt, const std::string& reason, bool retry) {
  int attempt = j.attempt();
  if (retry && attempt < j.max_attempts()) {
    double delay = RetryDelaySeconds(cfg_.retry, attempt, Random());
    rt.not_before = After(clock_.SteadyNow(), delay);
    std::string from = j.checkpoint_step() >= 0 && !j.checkpoint_dir().empty()
                           ? "the checkpoint of step " + std::to_string(j.checkpoint_step())
                           : "the start";
    char when[32];
    std::snprintf(when, sizeof when, "%.1f", delay);
    ApplyTransition(j, pb::JOB_STATE_QUEUED,
                    "attempt " + std::to_string(attempt) + " failed: " + reason +
                        "; retrying from " + from + " in " + when + " s",
                    clock_.WallNow());
  } else {
    ApplyTransition(j, pb::JOB_STATE_FAILED,
                    "attempt " + std::to_string(attempt) + " of " +
                        std::to_string(j.max_attempts()) + " failed: " + reason,
                    clock_.WallNow());
  }
}

void Coordinator::EndAttempt(const std::string& id, int attempt, const std::string& reason,
                             bool retry, bool kill_now) {
  std::string lid;
  bool ended = false;
  jobs_.Update(id, [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
    if (!IsActive(j.state()) || j.attempt() != attempt) return std::nullopt;  // changed meanwhile
    lid = j.launcher_id();
    FailAttemptIn(j, rt, reason, retry);
    ended = true;
    return Commit{};
  });
  if (!ended) return;
  ++failures_total_;
  supervisor_.Stop(lid, 0, kill_now ? 0 : cfg_.kill_grace_s);
}

void Coordinator::Succeed(const std::string& id, int attempt, const std::string& message) {
  std::string lid;
  bool done = false;
  jobs_.Update(id, [&](pb::Job& j, JobRuntime&) -> std::optional<Commit> {
    if (!IsActive(j.state()) || j.attempt() != attempt) return std::nullopt;
    j.set_result_ok(true);
    lid = j.launcher_id();
    ApplyTransition(j, pb::JOB_STATE_SUCCEEDED, message, clock_.WallNow());
    done = true;
    return Commit{};
  });
  if (!done) return;
  // The worker exits by itself; one that lingers is stopped after a grace period.
  supervisor_.Stop(lid, 30, 10);
  artifacts_.Seal(id, artifacts_.Snapshot(id), true);
}

JobSpec Coordinator::ValidateSubmission(const pb::SubmitJobRequest& req) const {
  JobSpec spec;
  if (!req.yaml().empty()) {
    if (req.base_dir().empty() || fs::path(req.base_dir()).is_relative())
      throw ApiError(StatusCode::INVALID_ARGUMENT,
                     "base_dir: must be an absolute directory (relative paths in the job file "
                     "resolve against it)");
    spec = ParseJobSpec(req.yaml(), req.base_dir(),
                        req.source_name().empty() ? "job file" : req.source_name());
  } else if (req.has_spec()) {
    spec = JobSpecFromProto(req.spec());
  } else {
    throw ApiError(StatusCode::INVALID_ARGUMENT, "yaml: empty (send the job file's text)");
  }
  CheckSubmitLimits(spec, cfg_.submit_limits);  // first: nothing is looked at outside the roots
  CheckJobInputs(spec);
  CheckJobFitsMemory(spec, cfg_.gpu_memory_gib);  // the memory planner (common/memory_plan.h)
  if (spec.resources.TotalGpus() > cfg_.max_gpus)
    throw ApiError(StatusCode::INVALID_ARGUMENT,
                   "resources.gpus_per_rank: the job needs " +
                       std::to_string(spec.resources.TotalGpus()) + " GPUs, this psd offers " +
                       std::to_string(cfg_.max_gpus) + " (psd --max-gpus)");
  if (cfg_.max_cpus > 0 && spec.resources.TotalCpus() > cfg_.max_cpus)
    throw ApiError(StatusCode::INVALID_ARGUMENT,
                   "resources.cpus_per_rank: the job needs " +
                       std::to_string(spec.resources.TotalCpus()) + " CPUs, this psd offers " +
                       std::to_string(cfg_.max_cpus) + " (psd --max-cpus)");
  if (req.max_attempts() < 0 || req.max_attempts() > kMaxAttemptsCap)
    throw ApiError(
        StatusCode::INVALID_ARGUMENT,
        "max_attempts: must be between 0 (psd's default) and " + std::to_string(kMaxAttemptsCap));
  return spec;
}

pb::Job Coordinator::JobFromSubmission(const JobSpec& spec, const pb::SubmitJobRequest& req) const {
  pb::Job job;
  job.set_name(spec.name);
  *job.mutable_spec() = JobSpecToProto(spec);
  job.set_spec_yaml(JobSpecToYaml(spec));
  job.set_original_yaml(req.yaml());
  job.set_spec_hash(JobSpecHash(spec));
  job.set_max_attempts(req.max_attempts() > 0 ? req.max_attempts() : cfg_.max_attempts);
  job.set_launcher(launcher_->Name());
  job.set_checkpoint_step(-1);
  return job;
}

pb::Job Coordinator::NewJobRecord(const JobSpec& spec, const pb::SubmitJobRequest& req) {
  pb::Job job = JobFromSubmission(spec, req);
  job.set_id(store_.NextId());
  job.set_state(pb::JOB_STATE_QUEUED);
  *job.mutable_create_time() = clock_.WallNow();
  job.set_job_dir(JobDir(job.id()).string());
  job.set_output_dir(OutputDir(job.id()).string());
  pb::StateTransition* t = job.add_history();
  t->set_to(pb::JOB_STATE_QUEUED);
  *t->mutable_time() = job.create_time();
  t->set_message("submitted");
  job.set_message("submitted");
  return job;
}

pb::Job Coordinator::Submit(const pb::SubmitJobRequest& req) {
  JobSpec spec = ValidateSubmission(req);
  if (req.dry_run()) {  // valid: the job as it would be queued, without an id; nothing stored
    pb::Job job = JobFromSubmission(spec, req);
    job.set_message("dry run: valid, not submitted");
    return job;
  }
  pb::Job job = NewJobRecord(spec, req);
  const std::string id = job.id();
  artifacts_.CreateJobDir(id, job.spec_yaml(), req.yaml());
  try {
    return jobs_.Add(std::move(job));
  } catch (...) {  // not recorded: no job, no directory
    std::error_code ec;
    fs::remove_all(JobDir(id), ec);
    throw;
  }
}

pb::Job Coordinator::Cancel(const std::string& id, const std::string& reason) {
  if (IsTerminal(jobs_.Get(id).state())) return jobs_.Get(id);
  // The published set as the cancel is recorded: anything written later is never served.
  std::vector<ArtifactInfo> published = artifacts_.Snapshot(id);
  std::string why = reason.empty() ? "cancelled by request" : "cancelled: " + reason;
  std::string lid;
  bool cancelled = false;
  pb::Job job = jobs_.Update(id, [&](pb::Job& j, JobRuntime&) -> std::optional<Commit> {
    if (IsTerminal(j.state())) return std::nullopt;
    lid = IsActive(j.state()) ? j.launcher_id() : "";
    j.set_cancel_requested(true);
    ApplyTransition(j, pb::JOB_STATE_CANCELLED, why, clock_.WallNow());
    cancelled = true;
    return Commit{};
  });
  if (cancelled) {
    supervisor_.Stop(lid, 0, cfg_.kill_grace_s);
    artifacts_.Seal(id, std::move(published), false);
  }
  return job;
}

pb::DeleteJobResponse Coordinator::Delete(const pb::DeleteJobRequest& req) {
  // Workers still being stopped may still write into the directory: wait for them.
  if (supervisor_.Stopping(jobs_.Get(req.id()).launcher_id()))
    throw ApiError(StatusCode::FAILED_PRECONDITION,
                   "job " + req.id() + "'s workers are still stopping; try again in a few seconds");
  pb::Job job = jobs_.Remove(req.id());  // the record first: files alone are harmless
  pb::DeleteJobResponse resp;
  resp.set_id(job.id());
  try {
    resp.set_kept_dir(artifacts_.RemoveJobFiles(job.id(), req.keep_artifacts()));
  } catch (const std::exception& e) {
    LogEvent(spdlog::level::warn, "job.delete_files_failed",
             {{"job_id", job.id()}, {"error", e.what()}});
    throw ApiError(StatusCode::INTERNAL,
                   "job " + job.id() + " was deleted but some of its files remain: " + e.what());
  }
  return resp;
}

pb::ListArtifactsResponse Coordinator::ListArtifacts(const std::string& id) {
  return artifacts_.List(jobs_.Get(id));
}

std::optional<fs::path> Coordinator::ResolveArtifact(const std::string& id,
                                                     const std::string& relative) {
  return artifacts_.Resolve(jobs_.Get(id), relative);
}

pb::RegisterResponse Coordinator::Register(const pb::RegisterRequest& req) {
  pb::Job job =
      jobs_.Update(req.worker().job_id(), [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
        CheckWorker(j, req.worker(), true);
        rt.heartbeat = clock_.SteadyNow();
        *j.mutable_heartbeat_time() = clock_.WallNow();
        if (j.state() != pb::JOB_STATE_LAUNCHING)
          return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, false};
        ApplyTransition(j, pb::JOB_STATE_RUNNING,
                        "attempt " + std::to_string(j.attempt()) + " running: rank 0 on " +
                            req.hostname() + " pid " + std::to_string(req.pid()) + ", " +
                            std::to_string(req.world_size()) + " rank(s)",
                        clock_.WallNow());
        return Commit{};
      });
  pb::RegisterResponse resp;
  resp.set_heartbeat_interval_ms(cfg_.heartbeat_interval_ms);
  resp.set_cancel_requested(job.cancel_requested());
  return resp;
}

// Heartbeats and progress are kept in memory and never wait on the store: a store that stalls
// or fails must not make psd take a live worker for a silent one (and run its job twice). The
// progress is written by the scheduler (SaveProgress).
pb::HeartbeatResponse Coordinator::Heartbeat(const pb::WorkerId& w) {
  return Reply(
      jobs_.UpdateInMemory(w.job_id(), [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
        CheckWorker(j, w, true);
        rt.heartbeat = clock_.SteadyNow();
        *j.mutable_heartbeat_time() = clock_.WallNow();
        return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, false};
      }));
}

pb::HeartbeatResponse Coordinator::Progress(const pb::ReportProgressRequest& req) {
  const pb::WorkerId& w = req.worker();
  return Reply(
      jobs_.UpdateInMemory(w.job_id(), [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
        CheckWorker(j, w, true);
        rt.heartbeat = clock_.SteadyNow();
        rt.unsaved = true;
        *j.mutable_heartbeat_time() = clock_.WallNow();
        *j.mutable_progress() = req.event();
        *j.mutable_progress()->mutable_time() = clock_.WallNow();
        return Commit{pb::WatchJobResponse::KIND_PROGRESS, false};
      }));
}

pb::HeartbeatResponse Coordinator::Checkpoint(const pb::ReportCheckpointRequest& req) {
  if (req.dir().empty() || fs::path(req.dir()).is_relative())
    throw ApiError(StatusCode::INVALID_ARGUMENT, "dir: must be an absolute path");
  const pb::WorkerId& w = req.worker();
  return Reply(jobs_.Update(w.job_id(), [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
    CheckWorker(j, w, true);
    rt.heartbeat = clock_.SteadyNow();
    j.set_checkpoint_step(req.step());
    j.set_checkpoint_dir(req.dir());
    *j.mutable_checkpoint_time() = clock_.WallNow();
    return Commit{pb::WatchJobResponse::KIND_CHECKPOINT, true};
  }));
}

void Coordinator::Result(const pb::ReportResultRequest& req) {
  const pb::WorkerId& w = req.worker();
  if (req.ok()) {
    // Recorded as this attempt's result first, so that the success survives the workers'
    // exit being seen before the transition (and a psd restart).
    jobs_.Update(w.job_id(), [&](pb::Job& j, JobRuntime&) -> std::optional<Commit> {
      CheckWorker(j, w, false);
      j.set_result_output_dir(req.output_dir());
      j.set_result_ok(true);
      *j.mutable_result() = req.result();
      // The worker deleted its training checkpoints after success: none is current any more.
      if (req.result().checkpoints_removed()) {
        j.set_checkpoint_step(-1);
        j.clear_checkpoint_dir();
        j.clear_checkpoint_time();
      }
      return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, true};
    });
    Succeed(w.job_id(), w.attempt(), req.message().empty() ? "finished" : req.message());
    return;
  }
  // A failure the worker diagnosed itself (bad data, divergence) would fail again.
  std::string lid;
  jobs_.Update(w.job_id(), [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
    CheckWorker(j, w, false);
    j.set_result_output_dir(req.output_dir());
    lid = j.launcher_id();
    FailAttemptIn(j, rt, "the worker reported: " + req.message(), false);
    return Commit{};
  });
  ++failures_total_;
  supervisor_.Stop(lid, 0, cfg_.kill_grace_s);
}

LaunchRequest Coordinator::MakeLaunchRequest(const pb::Job& job) const {
  LaunchRequest req;
  req.job_id = job.id();
  req.attempt = job.attempt();
  req.job_dir = JobDir(job.id());
  req.log_file = LogFile(job.id());
  req.worker_bin = cfg_.worker_bin;
  req.worker_args = {"--job",         (req.job_dir / "job.yaml").string(),
                     "--output",      OutputDir(job.id()).string(),
                     "--coordinator", cfg_.advertise,
                     "--job-id",      job.id(),
                     "--attempt",     std::to_string(req.attempt)};
  // psworker --resume continues from the newest complete checkpoint in its output directory
  // (the one the worker last reported, unless it crashed while writing a newer one).
  if (job.checkpoint_step() >= 0) req.worker_args.push_back("--resume");
  if (!cfg_.worker_token_file.empty())
    req.worker_args.insert(req.worker_args.end(), {"--token-file", cfg_.worker_token_file});
  if (!cfg_.worker_tls_ca.empty())
    req.worker_args.insert(req.worker_args.end(), {"--tls-ca", cfg_.worker_tls_ca});
  req.spec = ParseJobSpec(job.spec_yaml(), "/", "job " + job.id());
  return req;
}

void Coordinator::Launch(const std::string& id) {
  pb::Job job = jobs_.Update(id, [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
    if (j.state() != pb::JOB_STATE_QUEUED) return std::nullopt;
    j.set_attempt(j.attempt() + 1);
    j.set_result_ok(false);
    j.clear_launcher_id();
    rt.launched = rt.heartbeat = clock_.SteadyNow();
    rt.pending_in_queue = false;
    ApplyTransition(j, pb::JOB_STATE_LAUNCHING,
                    "attempt " + std::to_string(j.attempt()) + " of " +
                        std::to_string(j.max_attempts()) + " launching" +
                        (j.checkpoint_step() >= 0
                             ? " from checkpoint step " + std::to_string(j.checkpoint_step())
                             : ""),
                    clock_.WallNow());
    return Commit{};
  });
  if (job.state() != pb::JOB_STATE_LAUNCHING) return;
  std::string lid;
  try {
    lid = launcher_->Launch(MakeLaunchRequest(job));  // outside any lock: sbatch, kubectl are slow
  } catch (const std::exception& e) {
    EndAttempt(id, job.attempt(), std::string("launch failed: ") + e.what(), true);
    return;
  }
  try {
    jobs_.Update(id, [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
      if (!IsActive(j.state()) || j.attempt() != job.attempt() || !j.launcher_id().empty())
        throw Error("job " + id + " is " + JobStateName(j.state()) + " now");
      j.set_launcher_id(lid);
      rt.launched = clock_.SteadyNow();
      return Commit{};
    });
  } catch (const std::exception& e) {
    // Workers nobody could find after a restart must not run: undo the launch. The attempt
    // stays LAUNCHING without workers until the launch timeout retries it.
    LogEvent(spdlog::level::err, "job.launch_undone",
             {{"job_id", id}, {"launcher_id", lid}, {"error", e.what()}});
    supervisor_.Stop(lid, 0, 0);
  }
}

void Coordinator::Loop() {
  std::unique_lock lock(loop_mu_);
  while (!stop_) {
    lock.unlock();
    try {
      Tick();
    } catch (const std::exception& ex) {
      LogEvent(spdlog::level::err, "scheduler.error", {{"error", ex.what()}});
    }
    lock.lock();
    loop_cv_.wait_for(lock, std::chrono::milliseconds(static_cast<int>(cfg_.tick_s * 1000)),
                      [&] { return stop_; });
  }
}

void Coordinator::Tick() {
  supervisor_.Process();
  SuperviseActive();
  AdmitQueued();
  ApplyRetention();
  SaveProgress();
}

void Coordinator::SaveProgress() {
  auto now = clock_.SteadyNow();
  std::vector<std::string> due;
  jobs_.ForEach([&](const pb::Job& j, const JobRuntime& rt) {
    if (rt.unsaved && SecondsBetween(rt.last_persist, now) >= kProgressWriteSeconds)
      due.push_back(j.id());
  });
  for (const auto& id : due) {
    try {
      try {
        jobs_.Update(id, [](pb::Job&, JobRuntime& rt) -> std::optional<Commit> {
          if (!rt.unsaved) return std::nullopt;
          return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, true};
        });
      } catch (const StoreError&) {  // logged (store.write_failed); the progress stays in memory
        jobs_.UpdateInMemory(id, [&](pb::Job&, JobRuntime& rt) -> std::optional<Commit> {
          rt.last_persist = clock_.SteadyNow();  // tried again kProgressWriteSeconds from now
          return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, false};
        });
      }
    } catch (const std::exception& e) {  // deleted meanwhile
      LogEvent(spdlog::level::warn, "job.save_progress_failed",
               {{"job_id", id}, {"error", e.what()}});
    }
  }
}

void Coordinator::SuperviseActive() {
  struct Item {
    std::string id, lid;
    int attempt;
  };
  std::vector<Item> items;
  jobs_.ForEach([&](const pb::Job& j, const JobRuntime&) {
    if (IsActive(j.state())) items.push_back({j.id(), j.launcher_id(), j.attempt()});
  });
  for (const auto& it : items) {
    // Polled outside the job lock; a job that changed meanwhile is left alone.
    std::optional<RunStatus> st;
    if (!it.lid.empty()) st = launcher_->Poll(it.lid);
    Verdict v;
    try {
      jobs_.Update(it.id, [&](pb::Job& j, JobRuntime& rt) -> std::optional<Commit> {
        if (!IsActive(j.state()) || j.launcher_id() != it.lid || j.attempt() != it.attempt)
          return std::nullopt;
        auto now = clock_.SteadyNow();
        if (st && st->state == RunState::kPending) rt.launched = now;  // queue wait not counted
        rt.pending_in_queue = st && st->state == RunState::kPending;
        v = Supervise(j, st, SecondsBetween(rt.heartbeat, now), SecondsBetween(rt.launched, now),
                      clock_.WallSeconds(), {cfg_.heartbeat_timeout_s, cfg_.launch_timeout_s});
        return Commit{pb::WatchJobResponse::KIND_UNSPECIFIED, false};
      });
      if (v.kind == Verdict::kSucceeded) Succeed(it.id, it.attempt, v.reason);
      if (v.kind == Verdict::kRetry || v.kind == Verdict::kFail)
        EndAttempt(it.id, it.attempt, v.reason, v.kind == Verdict::kRetry, v.kill_now);
    } catch (const std::exception& e) {  // store errors: tried again next tick
      LogEvent(spdlog::level::err, "job.supervise_failed",
               {{"job_id", it.id}, {"error", e.what()}});
    }
  }
}

void Coordinator::AdmitQueued() {
  std::vector<Demand> active, queued;
  std::vector<std::pair<std::string, std::string>> expired;
  auto now = clock_.SteadyNow();
  double wall = clock_.WallSeconds();
  jobs_.ForEach([&](const pb::Job& j, const JobRuntime& rt) {
    if (IsActive(j.state())) active.push_back(DemandOf(j));
    if (j.state() != pb::JOB_STATE_QUEUED) return;
    if (auto why = TimeLimitExceeded(j, wall)) {
      expired.emplace_back(j.id(), *why);
      return;
    }
    Demand d = DemandOf(j);
    d.ready = now >= rt.not_before;
    queued.push_back(d);
  });
  for (const auto& [id, why] : expired) {
    try {
      jobs_.Update(id, [&](pb::Job& j, JobRuntime&) -> std::optional<Commit> {
        if (j.state() != pb::JOB_STATE_QUEUED) return std::nullopt;
        ApplyTransition(j, pb::JOB_STATE_FAILED, why, clock_.WallNow());
        return Commit{};
      });
    } catch (const std::exception& e) {
      LogEvent(spdlog::level::err, "job.fail_failed", {{"job_id", id}, {"error", e.what()}});
    }
  }
  for (const auto& id : Admit(active, queued, {cfg_.max_jobs, cfg_.max_cpus, cfg_.max_gpus})) {
    try {
      Launch(id);
    } catch (const std::exception& e) {  // the store refused LAUNCHING: the job stays queued
      LogEvent(spdlog::level::err, "job.launch_failed", {{"job_id", id}, {"error", e.what()}});
      break;  // FIFO: nothing behind it starts first
    }
  }
}

void Coordinator::ApplyRetention() {
  auto now = clock_.SteadyNow();
  if (cfg_.retain_finished_s <= 0 || SecondsBetween(last_retention_, now) < 60) return;
  last_retention_ = now;
  double cutoff = clock_.WallSeconds() - cfg_.retain_finished_s;
  for (const auto& id : jobs_.Ids([&](const pb::Job& j) {
         return IsTerminal(j.state()) && Seconds(j.end_time()) < cutoff;
       })) {
    try {
      pb::DeleteJobRequest req;
      req.set_id(id);
      Delete(req);
      LogEvent(spdlog::level::info, "job.retention_deleted", {{"job_id", id}});
    } catch (const std::exception& e) {
      LogEvent(spdlog::level::err, "job.retention_failed", {{"job_id", id}, {"error", e.what()}});
    }
  }
}

void Coordinator::FillMetrics(MetricsRegistry& m) {
  FillJobMetrics(jobs_, clock_.WallSeconds(), cfg_.finished_metrics_s, m);
}

}  // namespace ps
