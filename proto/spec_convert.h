// Conversions between the API's messages and common/'s structs, so that the coordinator validates
// a structured JobSpec with exactly the rules of the YAML parser.
#pragma once

#include "common/job_spec.h"
#include "common/progress.h"
#include "proxsparse/v1/job.pb.h"

namespace ps {

proxsparse::v1::JobSpec JobSpecToProto(const JobSpec& spec);
// Goes through the canonical YAML and ParseJobSpec, so every rule applies; throws ps::Error.
JobSpec JobSpecFromProto(const proxsparse::v1::JobSpec& proto);

proxsparse::v1::ProgressEvent ProgressToProto(const ProgressEvent& e);
ProgressEvent ProgressFromProto(const proxsparse::v1::ProgressEvent& p);

// "QUEUED" for JOB_STATE_QUEUED; ParseJobState accepts either spelling, any case.
std::string JobStateName(proxsparse::v1::JobState s);
proxsparse::v1::JobState ParseJobState(std::string_view name);
bool IsTerminal(proxsparse::v1::JobState s);

}  // namespace ps
