#include "server/job_state.h"

#include "common/error.h"
#include "proto/spec_convert.h"

namespace ps {

namespace pb = proxsparse::v1;

bool IsActive(pb::JobState s) { return s == pb::JOB_STATE_LAUNCHING || s == pb::JOB_STATE_RUNNING; }

bool CanTransition(pb::JobState from, pb::JobState to) {
  if (IsTerminal(from) || from == to) return false;
  switch (to) {
    case pb::JOB_STATE_QUEUED:
      return IsActive(from);
    case pb::JOB_STATE_LAUNCHING:
      return from == pb::JOB_STATE_QUEUED;
    case pb::JOB_STATE_RUNNING:
      return from == pb::JOB_STATE_LAUNCHING;
    case pb::JOB_STATE_SUCCEEDED:
      return IsActive(from);
    case pb::JOB_STATE_FAILED:
    case pb::JOB_STATE_CANCELLED:
      return true;
    default:
      return false;
  }
}

void ApplyTransition(pb::Job& job, pb::JobState to, const std::string& message,
                     const google::protobuf::Timestamp& now) {
  if (!CanTransition(job.state(), to))
    throw Error("job " + job.id() + ": no transition from " + JobStateName(job.state()) + " to " +
                JobStateName(to));
  pb::StateTransition* t = job.add_history();
  t->set_from(job.state());
  t->set_to(to);
  *t->mutable_time() = now;
  t->set_attempt(job.attempt());
  t->set_message(message);
  job.set_state(to);
  job.set_message(message);
  if (to == pb::JOB_STATE_RUNNING && !job.has_start_time()) *job.mutable_start_time() = now;
  if (IsTerminal(to)) *job.mutable_end_time() = now;
}

}  // namespace ps
