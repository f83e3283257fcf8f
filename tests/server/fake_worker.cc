// A test-only stand-in for psworker: speaks the WorkerService through ps_reporter exactly as
// psworker does, but "trains" by sleeping. Its behaviour comes from the job's name, a comma list:
//   step_s=0.05      seconds per step          crash_at=K   exit 3 at step K on attempt 1
//   crash_always     crash_at on every attempt report_fail  report a failure at the end
//   hang_at=K        SIGSTOP itself at step K (heartbeats stop) on attempt 1
//   rm_ckpt          delete the checkpoints after success, as psworker does by default
// Steps: method.max_steps (default 20); checkpoints every checkpoint.every_steps into
// OUTPUT/checkpoints/step-N; --resume continues from the newest one (as psworker does). At the end
// it writes report.json (psworker's result fields: dense/pruned/baseline perplexity, validity,
// wall time), masks.bin (seeded pseudo-random bytes) and history.csv into OUTPUT.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "client/worker_reporter.h"
#include "common/file_util.h"
#include "common/job_spec.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::string job_file, output;
  bool resume = false;
  ps::ReporterOptions ropts;
  CLI::App app{"fake psworker for service tests"};
  app.add_option("--job", job_file)->required();
  app.add_option("--output", output)->required();
  app.add_flag("--resume", resume);
  ps::AddReporterFlags(app, ropts);
  CLI11_PARSE(app, argc, argv);
  ropts.retry_for = std::chrono::milliseconds(20000);
  try {
    ps::JobSpec spec = ps::LoadJobSpec(job_file);
    std::map<std::string, std::string> opt;
    std::stringstream names(spec.name);
    for (std::string item; std::getline(names, item, ',');) {
      auto eq = item.find('=');
      opt[item.substr(0, eq)] = eq == std::string::npos ? "1" : item.substr(eq + 1);
    }
    double step_s = opt.count("step_s") ? std::stod(opt["step_s"]) : 0.05;
    int64_t total = spec.method.max_steps > 0 ? spec.method.max_steps : 20;
    int64_t crash_at = opt.count("crash_at") ? std::stoll(opt["crash_at"]) : -1;
    int64_t hang_at = opt.count("hang_at") ? std::stoll(opt["hang_at"]) : -1;
    bool first_attempt = ropts.attempt == 1 || opt.count("crash_always");

    ps::WorkerReporter rep(ropts);
    rep.Log("fake worker: job " + ropts.job_id + " attempt " + std::to_string(ropts.attempt) +
            " pid " + std::to_string(::getpid()));
    int64_t step = 0;
    if (resume) {
      fs::path ckpts = fs::path(output) / "checkpoints";
      if (fs::is_directory(ckpts))
        for (const auto& d : fs::directory_iterator(ckpts))
          if (fs::exists(d.path() / "state.txt"))
            step = std::max<int64_t>(step, std::stoll(ps::ReadFile(d.path() / "state.txt")));
      rep.Log("resumed from step " + std::to_string(step));
    }
    fs::create_directories(output);
    std::string history = "step,loss\n";
    auto t0 = std::chrono::steady_clock::now();
    while (step < total) {
      if (rep.CancelRequested()) {
        rep.Log("cancel requested; stopping at step " + std::to_string(step));
        return 143;
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(step_s));
      ++step;
      if (first_attempt && step == crash_at) {
        rep.Log("crashing at step " + std::to_string(step) + " as asked");
        std::fflush(stderr);
        ::_exit(3);
      }
      if (ropts.attempt == 1 && step == hang_at) {
        rep.Log("hanging at step " + std::to_string(step) + " as asked");
        ::raise(SIGSTOP);
      }
      ps::ProgressEvent e;
      e.step = step;
      e.total_steps = total;
      e.loss = 3.0 / (1.0 + 0.1 * static_cast<double>(step));
      e.nm_ratio = static_cast<double>(step) / static_cast<double>(total);
      e.mid_ratio = (1 - e.nm_ratio) / 2;
      e.dense_ratio = (1 - e.nm_ratio) / 2;
      e.mask_flips = total - step;
      e.prox_capped_groups = 0;  // what psworker reports when every prox is exact
      e.lr = 1e-4;
      double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      e.tokens_per_s = 512.0 * static_cast<double>(step) / std::max(el, 1e-3);
      e.eta_s = step_s * static_cast<double>(total - step);
      e.phase_seconds = {{"forward_backward", step_s * 0.8},
                         {"prox", step_s * 0.1},
                         {"optimizer", step_s * 0.1},
                         {"communication", 0}};
      e.gpu_mem_bytes = 1 << 20;  // fake NVML figures so every metric family has a series
      e.gpu_util = 0.5;
      rep.Progress(e);
      history += std::to_string(step) + "," + std::to_string(e.loss) + "\n";
      if (spec.checkpoint.every_steps > 0 && step % spec.checkpoint.every_steps == 0 &&
          step < total) {
        fs::path dir = fs::path(output) / "checkpoints" / ("step-" + std::to_string(step));
        fs::create_directories(dir);
        ps::WriteFileAtomic(dir / "state.txt", std::to_string(step));
        rep.Checkpoint(step, dir);
      }
    }
    if (opt.count("report_fail")) {
      rep.Result(false, "loss diverged (as asked)", output);
      return 1;
    }
    std::mt19937_64 rng(spec.seed);
    std::string masks(2 * 1024 * 1024 + 7, '\0');  // spans three 1 MiB download chunks
    for (auto& c : masks) c = static_cast<char>(rng());
    ps::WriteFileAtomic(fs::path(output) / "masks.bin", masks);
    ps::WriteFileAtomic(fs::path(output) / "history.csv", history);
    fs::create_directories(fs::path(output) / "model");
    ps::WriteFileAtomic(fs::path(output) / "model" / "config.json", "{\"fake\": true}\n");
    const bool rm_ckpt = opt.count("rm_ckpt") > 0;
    if (rm_ckpt) fs::remove_all(fs::path(output) / "checkpoints");
    // The fields psctl and the result metrics read; the figures are fixed so tests can compare.
    ps::WriteFileAtomic(
        fs::path(output) / "report.json",
        "{\"method\": \"" + spec.method.name + "\", \"pattern\": \"" + spec.pattern.ToString() +
            "\", \"steps\": " + std::to_string(total) +
            ", \"dense\": {\"eval.txt\": {\"perplexity\": 4.5}}"
            ", \"pruned\": {\"eval.txt\": {\"perplexity\": 6.75}}"
            ", \"baselines\": {\"magnitude\": {\"eval.txt\": {\"perplexity\": 12.5}}}"
            ", \"validity\": {\"valid\": true, \"layers\": [{\"groups\": 300, "
            "\"nm_sparse_fraction\": 1.0}, {\"groups\": 100, \"nm_sparse_fraction\": 0.5}]}"
            ", \"wall_seconds\": 92.0, \"checkpoints_removed\": " +
            (rm_ckpt ? "true" : "false") + "}\n");
    rep.Result(true, "finished " + std::to_string(total) + " steps", output);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fake worker: %s\n", e.what());
    return 2;
  }
}
