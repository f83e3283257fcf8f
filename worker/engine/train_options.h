// The settings and the outcome of a training run (worker/engine/train_loop.h).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace ps {

class Communicator;

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
  // The overlapped update strategy (update_strategy.h): each owned tensor's AdamW and the
  // method's per-tensor hooks (λ2, prox) run during this rank's last backward pass of the step
  // (implies overlap_communication); same results as the serial update. Falls back to the serial
  // update, with a log line, for hooks that do not SupportsTensorUpdates().
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
  int64_t prox_groups = -1;         // groups the prox solved, all ranks and steps (-1: no prox)
  int64_t prox_capped_groups = -1;  // of those, stopped at the iteration cap (must be 0)
};

}  // namespace ps
