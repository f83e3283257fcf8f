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
  for (size_t i = 0; i < opt.size(); ++i)
    if (opt.Owns(i)) OwnerBeforeUpdateTensor(opt, i);
}

void ProxSparseHooks::OwnerAfterUpdate(ShardedAdamW& opt) {
  BeginTensorUpdates(opt);
  for (size_t i = 0; i < opt.size(); ++i)
    if (opt.Owns(i)) OwnerAfterUpdateTensor(opt, i);
  EndTensorUpdates(opt);
}

void ProxSparseHooks::BeginTensorUpdates(ShardedAdamW& opt) {
  EnsureOriginals(opt);
  if (opt.size() > 0) prox_stats_ = prox::NewStatsBuffer(opt.state_device());
}

void ProxSparseHooks::OwnerBeforeUpdateTensor(ShardedAdamW& opt, size_t i) {
  if (s_.lambda2 == 0 || !is_target_[i]) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor& w = opt.master(i);
  const torch::Tensor& w0 = w0_[i];
  // d = W0 + ε·sgn(W0), sgn(0) = 1; r = (W / d) ⊙ (W − W0); ∇‖r‖² = 2 r ⊙ (2W − W0) / d.
  torch::Tensor d =
      w0 + s_.epsilon * torch::where(w0 >= 0, torch::ones_like(w0), -torch::ones_like(w0));
  torch::Tensor r = (w / d) * (w - w0);
  // Out of place: on one rank the gradient may be autograd's (shared) buffer.
  opt.grad(i) = opt.grad(i) + 2.0 * s_.lambda2 * r * (2 * w - w0) / d;
}

void ProxSparseHooks::OwnerAfterUpdateTensor(ShardedAdamW& opt, size_t i) {
  if (!is_target_[i]) return;
  if (!prox_stats_.defined()) throw Error("ProxSparseHooks: prox before BeginTensorUpdates");
  torch::NoGradGuard no_grad;
  torch::Tensor& w = opt.master(i);
  prox::ProxInPlaceAccumulate(w, static_cast<float>(s_.lambda1), s_.pattern, prox_stats_);
  if (s_.hard == "project") {
    w.copy_(ApplyMask(w, TopNMaskUnchecked(w, s_.pattern)));
  } else if (s_.hard == "snap") {
    w.copy_(ApplyMask(w0_[i], TopNMaskUnchecked(w, s_.pattern)));
  }
}

void ProxSparseHooks::EndTensorUpdates(ShardedAdamW&) {
  if (!prox_stats_.defined()) return;
  const prox::ProxStats st = prox::ReadStats(prox_stats_);
  prox_stats_ = torch::Tensor();
  if (st.groups_nonfinite > 0)
    throw Error("prox: " + std::to_string(st.groups_nonfinite) + " of " +
                std::to_string(st.groups) + " groups contain NaN or Inf (left unchanged)");
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
