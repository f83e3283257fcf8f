// Stopping workers: a queue of launcher ids to terminate politely (SIGTERM, scancel, delete) at
// one time and forcibly (SIGKILL) at a later one. Process() runs on the scheduler thread, outside
// any job lock, since launchers may shell out (scancel, kubectl).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "server/clock.h"
#include "server/launcher.h"

namespace ps {

class WorkerSupervisor {
 public:
  WorkerSupervisor(Launcher& launcher, const Clock& clock) : launcher_(launcher), clock_(clock) {}
  // Terminates `launcher_id` after `delay_s`, and kills it `grace_s` later if it still runs.
  void Stop(const std::string& launcher_id, double delay_s, double grace_s);
  // Sends what is due; forgets workers that ended (or survived SIGKILL for 30 s).
  void Process();
  size_t pending() const;
  // Whether `launcher_id` is still being stopped (its workers may still write).
  bool Stopping(const std::string& launcher_id) const;

 private:
  struct Kill {
    std::string launcher_id;
    Clock::Steady term_at;
    Clock::Steady force_at;
    bool termed = false;
    bool forced = false;
  };
  Launcher& launcher_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::vector<Kill> kills_;
};

}  // namespace ps
