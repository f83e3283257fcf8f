#include "worker/methods/proxsparse.h"

#include <torch/autograd.h>

#include "common/error.h"
#include "worker/methods/nm_mask.h"
#include "worker/prox/prox.h"

namespace ps {

ProxSparseHooks::ProxSparseHooks(ProxSparseSettings settings, std::vector<bool> is_target,
                                 std::function<torch::Tensor(const std::string&)> original)
    : s_(settings), original_(std::move(original)), is_target_(std::move(is_target)) {
  w0_.resize(is_target_.size());
  last_mask_.resize(is_target_.size());
}

void ProxSparseHooks::Prepare(const OwnedTensor& t) {
  if (!device_) device_ = t.master.device();
  if (!is_target_[t.index] || w0_[t.index].defined()) return;
  if (s_.lambda2 == 0 && s_.hard != HardMode::kSnap) return;
  w0_[t.index] = t.Local(original_(t.name)).to(t.master.options());
}

void ProxSparseHooks::BeginUpdates() {
  if (device_) prox_stats_ = prox::NewStatsBuffer(*device_);
}

void ProxSparseHooks::BeforeUpdate(OwnedTensor& t) {
  if (s_.lambda2 == 0 || !is_target_[t.index]) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor& w = t.master;
  const torch::Tensor& w0 = w0_[t.index];
  // d = W0 + ε·sgn(W0), sgn(0) = 1; r = (W / d) ⊙ (W − W0); ∇‖r‖² = 2 r ⊙ (2W − W0) / d.
  torch::Tensor d =
      w0 + s_.epsilon * torch::where(w0 >= 0, torch::ones_like(w0), -torch::ones_like(w0));
  torch::Tensor r = (w / d) * (w - w0);
  // Out of place: on one rank the gradient may be autograd's (shared) buffer.
  t.grad = t.grad + 2.0 * s_.lambda2 * r * (2 * w - w0) / d;
}

void ProxSparseHooks::AfterUpdate(OwnedTensor& t) {
  if (!is_target_[t.index]) return;
  if (!prox_stats_.defined()) throw Error("ProxSparseHooks: prox before BeginUpdates");
  torch::NoGradGuard no_grad;
  torch::Tensor& w = t.master;
  prox::ProxInPlaceAccumulate(w, static_cast<float>(s_.lambda1), s_.pattern, prox_stats_);
  if (s_.hard == HardMode::kProject) {
    w.copy_(ApplyMask(w, TopNMaskUnchecked(w, s_.pattern)));
  } else if (s_.hard == HardMode::kSnap) {
    w.copy_(ApplyMask(w0_[t.index], TopNMaskUnchecked(w, s_.pattern)));
  }
}

void ProxSparseHooks::EndUpdates() {
  if (!prox_stats_.defined()) return;
  const prox::ProxStats st = prox::ReadStats(prox_stats_);
  prox_stats_ = torch::Tensor();
  prox_groups_ += st.groups;
  prox_capped_ += st.groups_unconverged;
  if (st.groups_nonfinite > 0)
    throw Error("prox: " + std::to_string(st.groups_nonfinite) + " of " +
                std::to_string(st.groups) + " groups contain NaN or Inf (left unchanged)");
}

void ProxSparseHooks::Count(const OwnedTensor& t, MaskCounts& c) {
  if (!is_target_[t.index]) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor& w = t.master;
  GroupStats g = ComputeGroupStats(w, s_.pattern);
  c.groups += g.groups;
  c.nm += g.at_most_n;
  c.mid += g.between;
  c.dense += g.dense;
  torch::Tensor mask = TopNMaskUnchecked(w, s_.pattern);
  torch::Tensor& last = last_mask_[t.index];
  if (last.defined()) c.flips += CountMaskFlips(mask, last) / 2;
  last = mask;
}

void ProxSparseHooks::CountRun(MaskCounts& c) const {
  c.prox_groups = prox_groups_;
  c.prox_capped = prox_capped_;
}

torch::Tensor ProxSparseHooks::FinalMask(const OwnedTensor& t) const {
  return TopNMask(t.master, s_.pattern, t.name);
}

}  // namespace ps
