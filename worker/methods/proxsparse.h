// ProxSparse (paper Algorithm 1) as per-tensor hooks of the engine's training step. For each
// tensor this rank updates, per step:
//   before AdamW: adds λ2's gradient, ∇ ‖(W / (W0 + ε·sgn W0)) ⊙ (W − W0)‖² (sgn 0 = 1), to the
//                 reduced gradient of a target;
//   after AdamW:  W ← prox_{λ1·Reg_N:M}(W) with the EnumALM prox (λ1 as is, not scaled by the
//                 learning rate, as the official code does); with hard = project, W ← W ⊙ topN(W);
//                 with hard = snap, W ← W0 ⊙ topN(W) (the Table 3 ablations).
// The mask at the end is topN(|W|) per group; the published weights are W0 ⊙ mask. Every step is
// per tensor and element- or group-wise, so it runs the same on a whole tensor or on a slice of
// whole rows, and may run inside backward (the overlapped update).
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/job_choices.h"
#include "common/nm_pattern.h"
#include "worker/methods/train_hooks.h"

namespace ps {

struct ProxSparseSettings {
  NMPattern pattern;
  double lambda1 = 1.0;
  double lambda2 = 0.0;
  double epsilon = 0.1;
  HardMode hard = HardMode::kNone;
};

class ProxSparseHooks : public TrainHooks {
 public:
  // `is_target[i]` says whether trainable tensor i is a pruning target (the others are trained,
  // when the whole model is trainable, but never proxed). W0 of the owned targets is kept (in the
  // master dtype) only when λ2 or snapping needs it.
  // `original(name)` returns a target's pretrained weight W0, full shape (from the base
  // checkpoint, so a resumed run gets the true W0, not its checkpointed weights).
  ProxSparseHooks(ProxSparseSettings settings, std::vector<bool> is_target,
                  std::function<torch::Tensor(const std::string&)> original);

  void Prepare(const OwnedTensor& t) override;
  void BeginUpdates() override;
  void BeforeUpdate(OwnedTensor& t) override;
  void AfterUpdate(OwnedTensor& t) override;
  // Throws if the prox met NaN/Inf groups (its statistics are read once per step: no sync per
  // tensor, so that the prox can run inside backward without stalling it).
  void EndUpdates() override;
  void Count(const OwnedTensor& t, MaskCounts& c) override;
  void CountRun(MaskCounts& c) const override;

  bool is_target(size_t i) const { return is_target_[i]; }
  // The top-N mask of a target's learned weights (this rank's part of it).
  torch::Tensor FinalMask(const OwnedTensor& t) const;

 private:
  ProxSparseSettings s_;
  std::function<torch::Tensor(const std::string&)> original_;
  std::vector<bool> is_target_;
  std::vector<torch::Tensor> w0_;         // per tensor, owned targets only
  std::vector<torch::Tensor> last_mask_;  // per tensor, for mask flips (PackMaskBits)
  // This step's prox statistics buffer on the device it ran on (prox::NewStatsBuffer).
  torch::Tensor& StatsOn(const torch::Device& device);
  std::vector<torch::Tensor> prox_stats_;  // this step's, one per device (BeginUpdates..EndUpdates)
  bool updating_ = false;
  int64_t prox_groups_ = 0;  // summed over this run's steps on this rank (EndUpdates)
  int64_t prox_capped_ = 0;
};

}  // namespace ps
