// The job gauges of docs/metrics.md, recomputed from the job table at each scrape.
#pragma once

#include "server/job_manager.h"
#include "server/metrics.h"

namespace ps {

// Per-job series of finished jobs are kept for `finished_metrics_s` after they end.
void FillJobMetrics(const JobManager& jobs, double wall_now, double finished_metrics_s,
                    MetricsRegistry& m);

}  // namespace ps
