#include "worker/distributed/watchdog.h"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "common/error.h"

namespace ps {

Watchdog::Watchdog(double timeout_s, std::function<void(const std::string&)> on_timeout)
    : timeout_s_(timeout_s), on_timeout_(std::move(on_timeout)), last_(Clock::now()) {
  if (!(timeout_s > 0)) throw Error("watchdog: timeout must be > 0 seconds");
  thread_ = std::thread([this] { Run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::Beat(const std::string& where) {
  std::lock_guard<std::mutex> lock(mu_);
  last_ = Clock::now();
  where_ = where;
}

void Watchdog::Run() {
  const auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto deadline = last_ + timeout;
    if (Clock::now() >= deadline) {
      std::ostringstream msg;
      msg << "no progress for " << timeout_s_ << " s (last heartbeat: " << where_ << ")";
      std::string m = msg.str();
      lock.unlock();
      on_timeout_(m);
      return;
    }
    cv_.wait_until(lock, deadline);
  }
}

double RankTimeoutSeconds(double fallback_s) {
  const char* env = std::getenv("PS_RANK_TIMEOUT_S");
  if (!env || !*env) return fallback_s;
  char* end = nullptr;
  double v = std::strtod(env, &end);
  if (end == env || *end != '\0' || !(v > 0))
    throw Error(std::string("PS_RANK_TIMEOUT_S: '") + env +
                "' is not a positive number of seconds");
  return v;
}

namespace {
std::unique_ptr<Watchdog>& Global() {
  static std::unique_ptr<Watchdog> w;
  return w;
}
}  // namespace

void StartRankWatchdog(double timeout_s, Communicator& comm) {
  Global() = std::make_unique<Watchdog>(timeout_s, [&comm](const std::string& m) {
    std::cerr << "psworker rank " << comm.rank() << " of " << comm.size() << ": watchdog: " << m
              << "; a rank hangs or died. Aborting the job (set PS_RANK_TIMEOUT_S to change the "
                 "limit)."
              << std::endl;
    comm.Abort(124);
  });
}

void StopRankWatchdog() { Global().reset(); }

void WatchdogBeat(const std::string& where) {
  if (auto& w = Global()) w->Beat(where);
}

}  // namespace ps
