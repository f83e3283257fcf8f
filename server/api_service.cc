#include "server/api_service.h"

#include <openssl/crypto.h>

#include <chrono>

#include "proto/spec_convert.h"
#include "server/api_error.h"
#include "server/file_streams.h"
#include "server/log.h"

namespace ps {

namespace pb = proxsparse::v1;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

namespace {

const char* CodeName(StatusCode c) {
  switch (c) {
    case StatusCode::OK:
      return "OK";
    case StatusCode::CANCELLED:
      return "CANCELLED";
    case StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case StatusCode::ABORTED:
      return "ABORTED";
    case StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case StatusCode::INTERNAL:
      return "INTERNAL";
    case StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      return "UNKNOWN";
  }
}

// The bearer-token check of every call (empty token: no authentication). Rejections are logged.
Status Authenticate(const ApiContext& api, ServerContext* ctx, const char* method) {
  if (api.token.empty()) return Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  std::string want = "Bearer " + api.token;
  if (it != md.end() && it->second.size() == want.size() &&
      CRYPTO_memcmp(it->second.data(), want.data(), want.size()) == 0)
    return Status::OK;
  std::string why = it == md.end() ? "no bearer token" : "bearer token not valid";
  LogEvent(spdlog::level::warn, "auth.rejected",
           {{"method", method}, {"peer", ctx->peer()}, {"reason", why}});
  return Status(StatusCode::UNAUTHENTICATED,
                it == md.end() ? "this psd needs a bearer token (psctl --token-file FILE)"
                               : "the bearer token is not valid for this psd");
}

// Runs one call: authentication, errors to statuses, metrics.
template <typename F>
Status Guard(const ApiContext& api, ServerContext* ctx, const char* method, F&& body) {
  auto start = std::chrono::steady_clock::now();
  Status st = Authenticate(api, ctx, method);
  if (st.ok()) {
    try {
      st = body();
    } catch (const ApiError& e) {  // incl. StoreError: UNAVAILABLE, nothing changed
      st = Status(e.code(), e.what());
    } catch (const Error& e) {  // validation of what the caller sent
      st = Status(StatusCode::INVALID_ARGUMENT, e.what());
    } catch (const std::exception& e) {
      st = Status(StatusCode::INTERNAL, std::string("psd: ") + e.what());
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  api.metrics->Add("proxsparse_grpc_requests_total",
                   {{"method", method}, {"code", CodeName(st.error_code())}});
  api.metrics->Observe("proxsparse_grpc_request_duration_seconds", {{"method", method}}, secs);
  return st;
}

class JobServiceImpl final : public pb::JobService::Service {
 public:
  explicit JobServiceImpl(ApiContext api) : api_(api) {}

  Status SubmitJob(ServerContext* ctx, const pb::SubmitJobRequest* req, pb::Job* resp) override {
    return Guard(api_, ctx, "JobService/SubmitJob", [&] {
      *resp = api_.coordinator->Submit(*req);
      return Status::OK;
    });
  }
  Status GetJob(ServerContext* ctx, const pb::GetJobRequest* req, pb::Job* resp) override {
    return Guard(api_, ctx, "JobService/GetJob", [&] {
      *resp = api_.coordinator->Get(req->id());
      return Status::OK;
    });
  }
  Status ListJobs(ServerContext* ctx, const pb::ListJobsRequest* req,
                  pb::ListJobsResponse* resp) override {
    return Guard(api_, ctx, "JobService/ListJobs", [&] {
      *resp = api_.coordinator->List(*req);
      return Status::OK;
    });
  }
  Status CancelJob(ServerContext* ctx, const pb::CancelJobRequest* req, pb::Job* resp) override {
    return Guard(api_, ctx, "JobService/CancelJob", [&] {
      *resp = api_.coordinator->Cancel(req->id(), req->reason());
      return Status::OK;
    });
  }
  Status WatchJob(ServerContext* ctx, const pb::WatchJobRequest* req,
                  grpc::ServerWriter<pb::WatchJobResponse>* writer) override {
    return Guard(api_, ctx, "JobService/WatchJob", [&] {
      uint64_t version = 0;
      for (;;) {
        if (ctx->IsCancelled()) return Status(StatusCode::CANCELLED, "watch cancelled");
        std::vector<pb::WatchJobResponse> events;
        bool more =
            api_.coordinator->Watch(req->id(), version, events, std::chrono::milliseconds(500));
        for (const auto& ev : events)
          if (!writer->Write(ev)) return Status(StatusCode::CANCELLED, "client went away");
        if (!more) return Status::OK;
      }
    });
  }
  Status StreamLogs(ServerContext* ctx, const pb::StreamLogsRequest* req,
                    grpc::ServerWriter<pb::LogChunk>* writer) override {
    return Guard(api_, ctx, "JobService/StreamLogs", [&] {
      Coordinator& c = *api_.coordinator;
      c.Get(req->id());  // NOT_FOUND for unknown jobs
      LogTail tail{c.LogFile(req->id()), req->offset(), req->follow(),
                   [&] { return IsTerminal(c.Get(req->id()).state()); },
                   [&] { return ctx->IsCancelled(); }};
      StreamEnd end = TailLog(tail, [&](int64_t offset, const char* data, size_t n) {
        pb::LogChunk chunk;
        chunk.set_offset(offset);
        chunk.set_data(data, n);
        return writer->Write(chunk);
      });
      return end == StreamEnd::kDone ? Status::OK
                                     : Status(StatusCode::CANCELLED, "client went away");
    });
  }
  Status ListArtifacts(ServerContext* ctx, const pb::ListArtifactsRequest* req,
                       pb::ListArtifactsResponse* resp) override {
    return Guard(api_, ctx, "JobService/ListArtifacts", [&] {
      *resp = api_.coordinator->ListArtifacts(req->id());
      return Status::OK;
    });
  }
  Status DownloadArtifact(ServerContext* ctx, const pb::DownloadArtifactRequest* req,
                          grpc::ServerWriter<pb::ArtifactChunk>* writer) override {
    return Guard(api_, ctx, "JobService/DownloadArtifact", [&] {
      auto file = api_.coordinator->ResolveArtifact(req->id(), req->path());
      if (!file)
        return Status(StatusCode::NOT_FOUND, "job " + req->id() + " has no artifact '" +
                                                 req->path() + "' (psctl artifacts " + req->id() +
                                                 " lists them)");
      StreamEnd end;
      try {
        end = SendFile(*file, [&](int64_t offset, int64_t total, const char* data, size_t n) {
          pb::ArtifactChunk chunk;
          chunk.set_offset(offset);
          chunk.set_total_size(total);
          chunk.set_data(data, n);
          return writer->Write(chunk);
        });
      } catch (const Error& e) {
        return Status(StatusCode::INTERNAL, e.what());
      }
      return end == StreamEnd::kDone ? Status::OK
                                     : Status(StatusCode::CANCELLED, "client went away");
    });
  }
  Status DeleteJob(ServerContext* ctx, const pb::DeleteJobRequest* req,
                   pb::DeleteJobResponse* resp) override {
    return Guard(api_, ctx, "JobService/DeleteJob", [&] {
      *resp = api_.coordinator->Delete(*req);
      return Status::OK;
    });
  }

 private:
  ApiContext api_;
};

class WorkerServiceImpl final : public pb::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(ApiContext api) : api_(api) {}
  Status Register(ServerContext* ctx, const pb::RegisterRequest* req,
                  pb::RegisterResponse* resp) override {
    return Guard(api_, ctx, "WorkerService/Register", [&] {
      *resp = api_.coordinator->Register(*req);
      return Status::OK;
    });
  }
  Status Heartbeat(ServerContext* ctx, const pb::HeartbeatRequest* req,
                   pb::HeartbeatResponse* resp) override {
    return Guard(api_, ctx, "WorkerService/Heartbeat", [&] {
      *resp = api_.coordinator->Heartbeat(req->worker());
      return Status::OK;
    });
  }
  Status ReportProgress(ServerContext* ctx, const pb::ReportProgressRequest* req,
                        pb::HeartbeatResponse* resp) override {
    return Guard(api_, ctx, "WorkerService/ReportProgress", [&] {
      *resp = api_.coordinator->Progress(*req);
      return Status::OK;
    });
  }
  Status ReportCheckpoint(ServerContext* ctx, const pb::ReportCheckpointRequest* req,
                          pb::HeartbeatResponse* resp) override {
    return Guard(api_, ctx, "WorkerService/ReportCheckpoint", [&] {
      *resp = api_.coordinator->Checkpoint(*req);
      return Status::OK;
    });
  }
  Status ReportResult(ServerContext* ctx, const pb::ReportResultRequest* req,
                      pb::ReportResultResponse*) override {
    return Guard(api_, ctx, "WorkerService/ReportResult", [&] {
      api_.coordinator->Result(*req);
      return Status::OK;
    });
  }

 private:
  ApiContext api_;
};

}  // namespace

std::unique_ptr<pb::JobService::Service> MakeJobService(ApiContext ctx) {
  return std::make_unique<JobServiceImpl>(ctx);
}
std::unique_ptr<pb::WorkerService::Service> MakeWorkerService(ApiContext ctx) {
  return std::make_unique<WorkerServiceImpl>(ctx);
}

void DeclareApiMetrics(MetricsRegistry& m) {
  m.Declare("proxsparse_grpc_requests_total", MetricsRegistry::Type::kCounter, "gRPC calls served");
  m.Declare("proxsparse_grpc_request_duration_seconds", MetricsRegistry::Type::kHistogram,
            "gRPC latency in seconds (streams: until the stream ends)",
            {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300});
}

}  // namespace ps
