// shard_memory: per-rank memory of parallel.shard: params on a real checkpoint, measured on the
// CPU, beside the memory planner's prediction. Run one process per rank:
//   mpirun -np N shard_memory --model ../shared/data/codelm-19m [--ctx 512] [--steps 2]
//                             [--dtype fp32] [--master-dtype fp32]
// Each rank loads the model as the job runner does in this mode (worker/distributed/
// sharded_load.h: its rows of every target, the rest whole), runs --steps ProxSparse training
// steps of one sequence per rank (random tokens; memory does not depend on them) through the
// engine's loop with the rows trained, and then reports:
//   model state   bytes the rank holds for the model: the whole tensors (embeddings, norms,
//                 lm_head), its target rows, their gradients, and AdamW's state (exp_avg,
//                 exp_avg_sq, master copies) of the rows;
//   peak RSS      the process's peak resident memory above what it held before loading, at load
//                 and over the whole run (activations, gathered layers and LibTorch's workspaces
//                 included);
//   planner       common/memory_plan.h's prediction for the same run (its model-state part:
//                 weights + gradients + optimizer + master, and its peak).
// Not a timed test: it prints a markdown table (docs/distributed.md) and exits.
#include <torch/types.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/memory_plan.h"
#include "common/process_memory.h"
#include "common/progress.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/distributed/sharded_load.h"
#include "worker/engine/train_loop.h"
#include "worker/methods/proxsparse.h"
#include "worker/models/llama_checkpoint.h"

namespace {

struct Args {
  std::string model, dtype = "fp32", master_dtype = "fp32";
  int64_t ctx = 512, steps = 2;
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) throw ps::Error(k + ": missing value");
    const std::string v = argv[++i];
    if (k == "--model") {
      a.model = v;
    } else if (k == "--dtype") {
      a.dtype = v;
    } else if (k == "--master-dtype") {
      a.master_dtype = v;
    } else if (k == "--ctx") {
      a.ctx = std::stoll(v);
    } else if (k == "--steps") {
      a.steps = std::stoll(v);
    } else {
      throw ps::Error("unknown option " + k + " (see the comment at the top of shard_memory.cc)");
    }
  }
  if (a.model.empty()) throw ps::Error("--model DIR is required (a Hugging Face model directory)");
  if (a.ctx < 2 || a.steps < 1) throw ps::Error("--ctx must be >= 2 and --steps >= 1");
  return a;
}

double Bytes(const torch::Tensor& t) {
  return t.defined() ? static_cast<double>(t.numel()) * static_cast<double>(t.element_size()) : 0;
}

constexpr double kMiB = 1 << 20;

// Per-rank columns, summed over ranks on rank 0.
enum Col { kWhole, kRows, kGrads, kOptim, kState, kLoadPeak, kRunPeak, kCols };

