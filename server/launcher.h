// Launchers start a job's workers somewhere (local processes, Slurm, Kubernetes) and answer
// "is it still running?". The coordinator owns all policy (retries, timeouts, cancel); a launcher
// only starts, polls and stops. Ids are strings the launcher can poll again after a coordinator
// restart (a pid with its start time, a Slurm job id, a Kubernetes object name).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/job_spec.h"

namespace ps {

struct LaunchRequest {
  std::string job_id;
  int attempt = 1;
  JobSpec spec;                    // resources: ranks, cpus/gpus per rank, memory, time limit
  std::filesystem::path job_dir;   // per-job directory (shared filesystem for Slurm/Kubernetes)
  std::filesystem::path log_file;  // where stdout and stderr of the workers go (appended)
  std::string worker_bin;          // psworker (or a test worker)
  std::vector<std::string> worker_args;  // everything after the binary
};

enum class RunState { kPending, kRunning, kExited, kGone };

struct RunStatus {
  RunState state = RunState::kGone;
  int exit_code = 0;   // kExited: the exit code (128 + signal for signals)
  std::string detail;  // human words: "exit code 137 (killed by signal 9)", "PENDING (Priority)"
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual std::string Name() const = 0;
  // Starts the workers; returns the launcher id. Throws ps::Error when it cannot.
  virtual std::string Launch(const LaunchRequest& req) = 0;
  virtual RunStatus Poll(const std::string& launcher_id) = 0;
  // Stops the workers: politely (SIGTERM, scancel, delete) or, with force, at once (SIGKILL).
  virtual void Terminate(const std::string& launcher_id, bool force) = 0;
};

// Local: `mpirun -np N worker ...` (or the worker directly when N == 1) as a child process in its
// own process group, stdout+stderr appended to the job log.
struct LocalLauncherOptions {
  std::string mpirun = "mpirun";
  std::vector<std::string> mpirun_args;  // extra, e.g. --bind-to none
};
std::unique_ptr<Launcher> MakeLocalLauncher(LocalLauncherOptions opts);

// Slurm: writes JOBDIR/attempt-N.sbatch (srun of the worker), submits it with sbatch, tracks it
// with squeue (then sacct / scontrol once it left the queue), cancels with scancel.
struct SlurmLauncherOptions {
  std::string partition;
  std::string account;
  std::vector<std::string> sbatch_lines;  // extra "#SBATCH ..." lines
  std::vector<std::string> srun_args;     // e.g. --mpi=pmix
  std::string bin_dir;                    // where sbatch/squeue/... live; empty: PATH
};
std::unique_ptr<Launcher> MakeSlurmLauncher(SlurmLauncherOptions opts);
// The sbatch script for a request (exposed for golden tests).
std::string RenderSbatchScript(const LaunchRequest& req, const SlurmLauncherOptions& opts);

// Kubernetes: renders a batch/v1 Job (1 rank) or a Kubeflow MPIJob v2beta1 (N ranks) plus a
// headless Service, applies it with kubectl, tracks and deletes it.
struct KubernetesLauncherOptions {
  std::string kubectl = "kubectl";
  std::string namespace_ = "default";
  std::string image = "proxsparse/worker:latest";
  std::string pvc;  // PersistentVolumeClaim holding the job directories (mounted at the same path)
  std::string mount_path;  // where the claim is mounted (the coordinator's data directory)
  std::string service_account;
};
std::unique_ptr<Launcher> MakeKubernetesLauncher(KubernetesLauncherOptions opts);
std::string RenderKubernetesManifest(const LaunchRequest& req,
                                     const KubernetesLauncherOptions& opts);

// Runs a command (no shell), returns its exit code and captured stdout (+stderr); used by the
// Slurm and Kubernetes launchers.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               const std::string& stdin_text = "");

}  // namespace ps
