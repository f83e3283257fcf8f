#include "client/worker_reporter.h"

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common/error.h"
#include "proto/result_convert.h"
#include "proto/spec_convert.h"
#include "proxsparse/v1/worker_service.grpc.pb.h"

namespace ps {

namespace pb = proxsparse::v1;
using namespace std::chrono_literals;

void AddReporterFlags(CLI::App& app, ReporterOptions& o) {
  app.add_option("--coordinator", o.connection.address, "psd address HOST:PORT");
  app.add_option("--job-id", o.job_id, "the job this worker runs (given by psd)");
  app.add_option("--attempt", o.attempt, "the job's attempt number (given by psd)");
  app.add_option("--token-file", o.connection.token_file, "bearer token file for psd");
  app.add_option("--tls-ca", o.connection.tls_ca, "CA certificate (PEM) of psd's TLS certificate");
}

struct WorkerReporter::Impl {
  std::unique_ptr<pb::WorkerService::Stub> stub;
  std::string token;
  pb::WorkerId id;
};

namespace {

// Retries a call while psd is unreachable, up to `budget`; returns the last status.
template <typename F>
grpc::Status Retry(std::chrono::milliseconds budget, F&& call) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  auto backoff = 100ms;
  for (;;) {
    grpc::Status st = call();
    bool transient = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (st.ok() || !transient || std::chrono::steady_clock::now() + backoff > deadline) return st;
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

std::string Describe(const grpc::Status& st) {
  return std::to_string(static_cast<int>(st.error_code())) + " " + st.error_message();
}

}  // namespace

WorkerReporter::WorkerReporter(ReporterOptions opts) : opts_(std::move(opts)) {
  if (opts_.job_id.empty()) throw Error("--job-id: required with --coordinator");
  impl_ = std::make_unique<Impl>();
  impl_->stub = pb::WorkerService::NewStub(MakeChannel(opts_.connection));
  impl_->token = ReadToken(opts_.connection.token_file);
  impl_->id.set_job_id(opts_.job_id);
  impl_->id.set_attempt(opts_.attempt);
  if (opts_.echo_to_stderr) echo_ = std::make_unique<StderrProgressSink>(stderr);

  pb::RegisterRequest req;
  *req.mutable_worker() = impl_->id;
  req.set_world_size(opts_.world_size);
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  req.set_hostname(host);
  req.set_pid(::getpid());
  pb::RegisterResponse resp;
  grpc::Status st = Retry(opts_.retry_for, [&] {
    auto ctx =
        MakeContext(impl_->token, std::min<std::chrono::milliseconds>(5s, opts_.retry_for), true);
    return impl_->stub->Register(ctx.get(), req, &resp);
  });
  if (!st.ok())
    throw Error("cannot register job " + opts_.job_id + " attempt " +
                std::to_string(opts_.attempt) + " with psd at " + opts_.connection.address + ": " +
                st.error_message());
  if (resp.heartbeat_interval_ms() > 0)
    interval_ = std::chrono::milliseconds(resp.heartbeat_interval_ms());
  cancel_ = resp.cancel_requested();
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
}

WorkerReporter::~WorkerReporter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
}

void WorkerReporter::HeartbeatLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval_, [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    pb::HeartbeatRequest req;
    *req.mutable_worker() = impl_->id;
    pb::HeartbeatResponse resp;
    auto ctx = MakeContext(impl_->token, interval_ * 2 + 500ms, true);
    grpc::Status st = impl_->stub->Heartbeat(ctx.get(), req, &resp);
    if (st.ok()) {
      if (resp.cancel_requested()) cancel_ = true;
    } else if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
               st.error_code() == grpc::StatusCode::NOT_FOUND) {
      // psd no longer wants this attempt (cancelled, superseded): stop the work.
      std::fprintf(stderr, "psd refused the heartbeat (%s); stopping\n",
                   st.error_message().c_str());
      cancel_ = true;
    }
    lock.lock();
  }
}

void WorkerReporter::Progress(const ProgressEvent& event) {
  if (echo_) echo_->Progress(event);
  pb::ReportProgressRequest req;
  *req.mutable_worker() = impl_->id;
  *req.mutable_event() = ProgressToProto(event);
  pb::HeartbeatResponse resp;
  auto ctx = MakeContext(impl_->token, 5s);
  grpc::Status st = impl_->stub->ReportProgress(ctx.get(), req, &resp);
  if (st.ok() && resp.cancel_requested()) cancel_ = true;
  if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) cancel_ = true;
}

void WorkerReporter::Log(std::string_view line) {
  // Launchers capture the worker's stderr into the job log (local file, Slurm output, pod log).
  if (echo_)
    echo_->Log(line);
  else
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
}

void WorkerReporter::Checkpoint(int64_t step, const std::filesystem::path& dir) {
  if (echo_) echo_->Checkpoint(step, dir);
  pb::ReportCheckpointRequest req;
  *req.mutable_worker() = impl_->id;
  req.set_step(step);
  req.set_dir(std::filesystem::absolute(dir).string());
  pb::HeartbeatResponse resp;
  grpc::Status st = Retry(opts_.retry_for, [&] {
    auto ctx = MakeContext(impl_->token, 5s, true);
    return impl_->stub->ReportCheckpoint(ctx.get(), req, &resp);
  });
  if (!st.ok()) std::fprintf(stderr, "checkpoint report failed: %s\n", Describe(st).c_str());
  if (st.ok() && resp.cancel_requested()) cancel_ = true;
}

void WorkerReporter::Result(bool ok, std::string_view message,
                            const std::filesystem::path& output_dir) {
  if (echo_) echo_->Result(ok, message, output_dir);
  pb::ReportResultRequest req;
  *req.mutable_worker() = impl_->id;
  req.set_ok(ok);
  req.set_message(std::string(message));
  req.set_output_dir(output_dir.empty() ? "" : std::filesystem::absolute(output_dir).string());
  if (ok)
    if (auto summary = SummarizeReportIn(output_dir))
      *req.mutable_result() = ResultToProto(*summary);
  pb::ReportResultResponse resp;
  grpc::Status st = Retry(opts_.retry_for, [&] {
    auto ctx = MakeContext(impl_->token, 5s, true);
    return impl_->stub->ReportResult(ctx.get(), req, &resp);
  });
  if (!st.ok()) std::fprintf(stderr, "result report failed: %s\n", Describe(st).c_str());
}

}  // namespace ps
