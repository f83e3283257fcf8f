// Per-job result gauges (docs/metrics.md "Results"): dense and pruned perplexity per evaluation
// text, their relative change, baselines, the published model's N:M fraction and the wall time of
// jobs that SUCCEEDED, from the JobResult the worker reported.
#pragma once

#include <vector>

#include "proxsparse/v1/job.pb.h"
#include "server/metrics.h"

namespace ps {

void DeclareResultMetrics(MetricsRegistry& m);
// Clears the families and sets one series set per succeeded job that ended less than
// `keep_finished_s` ago (the same window as the other per-job series).
void FillResultMetrics(MetricsRegistry& m, const std::vector<proxsparse::v1::Job>& jobs,
                       double keep_finished_s);

}  // namespace ps
