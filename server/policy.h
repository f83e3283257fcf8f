// The coordinator's policy as pure functions of a job, the time and the launcher's answer, so each
// rule is unit-tested without processes: retries (capped attempts, exponential backoff with
// jitter), supervision (exit, heartbeat, launch timeout, time limit) and FIFO admission.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proxsparse/v1/job.pb.h"
#include "server/launcher.h"

namespace ps {

inline constexpr int kMaxAttemptsCap = 100;  // --max-attempts and a submit's max_attempts

struct RetryPolicy {
  double backoff_base_s = 1;   // the delay before attempt 2
  double backoff_max_s = 300;  // delays double per attempt up to this
};
// The delay before relaunching after `failed_attempt` (1-based) failed: base * 2^(n-1), capped,
// then scaled by a jitter factor in [0.5, 1] (`unit_random` in [0, 1)) so that jobs failing
// together do not relaunch in lockstep.
double RetryDelaySeconds(const RetryPolicy& p, int failed_attempt, double unit_random);

struct SupervisionLimits {
  double heartbeat_timeout_s = 30;
  double launch_timeout_s = 300;
};

// What supervision decided for one unfinished job.
struct Verdict {
  enum Kind { kNone, kSucceeded, kRetry, kFail } kind = kNone;
  std::string reason;
  bool kill_now = false;  // workers are unresponsive: SIGKILL without grace
};

// `status` is the launcher's answer (nullopt: the attempt has no launcher id, e.g. a launch that
// could not be recorded); `since_heartbeat_s` / `since_launch_s` are steady-clock ages; `wall_now`
// is unix seconds (the time limit counts from the job's first start, across attempts and psd
// restarts).
Verdict Supervise(const proxsparse::v1::Job& job, const std::optional<RunStatus>& status,
                  double since_heartbeat_s, double since_launch_s, double wall_now,
                  const SupervisionLimits& limits);
// The time limit alone (also checked for queued retries).
std::optional<std::string> TimeLimitExceeded(const proxsparse::v1::Job& job, double wall_now);

struct Capacity {
  int max_jobs = 1;
  int max_cpus = 0;  // 0: no limit
  int max_gpus = 0;
};
struct Demand {
  std::string id;
  int cpus = 0;
  int gpus = 0;
  bool ready = true;  // false while a retry backoff runs: skipped, not blocking the queue
};
// Strict FIFO over the ready queued jobs: admits from the head while the head fits, so a big job
// is not starved by small ones behind it. `active` are the jobs holding resources now.
std::vector<std::string> Admit(const std::vector<Demand>& active, const std::vector<Demand>& queued,
                               const Capacity& cap);
Demand DemandOf(const proxsparse::v1::Job& job);

}  // namespace ps
