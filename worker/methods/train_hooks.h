// The contract between a training method and the engine's training step (worker/engine/
// train_loop.h): the method sees the trainable tensors one at a time, through an OwnedTensor view
// of the part this rank updates, and never asks who owns what. Today a rank updates whole tensors
// (optimizer-state sharding: each tensor has one owner); with fully sharded parameters a rank
// updates a slice of whole rows of every tensor (an N:M group lies inside one row, so a slice
// never splits one), and the same method code runs on that slice.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ps {

// Which rows of the full tensor a view holds: [begin, begin + count); count < 0 = all of them.
struct RowRange {
  int64_t begin = 0;
  int64_t count = -1;
  bool whole() const { return count < 0; }
};

// One trainable tensor as this rank updates it.
struct OwnedTensor {
  size_t index;             // position in the trainable list (the same on every rank)
  const std::string& name;  // parameter name ("model.layers.0.self_attn.q_proj.weight")
  torch::Tensor weight;     // this rank's part of the model's parameter (model dtype; the
                            // optimizer publishes `master` into it after the step)
  torch::Tensor& master;    // this rank's part in the master dtype: what AdamW updates and the
                            // method edits in place
  torch::Tensor& grad;      // the summed gradient of `master` (valid between the reduce and
                            // AdamW); replace it (grad = grad + x), never modify it in place:
                            // on one rank it may be autograd's shared buffer
  RowRange rows;            // where `master` sits in the full tensor
  // This rank's part of a full-shape tensor of the same parameter (W0, a mask).
  torch::Tensor Local(const torch::Tensor& full) const {
    return rows.whole() ? full : full.narrow(0, rows.begin, rows.count);
  }
};

// What a method reports about its masks at a log step (summed over ranks by the engine).
struct MaskCounts {
  int64_t groups = 0;
  int64_t nm = 0;     // groups with at most N non-zeros
  int64_t mid = 0;    // N+1 .. M-1 non-zeros
  int64_t dense = 0;  // M non-zeros
  int64_t flips = 0;  // top-N mask changes since the previous log step
  // The prox since the run (or its resume) began, summed over steps: groups solved, and those
  // that stopped at the iteration cap (a point that is not the prox; must stay 0). -1: no prox.
  int64_t prox_groups = -1;
  int64_t prox_capped = -1;
};

// A training method's part of each step. Everything but BeforeStep, ExtraLoss and the checkpoint
// state is per tensor, called for each tensor this rank updates, in any order.
class TrainHooks {
 public:
  virtual ~TrainHooks() = default;
  // Every rank, before the step's forward passes (schedules: MaskLLM's τ and κ).
  virtual void BeforeStep(int64_t step, int64_t total_steps) {}
  // Added to the loss once per step on rank 0 (a regulariser of the whole model); undefined = none.
  virtual torch::Tensor ExtraLoss() { return {}; }
  // Once per owned tensor before the first step, after a resume (per-tensor state such as W0).
  virtual void Prepare(const OwnedTensor& t) {}
  // Every rank, each step, before any BeforeUpdate/AfterUpdate of the step.
  virtual void BeginUpdates() {}
  // After gradients are reduced, before AdamW (λ2's gradient).
  virtual void BeforeUpdate(OwnedTensor& t) {}
  // After AdamW, before publishing (the prox, hard projections, mask re-application).
  virtual void AfterUpdate(OwnedTensor& t) {}
  // Every rank, once every owned tensor is updated and the device work joined (checks that need
  // a host sync go here).
  virtual void EndUpdates() {}
  // Whether the per-tensor updates may run inside the last backward pass (the overlapped update,
  // on a side CUDA stream, in backward's tensor order). A method whose update of one tensor needs
  // every gradient first returns false and gets the serial update.
  virtual bool SupportsTensorUpdates() const { return true; }
  // Adds this tensor's mask statistics to `c` (log steps only).
  virtual void Count(const OwnedTensor& t, MaskCounts& c) {}
  // Once per log step on every rank, after Count: run-wide counters of this rank.
  virtual void CountRun(MaskCounts& c) const {}
  // Extra tensors this rank's checkpoint shard must carry (and get back on resume).
  virtual std::vector<std::pair<std::string, torch::Tensor>> CheckpointState() { return {}; }
  virtual void LoadCheckpointState(const std::map<std::string, torch::Tensor>& state) {}
};

}  // namespace ps
