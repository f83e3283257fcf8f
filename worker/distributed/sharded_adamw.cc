#include "worker/distributed/sharded_adamw.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>
#include <numeric>
#if __has_include(<ATen/ops/_fused_adamw.h>)
#include <ATen/ops/_fused_adamw.h>
#define PS_HAVE_FUSED_ADAMW 1
#endif

#include "common/error.h"

namespace ps {

ShardedAdamW::ShardedAdamW(std::vector<TrainableTensor> params, Communicator& comm,
                           AdamWOptions options, torch::ScalarType master_dtype)
    : params_(std::move(params)), comm_(comm), options_(options), master_dtype_(master_dtype) {
  std::vector<int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.param.numel());
  plan_ = PlanOwnership(numels, comm_.size());
  slots_.resize(params_.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    Slot& s = slots_[i];
    const torch::Tensor& p = params_[i].param;
    s.master = p.scalar_type() == master_dtype_ ? p.detach() : p.detach().to(master_dtype_);
    s.exp_avg = torch::zeros_like(s.master);
    s.exp_avg_sq = torch::zeros_like(s.master);
  }
}

ShardedAdamW::~ShardedAdamW() {
  // The hooks point at this object: take them off the (longer-lived) parameters.
  for (size_t i = 0; i < hooks_.size(); ++i) params_[i].param.remove_hook(hooks_[i]);
}

torch::Tensor& ShardedAdamW::master(size_t i) {
  if (!Owns(i)) throw Error("ShardedAdamW: rank does not own " + name(i));
  return slots_[i].master;
}

torch::Tensor& ShardedAdamW::grad(size_t i) {
  if (!Owns(i)) throw Error("ShardedAdamW: rank does not own " + name(i));
  return slots_[i].grad;
}

void ShardedAdamW::ZeroGrad() {
  for (auto& p : params_) {
    if (p.param.grad().defined()) p.param.mutable_grad() = torch::Tensor();
  }
}

torch::Tensor ShardedAdamW::ReduceBuffer(size_t i, const torch::Tensor& extra) const {
  const torch::Tensor& p = params_[i].param;
  torch::Tensor acc = p.grad();
  torch::Tensor g;
  if (acc.defined() && extra.defined()) {
    // Summed in the parameter's dtype, as autograd's accumulation into .grad does: identical
    // results with and without overlap.
    g = (acc + extra).to(master_dtype_);
  } else if (acc.defined()) {
    // .grad is the parameter's own buffer once backward is done: reducing it in place is safe.
    g = acc.to(master_dtype_);
  } else if (extra.defined()) {
    g = extra.to(master_dtype_);
    // A hook's gradient may be shared with other gradients (autograd passes one buffer down
    // several edges), and the reduce writes in place: copy it (one rank reduces nothing).
    if (g.data_ptr() == extra.data_ptr() && comm_.size() > 1) g = g.clone();
  } else {
    g = torch::zeros(p.sizes(), p.options().dtype(master_dtype_));
  }
  return g.contiguous();
}

void ShardedAdamW::EnableOverlap() {
  if (comm_.size() == 1 || !hooks_.empty()) return;
  reduce_order_.resize(params_.size());
  std::iota(reduce_order_.rbegin(), reduce_order_.rend(), size_t{0});
  pending_.assign(params_.size(), torch::Tensor());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].param.requires_grad())
      throw Error("ShardedAdamW: " + params_[i].name + " does not require grad");
    hooks_.push_back(params_[i].param.register_hook(
        [this, i](const torch::Tensor& grad) { OnGradientReady(i, grad); }));
  }
}

void ShardedAdamW::ArmOverlap() {
  if (hooks_.empty()) return;
  armed_ = true;
  next_reduce_ = 0;
  for (auto& t : pending_) t = torch::Tensor();
}

void ShardedAdamW::OnGradientReady(size_t i, const torch::Tensor& grad) {
  if (!armed_ || pending_[i].defined()) return;
  torch::NoGradGuard no_grad;
  // The hook runs before autograd adds `grad` into .grad: the full gradient is .grad + grad.
  pending_[i] = ReduceBuffer(i, grad);
  LaunchReadyReduces();
}

void ShardedAdamW::LaunchReadyReduces() {
  while (next_reduce_ < reduce_order_.size()) {
    const size_t i = reduce_order_[next_reduce_];
    if (!pending_[i].defined()) return;
    comm_.ReduceSum(pending_[i], plan_.owner[i]);
    if (Owns(i)) slots_[i].grad = pending_[i];
    pending_[i] = torch::Tensor();
    ++next_reduce_;
  }
}

