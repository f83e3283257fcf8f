// The learning-rate schedule ProxSparse uses (Hugging Face's linear schedule with warmup, which the
// official code runs through the transformers Trainer): linear warmup from 0 over
// ceil(warmup_ratio · total_steps) optimizer steps, then linear decay to 0 at total_steps.
#pragma once

#include <cstdint>

namespace ps {

class LinearWarmupSchedule {
 public:
  // ps::Error unless total_steps >= 1, 0 <= warmup_ratio <= 1 and base_lr >= 0 (and finite).
  LinearWarmupSchedule(double base_lr, int64_t total_steps, double warmup_ratio);

  // The multiplier for optimizer step `step` (0-based, the step about to be taken), as
  // transformers' lr_lambda: step/warmup while step < warmup, then
  // max(0, (total − step) / max(1, total − warmup)). Like transformers, the very first step of
  // a warmed-up run has learning rate 0.
  double Factor(int64_t step) const;
  double LearningRate(int64_t step) const { return base_lr_ * Factor(step); }
  int64_t warmup_steps() const { return warmup_; }
  int64_t total_steps() const { return total_; }

 private:
  double base_lr_;
  int64_t total_, warmup_;
};

}  // namespace ps
