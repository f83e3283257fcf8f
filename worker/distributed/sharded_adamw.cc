#include "worker/distributed/sharded_adamw.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>

#include <cmath>
#include <numeric>
#if __has_include(<ATen/ops/_fused_adamw.h>)
#include <ATen/ops/_fused_adamw.h>
#define PS_HAVE_FUSED_ADAMW 1
#endif

#ifdef PS_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "common/error.h"
#include "worker/distributed/pinned_host.h"

namespace ps {

// The overlapped update's stream on CUDA: updates wait for the reduce on the current stream (the
// one autograd runs the armed pass on) and the current stream waits for them before Publish.
struct ShardedAdamW::SideStream {
#ifdef PS_WITH_CUDA
  explicit SideStream(c10::DeviceIndex device)
      : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device)) {}
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAEvent event;  // reused: each wait is enqueued right after its record
  bool used = false;          // work was queued since the last join
#endif
};

ShardedAdamW::ShardedAdamW(std::vector<TrainableTensor> params, Communicator& comm,
                           AdamWOptions options, torch::ScalarType master_dtype, bool offload)
    : params_(std::move(params)),
      comm_(comm),
      options_(options),
      master_dtype_(master_dtype),
      offload_(offload) {
  std::vector<int64_t> numels;
  for (const auto& p : params_) numels.push_back(p.param.numel());
  cuda_params_ = !params_.empty() && params_[0].param.is_cuda();
  plan_ = PlanOwnership(numels, comm_.size());
  slots_.resize(params_.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!Owns(i)) continue;
    Slot& s = slots_[i];
    const torch::Tensor& p = params_[i].param;
    if (offload_) {
      // Always a copy (never the parameter itself), in host memory; page-locked beside a GPU so
      // that Publish's copies back and the streamed update's copies both ways are asynchronous
      // DMA transfers (pinned_host.h: at the exact size, not LibTorch's power-of-two blocks).
      s.master = HostTensor(p.sizes(), master_dtype_, p.is_cuda());
      s.master.copy_(p.detach());
      s.exp_avg = HostTensor(p.sizes(), master_dtype_, p.is_cuda()).zero_();
      s.exp_avg_sq = HostTensor(p.sizes(), master_dtype_, p.is_cuda()).zero_();
      continue;
    }
    s.master = p.scalar_type() == master_dtype_ ? p.detach() : p.detach().to(master_dtype_);
    s.exp_avg = torch::zeros_like(s.master);
    s.exp_avg_sq = torch::zeros_like(s.master);
  }
}

torch::Device ShardedAdamW::state_device() const {
  if (offload_ || params_.empty()) return torch::kCPU;
  return params_[0].param.device();
}

ShardedAdamW::~ShardedAdamW() {
#ifdef PS_WITH_CUDA
  // Queued side-stream work reads tensors this object owns.
  if (side_ && side_->used) side_->stream.synchronize();
#endif
  // The hooks point at this object: take them off the (longer-lived) parameters.
  for (size_t i = 0; i < hooks_.size(); ++i) params_[i].param.remove_hook(hooks_[i]);
}

torch::Tensor ShardedAdamW::ToStateDevice(const torch::Tensor& g) const {
  // Offloaded: the reduced gradient goes to host memory (a blocking copy: the reduce must be
  // done before the CPU reads it), unless the update is streamed through the GPU.
  return offload_ && !g.device().is_cpu() && !Streams() ? g.to(torch::kCPU) : g;
}

bool ShardedAdamW::Streams() const { return offload_ && update_enabled_ && cuda_params_; }

void ShardedAdamW::StageIn(size_t i) {
  Slot& s = slots_[i];
  if (!Streams() || s.staged) return;
  const torch::Device dev = params_[i].param.device();
  s.host_master = s.master;
  s.host_exp_avg = s.exp_avg;
  s.host_exp_avg_sq = s.exp_avg_sq;
  // Asynchronous on the current stream (pinned sources); the update queued after them reads them.
  s.master = s.host_master.to(dev, /*non_blocking=*/true);
  s.exp_avg = s.host_exp_avg.to(dev, /*non_blocking=*/true);
  s.exp_avg_sq = s.host_exp_avg_sq.to(dev, /*non_blocking=*/true);
  s.staged = true;
  s.param_current = false;
}

