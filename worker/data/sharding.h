// Which samples each rank processes. Samples are consumed in global batches of `global_batch`
// consecutive positions (of whatever order the caller uses, e.g. EpochOrder); within a global
// batch, rank r of R takes the contiguous share [floor(r*B/R), floor((r+1)*B/R)), so shares
// differ by at most one sample and together cover the batch exactly once. Every rank computes the
// same schedule without talking to the others.
#pragma once

#include <cstddef>
#include <vector>

namespace ps {

struct BatchSchedule {
  size_t num_samples = 0;
  size_t global_batch = 1;
  bool drop_last = false;  // drop a final batch smaller than global_batch
};

// Number of global batches (steps). Throws ps::Error when global_batch is 0.
size_t NumSteps(const BatchSchedule& schedule);
// Positions [first, last) of step `step` in the sample order. Throws when step >= NumSteps.
std::vector<size_t> GlobalBatch(const BatchSchedule& schedule, size_t step);
// This rank's share of step `step` (may be empty when the batch has fewer samples than ranks).
// Throws ps::Error for rank outside [0, world) or world < 1.
std::vector<size_t> RankShare(const BatchSchedule& schedule, size_t step, int rank, int world);

}  // namespace ps
