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
    RowShardedLlama loaded = hooks.load();
    const auto t0 = std::chrono::steady_clock::now();
    RunOneShot(*loaded.model, method, spec, samples, comm, progress, false, nullptr,
               loaded.targets.get());
    seconds[method] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json e = nlohmann::json::object();
    if (comm.rank() == 0 || hooks.evaluate_everywhere)
      e = hooks.evaluate(*loaded.model, "baseline " + method);
    eval[method] = comm.rank() == 0 ? e : nlohmann::json::object();
  }
  return {{"eval", eval}, {"seconds", seconds}};
}

}  // namespace ps
