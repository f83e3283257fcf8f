// ProxSparse (paper Algorithm 1) as hooks of the shared training loop. Owner side, per step:
//   before AdamW: adds λ2's gradient, ∇ ‖(W / (W0 + ε·sgn W0)) ⊙ (W − W0)‖² (sgn 0 = 1), to the
//                 reduced gradient of each owned target;
//   after AdamW:  W ← prox_{λ1·Reg_N:M}(W) with the EnumALM prox (λ1 as is, not scaled by the
//                 learning rate, as the official code does); with hard = project, W ← W ⊙ topN(W);
//                 with hard = snap, W ← W0 ⊙ topN(W) (the Table 3 ablations).
// The mask at the end is topN(|W|) per group; the published weights are W0 ⊙ mask.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/nm_pattern.h"
#include "worker/engine/train_loop.h"

namespace ps {

struct ProxSparseSettings {
  NMPattern pattern;
  double lambda1 = 1.0;
  double lambda2 = 0.0;
  double epsilon = 0.1;
  std::string hard = "none";  // none | project | snap
};

class ProxSparseHooks : public TrainHooks {
 public:
  // `is_target[i]` says whether the optimizer's tensor i is a pruning target (the others are
  // trained, when the whole model is trainable, but never proxed). W0 of the owned targets is
  // kept (in the master dtype) only when λ2 or snapping needs it.
  // `original(name)` returns a target's pretrained weight W0 (from the base checkpoint, so a
  // resumed run gets the true W0, not its checkpointed weights).
  ProxSparseHooks(ProxSparseSettings settings, std::vector<bool> is_target,
                  std::function<torch::Tensor(const std::string&)> original);

  void OwnerBeforeUpdate(ShardedAdamW& opt) override;
  void OwnerAfterUpdate(ShardedAdamW& opt) override;
  // Every step of ProxSparse is per tensor: the overlapped update runs it during backward.
  bool SupportsTensorUpdates() const override { return true; }
  void BeginTensorUpdates(ShardedAdamW& opt) override;
  void OwnerBeforeUpdateTensor(ShardedAdamW& opt, size_t i) override;
  void OwnerAfterUpdateTensor(ShardedAdamW& opt, size_t i) override;
  // Throws if the prox met NaN/Inf groups (its statistics are read once per step: no sync per
  // tensor, so that the prox can run inside backward without stalling it).
  void EndTensorUpdates(ShardedAdamW& opt) override;
  MaskCounts Counts(ShardedAdamW& opt) override;

  // Owner side, at the end: the top-N mask of each owned target's learned weights.
  torch::Tensor FinalMask(ShardedAdamW& opt, size_t i) const;

 private:
  void EnsureOriginals(ShardedAdamW& opt);
  ProxSparseSettings s_;
  std::function<torch::Tensor(const std::string&)> original_;
  std::vector<bool> is_target_;
  std::vector<torch::Tensor> w0_;         // per tensor, owned targets only
  std::vector<torch::Tensor> last_mask_;  // per tensor, for mask flips
  bool originals_ready_ = false;
  torch::Tensor prox_stats_;  // this step's prox statistics (prox::NewStatsBuffer), on the device
};

}  // namespace ps
