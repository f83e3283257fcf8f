#include "tests/server/service_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/file_util.h"
#include "tests/testing/job_inputs.h"

namespace ps::test {

namespace fs = std::filesystem;

std::string BinaryPath(const std::string& rel) {
  // PS_TEST_BINARY_DIR runs the same tests against another build (e.g. an older release).
  const char* other = std::getenv("PS_TEST_BINARY_DIR");
  return std::string(other && *other ? other : PS_BINARY_DIR) + "/" + rel;
}

static std::string Slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

CmdResult Run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
              double timeout_s) {
  static int counter = 0;
  fs::path base = fs::temp_directory_path() /
                  ("ps_run_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::path out = base.string() + ".out", err = base.string() + ".err";
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int n = ::open("/dev/null", O_RDONLY);
    ::dup2(n, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  CmdResult r;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.err = "(timed out)\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err += Slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

pid_t Spawn(const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int o = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int n = ::open("/dev/null", O_RDONLY);
    ::dup2(n, 0);
    ::dup2(o, 1);
    ::dup2(o, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  return pid;
}

bool Alive(pid_t pid) {
  if (pid <= 0) return false;
  int status;
  if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // our child, now reaped
  if (::kill(pid, 0) != 0) return false;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  size_t close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] != 'Z';
}

int FreePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

bool WaitFor(const std::function<bool()>& cond, double timeout_s, double poll_s) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
  }
  return cond();
}

Psd::Psd(fs::path data_dir, std::vector<std::string> extra, int port)
    : data_(std::move(data_dir)), extra_(std::move(extra)), port_(port) {
  Start();
}

Psd::~Psd() {
  // Stop every worker this psd's jobs still have, then psd itself.
  if (Alive(pid_)) {
    CmdResult r = Ctl({"-o", "json", "list"}, {}, 10);
    try {
      auto j = nlohmann::json::parse(r.out);
      for (const auto& job : j.value("jobs", nlohmann::json::array())) {
        pid_t w = WorkerPid(job);
        if (w > 1) ::kill(-w, SIGKILL);
      }
    } catch (const std::exception&) {
    }
  }
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
  }
}

void Psd::Start() {
  fs::create_directories(data_);
  fs::path ready = data_ / "ready.json";
  fs::remove(ready);
  std::vector<std::string> argv = {BinaryPath("server/psd"),
                                   "--listen",
                                   "127.0.0.1:" + std::to_string(port_),
                                   "--metrics-listen",
                                   "127.0.0.1:0",
                                   "--data-dir",
                                   data_.string(),
                                   "--ready-file",
                                   ready.string(),
                                   "--worker-bin",
                                   BinaryPath("tests/server/fake_worker"),
                                   "--heartbeat-interval-ms",
                                   "200",
                                   "--heartbeat-timeout",
                                   "3",
                                   "--launch-timeout",
                                   "20",
                                   "--kill-grace",
                                   "1"};
  // Test jobs and their inputs live beside the data dir. (Not for another build's psd, which may
  // predate the flag: see BinaryPath.)
  if (!std::getenv("PS_TEST_BINARY_DIR"))
    argv.insert(argv.end(), {"--allowed-roots", data_.parent_path().string()});
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  pid_ = Spawn(argv, log());
  if (!WaitFor([&] { return fs::exists(ready) || !Alive(pid_); }, 20))
    throw std::runtime_error("psd did not start; log:\n" + Slurp(log()));
  if (!fs::exists(ready)) throw std::runtime_error("psd exited; log:\n" + Slurp(log()));
  auto j = nlohmann::json::parse(Slurp(ready));
  grpc_ = j["grpc"];
  metrics_ = j["metrics"];
  port_ = std::stoi(grpc_.substr(grpc_.rfind(':') + 1));
}

void Psd::Kill9() {
  ::kill(pid_, SIGKILL);
  int st;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
}

void Psd::Terminate() {
  ::kill(pid_, SIGTERM);
  int st;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
}

CmdResult Psd::Ctl(std::vector<std::string> args, const std::map<std::string, std::string>& env,
                   double timeout_s) {
  std::vector<std::string> argv = {BinaryPath("client/psctl"), "--server", grpc_};
  argv.insert(argv.end(), ctl_prefix.begin(), ctl_prefix.end());
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> e = {{"PSCTL_CONFIG", "/nonexistent"}};
  for (const auto& [k, v] : env) e[k] = v;
  return Run(argv, e, timeout_s);
}

nlohmann::json Psd::GetJob(const std::string& id) {
  CmdResult r = Ctl({"-o", "json", "get", id}, {}, 10);
  if (r.rc != 0) throw std::runtime_error("psctl get " + id + ": " + r.err);
  return nlohmann::json::parse(r.out);
}

nlohmann::json Psd::WaitUntil(const std::string& id,
                              const std::function<bool(const nlohmann::json&)>& f,
                              double timeout_s) {
  nlohmann::json last;
  WaitFor(
      [&] {
        last = GetJob(id);
        return f(last);
      },
      timeout_s, 0.1);
  return last;
}

nlohmann::json Psd::WaitState(const std::string& id, const std::string& state, double timeout_s) {
  return WaitUntil(
      id, [&](const nlohmann::json& j) { return j.value("state", "") == state; }, timeout_s);
}

fs::path MakeTempDir(const std::string& tag) {
  fs::path d = fs::temp_directory_path() / ("ps_svc_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

fs::path WriteJob(const fs::path& dir, const std::string& name, const std::string& body) {
  testing::WriteCheckableInputs(dir);
  fs::path job = dir / (name + ".yaml");
  WriteFileAtomic(job, "model: model\ncalibration:\n  path: calib.txt\n" + body);
  return job;
}

pid_t WorkerPid(const nlohmann::json& job) {
  // Only local-launcher ids ("pid:starttime") name processes; a Slurm job id such as "1" must
  // never reach kill(-1, ...).
  std::string id = job.value("launcher_id", "");
  if (job.value("launcher", "") != "local" || id.find(':') == std::string::npos) return -1;
  try {
    pid_t pid = static_cast<pid_t>(std::stol(id.substr(0, id.find(':'))));
    return pid > 1 ? pid : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

std::vector<std::string> StatesOf(const nlohmann::json& job) {
  std::vector<std::string> out;
  for (const auto& t : job.value("history", nlohmann::json::array()))
    out.push_back(t.value("to", ""));
  return out;
}

}  // namespace ps::test
