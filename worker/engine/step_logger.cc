#include "worker/engine/step_logger.h"

#include <algorithm>

namespace ps {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

StepLogger::StepLogger(const TrainOptions& options, Communicator& comm, ProgressSink& progress,
                       const torch::Device& device, int64_t start)
    : options_(options), comm_(comm), progress_(progress), device_(device), start_(start) {
  result_.resumed_from = start;
  if (comm_.rank() == 0 && !options_.history_csv.empty())
    history_ = std::make_unique<HistoryWriter>(options_.history_csv, start > 0);
}

StepLogger::~StepLogger() = default;

void StepLogger::Record(int64_t step, const StepStats& s,
                        const std::function<MaskCounts()>& local_counts) {
  for (const auto& [k, v] : s.phases) result_.phase_seconds[k] += v;
  result_.tokens += s.tokens;
  result_.steps_done = step + 1;
  result_.final_loss = s.loss;
  const bool last = step + 1 == options_.total_steps;
  if ((step + 1) % std::max(1, options_.log_every) == 0 || last || step == start_)
    Report(step, s, local_counts());
}

void StepLogger::Report(int64_t step, const StepStats& s, const MaskCounts& c) {
  // The prox counters are -1 on a rank without prox (no owned target): counted as 0 there, and
  // known when any rank has them.
  const bool prox = c.prox_capped >= 0;
  torch::Tensor counts =
      torch::tensor({c.groups, c.nm, c.mid, c.dense, c.flips, std::max<int64_t>(c.prox_groups, 0),
                     std::max<int64_t>(c.prox_capped, 0), int64_t{prox}},
                    torch::kInt64)
          .to(torch::kFloat64)
          .to(device_);
  comm_.AllReduceSum(counts);
  counts = counts.cpu();
  auto at = [&](int i) { return counts[i].item<double>(); };
  const double elapsed = SecondsSince(t0_);
  const int64_t done = step + 1 - start_;
  ProgressEvent e;
  e.step = step + 1;
  e.total_steps = options_.total_steps;
  e.stage = options_.stage;
  e.loss = s.loss;
  e.lr = s.lr;
  if (at(0) > 0) {
    e.nm_ratio = at(1) / at(0);
    e.mid_ratio = at(2) / at(0);
    e.dense_ratio = at(3) / at(0);
    e.mask_flips = static_cast<int64_t>(at(4));
  }
  if (at(7) > 0) {
    e.prox_capped_groups = static_cast<int64_t>(at(6));
    result_.prox_groups = static_cast<int64_t>(at(5));
    result_.prox_capped_groups = e.prox_capped_groups;
  }
  e.tokens_per_s = static_cast<double>(result_.tokens) / std::max(elapsed, 1e-9);
  e.eta_s =
      elapsed / static_cast<double>(done) * static_cast<double>(options_.total_steps - step - 1);
  e.phase_seconds = s.phases;
  e.rank = comm_.rank();
  if (comm_.rank() != 0) return;
  if (e.prox_capped_groups > reported_capped_) {
    progress_.Log("warning: " + std::to_string(e.prox_capped_groups) +
                  " prox groups stopped at the iteration cap so far (their weights are not the "
                  "exact prox); please report this with the job file");
    reported_capped_ = e.prox_capped_groups;
  }
  progress_.Progress(e);
  if (history_)
    history_->Add({e.step, e.loss, e.lr, at(0) > 0 ? e.nm_ratio : 0, at(0) > 0 ? e.mid_ratio : 0,
                   at(0) > 0 ? e.dense_ratio : 0, e.mask_flips < 0 ? 0 : e.mask_flips,
                   e.tokens_per_s, elapsed});
}

TrainResult StepLogger::Result() const {
  TrainResult r = result_;
  r.seconds = SecondsSince(t0_);
  return r;
}

}  // namespace ps
