#include "client/worker_reporter.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <random>

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
  app.add_option("--worker-token-file", o.worker_token_file,
                 "this attempt's worker credential (given by psd; replaces --token-file)");
  app.add_option("--tls-ca", o.connection.tls_ca, "CA certificate (PEM) of psd's TLS certificate");
  app.add_option("--tls-cert", o.connection.tls_cert,
                 "client certificate (PEM) for psd's mTLS (psd --tls-client-ca)");
  app.add_option("--tls-key", o.connection.tls_key, "private key (PEM) of --tls-cert");
}

struct WorkerReporter::Impl {
  std::unique_ptr<pb::WorkerService::Stub> stub;
  std::string token;
  pb::WorkerId id;
};

namespace {

// psd unreachable, restarting or briefly unable to record: worth another try. Anything else is
// psd's answer (refused, unknown job, stale attempt).
bool Transient(const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

// Retries a call while the failure is transient, up to `budget`, with exponential backoff (100 ms
// doubling to `max_backoff`, +-25 % jitter so that many workers do not retry in step). `abort`
// is polled between tries. Returns the last status.
template <typename F, typename A>
grpc::Status Retry(std::chrono::milliseconds budget, std::chrono::milliseconds max_backoff,
                   A&& abort, F&& call) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(::getpid()));
  auto deadline = std::chrono::steady_clock::now() + budget;
  auto backoff = 100ms;
  for (;;) {
    grpc::Status st = call();
    if (st.ok() || !Transient(st)) return st;
    std::uniform_real_distribution<double> jitter(0.75, 1.25);
    auto wait = std::chrono::milliseconds(static_cast<int64_t>(backoff.count() * jitter(rng)));
    if (std::chrono::steady_clock::now() + wait > deadline) return st;
    for (auto until = std::chrono::steady_clock::now() + wait;
         std::chrono::steady_clock::now() < until;) {
      if (abort()) return st;
      std::this_thread::sleep_for(
          std::min<std::chrono::nanoseconds>(50ms, until - std::chrono::steady_clock::now()));
    }
    backoff = std::min(backoff * 2, max_backoff);
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
  impl_->token = opts_.worker_token_file.empty() ? ReadToken(opts_.connection.token_file)
                                                 : ReadToken(opts_.worker_token_file);
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
  grpc::Status st = Retry(
      opts_.retry_for, 2000ms, [&] { return opts_.stop_requested && opts_.stop_requested(); },
      [&] {
        auto ctx = MakeContext(impl_->token,
                               std::min<std::chrono::milliseconds>(5s, opts_.retry_for), true);
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
  checkpoints_ = std::thread([this] { CheckpointLoop(); });
}

WorkerReporter::~WorkerReporter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  if (checkpoints_.joinable()) checkpoints_.join();
}

bool WorkerReporter::Stopping() {
  std::lock_guard lock(mu_);
  return stop_;
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

// Delivers checkpoints off the training thread: training writes a checkpoint, hands it over and
// goes on; psd learns of it when reachable. Only the newest undelivered one matters (a retry
// resumes from the newest complete checkpoint on disk).
void WorkerReporter::CheckpointLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_.has_value(); });
    if (stop_) return;
    PendingCheckpoint c = *pending_;
    pending_.reset();
    lock.unlock();
    pb::ReportCheckpointRequest req;
    *req.mutable_worker() = impl_->id;
    req.set_step(c.step);
    req.set_dir(c.dir);
    pb::HeartbeatResponse resp;
    auto superseded = [&] {
      std::lock_guard l(mu_);
      return stop_ || result_started_ || pending_.has_value();
    };
    grpc::Status st = Retry(opts_.retry_for, 2000ms, superseded, [&] {
      auto ctx = MakeContext(impl_->token, 5s, true);
      return impl_->stub->ReportCheckpoint(ctx.get(), req, &resp);
    });
    if (st.ok() && resp.cancel_requested()) cancel_ = true;
    if (!st.ok() && !superseded())
      std::fprintf(stderr, "checkpoint report of step %lld failed: %s\n",
                   static_cast<long long>(c.step), Describe(st).c_str());
    lock.lock();
  }
}

void WorkerReporter::Progress(const ProgressEvent& event) {
  if (echo_) echo_->Progress(event);
  pb::ReportProgressRequest req;
  *req.mutable_worker() = impl_->id;
  *req.mutable_event() = ProgressToProto(event);
  pb::HeartbeatResponse resp;
  // No wait_for_ready: while psd is away a progress report fails at once instead of stalling
  // the step that sent it.
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
  {
    std::lock_guard lock(mu_);
    pending_ = PendingCheckpoint{step, std::filesystem::absolute(dir).string()};
  }
  cv_.notify_all();
}

void WorkerReporter::Result(bool ok, std::string_view message,
                            const std::filesystem::path& output_dir) {
  if (echo_) echo_->Result(ok, message, output_dir);
  {
    std::lock_guard lock(mu_);
    result_started_ = true;
    pending_.reset();
  }
  pb::ReportResultRequest req;
  *req.mutable_worker() = impl_->id;
  req.set_ok(ok);
  req.set_message(std::string(message));
  req.set_output_dir(output_dir.empty() ? "" : std::filesystem::absolute(output_dir).string());
  if (ok)
    if (auto summary = SummarizeReportIn(output_dir))
      *req.mutable_result() = ResultToProto(*summary);
  pb::ReportResultResponse resp;
  // A success is what the whole run was for: keep offering it for as long as allowed. A failure
  // gets the ordinary budget (psd also learns of it from the exit code).
  auto budget = ok ? opts_.result_retry_for : opts_.retry_for;
  if (ok && opts_.result_deadline)
    budget =
        std::max(opts_.retry_for, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      *opts_.result_deadline - std::chrono::steady_clock::now()));
  auto start = std::chrono::steady_clock::now();
  bool told = false;
  grpc::Status st = Retry(
      budget, 10000ms, [&] { return opts_.stop_requested && opts_.stop_requested(); },
      [&] {
        auto ctx = MakeContext(impl_->token, 5s, true);
        grpc::Status s = impl_->stub->ReportResult(ctx.get(), req, &resp);
        if (!s.ok() && Transient(s) && !told && std::chrono::steady_clock::now() - start > 10s) {
          told = true;
          std::fprintf(stderr,
                       "psd is unreachable (%s); still offering the result for up to %lld s\n",
                       Describe(s).c_str(),
                       static_cast<long long>(
                           std::chrono::duration_cast<std::chrono::seconds>(budget).count()));
        }
        return s;
      });
  if (st.ok()) {
    result_acked_ = true;
  } else {
    std::fprintf(stderr, "result report failed: %s\n", Describe(st).c_str());
  }
}

}  // namespace ps
