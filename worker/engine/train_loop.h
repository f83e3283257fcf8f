// The data-parallel training loop shared by every method that trains (ProxSparse, MaskLLM, masked
// gradient update). Per optimizer step:
//   every rank runs forward/backward on its share of the global batch (sequences j of the step with
//   j % ranks == rank), the loss normalised by the global number of predicted tokens, so that the
//   gradients summed over ranks are those of the whole batch whatever the rank count;
//   ShardedAdamW reduces gradients to owners; the method's owner-side hooks run (λ2 gradient,
//   AdamW, prox); owners publish the new weights.
// It logs progress, writes the history, checkpoints every K steps and on SIGTERM (owner shards,
// manifest written last), resumes from the newest complete checkpoint on any rank count, and stops
// with a clear error on a non-finite loss (the last good checkpoint stays).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/engine/history.h"
#include "worker/models/llama_model.h"

namespace ps {

// What the method reports about its masks at a log step (summed over ranks by the loop).
struct MaskCounts {
  int64_t groups = 0;
  int64_t nm = 0;     // groups with at most N non-zeros
  int64_t mid = 0;    // N+1 .. M-1 non-zeros
  int64_t dense = 0;  // M non-zeros
  int64_t flips = 0;  // top-N mask changes since the previous log step
};

class TrainHooks {
 public:
  virtual ~TrainHooks() = default;
  // Called on every rank before the step's forward passes (schedules: MaskLLM's τ and κ).
  virtual void BeforeStep(int64_t step, int64_t total_steps) {}
  // Added to the loss once per step on rank 0 (a regulariser of the whole model); undefined = none.
  virtual torch::Tensor ExtraLoss() { return {}; }
  // Owner side, after gradients are reduced and before AdamW (λ2's gradient).
  virtual void OwnerBeforeUpdate(ShardedAdamW& opt) {}
  // Owner side, after AdamW and before publishing (the prox, hard projections, mask
  // re-application).
  virtual void OwnerAfterUpdate(ShardedAdamW& opt) {}
  // The overlapped update (TrainOptions::overlap_update) runs the owner-side work tensor by tensor,
  // each owned tensor as soon as its gradient is reduced in the step's last backward pass. Hooks
  // whose owner-side work is per tensor return true here and implement the per-tensor forms, with
  // OwnerBeforeUpdate/OwnerAfterUpdate equal to them applied to every owned tensor between
  // BeginTensorUpdates and EndTensorUpdates; for the others the loop keeps the serial path.
  virtual bool SupportsTensorUpdates() const { return false; }
  // Every rank, before the step's backward passes (nothing is reduced yet).
  virtual void BeginTensorUpdates(ShardedAdamW& opt) {}
  // Owner side, tensor i only; may run inside the backward pass (on a side CUDA stream).
  virtual void OwnerBeforeUpdateTensor(ShardedAdamW& opt, size_t i) {}
  virtual void OwnerAfterUpdateTensor(ShardedAdamW& opt, size_t i) {}
  // Every rank, once every owned tensor is updated and the device work joined (checks that need
  // a host sync go here).
  virtual void EndTensorUpdates(ShardedAdamW& opt) {}
  // This rank's counts over what it owns (the loop sums them over ranks).
  virtual MaskCounts Counts(ShardedAdamW& opt) { return {}; }
  // Extra tensors this rank's checkpoint shard must carry (and get back on resume).
  virtual std::vector<std::pair<std::string, torch::Tensor>> CheckpointState() { return {}; }
  virtual void LoadCheckpointState(const std::map<std::string, torch::Tensor>& state) {}
};

struct TrainOptions {
  int64_t total_steps = 0;
  int64_t seqs_per_step = 1;  // global batch, in sequences
  int grad_accum = 1;         // forward/backward passes per rank per step (the rank's share is
                              // split into this many micro-batches, right-padded)
  double lr = 1e-4;
  double warmup_ratio = 0.1;
  int log_every = 1;
  int64_t checkpoint_every = 0;          // 0 = only on SIGTERM
  std::filesystem::path checkpoint_dir;  // empty = no checkpoints
  bool resume = false;
  std::filesystem::path history_csv;  // empty = none (rank 0 writes it)
  torch::ScalarType master_dtype = torch::kFloat32;
  std::string stage = "train";
  // Start each tensor's reduce from its gradient hook during backward (ShardedAdamW overlap).
  bool overlap_communication = true;
  // Also run each owned tensor's AdamW and the method's owner-side hooks (λ2, prox) from that
  // hook, during this rank's last backward pass of the step (implies overlap_communication). The
  // loss is all-reduced and checked finite before that pass, so a non-finite loss still stops the
  // run before any weight changes. Falls back to the serial path, with a log line, for hooks that
  // do not SupportsTensorUpdates(). Phase times then count the update work that overlapped
  // backward as forward_backward; optimizer and prox are what is left after backward's stream is
  // done (the side stream's tail, tensors updated late).
  bool overlap_update = false;
  // Recompute each decoder layer's forward in backward (activation_checkpoint.h): same loss and
  // gradients, activations of one layer instead of all (parallel.activation_checkpointing).
  bool activation_checkpointing = false;
  // The optimizer's state and masters in host memory, AdamW and the owner-side hooks on the CPU
  // (ShardedAdamW's offload; parallel.offload: optimizer).
  bool offload_optimizer = false;
  // The optimizer's communicator when it is not the loop's: with sharded parameters
  // (parallelize_llama.h) each rank's shards already hold summed gradients, so the optimizer runs
  // on a one-rank communicator over them while the loop's collectives span the job.
  Communicator* optimizer_comm = nullptr;
};

struct TrainResult {
  int64_t steps_done = 0;
  int64_t resumed_from = 0;  // step the run resumed from (0 = fresh)
  double final_loss = 0;
  double seconds = 0;
  int64_t tokens = 0;
  bool interrupted = false;  // stopped by SIGTERM or cancellation after checkpointing
  std::map<std::string, double> phase_seconds;  // totals
};

// Runs the loop. `params` are the tensors the optimizer updates (the same list, in the same order,
// on every rank); `samples` the calibration sequences in epoch order (sample s of step t is
// samples[(t * seqs_per_step + j) % samples.size()]). Throws ps::Error on a non-finite loss.
TrainResult TrainLoop(LlamaForCausalLM& model, std::vector<TrainableTensor> params,
                      const std::vector<std::vector<int32_t>>& samples, TrainHooks& hooks,
                      Communicator& comm, ProgressSink& progress, const TrainOptions& options,
                      std::unique_ptr<ShardedAdamW>* optimizer_out = nullptr);

// SIGTERM/SIGINT set a flag the loop checks between steps (it checkpoints and returns).
void InstallStopSignalHandlers();
bool StopRequested();

}  // namespace ps