void ShardedAdamW::StageOut(size_t i) {
  Slot& s = slots_[i];
  if (!s.staged) return;
  torch::NoGradGuard no_grad;
  // Queued after the update on the same stream. The GPU copies are dropped here: the caching
  // allocator hands their memory only to work queued later on this stream, after these copies.
  // The host tensors are read on the CPU only after FinishTensorUpdates' synchronisation.
  s.host_master.copy_(s.master, /*non_blocking=*/true);
  s.host_exp_avg.copy_(s.exp_avg, /*non_blocking=*/true);
  s.host_exp_avg_sq.copy_(s.exp_avg_sq, /*non_blocking=*/true);
  params_[i].param.detach().copy_(s.master);
  s.master = s.host_master;
  s.exp_avg = s.host_exp_avg;
  s.exp_avg_sq = s.host_exp_avg_sq;
  s.host_master = s.host_exp_avg = s.host_exp_avg_sq = torch::Tensor();
  s.staged = false;
  s.param_current = true;
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
  if ((comm_.size() == 1 && !update_enabled_) || !hooks_.empty()) return;
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

void ShardedAdamW::EnableOverlappedUpdate() {
  update_enabled_ = true;
  EnableOverlap();
}

void ShardedAdamW::BeginTensorUpdates(double lr, TensorUpdateFns fns) {
  if (!update_enabled_)
    throw Error("ShardedAdamW: BeginTensorUpdates without EnableOverlappedUpdate");
  if (update_active_) throw Error("ShardedAdamW: BeginTensorUpdates twice in one step");
  update_active_ = true;
  update_lr_ = lr;
  update_fns_ = std::move(fns);
  updated_.assign(params_.size(), 0);
  stepped_.assign(params_.size(), 0);
  updated_during_backward_ = 0;
}

void ShardedAdamW::UpdateDuringBackward(size_t i) {
#ifdef PS_WITH_CUDA
  Slot& s = slots_[i];
  if (s.master.is_cuda()) {
    const c10::DeviceIndex dev = s.master.device().index();
    if (!side_) side_ = std::make_unique<SideStream>(dev);
    // The reduce (or, on one rank, the gradient's computation) is queued on the current stream.
    side_->event.record(c10::cuda::getCurrentCUDAStream(dev));
    side_->event.block(side_->stream);
    side_->used = true;
    // The gradient buffer came from the current stream's pool: it must not be reused there before
    // the side stream is done with it (also when before(i) replaces it and drops the last
    // reference while the side stream's reads of it are still queued).
    s.grad.record_stream(side_->stream);
    c10::cuda::CUDAStreamGuard guard(side_->stream);
    UpdateOne(i);
    return;
  }
#endif
  UpdateOne(i);
}

void ShardedAdamW::UpdateOne(size_t i) {
  StageIn(i);
  if (update_fns_.before) update_fns_.before(i);
  StepOne(i, update_lr_, step_ + 1);
  if (update_fns_.after) update_fns_.after(i);
  StageOut(i);
  slots_[i].grad = torch::Tensor();
  updated_[i] = 1;
  ++updated_during_backward_;
}

void ShardedAdamW::FinishTensorUpdates() {
  if (!update_active_) throw Error("ShardedAdamW: FinishTensorUpdates without BeginTensorUpdates");
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!stepped_[i]) continue;
    if (update_fns_.after) update_fns_.after(i);
    StageOut(i);
  }
#ifdef PS_WITH_CUDA
  if (side_ && side_->used) {
    const c10::DeviceIndex dev = side_->stream.device_index();
    side_->event.record(side_->stream);
    side_->event.block(c10::cuda::getCurrentCUDAStream(dev));
    side_->used = false;
  }
  // Streamed offload: the host state (checkpoints, mask statistics read it on the CPU) is
  // complete once the copies back have landed.
  if (Streams()) c10::cuda::getCurrentCUDAStream(params_[0].param.device().index()).synchronize();
#endif
  update_active_ = false;
  update_fns_ = TensorUpdateFns{};
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
    if (Owns(i)) slots_[i].grad = ToStateDevice(pending_[i]);
    pending_[i] = torch::Tensor();
    ++next_reduce_;
    // In the armed pass (not in ReduceGradients' finish, which clears armed_ first).
    if (armed_ && update_active_ && Owns(i)) UpdateDuringBackward(i);
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
    if (Owns(i)) slots_[i].grad = ToStateDevice(g);
  }
  comm_.GroupEnd();
}

void ShardedAdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (Owns(i) && !slots_[i].grad.defined() && !(update_active_ && updated_[i]))
      throw Error("ShardedAdamW: Step without ReduceGradients (" + params_[i].name + ")");
  }
  if (update_active_) {
    // The overlapped update: only the tensors not updated during backward, one by one.
    if (lr != update_lr_) throw Error("ShardedAdamW: Step's lr differs from BeginTensorUpdates'");
    for (size_t i = 0; i < params_.size(); ++i) {
      if (!Owns(i) || updated_[i]) continue;
      StageIn(i);  // out again after its after(), in FinishTensorUpdates
      if (update_fns_.before) update_fns_.before(i);
      StepOne(i, lr, step_);
      slots_[i].grad = torch::Tensor();
      stepped_[i] = 1;
    }
    return;
  }
  if (!StepFused(lr)) {
    for (size_t i = 0; i < params_.size(); ++i)
      if (Owns(i)) StepOne(i, lr, step_);
  }
  for (auto& s : slots_) s.grad = torch::Tensor();
}

void ShardedAdamW::StepOne(size_t i, double lr, int64_t step) {
  Slot& s = slots_[i];
#ifdef PS_HAVE_FUSED_ADAMW
  if (s.master.is_cuda()) {
    // The same kernel as StepFused, on one tensor: identical results (it is element-wise).
    std::vector<torch::Tensor> p{s.master}, g{s.grad}, m{s.exp_avg}, v{s.exp_avg_sq};
    std::vector<torch::Tensor> steps{torch::full(
        {}, static_cast<double>(step), torch::dtype(torch::kFloat32).device(s.master.device()))};
    at::_fused_adamw_(p, g, m, v, {}, steps, lr, options_.beta1, options_.beta2,
                      options_.weight_decay, options_.eps, /*amsgrad=*/false, /*maximize=*/false);
    return;
  }
#endif
  // torch.optim.AdamW's update, term by term.
  const double bc1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step));
  if (options_.weight_decay != 0) s.master.mul_(1.0 - lr * options_.weight_decay);
  s.exp_avg.mul_(options_.beta1).add_(s.grad, 1.0 - options_.beta1);
  s.exp_avg_sq.mul_(options_.beta2).addcmul_(s.grad, s.grad, 1.0 - options_.beta2);
  torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(options_.eps);
  s.master.addcdiv_(s.exp_avg, denom, -lr / bc1);
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
    Slot& s = slots_[i];
    if (Owns(i) && !s.param_current && s.master.data_ptr() != p.data_ptr()) p.copy_(s.master);
    s.param_current = false;
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