int Main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  auto comm = ps::MakeCommunicatorFromEnvironment(false);
  const torch::ScalarType dtype = ps::ParseComputeDType(a.dtype);
  ps::ResetPeakRss();
  const double rss_start = ps::ProcStatusBytes("VmRSS");
  ps::RowShardedLlama m = ps::LoadLlamaRowSharded(a.model, {dtype, torch::kCPU}, *comm);
  const double load_peak = ps::ProcStatusBytes("VmHWM") - rss_start;

  // As RunProxSparse trains them: the targets' rows, the optimizer on a one-rank communicator.
  for (auto& p : m.model->parameters()) p.set_requires_grad(false);
  std::vector<ps::TrainableTensor> params = m.targets->Trainables();
  for (auto& p : params) p.param.set_requires_grad(true);
  std::vector<bool> is_target(params.size(), true);
  ps::ProxSparseSettings s{ps::NMPattern{2, 4}, 0.3, 0.0, 0.1, ps::HardMode::kNone};
  ps::ProxSparseHooks hooks(s, is_target, [](const std::string& n) -> torch::Tensor {
    throw ps::Error("no W0 for " + n + " (lambda2 is 0)");
  });
  const int64_t vocab = m.model->config().vocab_size;
  torch::manual_seed(0);
  auto ids = torch::randint(0, vocab, {comm->size(), a.ctx + 1}, torch::kInt32);
  std::vector<std::vector<int32_t>> samples;
  for (int64_t i = 0; i < comm->size(); ++i) {
    auto row = ids[i].contiguous();
    samples.emplace_back(row.data_ptr<int32_t>(), row.data_ptr<int32_t>() + a.ctx + 1);
  }
  auto one_rank = ps::MakeLocalCommunicator();
  ps::TrainOptions o;
  o.total_steps = a.steps;
  o.seqs_per_step = comm->size();
  o.lr = 3e-3;
  o.warmup_ratio = 0.0;
  o.log_every = 1 << 30;
  o.master_dtype = ps::ParseComputeDType(a.master_dtype);
  o.stage = "shard_memory";
  o.optimizer_comm = one_rank.get();
  o.activation_checkpointing = comm->size() > 1;
  ps::NullProgressSink quiet;
  std::unique_ptr<ps::ShardedAdamW> opt;
  ps::TrainLoop(*m.model, params, samples, hooks, *comm, quiet, o, &opt);
  const double run_peak = ps::ProcStatusBytes("VmHWM") - rss_start;

  torch::Tensor row = torch::zeros({kCols}, torch::kFloat64);
  double whole = 0, rows = 0, grads = 0, optim = 0;
  for (const auto& p : m.model->parameters()) whole += Bytes(p);
  for (size_t i = 0; i < m.targets->size(); ++i) {
    const torch::Tensor& local = m.targets->local(i);
    rows += Bytes(local);
    grads += Bytes(local.grad());
  }
  if (comm->size() == 1) whole -= rows;  // one rank: the rows are the model's own weights
  for (const auto& [name, t] : opt->OwnedState())
    if (!name.ends_with(".master")) optim += Bytes(t);
  for (size_t i = 0; i < opt->size(); ++i) {
    if (!opt->Owns(i)) continue;
    // A master copy in the weights' own dtype is the weight itself.
    if (!opt->master(i).is_alias_of(opt->param(i))) optim += Bytes(opt->master(i));
    const torch::Tensor& g = opt->grad(i);  // the reduced gradient in the master dtype, if kept
    if (g.defined() && !g.is_alias_of(opt->param(i).grad())) grads += Bytes(g);
  }
  row[kWhole] = whole, row[kRows] = rows, row[kGrads] = grads, row[kOptim] = optim;
  row[kState] = whole + rows + grads + optim;
  row[kLoadPeak] = load_peak, row[kRunPeak] = run_peak;
  torch::Tensor all = torch::zeros({comm->size(), kCols}, torch::kFloat64);
  all[comm->rank()] = row;
  comm->AllReduceSum(all);

  if (comm->rank() == 0) {
    ps::PlanInput in;
    in.shape = ps::LoadModelShape(a.model);
    in.ranks = comm->size();
    in.device = "cpu";
    in.weight_bytes = static_cast<int>(c10::elementSize(dtype));
    in.master_bytes = static_cast<int>(c10::elementSize(o.master_dtype));
    in.seq_len = a.ctx;
    in.shard_params = true;
    in.checkpointing = o.activation_checkpointing;
    in.flash_attention = false;
    const ps::MemoryPlan plan = ps::PlanMemory(in);
    const double plan_state = plan.weights + plan.gradients + plan.optimizer + plan.master;
    std::printf("shard_memory: %s, %d rank(s), %s weights, %s master, ctx %ld, %ld step(s)\n",
                a.model.c_str(), comm->size(), a.dtype.c_str(), a.master_dtype.c_str(),
                static_cast<long>(a.ctx), static_cast<long>(a.steps));
    std::printf(
        "| ranks | rank | whole tensors | target rows | gradients | AdamW state | model state "
        "(planner) | peak RSS at load | peak RSS over the run (planner) |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int r = 0; r < comm->size(); ++r) {
      auto v = all[r];
      auto mib = [&](Col c) { return v[c].item<double>() / kMiB; };
      std::printf("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f (%.1f) | %.1f | %.1f (%.1f) |\n",
                  comm->size(), r, mib(kWhole), mib(kRows), mib(kGrads), mib(kOptim), mib(kState),
                  plan_state / kMiB, mib(kLoadPeak), mib(kRunPeak), plan.device_peak / kMiB);
    }
    std::printf("(MiB; peak RSS is above the process's resident memory before loading)\n");
    std::printf("%s", ps::DescribePlan(in, plan).c_str());
  }
  comm->Barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "shard_memory: error: " << e.what() << "\n";
    return 1;
  }
}
