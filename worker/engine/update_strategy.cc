#include "worker/engine/update_strategy.h"

#include <cmath>

#include "common/error.h"
#include "worker/engine/device_sync.h"
#include "worker/engine/owned_tensors.h"

namespace ps {

void StepTimer::Mark(const std::string& phase) {
  const auto now = std::chrono::steady_clock::now();
  phases_[phase] += std::chrono::duration<double>(now - last_).count();
  last_ = now;
}

namespace {

// What both strategies share: the optimizer, the hooks, the loss check and publishing.
class StrategyBase : public UpdateStrategy {
 public:
  StrategyBase(ShardedAdamW& opt, TrainHooks& hooks, Communicator& comm, torch::Device device,
               std::string ckpt_dir)
      : opt_(opt), hooks_(hooks), comm_(comm), device_(device), ckpt_dir_(std::move(ckpt_dir)) {}

 protected:
  const torch::Device& device() const { return device_; }
  void CheckLossFinite(double loss) const {
    if (!std::isfinite(loss))
      throw Error("non-finite loss (" + std::to_string(loss) + ") at step " +
                  std::to_string(step_ + 1) + "; stopping. The last good checkpoint is kept in " +
                  (ckpt_dir_.empty() ? std::string("(none)") : ckpt_dir_));
  }
  // Owners write their masters into the model and broadcast them.
  void Publish(StepTimer& timer) {
    opt_.Publish();
    DeviceSync(device());
    timer.Mark("communication");
  }
  ShardedAdamW& opt_;
  TrainHooks& hooks_;
  Communicator& comm_;
  const torch::Device device_;
  const std::string ckpt_dir_;
  int64_t step_ = 0;
  double lr_ = 0;
};

// Every gradient reduced first, then the update of every owned tensor, then publishing.
class SerialUpdate final : public StrategyBase {
 public:
  using StrategyBase::StrategyBase;
  void BeginStep(int64_t step, double lr) override {
    step_ = step;
    lr_ = lr;
    opt_.ZeroGrad();
  }
  void BeforeLastBackward(const torch::Tensor&) override { opt_.ArmOverlap(); }
  double FinishStep(torch::Tensor& local_loss, StepTimer& timer) override {
    DeviceSync(device());
    timer.Mark("forward_backward");
    opt_.ReduceGradients();
    comm_.AllReduceSum(local_loss);
    DeviceSync(device());
    timer.Mark("communication");
    const double loss = local_loss.item<double>();
    CheckLossFinite(loss);
    hooks_.BeginUpdates();
    ForEachOwned(opt_, [this](OwnedTensor& t) { hooks_.BeforeUpdate(t); });
    opt_.Step(lr_);
    DeviceSync(device());
    timer.Mark("optimizer");
    ForEachOwned(opt_, [this](OwnedTensor& t) { hooks_.AfterUpdate(t); });
    hooks_.EndUpdates();
    DeviceSync(device());
    timer.Mark("prox");
    Publish(timer);
    return loss;
  }
};

// Each owned tensor updated inside the last backward pass as soon as its reduce is launched (a
// side stream on CUDA); what backward did not reach is updated after it. Weights change during
// backward, so the global loss is all-reduced and checked finite before that pass (the step's
// first collective on every rank, before any gradient reduce). Phase times then count the update
// work that overlapped backward as forward_backward; optimizer and prox are what is left after
// backward's stream is done (the side stream's tail, tensors updated late).
class OverlappedUpdate final : public StrategyBase {
 public:
  OverlappedUpdate(ShardedAdamW& opt, TrainHooks& hooks, Communicator& comm, torch::Device device,
                   std::string ckpt_dir)
      : StrategyBase(opt, hooks, comm, device, std::move(ckpt_dir)) {
    opt_.EnableOverlappedUpdate();
  }
  void BeginStep(int64_t step, double lr) override {
    step_ = step;
    lr_ = lr;
    loss_checked_ = false;
    opt_.ZeroGrad();
    hooks_.BeginUpdates();
    opt_.BeginTensorUpdates(lr, PerTensorHooks(opt_, hooks_));
  }
  void BeforeLastBackward(const torch::Tensor& local_loss) override {
    CheckGlobalLoss(local_loss);
    opt_.ArmOverlap();
  }
  double FinishStep(torch::Tensor& local_loss, StepTimer& timer) override {
    if (!loss_checked_) CheckGlobalLoss(local_loss);  // this rank ran no backward
    CurrentStreamSync(device());  // backward is done; the side stream's tail is optimizer time
    timer.Mark("forward_backward");
    opt_.ReduceGradients();
    CurrentStreamSync(device());
    timer.Mark("communication");
    opt_.Step(lr_);  // the tensors backward did not reach: before + AdamW ...
    DeviceSync(device());
    timer.Mark("optimizer");
    opt_.FinishTensorUpdates();  // ... and their after(), then the side stream joined
    hooks_.EndUpdates();
    DeviceSync(device());
    timer.Mark("prox");
    Publish(timer);
    return loss_;
  }

 private:
  void CheckGlobalLoss(const torch::Tensor& local_loss) {
    torch::Tensor total = local_loss.clone();
    comm_.AllReduceSum(total);
    loss_ = total.item<double>();
    CheckLossFinite(loss_);
    loss_checked_ = true;
  }
  bool loss_checked_ = false;
  double loss_ = 0;
};

}  // namespace

std::unique_ptr<UpdateStrategy> MakeUpdateStrategy(bool overlap_update, ShardedAdamW& opt,
                                                   TrainHooks& hooks, Communicator& comm,
                                                   const torch::Device& device,
                                                   ProgressSink& progress,
                                                   const std::string& checkpoint_dir) {
  if (overlap_update && !hooks.SupportsTensorUpdates()) {
    if (comm.rank() == 0)
      progress.Log(
          "overlap_update: this method's owner-side hooks need every gradient first; AdamW and "
          "the hooks run after backward instead (serial path)");
    overlap_update = false;
  }
  if (!overlap_update)
    return std::make_unique<SerialUpdate>(opt, hooks, comm, device, checkpoint_dir);
  if (comm.rank() == 0)
    progress.Log("overlap_update: AdamW and the owner-side hooks run during the last backward");
  return std::make_unique<OverlappedUpdate>(opt, hooks, comm, device, checkpoint_dir);
}

}  // namespace ps
