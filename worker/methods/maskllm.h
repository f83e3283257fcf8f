// MaskLLM (Fang et al., NeurIPS 2024): learnable N:M masks over frozen weights.
//
// Every group of M weights (along the input dimension) gets C(M, N) logits π, one per candidate
// mask (6 for 2:4). Each forward samples a soft mask through Gumbel-softmax,
//   ỹ = softmax((κ·π + g) / τ),  g = −log(−log u),  M̃ = ỹ · S   (S: the candidates, [C, M]),
// and the linear uses W ⊙ M̃ (installed with Linear::set_weight_transform, weights frozen).
// Soft masks sum to exactly N per group. As in the official code (NVlabs/MaskLLM):
//   - logits start N(0, 0.01) in fp32; a prior mask M₀ adds σ(π)·α·(⟨M₀, Ŝ_i⟩ − N²/M) (paper
//     Eq. 10; the centring constant is the mean overlap, any constant gives the same softmax).
//     One deviation: with a prior, the random part is clamped to ±α·σ/4, so that the prior
//     candidate leads every rival by at least α·σ/2 and the initial argmax is exactly the prior
//     mask (unclamped, α = 3 leaves ~5% of groups on a noise-picked rival, which a short run
//     keeps). A run whose learning rate is too small to move the logits returns the prior.
//   - τ goes linearly 4 → 0.05 and κ linearly 100 → 500 over the run (step / total_steps);
//   - the sparse-weight regulariser −λ_t Σ‖W ⊙ M̃‖² (W detached, gradient to the logits) with
//     λ_t = λ·(1 − step/total_steps) (the code decays it linearly to 0; the paper writes λ);
//   - the final mask is the candidate of largest logit (ties: the first candidate).
// Candidates are enumerated as index sets in lexicographic order: for 2:4 {0,1},{0,2},{0,3},{1,2},
// {1,3},{2,3}, the official code's order.
//
// The engine runs the optimizer (the paper: AdamW lr 5e-4 .. 1e-3, weight decay 0.1) on
// Parameters(), calls SetProgress before each step, adds Regularizer() to the loss after the
// forward, and reads FinalMasks() at the end.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/nm_pattern.h"
#include "worker/methods/train_hooks.h"
#include "worker/models/llama_model.h"

namespace ps {

struct MaskLlmOptions {
  NMPattern pattern = k2of4;
  double tau_start = 4.0, tau_end = 0.05;         // Gumbel temperature schedule
  double kappa_start = 100.0, kappa_end = 500.0;  // logit scale schedule
  double prior_alpha = 3.0;                       // prior strength (0 = ignore the prior)
  double sparse_reg = 1e-5;                       // λ of the sparse-weight regulariser
  double init_std = 0.01;                         // logits ~ N(0, init_std)
  bool hard = false;  // straight-through one-hot samples (the official option; off by default)
  uint64_t seed = 0;
};

// The C(M, N) candidate masks as a float [C, M] tensor (lexicographic index sets). ps::Error when
// there would be more than 70 candidates (M > 8).
torch::Tensor CandidateMasks(NMPattern p);

// Logits [groups, C] for a weight with `groups` groups: N(0, init_std) from `seed`, plus the prior
// term when `prior` (bool [out, in]) is defined and alpha > 0 (then the random part is clamped to
// ±alpha·σ/4 and argmax(logits) equals the prior in every group, by a margin >= alpha·σ/2).
torch::Tensor InitMaskLogits(int64_t groups, const torch::Tensor& prior, NMPattern p,
                             double init_std, double alpha, uint64_t seed,
                             const torch::Device& device);

// Soft masks [groups, M] from logits [groups, C] and Gumbel noise [groups, C] (u ~ U(0,1) given;
// g = −log(−log u)). Exposed for tests; the module samples u itself.
torch::Tensor GumbelSoftMask(const torch::Tensor& logits, const torch::Tensor& uniform,
                             const torch::Tensor& candidates, double kappa, double tau, bool hard);

// Hard masks: candidate argmax(logits) per group, as bool [groups, M].
torch::Tensor ArgmaxMask(const torch::Tensor& logits, const torch::Tensor& candidates);

class MaskLlm {
 public:
  // `targets`: the linears to mask (model.TargetLinears()). `priors`: optional bool masks by HF
  // module name (any one-shot method's mask); a target without a prior starts from noise only.
  MaskLlm(std::vector<std::shared_ptr<Linear>> targets, const MaskLlmOptions& options,
          const std::map<std::string, torch::Tensor>& priors = {});
  ~MaskLlm();
  MaskLlm(const MaskLlm&) = delete;
  MaskLlm& operator=(const MaskLlm&) = delete;

