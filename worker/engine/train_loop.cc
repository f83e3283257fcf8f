#include "worker/engine/train_loop.h"

#include <torch/nn/functional/loss.h>

#include <atomic>
#include <csignal>

#include "common/error.h"
#include "worker/distributed/watchdog.h"
#include "worker/engine/activation_checkpoint.h"
#include "worker/engine/batch_planner.h"
#include "worker/engine/checkpointer.h"
#include "worker/engine/owned_tensors.h"
#include "worker/engine/step_logger.h"
#include "worker/engine/update_strategy.h"
#include "worker/methods/lr_schedule.h"

namespace ps {
namespace {

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true); }

// What a step works with.
struct StepParts {
  LlamaForCausalLM& model;
  TrainHooks& hooks;
  Communicator& comm;
  const TrainOptions& options;
  const LinearWarmupSchedule& schedule;
  const BatchPlanner& batches;
  UpdateStrategy& update;
};

// Summed next-token cross entropy of one micro-batch over the step's predicted tokens.
// With activation checkpointing each decoder layer is rerun in backward (activation_checkpoint.h).
torch::Tensor MicroBatchLoss(LlamaForCausalLM& model, const MicroBatch& b, int64_t global_tokens,
                             bool checkpointing) {
  const torch::Tensor ids = b.inputs.to(model.device());
  torch::Tensor logits = checkpointing ? CheckpointedForward(model, ids) : model.forward(ids);
  torch::Tensor nll = torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32),
      b.labels.to(model.device()).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(-100));
  return nll / static_cast<double>(global_tokens);
}

// One optimizer step on this rank.
StepStats TrainStep(int64_t step, StepParts& p) {
  StepTimer timer;
  p.hooks.BeforeStep(step, p.options.total_steps);
  const double lr = p.schedule.LearningRate(step);
  p.update.BeginStep(step, lr);
  const StepBatch batch = p.batches.Plan(step);
  torch::Tensor local_loss =
      torch::zeros({1}, torch::dtype(torch::kFloat64).device(p.model.device()));
  // The method's regulariser joins the loss once per step, on rank 0, after the first forward.
  const bool owes_extra = p.comm.rank() == 0;
  for (size_t k = 0; k < batch.micro.size(); ++k) {
    torch::Tensor loss = MicroBatchLoss(p.model, batch.micro[k], batch.global_tokens,
                                        p.options.activation_checkpointing);
    if (k == 0 && owes_extra) {
      if (torch::Tensor extra = p.hooks.ExtraLoss(); extra.defined()) loss = loss + extra;
    }
    local_loss += loss.detach().to(torch::kFloat64);
    if (k + 1 == batch.micro.size()) p.update.BeforeLastBackward(local_loss);
    loss.backward();
  }
  if (batch.micro.empty() && owes_extra) {  // rank 0 without data still adds the regulariser
    if (torch::Tensor extra = p.hooks.ExtraLoss(); extra.defined()) {
      local_loss += extra.detach().to(torch::kFloat64);
      p.update.BeforeLastBackward(local_loss);
      extra.backward();
    }
  }
  StepStats s;
  s.loss = p.update.FinishStep(local_loss, timer);
  s.lr = lr;
  s.tokens = batch.global_tokens;
  s.phases = timer.phases();
  return s;
}

}  // namespace

void InstallStopSignalHandlers() {
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
}
bool StopRequested() { return g_stop.load(); }

TrainResult TrainLoop(LlamaForCausalLM& model, std::vector<TrainableTensor> params,
                      const std::vector<std::vector<int32_t>>& samples, TrainHooks& hooks,
                      Communicator& comm, ProgressSink& progress, const TrainOptions& options,
                      std::unique_ptr<ShardedAdamW>* optimizer_out) {
  if (samples.empty()) throw Error("training needs at least one calibration sample");
  if (options.total_steps <= 0) throw Error("training needs at least one step");
  auto opt = std::make_unique<ShardedAdamW>(
      std::move(params), options.optimizer_comm ? *options.optimizer_comm : comm, AdamWOptions{},
      options.master_dtype, options.offload_optimizer);
  if (options.overlap_communication) opt->EnableOverlap();
  // Offload beside a GPU streams each owned tensor's state through the GPU for its update, which
  // the overlapped update does tensor by tensor (the serial one would update every tensor on the
  // CPU); the results are the same either way.
  const bool streamed = options.offload_optimizer && model.device().is_cuda();
  if (streamed && !options.overlap_update && comm.rank() == 0)
    progress.Log(
        "offload on a GPU: the update is streamed through the GPU tensor by tensor (overlap_update "
        "on)");
  auto update = MakeUpdateStrategy(options.overlap_update || streamed, *opt, hooks, comm,
                                   model.device(), progress, options.checkpoint_dir.string());
  if (comm.rank() == 0) progress.Log(opt->plan().Describe());
  Checkpointer checkpointer(options.checkpoint_dir, comm);
  const int64_t start = options.resume ? checkpointer.Resume(*opt, hooks, progress) : 0;
  ForEachOwned(*opt, [&hooks](OwnedTensor& t) { hooks.Prepare(t); });
  const BatchPlanner batches(samples, options.seqs_per_step, options.grad_accum,
                             options.total_steps, comm.rank(), comm.size());
  const LinearWarmupSchedule schedule(options.lr, options.total_steps, options.warmup_ratio);
  StepParts parts{model, hooks, comm, options, schedule, batches, *update};
  StepLogger logger(options, comm, progress, model.device(), start);
  auto count_owned = [&] {
    MaskCounts c;
    ForEachOwned(*opt, [&](OwnedTensor& t) { hooks.Count(t, c); });
    hooks.CountRun(c);
    return c;
  };
  double loss = 0;
  bool interrupted = false;
  for (int64_t step = start; step < options.total_steps; ++step) {
    if (StopRequested() || progress.CancelRequested()) {
      if (step > start) checkpointer.Save(step, *opt, hooks, loss);
      interrupted = true;
      break;
    }
    WatchdogBeat("step " + std::to_string(step + 1) + " of " + std::to_string(options.total_steps));
    const StepStats s = TrainStep(step, parts);
    loss = s.loss;
    logger.Record(step, s, count_owned);
    const bool last = step + 1 == options.total_steps;
    if (options.checkpoint_every > 0 && checkpointer.enabled() &&
        (step + 1) % options.checkpoint_every == 0 && !last) {
      const auto dir = checkpointer.Save(step + 1, *opt, hooks, loss);
      if (comm.rank() == 0) progress.Checkpoint(step + 1, dir);
    }
  }
  TrainResult result = logger.Result();
  result.interrupted = interrupted;
  if (optimizer_out) *optimizer_out = std::move(opt);
  return result;
}

}  // namespace ps
