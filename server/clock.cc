#include "server/clock.h"

#include <cmath>

namespace ps {

google::protobuf::Timestamp Clock::WallNow() const {
  double s = WallSeconds();
  google::protobuf::Timestamp t;
  double whole = std::floor(s);
  t.set_seconds(static_cast<int64_t>(whole));
  t.set_nanos(static_cast<int32_t>((s - whole) * 1e9));
  return t;
}

double SystemClock::WallSeconds() const {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Clock::Steady ManualClock::SteadyNow() const {
  std::lock_guard lock(mu_);
  return Steady{} + std::chrono::duration_cast<Steady::duration>(
                        std::chrono::duration<double>(elapsed_ + 1e6));
}

double ManualClock::WallSeconds() const {
  std::lock_guard lock(mu_);
  return wall_ + elapsed_;
}

void ManualClock::Advance(double seconds) {
  std::lock_guard lock(mu_);
  elapsed_ += seconds;
}

double Seconds(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
}

double SecondsBetween(Clock::Steady from, Clock::Steady to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace ps
