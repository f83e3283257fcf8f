// Test harness for the service: real psd, psctl and worker processes on loopback, each psd with
// its own temporary data directory, store and free ports.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ps::test {

struct CmdResult {
  int rc = -1;
  std::string out, err;
};

// Runs argv to completion (with extra environment), capturing stdout and stderr.
CmdResult Run(const std::vector<std::string>& argv,
              const std::map<std::string, std::string>& env = {}, double timeout_s = 60);
// Starts argv in the background (own process group) with stdout+stderr into `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::filesystem::path& log);
bool Alive(pid_t pid);
int FreePort();
bool WaitFor(const std::function<bool()>& cond, double timeout_s, double poll_s = 0.05);

// Under the build tree, or under $PS_TEST_BINARY_DIR when set (to test another build).
std::string BinaryPath(const std::string& rel);

class Psd {
 public:
  // `extra` flags go after the defaults (later values win).
  Psd(std::filesystem::path data_dir, std::vector<std::string> extra = {}, int port = 0);
  ~Psd();
  void Start();
  void Kill9();      // the coordinator only; workers are left running
  void Terminate();  // SIGTERM and wait
  const std::string& address() const { return grpc_; }
  const std::string& metrics_address() const { return metrics_; }
  pid_t pid() const { return pid_; }
  std::filesystem::path log() const { return data_ / "psd.log"; }

  // psctl against this psd; --server is added first.
  CmdResult Ctl(std::vector<std::string> args, const std::map<std::string, std::string>& env = {},
                double timeout_s = 60);
  nlohmann::json GetJob(const std::string& id);
  // Waits until the job's state is `state` (e.g. "JOB_STATE_RUNNING"); returns the job.
  nlohmann::json WaitState(const std::string& id, const std::string& state, double timeout_s);
  nlohmann::json WaitUntil(const std::string& id,
                           const std::function<bool(const nlohmann::json&)>& f, double timeout_s);
  std::vector<std::string> ctl_prefix;  // e.g. --token-file F, --tls-ca F

 private:
  std::filesystem::path data_;
  std::vector<std::string> extra_;
  int port_;
  pid_t pid_ = -1;
  std::string grpc_, metrics_;
};

// A directory holding a fake model (config.json + a .safetensors file), calibration text and a
// job file built from `yaml_body` (model/calibration lines are added).
std::filesystem::path WriteJob(const std::filesystem::path& dir, const std::string& name,
                               const std::string& yaml_body);
std::filesystem::path MakeTempDir(const std::string& tag);
// The worker pid of a local-launcher job ("pid:start" launcher ids).
pid_t WorkerPid(const nlohmann::json& job);
// Every state the job went through, in order, from its history.
std::vector<std::string> StatesOf(const nlohmann::json& job);

}  // namespace ps::test
