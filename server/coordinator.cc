#include "server/coordinator.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "common/error.h"
#include "common/file_util.h"
#include "common/job_spec.h"
#include "proto/spec_convert.h"
#include "server/api_error.h"

namespace ps {

namespace pb = proxsparse::v1;
namespace fs = std::filesystem;
using google::protobuf::util::TimeUtil;
using grpc::StatusCode;

namespace {

google::protobuf::Timestamp Now() { return TimeUtil::GetCurrentTime(); }
double Seconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
}
double NowSeconds() { return Seconds(Now()); }
bool Active(pb::JobState s) { return s == pb::JOB_STATE_LAUNCHING || s == pb::JOB_STATE_RUNNING; }

}  // namespace

Coordinator::Coordinator(CoordinatorConfig cfg, JobStore& store, std::unique_ptr<Launcher> launcher)
    : cfg_(std::move(cfg)), store_(store), launcher_(std::move(launcher)) {
  fs::create_directories(cfg_.data_dir / "jobs");
}

Coordinator::~Coordinator() { Stop(); }

fs::path Coordinator::JobDir(const std::string& id) const { return cfg_.data_dir / "jobs" / id; }

void Coordinator::Start() {
  std::vector<pb::Job> loaded = store_.LoadAll();
  std::lock_guard lock(mu_);
  for (auto& j : loaded) {
    Entry& e = jobs_[j.id()];
    e.job = std::move(j);
    e.version = 1;
    e.heartbeat = e.launched = e.last_persist = Clock::now();
  }
  // Unfinished attempts: re-attach when the workers still run, otherwise relaunch (the next
  // attempt resumes from the last checkpoint).
  for (auto& [id, e] : jobs_) {
    if (!Active(e.job.state())) continue;
    RunStatus st = e.job.launcher_id().empty() ? RunStatus{RunState::kGone, 0, "never launched"}
                                               : launcher_->Poll(e.job.launcher_id());
    if (st.state == RunState::kRunning || st.state == RunState::kPending) {
      e.job.set_message("psd restarted; re-attached to attempt " + std::to_string(e.job.attempt()) +
                        ": " + st.detail);
      Changed(e, pb::WatchJobResponse::KIND_STATE, true);
    } else if (e.job.result_ok()) {
      Transition(e, pb::JOB_STATE_SUCCEEDED, "finished while psd was down");
    } else {
      AttemptFailed(e, "workers ended while psd was down (" + st.detail + ")");
    }
  }
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Coordinator::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Coordinator::Entry& Coordinator::Find(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    throw ApiError(StatusCode::NOT_FOUND, "no job " + id + " (psctl list shows the jobs)");
  return it->second;
}

Coordinator::Entry& Coordinator::FindWorker(const pb::WorkerId& w, bool allow_cancelled) {
  Entry& e = Find(w.job_id());
  if (w.attempt() != e.job.attempt())
    throw ApiError(StatusCode::FAILED_PRECONDITION,
                   "job " + w.job_id() + " attempt " + std::to_string(w.attempt()) +
                       " is not current (attempt " + std::to_string(e.job.attempt()) + ")");
  if (!Active(e.job.state()) && !(allow_cancelled && e.job.state() == pb::JOB_STATE_CANCELLED))
    throw ApiError(StatusCode::FAILED_PRECONDITION,
                   "job " + w.job_id() + " is " + JobStateName(e.job.state()));
  return e;
}

void Coordinator::Changed(Entry& e, pb::WatchJobResponse::Kind kind, bool persist) {
  ++e.version;
  pb::WatchJobResponse ev;
  ev.set_kind(kind);
  *ev.mutable_job() = e.job;
  e.events.emplace_back(e.version, std::move(ev));
  while (e.events.size() > 256) e.events.pop_front();
  if (persist) {
    store_.Put(e.job);
    e.last_persist = Clock::now();
  }
  changed_.notify_all();
}

void Coordinator::Transition(Entry& e, pb::JobState to, const std::string& message) {
  pb::StateTransition* t = e.job.add_history();
  t->set_from(e.job.state());
  t->set_to(to);
  *t->mutable_time() = Now();
  t->set_attempt(e.job.attempt());
  t->set_message(message);
  e.job.set_state(to);
  e.job.set_message(message);
  if (to == pb::JOB_STATE_RUNNING && !e.job.has_start_time()) *e.job.mutable_start_time() = Now();
  if (IsTerminal(to)) *e.job.mutable_end_time() = Now();
  Changed(e, pb::WatchJobResponse::KIND_STATE, true);
}

void Coordinator::AttemptFailed(Entry& e, const std::string& reason, bool retry) {
  ++failures_total_;
  if (!e.job.launcher_id().empty()) StopWorkersLocked(e, cfg_.kill_grace_s);
  int attempt = e.job.attempt();
  if (retry && attempt < e.job.max_attempts()) {
    std::string from = e.job.checkpoint_step() >= 0 && !e.job.checkpoint_dir().empty()
                           ? "the checkpoint of step " + std::to_string(e.job.checkpoint_step())
                           : "the start";
    Transition(
        e, pb::JOB_STATE_QUEUED,
        "attempt " + std::to_string(attempt) + " failed: " + reason + "; retrying from " + from);
  } else {
    Transition(e, pb::JOB_STATE_FAILED,
               "attempt " + std::to_string(attempt) + " of " +
                   std::to_string(e.job.max_attempts()) + " failed: " + reason);
  }
}

void Coordinator::StopWorkersLocked(Entry& e, double grace_s) {
  if (e.job.launcher_id().empty()) return;
  auto now = Clock::now();
  Kill k;
  k.launcher_id = e.job.launcher_id();
  k.term_at = now;
  k.force_at = now + std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
  kills_.push_back(k);
}

pb::Job Coordinator::Submit(const pb::SubmitJobRequest& req) {
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
  CheckJobInputs(spec);
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
  if (req.max_attempts() < 0)
    throw ApiError(StatusCode::INVALID_ARGUMENT, "max_attempts: must be >= 0");
  if (req.dry_run()) {  // valid: show the job as it would be queued, store nothing
    pb::Job job;
    job.set_name(spec.name);
    *job.mutable_spec() = JobSpecToProto(spec);
    job.set_spec_yaml(JobSpecToYaml(spec));
    job.set_original_yaml(req.yaml());
    job.set_spec_hash(JobSpecHash(spec));
    job.set_max_attempts(req.max_attempts() > 0 ? req.max_attempts() : cfg_.max_attempts);
    job.set_launcher(launcher_->Name());
    job.set_checkpoint_step(-1);
    job.set_message("dry run: valid, not submitted");
    return job;
  }

  pb::Job job;
  job.set_id(store_.NextId());
  job.set_name(spec.name);
  job.set_state(pb::JOB_STATE_QUEUED);
  *job.mutable_spec() = JobSpecToProto(spec);
  job.set_spec_yaml(JobSpecToYaml(spec));
  job.set_original_yaml(req.yaml());
  job.set_spec_hash(JobSpecHash(spec));
  job.set_max_attempts(req.max_attempts() > 0 ? req.max_attempts() : cfg_.max_attempts);
  job.set_launcher(launcher_->Name());
  *job.mutable_create_time() = Now();
  job.set_checkpoint_step(-1);
  fs::path dir = JobDir(job.id());
  fs::create_directories(dir / "logs");
  fs::create_directories(dir / "output");
  WriteFileAtomic(dir / "job.yaml", job.spec_yaml());
  if (!req.yaml().empty()) WriteFileAtomic(dir / "submitted.yaml", req.yaml());
  job.set_job_dir(dir.string());
  job.set_output_dir((dir / "output").string());
  pb::StateTransition* t = job.add_history();
  t->set_to(pb::JOB_STATE_QUEUED);
  *t->mutable_time() = job.create_time();
  t->set_message("submitted");
  job.set_message("submitted");

  std::lock_guard lock(mu_);
  Entry& e = jobs_[job.id()];
  e.job = job;
  Changed(e, pb::WatchJobResponse::KIND_STATE, true);
  return e.job;
}

pb::Job Coordinator::Get(const std::string& id) {
  std::lock_guard lock(mu_);
  return Find(id).job;
}

pb::ListJobsResponse Coordinator::List(const pb::ListJobsRequest& req) {
  int size = req.page_size() <= 0 ? 50 : std::min(req.page_size(), 1000);
  std::lock_guard lock(mu_);
  pb::ListJobsResponse resp;
  auto it = req.page_token().empty() ? jobs_.begin() : jobs_.upper_bound(req.page_token());
  for (; it != jobs_.end(); ++it) {
    const pb::Job& j = it->second.job;
    if (req.states_size() &&
        std::find(req.states().begin(), req.states().end(), j.state()) == req.states().end())
      continue;
    if (resp.jobs_size() == size) {
      resp.set_next_page_token(resp.jobs(size - 1).id());
      break;
    }
    pb::Job* out = resp.add_jobs();
    *out = j;
    out->clear_history();  // lists stay small; GetJob has it
    out->clear_original_yaml();
  }
  return resp;
}

pb::Job Coordinator::Cancel(const std::string& id, const std::string& reason) {
  std::lock_guard lock(mu_);
  Entry& e = Find(id);
  if (IsTerminal(e.job.state())) return e.job;
  e.job.set_cancel_requested(true);
  std::string why = reason.empty() ? "cancelled by request" : "cancelled: " + reason;
  if (Active(e.job.state())) StopWorkersLocked(e, cfg_.kill_grace_s);
  Transition(e, pb::JOB_STATE_CANCELLED, why);
  return e.job;
}

bool Coordinator::Watch(const std::string& id, uint64_t& version,
                        std::vector<pb::WatchJobResponse>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  Entry* e = &Find(id);
  if (version == 0) {
    pb::WatchJobResponse snap;
    snap.set_kind(pb::WatchJobResponse::KIND_SNAPSHOT);
    *snap.mutable_job() = e->job;
    out.push_back(std::move(snap));
    version = e->version;
    return true;
  }
  auto collect = [&] {
    for (const auto& [v, ev] : e->events)
      if (v > version) out.push_back(ev);
    if (!out.empty()) version = e->version;
    return !out.empty();
  };
  if (!collect() && !IsTerminal(e->job.state())) {
    changed_.wait_for(lock, timeout, [&] { return stop_ || e->version > version; });
    collect();
  }
  return !(IsTerminal(e->job.state()) && version >= e->version && out.empty());
}

pb::RegisterResponse Coordinator::Register(const pb::RegisterRequest& req) {
  std::lock_guard lock(mu_);
  Entry& e = FindWorker(req.worker(), true);
  e.heartbeat = Clock::now();
  *e.job.mutable_heartbeat_time() = Now();
  if (e.job.state() == pb::JOB_STATE_LAUNCHING)
    Transition(e, pb::JOB_STATE_RUNNING,
               "attempt " + std::to_string(e.job.attempt()) + " running: rank 0 on " +
                   req.hostname() + " pid " + std::to_string(req.pid()) + ", " +
                   std::to_string(req.world_size()) + " rank(s)");
  pb::RegisterResponse resp;
  resp.set_heartbeat_interval_ms(cfg_.heartbeat_interval_ms);
  resp.set_cancel_requested(e.job.cancel_requested());
  return resp;
}

pb::HeartbeatResponse Coordinator::Heartbeat(const pb::WorkerId& w) {
  std::lock_guard lock(mu_);
  Entry& e = FindWorker(w, true);
  e.heartbeat = Clock::now();
  *e.job.mutable_heartbeat_time() = Now();
  pb::HeartbeatResponse resp;
  resp.set_cancel_requested(e.job.cancel_requested());
  return resp;
}

pb::HeartbeatResponse Coordinator::Progress(const pb::ReportProgressRequest& req) {
  std::lock_guard lock(mu_);
  Entry& e = FindWorker(req.worker(), true);
  e.heartbeat = Clock::now();
  *e.job.mutable_heartbeat_time() = Now();
  *e.job.mutable_progress() = req.event();
  *e.job.mutable_progress()->mutable_time() = Now();
  bool persist = Clock::now() - e.last_persist > std::chrono::seconds(5);
  Changed(e, pb::WatchJobResponse::KIND_PROGRESS, persist);
  pb::HeartbeatResponse resp;
  resp.set_cancel_requested(e.job.cancel_requested());
  return resp;
}

pb::HeartbeatResponse Coordinator::Checkpoint(const pb::ReportCheckpointRequest& req) {
  if (req.dir().empty() || fs::path(req.dir()).is_relative())
    throw ApiError(StatusCode::INVALID_ARGUMENT, "dir: must be an absolute path");
  std::lock_guard lock(mu_);
  Entry& e = FindWorker(req.worker(), true);
  e.heartbeat = Clock::now();
  e.job.set_checkpoint_step(req.step());
  e.job.set_checkpoint_dir(req.dir());
  *e.job.mutable_checkpoint_time() = Now();
  Changed(e, pb::WatchJobResponse::KIND_CHECKPOINT, true);
  pb::HeartbeatResponse resp;
  resp.set_cancel_requested(e.job.cancel_requested());
  return resp;
}

void Coordinator::Result(const pb::ReportResultRequest& req) {
  std::lock_guard lock(mu_);
  Entry& e = FindWorker(req.worker(), false);
  e.job.set_result_output_dir(req.output_dir());
  if (req.ok()) {
    e.job.set_result_ok(true);
    *e.job.mutable_result() = req.result();
    // The worker deleted its training checkpoints after success: none is current any more.
    if (req.result().checkpoints_removed()) {
      e.job.set_checkpoint_step(-1);
      e.job.clear_checkpoint_dir();
      e.job.clear_checkpoint_time();
    }
    Transition(e, pb::JOB_STATE_SUCCEEDED, req.message().empty() ? "finished" : req.message());
    // The worker exits by itself; one that lingers is stopped after a grace period.
    if (!e.job.launcher_id().empty()) {
      Kill k;
      k.launcher_id = e.job.launcher_id();
      k.term_at = Clock::now() + std::chrono::seconds(30);
      k.force_at = k.term_at + std::chrono::seconds(10);
      kills_.push_back(k);
    }
  } else {
    // A failure the worker diagnosed itself (bad data, divergence) would fail again.
    AttemptFailed(e, "the worker reported: " + req.message(), false);
  }
}

void Coordinator::LaunchLocked(Entry& e) {
  e.job.set_attempt(e.job.attempt() + 1);
  e.job.set_result_ok(false);
  e.job.clear_launcher_id();
  LaunchRequest req;
  req.job_id = e.job.id();
  req.attempt = e.job.attempt();
  req.job_dir = JobDir(e.job.id());
  req.log_file = LogFile(e.job.id());
  req.worker_bin = cfg_.worker_bin;
  req.worker_args = {"--job",         (req.job_dir / "job.yaml").string(),
                     "--output",      OutputDir(e.job.id()).string(),
                     "--coordinator", cfg_.advertise,
                     "--job-id",      e.job.id(),
                     "--attempt",     std::to_string(req.attempt)};
  // psworker --resume continues from the newest complete checkpoint in its output directory
  // (the one the worker last reported, unless it crashed while writing a newer one).
  if (e.job.checkpoint_step() >= 0) req.worker_args.push_back("--resume");
  if (!cfg_.worker_token_file.empty())
    req.worker_args.insert(req.worker_args.end(), {"--token-file", cfg_.worker_token_file});
  if (!cfg_.worker_tls_ca.empty())
    req.worker_args.insert(req.worker_args.end(), {"--tls-ca", cfg_.worker_tls_ca});
  Transition(e, pb::JOB_STATE_LAUNCHING,
             "attempt " + std::to_string(req.attempt) + " of " +
                 std::to_string(e.job.max_attempts()) + " launching" +
                 (e.job.checkpoint_step() >= 0
                      ? " from checkpoint step " + std::to_string(e.job.checkpoint_step())
                      : ""));
  try {
    req.spec = ParseJobSpec(e.job.spec_yaml(), "/", "job " + e.job.id());
    e.job.set_launcher_id(launcher_->Launch(req));
  } catch (const std::exception& ex) {
    AttemptFailed(e, std::string("launch failed: ") + ex.what());
    return;
  }
  e.launched = e.heartbeat = Clock::now();
  e.pending_in_queue = false;
  Changed(e, pb::WatchJobResponse::KIND_STATE, true);
}

void Coordinator::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    try {
      Tick();
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "psd: scheduler: %s\n", ex.what());
    }
    lock.lock();
    changed_.wait_for(lock, std::chrono::milliseconds(static_cast<int>(cfg_.tick_s * 1000)),
                      [&] { return stop_; });
  }
}

