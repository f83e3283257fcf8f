// psworker: runs one pruning job. Two ways:
//   psworker --local JOB.yaml [--output DIR] [--resume] [--set KEY=VALUE ...]   no coordinator
//   psworker --job JOB.yaml --output DIR --coordinator ADDR --job-id ID [--attempt N] [--resume]
//   psworker --plan JOB.yaml [--ranks N] [--gpu-memory GiB]   predicted memory per rank, no run
// Under mpirun/srun every rank runs the same command; rank 0 writes the outputs and reports.
// Exit codes: 0 done, 1 failed, 2 bad command line, 3 stopped (SIGTERM/cancel) after a checkpoint.
//
// Service mode keeps what a lost result needs: the checkpoints stay until psd has acknowledged
// the result, and OUTPUT/.result-manifest.json (worker/tools/result_manifest.h) pins the published
// files. A later attempt (--attempt > 1 or --resume) whose outputs verify against the manifest
// reports them instead of running the job again.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "common/error.h"
#include "common/file_util.h"
#include "common/job_spec.h"
#include "common/memory_plan.h"
#include "common/progress.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/watchdog.h"
#include "worker/engine/job_runner.h"
#include "worker/engine/train_loop.h"
#include "worker/tools/job_overrides.h"
#include "worker/tools/result_manifest.h"
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
  double report_retry_s = -1, result_retry_s = -1;
  app.add_option("--report-retry-for", report_retry_s,
                 "seconds registration and each checkpoint report retry while psd is unreachable "
                 "(default: $PS_REPORT_RETRY_S, else 60)");
  app.add_option("--result-retry-for", result_retry_s,
                 "seconds a finished job keeps offering its result to an unreachable psd "
                 "(default: $PS_RESULT_RETRY_S, else until the job's time limit runs out)");
#endif
  [[maybe_unused]] const auto started = std::chrono::steady_clock::now();
  std::string plan_job;
  int plan_ranks = 0;
  double plan_gpu_gib = 0;
  app.add_option("--plan", plan_job,
                 "print the predicted peak memory per rank of this job and whether it fits; exit "
                 "0 when it fits, 4 when it does not (docs/distributed.md)");
  app.add_option("--ranks", plan_ranks, "with --plan: rank count (default: resources.ranks)");
  app.add_option(
      "--gpu-memory", plan_gpu_gib,
      "with --plan: memory per GPU in GiB (cuda jobs; cpu jobs use resources.memory_gb)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // bad command line: 2 (docs/exit-codes.md)
  }
  if (!plan_job.empty()) {
    try {
      ps::JobSpec spec = ps::LoadJobSpecWithOverrides(plan_job, overrides);
      ps::PlanInput in =
          ps::PlanInputFromJob(spec, ps::LoadModelShape(spec.model), plan_ranks, plan_gpu_gib);
      ps::MemoryPlan p = ps::PlanMemory(in);
      std::cout << ps::DescribePlan(in, p);
      return p.fits ? 0 : 4;
    } catch (const std::exception& e) {
      std::cerr << "psworker: error: " << e.what() << "\n";
      return 1;
    }
  }
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
    bool service = false;
#ifdef PS_WITH_REPORTER
    std::unique_ptr<ps::WorkerReporter> reporter;
    service = !reporter_options.job_id.empty();
    if (service && comm->rank() == 0) {
      reporter_options.world_size = comm->size();
      auto seconds = [](double flag, const char* env, double def) {
        if (flag < 0 && std::getenv(env)) flag = std::atof(std::getenv(env));
        return std::chrono::milliseconds(static_cast<int64_t>((flag < 0 ? def : flag) * 1000));
      };
      reporter_options.retry_for = seconds(report_retry_s, "PS_REPORT_RETRY_S", 60);
      reporter_options.result_retry_for = seconds(result_retry_s, "PS_RESULT_RETRY_S", 60);
      if (result_retry_s < 0 && !std::getenv("PS_RESULT_RETRY_S"))
        reporter_options.result_deadline =
            started + std::chrono::minutes(spec.resources.time_limit_minutes);
      reporter_options.stop_requested = [] { return ps::StopRequested(); };
      reporter = std::make_unique<ps::WorkerReporter>(reporter_options);
      sinks.push_back(reporter.get());
    }
    // Every later attempt continues from what is on disk: the newest complete checkpoint, or the
    // published outputs of an attempt whose result psd never acknowledged.
    if (service && reporter_options.attempt > 1) resume = true;
#endif
    // A result is kept for psd to acknowledge (ResultAcknowledged), so in service mode the
    // checkpoints are removed here, after the acknowledgement, not by the engine.
    auto finish = [&] {
      bool acked = true;
#ifdef PS_WITH_REPORTER
      if (reporter) acked = reporter->ResultAcknowledged();
#endif
      if (!acked) {
        std::fprintf(stderr,
                     "psd has not acknowledged the result; the published outputs (pinned by %s) "
                     "and the last checkpoint stay in %s for the next attempt to adopt\n",
                     ps::kResultManifestName, out_dir.c_str());
      } else if (service && !keep_checkpoints) {
        if (const std::error_code ec = ps::RemoveTree(out_dir / "checkpoints"))
          std::fprintf(stderr, "warning: cannot remove %s: %s\n", (out_dir / "checkpoints").c_str(),
                       ec.message().c_str());
      }
    };
    if (sinks.empty()) sinks.push_back(&stderr_sink);
    if (comm->rank() == 0) {
      std::filesystem::create_directories(out_dir);
      jsonl = std::make_unique<ps::JsonLinesProgressSink>(out_dir / "progress.jsonl");
      sinks.push_back(jsonl.get());
    }
    ps::TeeProgressSink tee(sinks);
    const std::string job_hash = ps::JobSpecHash(spec);
    if (service && resume) {
      // Rank 0 verifies and removes a manifest that does not hold; after the barrier every rank
      // sees the same answer on the (shared) output directory.
      if (comm->rank() == 0) {
        ps::AdoptionCheck c = ps::CheckResultManifest(out_dir, job_hash);
        if (c.present && !c.valid) {
          tee.Log(std::string("not adopting the outputs of an earlier attempt: ") +
                  ps::kResultManifestName + " " + c.why + "; running the job");
          std::filesystem::remove(out_dir / ps::kResultManifestName);
        } else if (c.valid) {
          tee.Log("adopting the outputs of an earlier attempt: " + std::to_string(c.files) +
                  " files verified against " + ps::kResultManifestName);
        }
      }
      comm->Barrier();
      if (std::filesystem::exists(out_dir / ps::kResultManifestName)) {
        if (comm->rank() == 0) {
          tee.Result(true, "done (outputs of an earlier attempt adopted after verification)",
                     out_dir);
          finish();
        }
        ps::StopRankWatchdog();
        return 0;
      }
    }
    try {
      ps::RunOptions o;
      o.output = out_dir;
      o.resume = resume;
      o.keep_checkpoints = keep_checkpoints || service;
      ps::RunJob(spec, o, *comm, tee);
      if (comm->rank() == 0) {
        if (service) ps::WriteResultManifest(out_dir, job_hash);
        tee.Result(true, "done", out_dir);
        finish();
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
