// How a training step turns this rank's gradients into published weights: the serial update
// (reduce every gradient, then λ2 + AdamW + prox on every owned tensor, then publish) or the
// overlapped one (each owned tensor's λ2 + AdamW + prox inside the last backward pass, as soon as
// its reduce is launched). Both run the same operations on the same tensors, so they give
// bit-identical weights; the overlapped one hides the update behind backward on a GPU.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/methods/train_hooks.h"

namespace ps {

// Wall time of a step's phases: Mark(phase) adds the time since the previous mark (or since
// construction) to `phase`.
class StepTimer {
 public:
  void Mark(const std::string& phase);
  const std::map<std::string, double>& phases() const { return phases_; }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  std::map<std::string, double> phases_;
};

class UpdateStrategy {
 public:
  virtual ~UpdateStrategy() = default;
  // Before the step's first forward pass: clears the gradients.
  virtual void BeginStep(int64_t step, double lr) = 0;
  // Just before this rank's last backward pass of the step (`local_loss`, this rank's share of
  // the step's loss, is complete). Ranks that run no backward do not call it.
  virtual void BeforeLastBackward(const torch::Tensor& local_loss) = 0;
  // After this rank's backward passes: reduce, update, publish, marking the phases
  // (forward_backward, communication, optimizer, prox). Returns the step's global loss; throws
  // ps::Error on a non-finite one before any weight changes.
  virtual double FinishStep(torch::Tensor& local_loss, StepTimer& timer) = 0;
};

// The serial or (overlap_update) the overlapped strategy. A method whose hooks do not
// SupportsTensorUpdates gets the serial one, with a log line. `checkpoint_dir` is named in the
// non-finite-loss error.
std::unique_ptr<UpdateStrategy> MakeUpdateStrategy(bool overlap_update, ShardedAdamW& opt,
                                                   TrainHooks& hooks, Communicator& comm,
                                                   const torch::Device& device,
                                                   ProgressSink& progress,
                                                   const std::string& checkpoint_dir);

}  // namespace ps
