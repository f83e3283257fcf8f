// AdamW whose state is sharded over ranks (ZeRO-1/2): every trainable tensor has one owner rank
// (ownership.h). A step is
//   ReduceGradients()  gradients summed into the owner (in the master dtype)
//   Step(lr)           the owner alone updates its master copy with AdamW
//   ... the caller's owner-side work on master(i) (λ2 gradient before Step, prox after) ...
//   Publish()          owners write masters into the model's parameters and broadcast them.
// Optimizer state (exp_avg, exp_avg_sq, and a master copy when the model's dtype differs from the
// master dtype) lives only on the owner, so memory per rank falls as ranks grow.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "worker/distributed/communicator.h"
#include "worker/distributed/ownership.h"

namespace ps {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

struct TrainableTensor {
  std::string name;
  torch::Tensor param;  // a leaf that requires grad, in the model
};

class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<TrainableTensor> params, Communicator& comm, AdamWOptions options,
               torch::ScalarType master_dtype);

  size_t size() const { return params_.size(); }
  const std::string& name(size_t i) const { return params_[i].name; }
  const torch::Tensor& param(size_t i) const { return params_[i].param; }
  const OwnershipPlan& plan() const { return plan_; }
  bool Owns(size_t i) const { return plan_.owner[i] == comm_.rank(); }
  int64_t step_count() const { return step_; }

  // Owned tensors only: the master weights (what AdamW and the prox update) and the summed
  // gradient in the master dtype (valid between ReduceGradients and Step).
  torch::Tensor& master(size_t i);
  torch::Tensor& grad(size_t i);

  void ZeroGrad();
  void ReduceGradients();
  void Step(double lr);
  void Publish();

  // Checkpoint support: the owned state as named tensors ("NAME.exp_avg", "NAME.exp_avg_sq",
  // "NAME.master"), and loading it back (after a possibly different ownership plan: callers pass
  // the union of all shards and each rank takes what it now owns).
  std::vector<std::pair<std::string, torch::Tensor>> OwnedState() const;
  void LoadState(const std::map<std::string, torch::Tensor>& state, int64_t step);

 private:
  struct Slot {
    torch::Tensor master, grad, exp_avg, exp_avg_sq;
  };
  std::vector<TrainableTensor> params_;
  Communicator& comm_;
  AdamWOptions options_;
  torch::ScalarType master_dtype_;
  OwnershipPlan plan_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;
};

}  // namespace ps