  // The logits to optimise, named "<module>.mask_logits" (fp32 leaves that require grad).
  std::vector<std::pair<std::string, torch::Tensor>> Parameters() const;

  // Installs W ⊙ M̃ on every target and freezes their weights (requires_grad false); Uninstall
  // removes the transforms and restores requires_grad. The destructor uninstalls.
  void Install();
  void Uninstall();

  // Sets τ, κ and λ_t for optimizer step `step` of `total_steps` (linear schedules) and restarts
  // the noise stream of that step: the noise of a forward depends only on (seed, step, target,
  // forward count within the step), so runs and resumes are reproducible and every rank samples
  // the same masks for the same micro-batch index.
  void SetProgress(int64_t step, int64_t total_steps);
  double tau() const { return tau_; }
  double kappa() const { return kappa_; }
  double reg_coef() const { return reg_coef_; }

  // −λ_t Σ_targets ‖W ⊙ M̃‖² over the soft masks of each target's latest forward (a scalar fp32
  // tensor with a graph to the logits). ps::Error if some target has not run forward yet.
  torch::Tensor Regularizer() const;

  // Final masks: argmax of the logits, bool [out, in] by module name.
  std::map<std::string, torch::Tensor> FinalMasks() const;
  // The current hard mask of one target (for flip counting).
  torch::Tensor HardMask(size_t i) const;
  // Hard masks [groups, M] of some rows of a target's logits (a part of Parameters()[i]).
  torch::Tensor HardMaskOf(const torch::Tensor& logits) const;
  size_t size() const { return slots_.size(); }
  const std::string& name(size_t i) const { return slots_[i].linear->path(); }
  // Mean over groups of the largest candidate probability softmax(κπ) (the paper's Fig. 5b
  // convergence indicator).
  double MeanMaxProbability() const;

 private:
  struct Slot {
    std::shared_ptr<Linear> linear;
    torch::Tensor logits;     // [groups, C] fp32, requires grad
    torch::Tensor last_soft;  // [out, in] soft mask of the latest forward (fp32, with graph)
    int64_t calls = 0;        // forwards in the current step
    bool weight_required_grad = false;
  };
  torch::Tensor Sample(Slot& s, size_t index);

  MaskLlmOptions options_;
  torch::Tensor candidates_;  // [C, M] fp32 on the model's device
  std::vector<Slot> slots_;
  bool installed_ = false;
  int64_t step_ = 0;
  double tau_, kappa_, reg_coef_;
};

// MaskLLM as hooks of the engine's training step, over MaskLlm::Parameters() in that order: the
// schedules before each step, the regulariser as the extra loss, mask statistics of the logits
// this rank updates. No per-tensor update work (the regulariser's gradient comes through
// backward).
class MaskLlmHooks : public TrainHooks {
 public:
  MaskLlmHooks(MaskLlm& m, NMPattern p) : m_(m), p_(p) {}
  void BeforeStep(int64_t step, int64_t total) override { m_.SetProgress(step, total); }
  torch::Tensor ExtraLoss() override { return m_.Regularizer(); }
  void Count(const OwnedTensor& t, MaskCounts& c) override;

 private:
  MaskLlm& m_;
  NMPattern p_;
  std::map<size_t, torch::Tensor> last_;  // per logits tensor, for mask flips
};

}  // namespace ps
