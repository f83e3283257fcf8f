// psworker: runs one pruning job. Two ways:
//   psworker --local JOB.yaml [--output DIR] [--resume]          no coordinator; progress on stderr
//   psworker --job JOB.yaml --output DIR [--resume] --coordinator ADDR --job-id ID [...]
// Under mpirun/srun every rank runs the same command; rank 0 writes the outputs and reports.
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/watchdog.h"
#include "worker/engine/job_runner.h"
#include "worker/engine/train_loop.h"

int main(int argc, char** argv) {
  CLI::App app{"psworker: runs a ProxSparse service job (see docs/job-file.md)"};
  std::string local_job, job, output;
  bool resume = false, keep_checkpoints = false;
  double rank_timeout_s = 0;
  app.add_option("--local", local_job, "run this job file here, without a coordinator");
  app.add_option("--job", job, "job file (service mode)");
  app.add_option("--output", output, "output directory (overrides the job file's output:)");
  app.add_flag("--resume", resume, "continue from the newest complete checkpoint in the output");
  app.add_flag("--keep-checkpoints", keep_checkpoints, "keep training checkpoints after success");
  app.add_option("--rank-timeout", rank_timeout_s,
                 "abort the job when a rank makes no progress for this many seconds (default: "
                 "$PS_RANK_TIMEOUT_S, else 3600)");
  CLI11_PARSE(app, argc, argv);
  const std::string file = local_job.empty() ? job : local_job;
  if (file.empty()) {
    std::cerr << "psworker: give a job file with --local JOB.yaml\n" << app.help();
    return 2;
  }
  ps::JobSpec spec;
  std::unique_ptr<ps::Communicator> comm;
  try {
    spec = ps::LoadJobSpec(file);
    comm = ps::MakeCommunicatorFromEnvironment(spec.device == "cuda");
    // A rank that hangs (or waits on one that does) ends the job instead of waiting forever.
    ps::StartRankWatchdog(rank_timeout_s > 0 ? rank_timeout_s : ps::RankTimeoutSeconds(3600), *comm);
  } catch (const std::exception& e) {
    std::cerr << "psworker: error: " << e.what() << "\n";
    return 1;
  }
  ps::InstallStopSignalHandlers();
  ps::StderrProgressSink stderr_sink;
  std::unique_ptr<ps::JsonLinesProgressSink> jsonl;
  std::filesystem::path out_dir;
  try {
    out_dir = output.empty() ? spec.output : std::filesystem::path(output);
    if (out_dir.empty()) throw ps::Error("output: no output directory (set output: or pass --output)");
    std::vector<ps::ProgressSink*> sinks = {&stderr_sink};
    if (comm->rank() == 0) {
      std::filesystem::create_directories(out_dir);
      jsonl = std::make_unique<ps::JsonLinesProgressSink>(out_dir / "progress.jsonl");
      sinks.push_back(jsonl.get());
    }
    ps::TeeProgressSink tee(sinks);
    ps::RunOptions o;
    o.output = out_dir;
    o.resume = resume;
    o.keep_checkpoints = keep_checkpoints;
    nlohmann::json report = ps::RunJob(spec, o, *comm, tee);
    if (comm->rank() == 0) {
      tee.Result(true, "done", out_dir);
      std::cout << (out_dir / "report.json").string() << "\n";
    }
    ps::StopRankWatchdog();
    return 0;
  } catch (const std::exception& e) {
    if (comm->rank() == 0) {
      if (jsonl) jsonl->Result(false, e.what(), out_dir);
      stderr_sink.Result(false, e.what(), out_dir);
    } else {
      std::cerr << "psworker rank " << comm->rank() << ": error: " << e.what() << "\n";
    }
    comm->Abort(1);
    return 1;
  }
}
