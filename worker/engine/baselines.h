// One-shot baselines inside a job (evaluation.baselines: [magnitude, wanda, sparsegpt]): each is
// run on a freshly loaded dense model with the job's own calibration samples and evaluated on the
// job's own evaluation windows, so the report shows what the job's mask bought against them.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_load.h"
#include "worker/models/llama_model.h"

namespace ps {

struct BaselineHooks {
  // A fresh dense model (the job's model, dtype and device); `targets` set when it is loaded
  // row-sharded (parallel.shard: params): each rank then prunes its own rows.
  std::function<RowShardedLlama()> load;
  // The job's evaluation of a model ({text: {"perplexity", ...}} as report["dense"]); called on
  // rank 0 only, or on every rank (together) when `evaluate_everywhere`.
  std::function<nlohmann::json(LlamaForCausalLM&, const std::string& label)> evaluate;
  bool evaluate_everywhere = false;
};

// Returns {"eval": {method: {text: {...}}}, "seconds": {method: method time}} on rank 0 (other
// ranks take part in the statistics and get empty evaluations). Every rank must call it.
nlohmann::json RunBaselines(const JobSpec& spec, const std::vector<std::vector<int32_t>>& samples,
                            const BaselineHooks& hooks, Communicator& comm, ProgressSink& progress);

}  // namespace ps
