#include "worker/engine/baselines.h"

#include <chrono>

#include "worker/engine/method_runners.h"

namespace ps {

nlohmann::json RunBaselines(const JobSpec& spec, const std::vector<std::vector<int32_t>>& samples,
                            const BaselineHooks& hooks, Communicator& comm,
                            ProgressSink& progress) {
  nlohmann::json eval = nlohmann::json::object(), seconds = nlohmann::json::object();
  for (const auto& method : spec.evaluation.baselines) {
    progress.Log("baseline " + method + " on the same calibration samples and windows");
    auto model = hooks.load();
    const auto t0 = std::chrono::steady_clock::now();
    RunOneShot(*model, method, spec, samples, comm, progress, false, nullptr);
    seconds[method] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    eval[method] =
        comm.rank() == 0 ? hooks.evaluate(*model, "baseline " + method) : nlohmann::json::object();
  }
  return {{"eval", eval}, {"seconds", seconds}};
}

}  // namespace ps