void ShardedAdamW::ReduceGradients() {
  torch::NoGradGuard no_grad;
  if (!hooks_.empty()) {
    // Finish in the same fixed order: tensors whose hook did not fire (no gradient in the armed
    // pass, or no armed pass on this rank) reduce what .grad holds.
    if (!armed_) {
      next_reduce_ = 0;
      for (auto& t : pending_) t = torch::Tensor();
    }
    armed_ = false;
    for (size_t k = next_reduce_; k < reduce_order_.size(); ++k) {
      const size_t i = reduce_order_[k];
      if (!pending_[i].defined()) pending_[i] = ReduceBuffer(i, torch::Tensor());
    }
    LaunchReadyReduces();
    return;
  }
  comm_.GroupStart();
  for (size_t i = 0; i < params_.size(); ++i) {
    // Sum in the master dtype: a bf16 sum over ranks would lose the low bits of every gradient.
    torch::Tensor g = ReduceBuffer(i, torch::Tensor());
    comm_.ReduceSum(g, plan_.owner[i]);
    if (Owns(i)) slots_[i].grad = g;
  }
  comm_.GroupEnd();
}

void ShardedAdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (Owns(i) && !slots_[i].grad.defined())
      throw Error("ShardedAdamW: Step without ReduceGradients (" + params_[i].name + ")");
  }
  if (!StepFused(lr)) {
    const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
    const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
    StepUnfused(lr, bc1, bc2);
  }
  for (auto& s : slots_) s.grad = torch::Tensor();
}

void ShardedAdamW::StepUnfused(double lr, double bc1, double bc2) {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    Slot& s = slots_[i];
    // torch.optim.AdamW's update, term by term.
    if (options_.weight_decay != 0) s.master.mul_(1.0 - lr * options_.weight_decay);
    s.exp_avg.mul_(options_.beta1).add_(s.grad, 1.0 - options_.beta1);
    s.exp_avg_sq.mul_(options_.beta2).addcmul_(s.grad, s.grad, 1.0 - options_.beta2);
    torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(options_.eps);
    s.master.addcdiv_(s.exp_avg, denom, -lr / bc1);
  }
}

// On CUDA with LibTorch 2.x: torch's fused AdamW kernel (what torch.optim.AdamW(fused=True) runs),
// one pass over all owned tensors instead of ~10 element-wise passes each. Same formula.
bool ShardedAdamW::StepFused([[maybe_unused]] double lr) {
#ifdef PS_HAVE_FUSED_ADAMW
  std::vector<torch::Tensor> p, g, m, v, steps;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    if (!slots_[i].master.is_cuda()) return false;
    p.push_back(slots_[i].master);
    g.push_back(slots_[i].grad);
    m.push_back(slots_[i].exp_avg);
    v.push_back(slots_[i].exp_avg_sq);
  }
  if (p.empty()) return true;
  torch::Tensor step = torch::full({}, static_cast<double>(step_),
                                   torch::dtype(torch::kFloat32).device(p[0].device()));
  steps.assign(p.size(), step);
  at::_fused_adamw_(p, g, m, v, {}, steps, lr, options_.beta1, options_.beta2,
                    options_.weight_decay, options_.eps, /*amsgrad=*/false, /*maximize=*/false);
  return true;
#else
  return false;
#endif
}

void ShardedAdamW::Publish() {
  torch::NoGradGuard no_grad;
  comm_.GroupStart();
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor p = params_[i].param.detach();
    if (Owns(i) && slots_[i].master.data_ptr() != p.data_ptr()) p.copy_(slots_[i].master);
    comm_.Broadcast(p, plan_.owner[i]);
  }
  comm_.GroupEnd();
}

std::vector<std::pair<std::string, torch::Tensor>> ShardedAdamW::OwnedState() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (plan_.owner[i] != comm_.rank()) continue;
    out.emplace_back(params_[i].name + ".exp_avg", slots_[i].exp_avg);
    out.emplace_back(params_[i].name + ".exp_avg_sq", slots_[i].exp_avg_sq);
    out.emplace_back(params_[i].name + ".master", slots_[i].master);
  }
  return out;
}

void ShardedAdamW::LoadState(const std::map<std::string, torch::Tensor>& state, int64_t step) {
  torch::NoGradGuard no_grad;
  auto take = [&](const std::string& key, torch::Tensor& into) {
    auto it = state.find(key);
    if (it == state.end()) throw Error("optimizer checkpoint: missing " + key);
    if (it->second.sizes() != into.sizes())
      throw Error("optimizer checkpoint: " + key + " has the wrong shape");
    into.copy_(it->second);
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    take(params_[i].name + ".exp_avg", slots_[i].exp_avg);
    take(params_[i].name + ".exp_avg_sq", slots_[i].exp_avg_sq);
    take(params_[i].name + ".master", slots_[i].master);
  }
  step_ = step;
}

}  // namespace ps
