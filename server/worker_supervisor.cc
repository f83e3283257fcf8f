#include "server/worker_supervisor.h"

#include "server/log.h"

namespace ps {

namespace {
Clock::Steady After(Clock::Steady t, double s) {
  return t + std::chrono::duration_cast<Clock::Steady::duration>(std::chrono::duration<double>(s));
}
}  // namespace

void WorkerSupervisor::Stop(const std::string& launcher_id, double delay_s, double grace_s) {
  if (launcher_id.empty()) return;
  auto now = clock_.SteadyNow();
  std::lock_guard lock(mu_);
  kills_.push_back({launcher_id, After(now, delay_s), After(now, delay_s + grace_s)});
}

void WorkerSupervisor::Process() {
  // A copy, so that Stopping() still sees these while the launcher is polled; Stop() only
  // appends, so entries past the copy's size arrived meanwhile.
  std::vector<Kill> kills;
  {
    std::lock_guard lock(mu_);
    kills = kills_;
  }
  std::vector<Kill> keep;
  for (auto& k : kills) {
    auto now = clock_.SteadyNow();
    RunStatus st = launcher_.Poll(k.launcher_id);
    if (st.state == RunState::kExited || st.state == RunState::kGone) continue;
    if (!k.termed && now >= k.term_at) {
      launcher_.Terminate(k.launcher_id, false);
      k.termed = true;
    }
    if (!k.forced && now >= k.force_at) {
      launcher_.Terminate(k.launcher_id, true);
      k.forced = true;
      k.force_at = After(now, 30);  // give up polling after this
    } else if (k.forced && now >= k.force_at) {
      LogEvent(spdlog::level::err, "worker.unkillable", {{"launcher_id", k.launcher_id}});
      continue;
    }
    keep.push_back(k);
  }
  std::lock_guard lock(mu_);
  keep.insert(keep.end(), kills_.begin() + static_cast<std::ptrdiff_t>(kills.size()), kills_.end());
  kills_.swap(keep);
}

bool WorkerSupervisor::Stopping(const std::string& launcher_id) const {
  if (launcher_id.empty()) return false;
  std::lock_guard lock(mu_);
  for (const auto& k : kills_)
    if (k.launcher_id == launcher_id) return true;
  return false;
}

size_t WorkerSupervisor::pending() const {
  std::lock_guard lock(mu_);
  return kills_.size();
}

}  // namespace ps
