// AdamW whose state is sharded over ranks (ZeRO-1/2): every trainable tensor has one owner rank
// (ownership.h). A step is
//   ReduceGradients()  gradients summed into the owner (in the master dtype)
//   Step(lr)           the owner alone updates its master copy with AdamW
//   ... the caller's owner-side work on master(i) (λ2 gradient before Step, prox after) ...
//   Publish()          owners write masters into the model's parameters and broadcast them.
// Overlap (EnableOverlap): gradient hooks start each tensor's reduce as soon as its gradient is
// ready in the step's last backward pass (ArmOverlap before it), in a fixed order that is the
// same on every rank (reverse model order, the order backward produces gradients), so the
// reduces of late layers run while backward still computes early ones (asynchronously on the
// stream with NCCL; on CPU/MPI they run inline, which keeps the schedule but hides nothing).
// ReduceGradients then only finishes the tensors not yet reduced. The sums are the same tensors
// reduced by the same collectives, so results are identical with and without overlap.
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
  ~ShardedAdamW();
  ShardedAdamW(const ShardedAdamW&) = delete;
  ShardedAdamW& operator=(const ShardedAdamW&) = delete;

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
  // Registers the gradient hooks (once; a no-op on one rank, where there is nothing to reduce).
  void EnableOverlap();
  bool overlap_enabled() const { return !hooks_.empty(); }
  // The next backward pass is the step's last on this rank: its hooks start the reduces. Ranks
  // that run no backward in a step simply do not arm; ReduceGradients reduces everything then.
  void ArmOverlap();
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
  // Overlap: the gradient hook of tensor i, and launching the reduces of the ready prefix of
  // reduce_order_.
  void OnGradientReady(size_t i, const torch::Tensor& grad);
  void LaunchReadyReduces();
  // The summed-gradient buffer for tensor i: its full gradient in the master dtype, never aliasing
  // autograd's buffers (the reduce writes into it).
  torch::Tensor ReduceBuffer(size_t i, const torch::Tensor& extra) const;
  void StepUnfused(double lr, double bc1, double bc2);
  bool StepFused(double lr);
  std::vector<TrainableTensor> params_;
  Communicator& comm_;
  AdamWOptions options_;
  torch::ScalarType master_dtype_;
  OwnershipPlan plan_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;
  std::vector<unsigned> hooks_;         // hook handles, per tensor (overlap)
  std::vector<size_t> reduce_order_;    // tensor indices, reverse model order
  std::vector<torch::Tensor> pending_;  // gradients ready to reduce, per tensor
  size_t next_reduce_ = 0;              // reduces launched so far in this step
  bool armed_ = false;
};

}  // namespace ps
