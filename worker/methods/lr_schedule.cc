#include "worker/methods/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace ps {

LinearWarmupSchedule::LinearWarmupSchedule(double base_lr, int64_t total_steps, double warmup_ratio)
    : base_lr_(base_lr), total_(total_steps) {
  if (total_steps < 1)
    throw Error("lr schedule: total steps must be >= 1, got " + std::to_string(total_steps));
  if (!(warmup_ratio >= 0 && warmup_ratio <= 1)) {
    throw Error("lr schedule: warmup_ratio must be in [0, 1], got " + std::to_string(warmup_ratio));
  }
  if (!(base_lr >= 0) || !std::isfinite(base_lr)) {
    throw Error("lr schedule: learning rate must be finite and >= 0");
  }
  warmup_ = static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
}

double LinearWarmupSchedule::Factor(int64_t step) const {
  if (step < 0) throw Error("lr schedule: negative step " + std::to_string(step));
  if (step < warmup_)
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_));
  return std::max(0.0, static_cast<double>(total_ - step) /
                           static_cast<double>(std::max<int64_t>(1, total_ - warmup_)));
}

}  // namespace ps
