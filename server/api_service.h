// The gRPC services (JobService for psctl and tools, WorkerService for rank 0 of each job) over
// the Coordinator. Every call goes through one guard: bearer-token check, exception -> status
// mapping, and the gRPC request metrics.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "proxsparse/v1/job_service.grpc.pb.h"
#include "proxsparse/v1/worker_service.grpc.pb.h"
#include "server/coordinator.h"
#include "server/metrics.h"
#include "server/worker_credentials.h"

namespace ps {

struct ApiContext {
  Coordinator* coordinator;
  MetricsRegistry* metrics;
  std::string token;                // empty: no authentication
  std::filesystem::path hub_cache;  // where hf:// models are downloaded (server/hub_models.h)
  // Set: WorkerService calls need the calling job's worker credential, user tokens are refused.
  const WorkerCredentials* worker_credentials = nullptr;
};

std::unique_ptr<proxsparse::v1::JobService::Service> MakeJobService(ApiContext ctx);
std::unique_ptr<proxsparse::v1::WorkerService::Service> MakeWorkerService(ApiContext ctx);
// Declares the gRPC metric families on `m`.
void DeclareApiMetrics(MetricsRegistry& m);

}  // namespace ps
