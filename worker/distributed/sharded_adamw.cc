#include "worker/distributed/sharded_adamw.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>

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

void ShardedAdamW::ReduceGradients() {
  torch::NoGradGuard no_grad;
  comm_.GroupStart();
  for (size_t i = 0; i < params_.size(); ++i) {
    // Sum in the master dtype: a bf16 sum over ranks would lose the low bits of every gradient.
    // (When the dtypes agree this reduces the parameter's own .grad in place; ZeroGrad follows.)
    torch::Tensor g = params_[i].param.grad();
    g = g.defined() ? g.to(master_dtype_).contiguous()
                    : torch::zeros(params_[i].param.sizes(),
                                   params_[i].param.options().dtype(master_dtype_));
    comm_.ReduceSum(g, plan_.owner[i]);
    if (Owns(i)) slots_[i].grad = g;
  }
  comm_.GroupEnd();
}

void ShardedAdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    Slot& s = slots_[i];
    if (!s.grad.defined()) throw Error("ShardedAdamW: Step without ReduceGradients");
    // torch.optim.AdamW's update, term by term.
    if (options_.weight_decay != 0) s.master.mul_(1.0 - lr * options_.weight_decay);
    s.exp_avg.mul_(options_.beta1).add_(s.grad, 1.0 - options_.beta1);
    s.exp_avg_sq.mul_(options_.beta2).addcmul_(s.grad, s.grad, 1.0 - options_.beta2);
    torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(options_.eps);
    s.master.addcdiv_(s.exp_avg, denom, -lr / bc1);
    s.grad = torch::Tensor();
  }
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
