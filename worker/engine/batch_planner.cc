#include "worker/engine/batch_planner.h"

#include <algorithm>

#include "common/error.h"
#include "worker/data/sharding.h"

namespace ps {

MicroBatch PadRight(const std::vector<const std::vector<int32_t>*>& seqs) {
  int64_t len = 0;
  for (const auto* s : seqs) len = std::max<int64_t>(len, static_cast<int64_t>(s->size()) - 1);
  const auto count = static_cast<int64_t>(seqs.size());
  MicroBatch b{torch::zeros({count, len}, torch::kInt64),
               torch::full({count, len}, -100, torch::kInt64)};
  for (int64_t k = 0; k < count; ++k) {
    const auto& s = *seqs[static_cast<size_t>(k)];
    auto ids = torch::tensor(std::vector<int64_t>(s.begin(), s.end()), torch::kInt64);
    const int64_t n = ids.size(0) - 1;
    b.inputs[k].narrow(0, 0, n).copy_(ids.narrow(0, 0, n));
    b.labels[k].narrow(0, 0, n).copy_(ids.narrow(0, 1, n));
  }
  return b;
}

BatchPlanner::BatchPlanner(const std::vector<std::vector<int32_t>>& samples, int64_t seqs_per_step,
                           int grad_accum, int64_t total_steps, int rank, int ranks)
    : samples_(samples),
      seqs_per_step_(seqs_per_step),
      grad_accum_(std::max(1, grad_accum)),
      total_steps_(total_steps),
      rank_(rank),
      ranks_(ranks) {
  if (samples_.empty()) throw Error("training needs at least one calibration sample");
}

const std::vector<int32_t>& BatchPlanner::At(size_t position) const {
  return samples_[position % samples_.size()];
}

StepBatch BatchPlanner::Plan(int64_t step) const {
  StepBatch out;
  const auto first = static_cast<size_t>(step * seqs_per_step_);
  for (size_t j = 0; j < static_cast<size_t>(seqs_per_step_); ++j)
    out.global_tokens += static_cast<int64_t>(At(first + j).size()) - 1;
  if (out.global_tokens <= 0) throw Error("calibration sequences must hold at least 2 tokens");
  const BatchSchedule schedule{static_cast<size_t>(total_steps_ * seqs_per_step_),
                               static_cast<size_t>(seqs_per_step_), false};
  const std::vector<size_t> share = RankShare(schedule, static_cast<size_t>(step), rank_, ranks_);
  const size_t accum = static_cast<size_t>(grad_accum_);
  const size_t per_pass = std::max<size_t>(1, (share.size() + accum - 1) / accum);
  for (size_t begin = 0; begin < share.size(); begin += per_pass) {
    std::vector<const std::vector<int32_t>*> seqs;
    for (size_t k = begin; k < std::min(share.size(), begin + per_pass); ++k)
      seqs.push_back(&At(share[k]));
    out.micro.push_back(PadRight(seqs));
  }
  return out;
}

}  // namespace ps