void Coordinator::Tick() {
  // 1. What to poll, taken under the lock; launchers run outside it (sbatch, kubectl are slow).
  std::vector<std::pair<std::string, std::string>> active;
  std::vector<Kill> kills;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : jobs_)
      if (Active(e.job.state()) && !e.job.launcher_id().empty())
        active.emplace_back(id, e.job.launcher_id());
    kills.swap(kills_);
  }
  std::map<std::string, RunStatus> status;
  for (const auto& [id, lid] : active) status[id] = launcher_->Poll(lid);
  auto now = Clock::now();
  std::vector<Kill> keep;
  for (auto& k : kills) {
    RunStatus st = launcher_->Poll(k.launcher_id);
    if (st.state == RunState::kExited || st.state == RunState::kGone) continue;
    if (!k.termed && now >= k.term_at) {
      launcher_->Terminate(k.launcher_id, false);
      k.termed = true;
    }
    if (!k.forced && now >= k.force_at) {
      launcher_->Terminate(k.launcher_id, true);
      k.forced = true;
      k.force_at = now + std::chrono::seconds(30);  // give up polling after this
    } else if (k.forced && now >= k.force_at) {
      std::fprintf(stderr, "psd: %s survived SIGKILL for 30 s; no longer tracked\n",
                   k.launcher_id.c_str());
      continue;
    }
    keep.push_back(k);
  }

  std::lock_guard lock(mu_);
  kills_.insert(kills_.end(), keep.begin(), keep.end());
  // 2. Supervision.
  for (const auto& [id, lid] : active) {
    Entry& e = jobs_.at(id);
    if (!Active(e.job.state()) || e.job.launcher_id() != lid) continue;  // changed meanwhile
    const RunStatus& st = status[id];
    if (st.state == RunState::kPending) {
      e.pending_in_queue = true;
      e.launched = now;  // the launch timeout counts from leaving the queue
      continue;
    }
    e.pending_in_queue = false;
    if (st.state == RunState::kExited || st.state == RunState::kGone) {
      if (e.job.result_ok())
        Transition(e, pb::JOB_STATE_SUCCEEDED, "finished");
      else
        AttemptFailed(e, "workers ended without a result: " + st.detail);
      continue;
    }
    double since_hb = std::chrono::duration<double>(now - e.heartbeat).count();
    double since_launch = std::chrono::duration<double>(now - e.launched).count();
    ResourcesSpec res;
    res.time_limit_minutes = e.job.spec().resources().time_limit_minutes();
    if (e.job.state() == pb::JOB_STATE_RUNNING && since_hb > cfg_.heartbeat_timeout_s) {
      StopWorkersLocked(e, 0);  // unresponsive (hung, stopped): SIGKILL, no grace
      AttemptFailed(e, "no heartbeat for " + std::to_string(static_cast<int>(since_hb)) + " s");
    } else if (e.job.state() == pb::JOB_STATE_LAUNCHING && since_launch > cfg_.launch_timeout_s) {
      AttemptFailed(e, "no worker registered within " +
                           std::to_string(static_cast<int>(cfg_.launch_timeout_s)) + " s");
    } else if (res.time_limit_minutes > 0 && since_launch > res.time_limit_minutes * 60.0) {
      AttemptFailed(e,
                    "time limit of " + std::to_string(res.time_limit_minutes) +
                        " minutes exceeded (resources.time_limit_minutes)",
                    false);
    }
  }
  // 3. Scheduling: strict FIFO, so a big job at the head is not starved by small ones.
  int jobs = 0, cpus = 0, gpus = 0;
  for (auto& [id, e] : jobs_) {
    if (!Active(e.job.state())) continue;
    const auto& r = e.job.spec().resources();
    ++jobs;
    cpus += r.ranks() * r.cpus_per_rank();
    gpus += r.ranks() * r.gpus_per_rank();
  }
  for (auto& [id, e] : jobs_) {
    if (e.job.state() != pb::JOB_STATE_QUEUED) continue;
    const auto& r = e.job.spec().resources();
    int c = r.ranks() * r.cpus_per_rank(), g = r.ranks() * r.gpus_per_rank();
    bool fits = jobs < cfg_.max_jobs &&
                (cfg_.max_cpus <= 0 || cpus + c <= cfg_.max_cpus || jobs == 0) &&
                gpus + g <= cfg_.max_gpus;
    if (!fits) break;
    LaunchLocked(e);
    if (Active(e.job.state())) {
      ++jobs;
      cpus += c;
      gpus += g;
    }
  }
}

