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
  if (!is_target_[t.index] || w0_[t.index].defined()) return;
  if (s_.lambda2 == 0 && s_.hard != HardMode::kSnap) return;
  w0_[t.index] = t.Local(original_(t.name)).to(t.master.options());
}

void ProxSparseHooks::BeginUpdates() {
  prox_stats_.clear();
  updating_ = true;
}

torch::Tensor& ProxSparseHooks::StatsOn(const torch::Device& device) {
  if (!updating_) throw Error("ProxSparseHooks: prox before BeginUpdates");
  // One buffer per device the prox runs on: the owned tensors' device, or the GPU that an
  // offloaded update is streamed through.
  for (torch::Tensor& b : prox_stats_)
    if (b.device() == device) return b;
  prox_stats_.push_back(prox::NewStatsBuffer(device));
  return prox_stats_.back();
}

void ProxSparseHooks::BeforeUpdate(OwnedTensor& t) {
  if (s_.lambda2 == 0 || !is_target_[t.index]) return;
  torch::NoGradGuard no_grad;
  const torch::Tensor& w = t.master;
  // W0 stays where the owned state lives; a streamed update runs on the GPU.
  const torch::Tensor w0 = w0_[t.index].to(w.device());
  // d = W0 + ε·sgn(W0), sgn(0) = 1; r = (W / d) ⊙ (W − W0); ∇‖r‖² = 2 r ⊙ (2W − W0) / d.
  torch::Tensor d =
      w0 + s_.epsilon * torch::where(w0 >= 0, torch::ones_like(w0), -torch::ones_like(w0));
  torch::Tensor r = (w / d) * (w - w0);
  // Out of place: on one rank the gradient may be autograd's (shared) buffer.
  t.grad = t.grad + 2.0 * s_.lambda2 * r * (2 * w - w0) / d;
}

void ProxSparseHooks::AfterUpdate(OwnedTensor& t) {
  if (!is_target_[t.index]) return;
  torch::NoGradGuard no_grad;
  torch::Tensor& w = t.master;
  prox::ProxInPlaceAccumulate(w, static_cast<float>(s_.lambda1), s_.pattern, StatsOn(w.device()));
  if (s_.hard == HardMode::kProject) {
    w.copy_(ApplyMask(w, TopNMaskUnchecked(w, s_.pattern)));
  } else if (s_.hard == HardMode::kSnap) {
    w.copy_(ApplyMask(w0_[t.index].to(w.device()), TopNMaskUnchecked(w, s_.pattern)));
  }
}

void ProxSparseHooks::EndUpdates() {
  updating_ = false;
  int64_t groups = 0, nonfinite = 0;
  for (torch::Tensor& b : prox_stats_) {
    const prox::ProxStats st = prox::ReadStats(b);
    groups += st.groups;
    nonfinite += st.groups_nonfinite;
    prox_capped_ += st.groups_unconverged;
  }
  prox_stats_.clear();
  prox_groups_ += groups;
  if (nonfinite > 0)
    throw Error("prox: " + std::to_string(nonfinite) + " of " + std::to_string(groups) +
                " groups contain NaN or Inf (left unchanged)");
}

void ProxSparseHooks::Count(const OwnedTensor& t, MaskCounts& c) {
  if (!is_target_[t.index]) return;
  torch::NoGradGuard no_grad;
  // Offloaded state whose update streams through a GPU: counted there, from one copy of the host
  // master (on the CPU these passes over a 13B model's weights take minutes).
  const torch::Tensor w = t.master.is_cpu() && t.weight.is_cuda()
                              ? t.master.to(t.weight.device(), /*non_blocking=*/true)
                              : t.master;
  GroupStats g = ComputeGroupStats(w, s_.pattern);
  c.groups += g.groups;
  c.nm += g.at_most_n;
  c.mid += g.between;
  c.dense += g.dense;
  // The previous mask is kept as bits, where the master lives.
  torch::Tensor mask = PackMaskBits(TopNMaskUnchecked(w, s_.pattern));
  torch::Tensor& last = last_mask_[t.index];
  if (last.defined()) c.flips += CountPackedMaskFlips(mask, last) / 2;
  last = mask.to(t.master.device());
}

void ProxSparseHooks::CountRun(MaskCounts& c) const {
  c.prox_groups = prox_groups_;
  c.prox_capped = prox_capped_;
}

torch::Tensor ProxSparseHooks::FinalMask(const OwnedTensor& t) const {
  return TopNMask(t.master, s_.pattern, t.name);
}

}  // namespace ps
