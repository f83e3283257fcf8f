// The worker's side of the WorkerService: a ProgressSink that rank 0 of a job hands to the
// engine. It registers with psd, sends a heartbeat every few seconds from its own thread, and
// turns Progress/Checkpoint/Result into ReportProgress/ReportCheckpoint/ReportResult. A cancel
// seen in any reply makes CancelRequested() true.
//
// psd being away (restart, outage) is not fatal and never stalls training:
//   progress     dropped while psd is unreachable (the next report carries the state);
//   checkpoints  handed to a sender thread and retried there (a newer one replaces one not yet
//                delivered), so Checkpoint() returns at once;
//   the result   retried with backoff for `result_retry_for` (psworker: as long as the job's time
//                limit allows); ResultAcknowledged() says whether psd took it. psworker keeps the
//                last checkpoint and a verified manifest of the outputs until then, so that a
//                relaunch adopts the outputs instead of rerunning (docs/psworker.md).
//
// psworker's service mode is launched by psd as
//   psworker --job JOB.yaml --output DIR --coordinator ADDR --job-id ID --attempt N
//            [--resume] [--worker-token-file F] [--token-file F] [--tls-ca F]
//            [--tls-cert F --tls-key F]
// (--resume: continue from the newest complete checkpoint under DIR; --worker-token-file: the
// per-job credential psd issued for this attempt; --tls-cert/--tls-key: the client certificate
// when psd requires mTLS) (docs/service.md "Worker command line"); AddReporterFlags registers
// the reporter's part.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "client/channel.h"
#include "common/progress.h"

namespace CLI {
class App;
}

namespace ps {

struct ReporterOptions {
  ConnectionOptions connection;
  std::string job_id;
  int attempt = 1;
  int world_size = 1;
  // The per-job worker credential (psd --worker-credentials); used instead of the token file.
  std::string worker_token_file;
  // How long Register and each checkpoint report keep retrying while psd is unreachable.
  std::chrono::milliseconds retry_for{60000};
  // How long a successful result keeps being retried: until result_deadline when set (psworker:
  // the end of the job's time limit; never less than retry_for), else result_retry_for.
  std::chrono::milliseconds result_retry_for{60000};
  std::optional<std::chrono::steady_clock::time_point> result_deadline;
  bool echo_to_stderr = true;  // also show progress and logs on stderr (captured in the job log)
  // Polled while retrying: true ends the retries early (psworker: SIGTERM/SIGINT received).
  std::function<bool()> stop_requested;
};

// Adds --coordinator, --job-id, --attempt, --token-file, --worker-token-file, --tls-ca,
// --tls-cert, --tls-key to a CLI11 app.
void AddReporterFlags(CLI::App& app, ReporterOptions& opts);

class WorkerReporter : public ProgressSink {
 public:
  // Registers (retrying up to retry_for) and starts the heartbeat and checkpoint threads; throws
  // ps::Error when psd refuses the worker (unknown job, stale attempt, bad credential).
  explicit WorkerReporter(ReporterOptions opts);
  ~WorkerReporter() override;
  WorkerReporter(const WorkerReporter&) = delete;
  WorkerReporter& operator=(const WorkerReporter&) = delete;

  void Progress(const ProgressEvent& event) override;
  void Log(std::string_view line) override;
  void Checkpoint(int64_t step, const std::filesystem::path& dir) override;
  void Result(bool ok, std::string_view message, const std::filesystem::path& output_dir) override;
  bool CancelRequested() override { return cancel_.load(); }
  // True once psd has accepted the result (Result() returned after an OK reply).
  bool ResultAcknowledged() const { return result_acked_.load(); }

 private:
  struct Impl;
  struct PendingCheckpoint {
    int64_t step;
    std::string dir;
  };
  void HeartbeatLoop();
  void CheckpointLoop();
  bool Stopping();
  ReporterOptions opts_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<StderrProgressSink> echo_;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> result_acked_{false};
  std::chrono::milliseconds interval_{2000};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool result_started_ = false;               // a result supersedes undelivered checkpoints
  std::optional<PendingCheckpoint> pending_;  // newest checkpoint not yet delivered
  std::thread heartbeat_;
  std::thread checkpoints_;
};

}  // namespace ps