void Coordinator::FillMetrics(MetricsRegistry& m) {
  static const char* kPerJob[] = {"proxsparse_job_attempts",
                                  "proxsparse_job_step",
                                  "proxsparse_job_total_steps",
                                  "proxsparse_job_loss",
                                  "proxsparse_job_nm_sparse_ratio",
                                  "proxsparse_job_three_sparse_ratio",
                                  "proxsparse_job_dense_ratio",
                                  "proxsparse_job_mask_flips",
                                  "proxsparse_job_learning_rate",
                                  "proxsparse_job_tokens_per_second",
                                  "proxsparse_job_eta_seconds",
                                  "proxsparse_job_step_phase_seconds",
                                  "proxsparse_job_last_progress_timestamp_seconds",
                                  "proxsparse_job_checkpoint_age_seconds",
                                  "proxsparse_job_heartbeat_age_seconds",
                                  "proxsparse_worker_gpu_memory_bytes",
                                  "proxsparse_worker_gpu_utilization_ratio",
                                  "proxsparse_jobs"};
  for (const char* n : kPerJob) m.Clear(n);
  std::lock_guard lock(mu_);
  std::map<pb::JobState, int> by_state;
  for (int s = pb::JOB_STATE_QUEUED; s <= pb::JOB_STATE_CANCELLED; ++s)
    by_state[static_cast<pb::JobState>(s)] = 0;
  double now = NowSeconds();
  int queued = 0;
  for (auto& [id, e] : jobs_) {
    const pb::Job& j = e.job;
    ++by_state[j.state()];
    if (j.state() == pb::JOB_STATE_QUEUED) ++queued;
    if (IsTerminal(j.state()) && now - Seconds(j.end_time()) > cfg_.finished_metrics_s) continue;
    Labels job{{"job_id", id}};
    Labels jm{{"job_id", id}, {"method", j.spec().method().name()}};
    m.Set("proxsparse_job_attempts", job, j.attempt());
    if (j.has_progress()) {
      const pb::ProgressEvent& p = j.progress();
      m.Set("proxsparse_job_step", jm, static_cast<double>(p.step()));
      m.Set("proxsparse_job_total_steps", jm, static_cast<double>(p.total_steps()));
      if (p.has_loss()) m.Set("proxsparse_job_loss", jm, p.loss());
      if (p.has_nm_ratio()) m.Set("proxsparse_job_nm_sparse_ratio", jm, p.nm_ratio());
      if (p.has_mid_ratio()) m.Set("proxsparse_job_three_sparse_ratio", jm, p.mid_ratio());
      if (p.has_dense_ratio()) m.Set("proxsparse_job_dense_ratio", jm, p.dense_ratio());
      if (p.has_mask_flips())
        m.Set("proxsparse_job_mask_flips", jm, static_cast<double>(p.mask_flips()));
      if (p.has_lr()) m.Set("proxsparse_job_learning_rate", jm, p.lr());
      if (p.has_tokens_per_s()) m.Set("proxsparse_job_tokens_per_second", jm, p.tokens_per_s());
      if (p.has_eta_s()) m.Set("proxsparse_job_eta_seconds", jm, p.eta_s());
      for (const auto& [phase, s] : p.phase_seconds())
        m.Set("proxsparse_job_step_phase_seconds", {{"job_id", id}, {"phase", phase}}, s);
      m.Set("proxsparse_job_last_progress_timestamp_seconds", job, Seconds(p.time()));
      Labels rank{{"job_id", id}, {"rank", std::to_string(p.rank())}};
      if (p.has_gpu_mem_bytes())
        m.Set("proxsparse_worker_gpu_memory_bytes", rank, static_cast<double>(p.gpu_mem_bytes()));
      if (p.has_gpu_util()) m.Set("proxsparse_worker_gpu_utilization_ratio", rank, p.gpu_util());
    }
    if (j.has_checkpoint_time())
      m.Set("proxsparse_job_checkpoint_age_seconds", job, now - Seconds(j.checkpoint_time()));
    if (Active(j.state()) && j.has_heartbeat_time())
      m.Set("proxsparse_job_heartbeat_age_seconds", job, now - Seconds(j.heartbeat_time()));
  }
  for (const auto& [s, n] : by_state) m.Set("proxsparse_jobs", {{"state", JobStateName(s)}}, n);
  m.Set("proxsparse_queue_length", {}, queued);
}

}  // namespace ps
