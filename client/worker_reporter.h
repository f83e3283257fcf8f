// The worker's side of the WorkerService: a ProgressSink that rank 0 of a job hands to the
// engine. It registers with psd, sends a heartbeat every few seconds from its own thread, and
// turns Progress/Checkpoint/Result into ReportProgress/ReportCheckpoint/ReportResult. A cancel
// seen in any reply makes CancelRequested() true. psd being briefly away (restart) is not fatal:
// progress is dropped, checkpoints and the result are retried.
//
// psworker's service mode is launched by psd as
//   psworker --job JOB.yaml --output DIR --coordinator ADDR --job-id ID --attempt N
//            [--resume] [--token-file F] [--tls-ca F]
// (--resume: continue from the newest complete checkpoint under DIR; psd passes it once the job
// reported a checkpoint)
// (docs/service.md "Worker command line"); AddReporterFlags registers the reporter's part.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
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
  // How long Register, checkpoint and result reports keep retrying while psd is unreachable.
  std::chrono::milliseconds retry_for{60000};
  bool echo_to_stderr = true;  // also show progress and logs on stderr (captured in the job log)
};

// Adds --coordinator, --job-id, --attempt, --token-file, --tls-ca to a CLI11 app.
void AddReporterFlags(CLI::App& app, ReporterOptions& opts);

class WorkerReporter : public ProgressSink {
 public:
  // Registers (retrying up to retry_for) and starts the heartbeat thread; throws ps::Error when
  // psd refuses the worker (unknown job, stale attempt, bad token).
  explicit WorkerReporter(ReporterOptions opts);
  ~WorkerReporter() override;
  WorkerReporter(const WorkerReporter&) = delete;
  WorkerReporter& operator=(const WorkerReporter&) = delete;

  void Progress(const ProgressEvent& event) override;
  void Log(std::string_view line) override;
  void Checkpoint(int64_t step, const std::filesystem::path& dir) override;
  void Result(bool ok, std::string_view message, const std::filesystem::path& output_dir) override;
  bool CancelRequested() override { return cancel_.load(); }

 private:
  struct Impl;
  void HeartbeatLoop();
  ReporterOptions opts_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<StderrProgressSink> echo_;
  std::atomic<bool> cancel_{false};
  std::chrono::milliseconds interval_{2000};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread heartbeat_;
};

}  // namespace ps
