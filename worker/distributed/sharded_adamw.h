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
// Overlapped update (EnableOverlappedUpdate, then BeginTensorUpdates(lr, ...) each step): in the
// armed pass the owner also runs the rest of the step for each owned tensor as soon as its reduce
// is launched: before(i), AdamW with this step's count and lr, after(i) (the method's λ2 gradient
// and prox). On CUDA that work goes to a side stream that waits for the reduce, so it runs while
// backward computes earlier layers; on the CPU it runs inline. Step(lr) then does the same for the
// tensors not updated during backward, FinishTensorUpdates() their after(i) and makes the current
// stream wait for the side stream (Publish and the next forward see every update). AdamW is
// element-wise, so per-tensor and all-at-once updates give identical results.
// Optimizer state (exp_avg, exp_avg_sq, and a master copy when the model's dtype differs from the
// master dtype) lives only on the owner, so memory per rank falls as ranks grow.
#pragma once

#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
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
  // `offload`: the owned state (master copies, exp_avg, exp_avg_sq) lives in host memory (pinned
  // when the parameters are on CUDA). With the overlapped update on CUDA the update is streamed
  // through the GPU: each owned tensor's state is copied in, updated there (the fused AdamW, the
  // hooks: the CUDA prox), copied back and written into the parameter, one tensor at a time, and
  // its gradient never leaves the GPU. Otherwise reduced gradients are copied to the host and
  // AdamW and the owner-side hooks run on the CPU; Publish copies the masters back into the
  // parameters. On a CPU job the results equal the non-offloaded run's.
  ShardedAdamW(std::vector<TrainableTensor> params, Communicator& comm, AdamWOptions options,
               torch::ScalarType master_dtype, bool offload = false);
  ~ShardedAdamW();
  ShardedAdamW(const ShardedAdamW&) = delete;
  ShardedAdamW& operator=(const ShardedAdamW&) = delete;

  size_t size() const { return params_.size(); }
  const std::string& name(size_t i) const { return params_[i].name; }
  const torch::Tensor& param(size_t i) const { return params_[i].param; }
  const OwnershipPlan& plan() const { return plan_; }
  bool Owns(size_t i) const { return plan_.owner[i] == comm_.rank(); }
  int64_t step_count() const { return step_; }
  bool offloaded() const { return offload_; }
  // Where masters, gradients and AdamW state of owned tensors live (the CPU when offloaded).
  torch::Device state_device() const;

  // Owned tensors only: the master weights (what AdamW and the prox update) and the summed
  // gradient in the master dtype (valid between ReduceGradients and Step). On one rank the
  // gradient may be autograd's own buffer, which autograd may share: replace it
  // (grad(i) = grad(i) + x) rather than modify it in place.
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

  // Overlapped update. EnableOverlappedUpdate registers the gradient hooks (on one rank too).
  // BeginTensorUpdates, before the step's first backward pass, turns it on for this step: the armed
  // pass updates owned tensors as their reduces are launched, Step(lr) (same lr) updates the rest
  // (before + AdamW) and FinishTensorUpdates runs the rest's after() and joins the side stream.
  struct TensorUpdateFns {
    std::function<void(size_t)> before, after;  // owner side, per owned tensor; may be empty
  };
  void EnableOverlappedUpdate();
  void BeginTensorUpdates(double lr, TensorUpdateFns fns);
  void FinishTensorUpdates();
  // Owned tensors updated during the last step's backward pass (tests, logs).
  int64_t updated_during_backward() const { return updated_during_backward_; }

  // Checkpoint support: the owned state as named tensors ("NAME.exp_avg", "NAME.exp_avg_sq",
  // "NAME.master"), and loading it back (after a possibly different ownership plan: callers pass
  // the union of all shards and each rank takes what it now owns).
  std::vector<std::pair<std::string, torch::Tensor>> OwnedState() const;
  void LoadState(const std::map<std::string, torch::Tensor>& state, int64_t step);

 private:
  struct Slot {
    torch::Tensor master, grad, exp_avg, exp_avg_sq;
    // Streamed offload: the host tensors while master/exp_avg/exp_avg_sq are the GPU copies of an
    // update in flight (StageIn .. StageOut).
    torch::Tensor host_master, host_exp_avg, host_exp_avg_sq;
    bool staged = false;
    bool param_current = false;  // StageOut wrote the master into the parameter (Publish skips it)
  };
  // Whether owned updates are streamed through the GPU (offload + overlapped update + CUDA).
  bool Streams() const;
  // Streamed offload: tensor i's state to the parameter's GPU (asynchronous, from pinned memory),
  // and back to the host with the parameter written; no-ops when not streaming.
  void StageIn(size_t i);
  void StageOut(size_t i);
  // Overlap: the gradient hook of tensor i, and launching the reduces of the ready prefix of
  // reduce_order_.
  void OnGradientReady(size_t i, const torch::Tensor& grad);
  void LaunchReadyReduces();
  // The summed-gradient buffer for tensor i: its full gradient in the master dtype, never aliasing
  // autograd's buffers (the reduce writes into it).
  torch::Tensor ReduceBuffer(size_t i, const torch::Tensor& extra) const;
  // A reduced gradient where the state lives (host memory when offloaded).
  torch::Tensor ToStateDevice(const torch::Tensor& g) const;
  bool StepFused(double lr);
  // AdamW on owned tensor i alone, as step number `step` (the fused kernel on CUDA where LibTorch
  // has it, else torch.optim.AdamW's formula term by term).
  void StepOne(size_t i, double lr, int64_t step);
  // The owner's update of tensor i during backward (hooks, AdamW, hooks), on the current stream.
  void UpdateOne(size_t i);
  // The overlapped update of owned tensor i during the armed pass (side stream on CUDA).
  void UpdateDuringBackward(size_t i);
  std::vector<TrainableTensor> params_;
  Communicator& comm_;
  AdamWOptions options_;
  torch::ScalarType master_dtype_;
  bool offload_ = false;
  bool cuda_params_ = false;  // the parameters live on a GPU
  OwnershipPlan plan_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;
  std::vector<unsigned> hooks_;         // hook handles, per tensor (overlap)
  std::vector<size_t> reduce_order_;    // tensor indices, reverse model order
  std::vector<torch::Tensor> pending_;  // gradients ready to reduce, per tensor
  size_t next_reduce_ = 0;              // reduces launched so far in this step
  bool armed_ = false;
  // Overlapped update state.
  bool update_enabled_ = false;  // EnableOverlappedUpdate was called
  bool update_active_ = false;   // between BeginTensorUpdates and FinishTensorUpdates
  double update_lr_ = 0;
  TensorUpdateFns update_fns_;
  std::vector<char> updated_;  // per tensor: updated in this step's backward pass
  std::vector<char> stepped_;  // per tensor: AdamW done by Step() (after() still due)
  int64_t updated_during_backward_ = 0;
  struct SideStream;                  // CUDA side stream and event (sharded_adamw.cc)
  std::unique_ptr<SideStream> side_;  // created at the first CUDA update
};

}  // namespace ps
