// Which sequences each rank trains on in a step, and how they are cut into micro-batches.
// Step t's global batch is positions [t·S, (t+1)·S) of the sample order (S = sequences per step;
// position p is samples[p % samples.size()]); rank r takes its contiguous share of it
// (data/sharding.h RankShare) and splits that into grad_accum micro-batches. The global number of
// predicted tokens is known to every rank without communication, so every rank can normalise its
// loss by it and the gradients summed over ranks are those of the whole batch whatever the rank
// count.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace ps {

// One forward/backward pass: int64 [count, len] on the CPU, right-padded (causal attention keeps
// real tokens from seeing the pads); labels are the inputs shifted by one, -100 on pads.
struct MicroBatch {
  torch::Tensor inputs, labels;
};

struct StepBatch {
  std::vector<MicroBatch> micro;  // this rank's passes (empty: the rank has no data this step)
  int64_t global_tokens = 0;      // predicted tokens of the whole step, over all ranks
};

// Inputs and labels of `seqs` (each predicts size() - 1 tokens), right-padded to the longest.
MicroBatch PadRight(const std::vector<const std::vector<int32_t>*>& seqs);

class BatchPlanner {
 public:
  // `samples` must outlive the planner.
  BatchPlanner(const std::vector<std::vector<int32_t>>& samples, int64_t seqs_per_step,
               int grad_accum, int64_t total_steps, int rank, int ranks);
  // ps::Error if the step's sequences predict no token.
  StepBatch Plan(int64_t step) const;

 private:
  const std::vector<int32_t>& At(size_t position) const;
  const std::vector<std::vector<int32_t>>& samples_;
  int64_t seqs_per_step_;
  int grad_accum_;
  int64_t total_steps_;
  int rank_, ranks_;
};

}  // namespace ps
