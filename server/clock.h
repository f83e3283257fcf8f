// Time as the coordinator sees it, injected so that its policy (heartbeat and launch timeouts,
// time limits, retry backoff) can be tested in milliseconds. Steady time measures intervals within
// one psd process; wall time stamps what is persisted (start times, history) and so is what
// counts across psd restarts.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <mutex>

namespace ps {

class Clock {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual Steady SteadyNow() const = 0;
  virtual double WallSeconds() const = 0;  // seconds since the Unix epoch
  google::protobuf::Timestamp WallNow() const;
};

class SystemClock final : public Clock {
 public:
  Steady SteadyNow() const override { return std::chrono::steady_clock::now(); }
  double WallSeconds() const override;
};

// A clock that moves only when told; steady and wall time advance together.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(double wall_seconds = 1.7e9) : wall_(wall_seconds) {}
  Steady SteadyNow() const override;
  double WallSeconds() const override;
  void Advance(double seconds);

 private:
  mutable std::mutex mu_;
  double elapsed_ = 0;
  double wall_;
};

double Seconds(const google::protobuf::Timestamp& t);
double SecondsBetween(Clock::Steady from, Clock::Steady to);

}  // namespace ps
