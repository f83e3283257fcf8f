// ResultSummary (common/result_summary.h) <-> proxsparse.v1.JobResult.
#pragma once

#include "common/result_summary.h"
#include "proxsparse/v1/job.pb.h"

namespace ps {

proxsparse::v1::JobResult ResultToProto(const ResultSummary& s);
ResultSummary ResultFromProto(const proxsparse::v1::JobResult& r);

}  // namespace ps
