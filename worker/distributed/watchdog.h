// A per-process watchdog: a background thread that ends the whole job when this rank has made no
// progress for `timeout` seconds. Progress is a heartbeat (WatchdogBeat) that the training loop
// sends once per step. A rank stuck in a collective because another rank hangs (or a rank that
// hangs itself) thus exits non-zero within a bounded time instead of waiting forever: the
// watchdog prints what it last saw and calls Communicator::Abort, which ends every rank.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "worker/distributed/communicator.h"

namespace ps {

class Watchdog {
 public:
  // Calls on_timeout(message) once, from the watchdog thread, when no Beat came for timeout_s.
  Watchdog(double timeout_s, std::function<void(const std::string& message)> on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Beat(const std::string& where);
  double timeout_s() const { return timeout_s_; }

 private:
  void Run();
  using Clock = std::chrono::steady_clock;
  double timeout_s_;
  std::function<void(const std::string&)> on_timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  Clock::time_point last_;
  std::string where_ = "start";
  bool stop_ = false;
  std::thread thread_;
};

// The default timeout: PS_RANK_TIMEOUT_S when set (seconds, > 0), else `fallback_s`. A malformed
// value is a ps::Error.
double RankTimeoutSeconds(double fallback_s);

// Process-wide watchdog for psworker: StartRankWatchdog aborts `comm` (which must outlive it) with
// a clear message on timeout; WatchdogBeat is a no-op when none was started.
void StartRankWatchdog(double timeout_s, Communicator& comm);
void StopRankWatchdog();
void WatchdogBeat(const std::string& where);

}  // namespace ps
