// A few ProxSparse training steps of the tiny model through TrainLoop, with or without the
// overlapped update (TrainOptions::overlap_update), on whatever communicator the test passes (the
// one-rank test in tests/worker/engine, the MPI test in tests/distributed).
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/progress.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/distributed/communicator.h"
#include "worker/engine/train_loop.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/proxsparse.h"

namespace ps::testing {

struct OverlapCase {
  bool overlap_update = false;
  int grad_accum = 1;
  int64_t seqs_per_step = 4;
  double lambda2 = 0.0;
  HardMode hard = HardMode::kNone;
  torch::ScalarType dtype = torch::kFloat32;  // the model's; the master is fp32
  bool per_tensor_hooks = true;  // false: hooks that do not support the overlapped update
};

struct OverlapRun {
  std::vector<torch::Tensor> weights;  // the targets' published weights, as fp32
  std::vector<torch::Tensor> masks;    // their top-2-of-4 masks
  int64_t owned = 0;                   // targets this rank owns
  int64_t updated_during_backward = 0;
  std::vector<std::string> logs;
  double final_loss = 0;
};

class LogSink : public ProgressSink {
 public:
  void Progress(const ProgressEvent&) override {}
  void Log(std::string_view line) override { logs.emplace_back(line); }
  void Checkpoint(int64_t, const std::filesystem::path&) override {}
  void Result(bool, std::string_view, const std::filesystem::path&) override {}
  std::vector<std::string> logs;
};

// ProxSparse's hooks with the overlapped update refused (the loop must fall back).
class SerialOnlyHooks : public ProxSparseHooks {
 public:
  using ProxSparseHooks::ProxSparseHooks;
  bool SupportsTensorUpdates() const override { return false; }
};

// The model's target linear weights as the trainable tensors (every one a target), the rest
// frozen.
struct TargetParams {
  std::vector<TrainableTensor> params;
  std::vector<bool> is_target;
};
inline TargetParams TrainTargetsOnly(LlamaForCausalLM& model) {
  TargetParams t;
  for (const auto& l : model.TargetLinears()) {
    t.params.push_back({l->path() + ".weight", l->weight});
    t.is_target.push_back(true);
  }
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (auto& p : t.params) p.param.set_requires_grad(true);
  return t;
}

inline OverlapRun RunOverlapCase(Communicator& comm, const OverlapCase& c, int steps = 3) {
  auto model = TinyModel(7, c.dtype);
  auto original = TinyModel(7, c.dtype);
  auto [params, is_target] = TrainTargetsOnly(*model);
  ProxSparseSettings s{NMPattern{2, 4}, 0.05, c.lambda2, 0.1, c.hard};
  auto w0 = [original](const std::string& name) -> torch::Tensor {
    return original->named_parameters()[name].detach();
  };
  std::unique_ptr<ProxSparseHooks> hooks =
      c.per_tensor_hooks ? std::make_unique<ProxSparseHooks>(s, is_target, w0)
                         : std::make_unique<SerialOnlyHooks>(s, is_target, w0);
  TrainOptions o;
  o.total_steps = steps;
  o.seqs_per_step = c.seqs_per_step;
  o.grad_accum = c.grad_accum;
  o.lr = 2e-2;
  o.warmup_ratio = 0.5;  // the learning rate changes every step
  o.master_dtype = torch::kFloat32;
  o.overlap_update = c.overlap_update;
  LogSink sink;
  std::unique_ptr<ShardedAdamW> opt;
  TrainResult r = TrainLoop(*model, params, TinySamples(8, 10, 3), *hooks, comm, sink, o, &opt);
  OverlapRun run;
  for (size_t i = 0; i < params.size(); ++i) {
    run.weights.push_back(params[i].param.detach().to(torch::kFloat32).clone());
    run.masks.push_back(TopNMaskUnchecked(run.weights.back().abs(), NMPattern{2, 4}));
    run.owned += opt->Owns(i);
  }
  run.updated_during_backward = opt->updated_during_backward();
  run.logs = sink.logs;
  run.final_loss = r.final_loss;
  return run;
}

}  // namespace ps::testing
