// The data-parallel training loop shared by every method that trains (ProxSparse, MaskLLM, masked
// gradient update). A step (TrainStep in train_loop.cc) reads top to bottom:
//   every rank runs forward/backward on its share of the global batch (batch_planner.h), the loss
//   normalised by the global number of predicted tokens, so that the gradients summed over ranks
//   are those of the whole batch whatever the rank count;
//   the update strategy (update_strategy.h: serial or overlapped with backward) reduces gradients
//   to their owners, runs the method's per-tensor hooks (λ2 gradient, AdamW, prox) on what this
//   rank owns, and publishes the new weights.
// Around the steps: the step logger (step_logger.h: progress, history), the checkpointer
// (checkpointer.h: every K steps and on SIGTERM, resume on any rank count), and a clear error on a
// non-finite loss (the last good checkpoint stays).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/engine/train_options.h"
#include "worker/methods/train_hooks.h"
#include "worker/models/llama_model.h"

namespace ps {

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
