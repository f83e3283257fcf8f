#include "server/job_metrics.h"

#include <map>

#include "proto/spec_convert.h"
#include "server/job_state.h"

namespace ps {

namespace pb = proxsparse::v1;

namespace {

void FillProgress(const std::string& id, const pb::Job& j, MetricsRegistry& m) {
  const pb::ProgressEvent& p = j.progress();
  Labels job{{"job_id", id}};
  Labels jm{{"job_id", id}, {"method", j.spec().method().name()}};
  m.Set("proxsparse_job_step", jm, static_cast<double>(p.step()));
  m.Set("proxsparse_job_total_steps", jm, static_cast<double>(p.total_steps()));
  if (p.has_loss()) m.Set("proxsparse_job_loss", jm, p.loss());
  if (p.has_nm_ratio()) m.Set("proxsparse_job_nm_sparse_ratio", jm, p.nm_ratio());
  if (p.has_mid_ratio()) m.Set("proxsparse_job_three_sparse_ratio", jm, p.mid_ratio());
  if (p.has_dense_ratio()) m.Set("proxsparse_job_dense_ratio", jm, p.dense_ratio());
  if (p.has_mask_flips())
    m.Set("proxsparse_job_mask_flips", jm, static_cast<double>(p.mask_flips()));
  if (p.has_prox_capped_groups())
    m.Set("proxsparse_job_prox_capped_groups", jm, static_cast<double>(p.prox_capped_groups()));
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

}  // namespace

void FillJobMetrics(const JobManager& jobs, double now, double finished_metrics_s,
                    MetricsRegistry& m) {
  static const char* kPerJob[] = {"proxsparse_job_attempts",
                                  "proxsparse_job_step",
                                  "proxsparse_job_total_steps",
                                  "proxsparse_job_loss",
                                  "proxsparse_job_nm_sparse_ratio",
                                  "proxsparse_job_three_sparse_ratio",
                                  "proxsparse_job_dense_ratio",
                                  "proxsparse_job_mask_flips",
                                  "proxsparse_job_prox_capped_groups",
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
  std::map<pb::JobState, int> by_state;
  for (int s = pb::JOB_STATE_QUEUED; s <= pb::JOB_STATE_CANCELLED; ++s)
    by_state[static_cast<pb::JobState>(s)] = 0;
  int queued = 0;
  jobs.ForEach([&](const pb::Job& j, const JobRuntime&) {
    ++by_state[j.state()];
    if (j.state() == pb::JOB_STATE_QUEUED) ++queued;
    if (IsTerminal(j.state()) && now - Seconds(j.end_time()) > finished_metrics_s) return;
    Labels job{{"job_id", j.id()}};
    m.Set("proxsparse_job_attempts", job, j.attempt());
    if (j.has_progress()) FillProgress(j.id(), j, m);
    if (j.has_checkpoint_time())
      m.Set("proxsparse_job_checkpoint_age_seconds", job, now - Seconds(j.checkpoint_time()));
    if (IsActive(j.state()) && j.has_heartbeat_time())
      m.Set("proxsparse_job_heartbeat_age_seconds", job, now - Seconds(j.heartbeat_time()));
  });
  for (const auto& [s, n] : by_state) m.Set("proxsparse_jobs", {{"state", JobStateName(s)}}, n);
  m.Set("proxsparse_queue_length", {}, queued);
}

}  // namespace ps
