#include "server/policy.h"

#include <algorithm>
#include <cmath>

#include "server/clock.h"
#include "server/job_state.h"

namespace ps {

namespace pb = proxsparse::v1;

double RetryDelaySeconds(const RetryPolicy& p, int failed_attempt, double unit_random) {
  double d = p.backoff_base_s * std::pow(2.0, std::max(0, failed_attempt - 1));
  d = std::min(d, p.backoff_max_s);
  return d * (0.5 + 0.5 * std::clamp(unit_random, 0.0, 1.0));
}

std::optional<std::string> TimeLimitExceeded(const pb::Job& job, double wall_now) {
  int minutes = job.spec().resources().time_limit_minutes();
  if (minutes <= 0 || !job.has_start_time()) return std::nullopt;
  double used = wall_now - Seconds(job.start_time());
  if (used <= minutes * 60.0) return std::nullopt;
  return "time limit of " + std::to_string(minutes) +
         " minutes exceeded (resources.time_limit_minutes; counted from the first start, " +
         std::to_string(static_cast<int64_t>(used)) + " s ago)";
}

Verdict Supervise(const pb::Job& job, const std::optional<RunStatus>& status,
                  double since_heartbeat_s, double since_launch_s, double wall_now,
                  const SupervisionLimits& limits) {
  Verdict v;
  if (!IsActive(job.state())) return v;
  if (status && (status->state == RunState::kExited || status->state == RunState::kGone)) {
    if (job.result_ok()) return {Verdict::kSucceeded, "finished"};
    return {Verdict::kRetry, "workers ended without a result: " + status->detail};
  }
  if (auto why = TimeLimitExceeded(job, wall_now)) return {Verdict::kFail, *why};
  if (status && status->state == RunState::kPending) return v;  // waits in an external queue
  if (job.state() == pb::JOB_STATE_RUNNING && since_heartbeat_s > limits.heartbeat_timeout_s)
    return {Verdict::kRetry,
            "no heartbeat for " + std::to_string(static_cast<int>(since_heartbeat_s)) + " s", true};
  if (job.state() == pb::JOB_STATE_LAUNCHING && since_launch_s > limits.launch_timeout_s)
    return {Verdict::kRetry, "no worker registered within " +
                                 std::to_string(static_cast<int>(limits.launch_timeout_s)) + " s"};
  return v;
}

Demand DemandOf(const pb::Job& job) {
  const auto& r = job.spec().resources();
  return {job.id(), r.ranks() * r.cpus_per_rank(), r.ranks() * r.gpus_per_rank(), true};
}

std::vector<std::string> Admit(const std::vector<Demand>& active, const std::vector<Demand>& queued,
                               const Capacity& cap) {
  int jobs = 0, cpus = 0, gpus = 0;
  for (const auto& d : active) {
    ++jobs;
    cpus += d.cpus;
    gpus += d.gpus;
  }
  std::vector<std::string> out;
  for (const auto& d : queued) {
    if (!d.ready) continue;
    bool fits = jobs < cap.max_jobs &&
                (cap.max_cpus <= 0 || cpus + d.cpus <= cap.max_cpus || jobs == 0) &&
                gpus + d.gpus <= cap.max_gpus;
    if (!fits) break;
    out.push_back(d.id);
    ++jobs;
    cpus += d.cpus;
    gpus += d.gpus;
  }
  return out;
}

}  // namespace ps
