#include "worker/data/sharding.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace ps {

size_t NumSteps(const BatchSchedule& s) {
  if (s.global_batch == 0) throw Error("batch schedule: global_batch must be > 0");
  return s.drop_last ? s.num_samples / s.global_batch
                     : (s.num_samples + s.global_batch - 1) / s.global_batch;
}

std::vector<size_t> GlobalBatch(const BatchSchedule& s, size_t step) {
  size_t steps = NumSteps(s);
  if (step >= steps)
    throw Error("batch schedule: step " + std::to_string(step) + " out of range (" +
                std::to_string(steps) + " steps)");
  size_t first = step * s.global_batch;
  size_t last = std::min(first + s.global_batch, s.num_samples);
  std::vector<size_t> out;
  for (size_t i = first; i < last; ++i) out.push_back(i);
  return out;
}

std::vector<size_t> RankShare(const BatchSchedule& s, size_t step, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world)
    throw Error("batch schedule: rank " + std::to_string(rank) + " of world size " +
                std::to_string(world) + " is invalid");
  std::vector<size_t> batch = GlobalBatch(s, step);
  size_t b = batch.size(), r = static_cast<size_t>(rank), w = static_cast<size_t>(world);
  size_t lo = r * b / w, hi = (r + 1) * b / w;
  return {batch.begin() + static_cast<ptrdiff_t>(lo), batch.begin() + static_cast<ptrdiff_t>(hi)};
}

}  // namespace ps
