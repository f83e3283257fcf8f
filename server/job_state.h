// The job state machine: which transitions exist, and how one is recorded in a Job (history entry,
// message, start and end times). Pure functions on the message; persistence is JobManager's.
//
//   QUEUED -> LAUNCHING -> RUNNING -> SUCCEEDED
//      ^          |           |---> FAILED (attempts used up, worker-diagnosed, time limit)
//      +----------+-----------+     (retry: back to QUEUED)
//   any unfinished state -> CANCELLED; LAUNCHING -> SUCCEEDED when a result came while psd was down
#pragma once

#include <string>

#include "proxsparse/v1/job.pb.h"

namespace ps {

bool IsActive(proxsparse::v1::JobState s);  // LAUNCHING or RUNNING: workers may exist
bool CanTransition(proxsparse::v1::JobState from, proxsparse::v1::JobState to);
// Records from -> to at `now` (throws ps::Error for a transition that does not exist).
void ApplyTransition(proxsparse::v1::Job& job, proxsparse::v1::JobState to,
                     const std::string& message, const google::protobuf::Timestamp& now);

}  // namespace ps
