#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "common/error.h"
#include "server/launcher.h"

namespace ps {
namespace {

// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the pid
// it names one process even after pids wrap around.
std::string ProcStartTime(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return "";
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  std::string state;
  rest >> state;
  if (state == "Z" || state == "X") return "";  // a zombie is as good as gone
  for (int i = 4; i <= 22 && rest >> field; ++i) {
  }
  return field;
}

std::string DescribeWait(int status, int* code) {
  if (WIFEXITED(status)) {
    *code = WEXITSTATUS(status);
    return "exit code " + std::to_string(*code);
  }
  if (WIFSIGNALED(status)) {
    *code = 128 + WTERMSIG(status);
    return "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  *code = -1;
  return "ended";
}

class LocalLauncher : public Launcher {
 public:
  explicit LocalLauncher(LocalLauncherOptions o) : opts_(std::move(o)) {}
  std::string Name() const override { return "local"; }

  std::string Launch(const LaunchRequest& req) override {
    std::vector<std::string> argv;
    if (req.spec.resources.ranks > 1) {
      argv = {opts_.mpirun, "-np", std::to_string(req.spec.resources.ranks), "--oversubscribe"};
      if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
      argv.insert(argv.end(), opts_.mpirun_args.begin(), opts_.mpirun_args.end());
    }
    argv.push_back(req.worker_bin);
    argv.insert(argv.end(), req.worker_args.begin(), req.worker_args.end());

    std::filesystem::create_directories(req.log_file.parent_path());
    int log = ::open(req.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) throw Error("cannot open log " + req.log_file.string() + ": " + strerror(errno));
    std::string banner = "=== attempt " + std::to_string(req.attempt) + ":";
    for (const auto& a : argv) banner += " " + a;
    banner += "\n";
    if (::write(log, banner.data(), banner.size()) < 0) {
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw Error("pipe: " + std::string(strerror(errno)));
    pid_t pid = ::fork();
    if (pid < 0) {
      ::close(log);
      throw Error("fork: " + std::string(strerror(errno)));
    }
    if (pid == 0) {
      // Own session and process group: a terminal's ^C does not reach it, psd dying does not kill
      // it (a restarted psd re-attaches), and one kill(-pgid) stops every rank.
      ::setsid();
      int devnull = ::open("/dev/null", O_RDONLY);
      ::dup2(devnull, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      // psd's own descriptors (its gRPC listening socket above all) must not leak into the
      // workers: a worker holding the old socket would swallow connections meant for a
      // restarted psd on the same port.
      ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
      ::execvp(cargv[0], cargv.data());
      int e = errno;
      if (::write(err_pipe[1], &e, sizeof e) < 0) {
      }
      ::_exit(127);
    }
    ::close(log);
    ::close(err_pipe[1]);
    int child_errno = 0;
    ssize_t n = ::read(err_pipe[0], &child_errno, sizeof child_errno);
    ::close(err_pipe[0]);
    if (n == sizeof child_errno) {
      int status;
      ::waitpid(pid, &status, 0);
      throw Error("cannot run " + argv[0] + ": " + strerror(child_errno));
    }
    std::lock_guard lock(mu_);
    children_[pid] = true;
    std::string start = ProcStartTime(pid);
    return std::to_string(pid) + ":" + start;
  }

  RunStatus Poll(const std::string& id) override {
    pid_t pid = ParsePid(id);
    {
      std::lock_guard lock(mu_);
      auto done = exited_.find(pid);
      if (done != exited_.end()) return done->second;
      if (children_.count(pid)) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == 0) return {RunState::kRunning, 0, "running (pid " + std::to_string(pid) + ")"};
        if (r == pid) {
          RunStatus st{RunState::kExited, 0, ""};
          st.detail = DescribeWait(status, &st.exit_code);
          children_.erase(pid);
          exited_[pid] = st;
          return st;
        }
        children_.erase(pid);  // not ours after all (ECHILD): fall through to /proc
      }
    }
    // Not our child: started by an earlier psd. Alive while /proc shows the same process.
    std::string start = id.substr(id.find(':') + 1);
    std::string now = ProcStartTime(pid);
    if (!now.empty() && now == start)
      return {RunState::kRunning, 0, "running (pid " + std::to_string(pid) + ", re-attached)"};
    return {RunState::kGone, 0, "process " + std::to_string(pid) + " is gone (exit code unknown)"};
  }

  void Terminate(const std::string& id, bool force) override {
    pid_t pid = ParsePid(id);
    RunStatus st = Poll(id);
    if (st.state != RunState::kRunning) return;
    ::kill(-pid, force ? SIGKILL : SIGTERM);  // the whole process group: mpirun and its ranks
  }

 private:
  static pid_t ParsePid(const std::string& id) {
    try {
      auto pid = static_cast<pid_t>(std::stol(id.substr(0, id.find(':'))));
      if (pid > 1) return pid;  // kill(-pid) with 0 or 1 would hit far more than a job
    } catch (const std::exception&) {
    }
    throw Error("local launcher: bad id '" + id + "'");
  }
  LocalLauncherOptions opts_;
  std::mutex mu_;
  std::map<pid_t, bool> children_;
  std::map<pid_t, RunStatus> exited_;
};

}  // namespace

std::unique_ptr<Launcher> MakeLocalLauncher(LocalLauncherOptions opts) {
  return std::make_unique<LocalLauncher>(std::move(opts));
}

int RunCommand(const std::vector<std::string>& argv, std::string* output,
               const std::string& stdin_text) {
  int out_pipe[2], in_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(in_pipe, O_CLOEXEC) != 0)
    throw Error("pipe: " + std::string(strerror(errno)));
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw Error("fork: " + std::string(strerror(errno)));
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvp(cargv[0], cargv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", cargv[0], strerror(errno));
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(in_pipe[0]);
  if (!stdin_text.empty() && ::write(in_pipe[1], stdin_text.data(), stdin_text.size()) < 0) {
  }
  ::close(in_pipe[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(out_pipe[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(out_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace ps
