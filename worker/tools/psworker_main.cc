// psworker: runs one pruning job. Two ways:
//   psworker --local JOB.yaml [--output DIR] [--resume] [--set KEY=VALUE ...]   no coordinator
//   psworker --job JOB.yaml --output DIR --coordinator ADDR --job-id ID [--attempt N] [--resume]
// Under mpirun/srun every rank runs the same command; rank 0 writes the outputs and reports.
// Exit codes: 0 done, 1 failed, 2 bad command line, 3 stopped (SIGTERM/cancel) after a checkpoint.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/watchdog.h"
#include "worker/engine/job_runner.h"
#include "worker/engine/train_loop.h"
#include "worker/tools/job_overrides.h"
#ifdef PS_WITH_REPORTER
#include "client/worker_reporter.h"
#endif

int main(int argc, char** argv) {
  CLI::App app{"psworker: runs a ProxSparse service job (see docs/job-file.md)"};
  std::string local_job, job, output;
  bool resume = false, keep_checkpoints = false;
  std::vector<std::string> overrides;
  double rank_timeout_s = 0;
  app.add_option("--local", local_job, "run this job file here, without a coordinator");
  app.add_option("--job", job, "job file (service mode)");
  app.add_option("--output", output, "output directory (overrides the job file's output:)");
  app.add_option("--set", overrides, "override a job key: --set method.lambda1=2 (repeatable)");
  app.add_flag("--resume", resume, "continue from the newest complete checkpoint in the output");
  app.add_flag("--keep-checkpoints", keep_checkpoints, "keep training checkpoints after success");
  app.add_option("--rank-timeout", rank_timeout_s,
                 "abort the job when a rank makes no progress for this many seconds (default: "
                 "$PS_RANK_TIMEOUT_S, else 3600)");
#ifdef PS_WITH_REPORTER
  ps::ReporterOptions reporter_options;
  ps::AddReporterFlags(app, reporter_options);
#endif
  CLI11_PARSE(app, argc, argv);
  const std::string file = local_job.empty() ? job : local_job;
  if (file.empty()) {
    std::cerr << "psworker: give a job file with --local JOB.yaml\n" << app.help();
    return 2;
  }

  ps::JobSpec spec;
  std::unique_ptr<ps::Communicator> comm;
  std::filesystem::path out_dir;
  try {
    spec = ps::LoadJobSpecWithOverrides(file, overrides);
    out_dir = output.empty() ? spec.output : std::filesystem::path(output);
    if (out_dir.empty())
      throw ps::Error("output: no output directory (set output: or pass --output)");
    comm = ps::MakeCommunicatorFromEnvironment(spec.device == ps::Device::kCuda);
    // A rank that hangs (or waits on one that does) ends the job instead of waiting forever.
    ps::StartRankWatchdog(rank_timeout_s > 0 ? rank_timeout_s : ps::RankTimeoutSeconds(3600),
                          *comm);
  } catch (const std::exception& e) {
    std::cerr << "psworker: error: " << e.what() << "\n";
    return 1;
  }
  ps::InstallStopSignalHandlers();

  // Rank 0 reports: to the coordinator in service mode (it echoes to stderr), else to stderr; and
  // always to OUTPUT/progress.jsonl.
  ps::StderrProgressSink stderr_sink(stderr, spec.pattern.ToString());
  std::unique_ptr<ps::JsonLinesProgressSink> jsonl;
  std::vector<ps::ProgressSink*> sinks;
  try {
#ifdef PS_WITH_REPORTER
    std::unique_ptr<ps::WorkerReporter> reporter;
    if (!reporter_options.job_id.empty() && comm->rank() == 0) {
      reporter_options.world_size = comm->size();
      reporter = std::make_unique<ps::WorkerReporter>(reporter_options);
      sinks.push_back(reporter.get());
    }
#endif
    if (sinks.empty()) sinks.push_back(&stderr_sink);
    if (comm->rank() == 0) {
      std::filesystem::create_directories(out_dir);
      jsonl = std::make_unique<ps::JsonLinesProgressSink>(out_dir / "progress.jsonl");
      sinks.push_back(jsonl.get());
    }
    ps::TeeProgressSink tee(sinks);
    try {
      ps::RunOptions o;
      o.output = out_dir;
      o.resume = resume;
      o.keep_checkpoints = keep_checkpoints;
      ps::RunJob(spec, o, *comm, tee);
      if (comm->rank() == 0) {
        tee.Result(true, "done", out_dir);
        std::cout << (out_dir / "report.json").string() << "\n";
      }
      ps::StopRankWatchdog();
      return 0;
    } catch (const std::exception& e) {
      const bool stopped = ps::StopRequested() || tee.CancelRequested();
      if (comm->rank() == 0)
        tee.Result(false, e.what(), out_dir);
      else
        std::cerr << "psworker rank " << comm->rank() << ": error: " << e.what() << "\n";
      if (stopped) return 3;
      if (comm->size() > 1) comm->Abort(1);  // never leave the other ranks in a collective
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "psworker: error: " << e.what() << "\n";
    if (comm->size() > 1) comm->Abort(1);
    return 1;
  }
}
