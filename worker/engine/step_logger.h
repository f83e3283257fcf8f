// The training run's bookkeeping: totals over steps (TrainResult) and, at log steps (every
// log_every steps, the first step of the run and the last), a progress event and a history row
// on rank 0 with the mask statistics summed over ranks.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/engine/history.h"
#include "worker/engine/train_options.h"
#include "worker/methods/train_hooks.h"

namespace ps {

// What one step did.
struct StepStats {
  double loss = 0;
  double lr = 0;
  int64_t tokens = 0;  // predicted tokens, all ranks
  std::map<std::string, double> phases;
};

class StepLogger {
 public:
  // `start`: the step the run starts (or resumes) from; a resumed run appends to the history.
  StepLogger(const TrainOptions& options, Communicator& comm, ProgressSink& progress,
             const torch::Device& device, int64_t start);
  ~StepLogger();
  // Adds step `step` (0-based) to the totals; at a log step, sums `local_counts()` over ranks
  // (a collective: every rank calls Record for every step) and reports.
  void Record(int64_t step, const StepStats& s, const std::function<MaskCounts()>& local_counts);
  // The totals so far; `seconds` is the wall time since construction.
  TrainResult Result() const;

 private:
  void Report(int64_t step, const StepStats& s, const MaskCounts& local);
  const TrainOptions& options_;
  Communicator& comm_;
  ProgressSink& progress_;
  torch::Device device_;
  int64_t start_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  std::unique_ptr<HistoryWriter> history_;
  TrainResult result_;
  int64_t reported_capped_ = 0;  // capped prox groups already warned about
};

}  // namespace ps
