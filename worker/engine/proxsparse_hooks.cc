#include "worker/engine/proxsparse_hooks.h"

#include <torch/autograd.h>

#include "common/error.h"
#include "worker/methods/nm_mask.h"
#include "worker/prox/prox.h"

namespace ps {

ProxSparseHooks::ProxSparseHooks(ProxSparseSettings settings, std::vector<bool> is_target,
                                 std::function<torch::Tensor(const std::string&)> original)
    : s_(settings), original_(std::move(original)), is_target_(std::move(is_target)) {
  if (s_.hard != "none" && s_.hard != "project" && s_.hard != "snap")
    throw Error("method.hard: must be none, project or snap");
  w0_.resize(is_target_.size());
  last_mask_.resize(is_target_.size());
}

void ProxSparseHooks::EnsureOriginals(ShardedAdamW& opt) {
  if (originals_ready_) return;
  originals_ready_ = true;
  if (s_.lambda2 == 0 && s_.hard != "snap") return;
  for (size_t i = 0; i < opt.size(); ++i) {
    if (is_target_[i] && opt.Owns(i) && !w0_[i].defined())
      w0_[i] = original_(opt.name(i)).to(opt.master(i).options());
  }
}

void ProxSparseHooks::OwnerBeforeUpdate(ShardedAdamW& opt) {
  EnsureOriginals(opt);
  if (s_.lambda2 == 0) return;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < opt.size(); ++i) {
    if (!is_target_[i] || !opt.Owns(i)) continue;
    const torch::Tensor& w = opt.master(i);
    const torch::Tensor& w0 = w0_[i];
    // d = W0 + ε·sgn(W0), sgn(0) = 1; r = (W / d) ⊙ (W − W0); ∇‖r‖² = 2 r ⊙ (2W − W0) / d.
    torch::Tensor d =
        w0 + s_.epsilon * torch::where(w0 >= 0, torch::ones_like(w0), -torch::ones_like(w0));
    torch::Tensor r = (w / d) * (w - w0);
    opt.grad(i).add_(2.0 * s_.lambda2 * r * (2 * w - w0) / d);
  }
}

void ProxSparseHooks::OwnerAfterUpdate(ShardedAdamW& opt) {
  EnsureOriginals(opt);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < opt.size(); ++i) {
    if (!is_target_[i] || !opt.Owns(i)) continue;
    torch::Tensor& w = opt.master(i);
    prox::ProxInPlace(w, static_cast<float>(s_.lambda1), s_.pattern);
    if (s_.hard == "project") {
      w.copy_(ApplyMask(w, TopNMaskUnchecked(w, s_.pattern)));
    } else if (s_.hard == "snap") {
      w.copy_(ApplyMask(w0_[i], TopNMaskUnchecked(w, s_.pattern)));
    }
  }
}

MaskCounts ProxSparseHooks::Counts(ShardedAdamW& opt) {
  torch::NoGradGuard no_grad;
  MaskCounts c;
  for (size_t i = 0; i < opt.size(); ++i) {
    if (!is_target_[i] || !opt.Owns(i)) continue;
    const torch::Tensor& w = opt.master(i);
    GroupStats g = ComputeGroupStats(w, s_.pattern);
    c.groups += g.groups;
    c.nm += g.at_most_n;
    c.mid += g.between;
    c.dense += g.dense;
    torch::Tensor mask = TopNMaskUnchecked(w, s_.pattern);
    if (last_mask_[i].defined()) c.flips += CountMaskFlips(mask, last_mask_[i]) / 2;
    last_mask_[i] = mask;
  }
  return c;
}

torch::Tensor ProxSparseHooks::FinalMask(ShardedAdamW& opt, size_t i) const {
  return TopNMask(opt.master(i), s_.pattern, opt.name(i));
}

}  // namespace ps
