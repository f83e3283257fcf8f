// train_step_bench: the data-parallel ProxSparse training step (the engine's TrainLoop with the
// ProxSparse hooks: forward/backward, gradient reduce to owners, AdamW, EnumALM prox, publish) on a
// Llama-2-7B-shaped model with random weights. Run one rank per GPU:
//   train_step_bench --device cuda                          (1 GPU, the full 7B shape)
//   mpirun -np 4 train_step_bench --device cuda              (4 GPUs, 1 sequence per GPU per step)
//   train_step_bench --device cpu --layers 2 --hidden 256 --heads 4 --intermediate 688
//                    --vocab 1000 --ctx 128 --dtype fp32 --master-dtype fp32   (smoke test)
// Reports per step (after warm-up steps): seconds, steps/s, tokens/s per GPU, the loop's phase
// split (forward_backward, communication, optimizer, prox), model FLOPs utilisation against
// --peak-tflops per GPU, and peak GPU memory per rank. Each rank processes --seqs-per-rank
// sequences of --ctx tokens per step (weak scaling: the global batch grows with the ranks), in
// --grad-accum micro-batches (TrainOptions::grad_accum: --seqs-per-rank 4 --grad-accum 4 runs four
// forward/backward passes of one sequence per step, one optimizer step and prox for all four).
// --overlap-update (TrainOptions::overlap_update) runs each owned tensor's AdamW and prox during
// the step's last backward pass; the phases then show as optimizer/prox only what is left after it.
// --no-overlap turns off the reduce-during-backward overlap (TrainOptions::overlap_communication).
// Memory modes: --shard-params (parallel.shard: params: every rank keeps its rows of each target,
// gathered per layer, with activation checkpointing), --checkpointing (activation checkpointing
// per decoder layer), --offload (AdamW state and masters in host memory; on a GPU the update is
// streamed through it tensor by tensor, on the CPU it runs there). --progress prints the training
// loop's log and a line per step on stderr. --shape 13b sets the
// Llama-2-13B shape (40 layers, hidden 5120, 40 heads, intermediate 13824, vocab 32000; later
// flags still override). Next to each rank's measured peak the memory planner's prediction
// (common/memory_plan.h) is printed; on the CPU the measured peak is the process's peak resident
// memory above what it held before the model was built.
#include <torch/types.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#ifdef PS_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "common/error.h"
#include "common/memory_plan.h"
#include "common/process_memory.h"
#include "common/progress.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/engine/train_loop.h"
#include "worker/methods/proxsparse.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/models/llama_model.h"

namespace {

struct Args {
  int64_t layers = 32, hidden = 4096, heads = 32, kv_heads = 0, intermediate = 11008, vocab = 32000;
  int64_t ctx = 2048, seqs_per_rank = 1, steps = 5, warmup = 2, grad_accum = 1;
  std::string device = "cuda", dtype = "bf16", master_dtype = "bf16", trainable = "targets";
  double lambda1 = 1.0, lr = 1e-5, peak_tflops = 989.0;
  bool overlap = true, overlap_update = false, checkpointing = false, offload = false,
       progress = false;
  bool shard_params = false;
};

Args Parse(int argc, char** argv) {
  Args a;
  std::map<std::string, int64_t*> ints = {{"--layers", &a.layers},
                                          {"--hidden", &a.hidden},
                                          {"--heads", &a.heads},
                                          {"--kv-heads", &a.kv_heads},
                                          {"--intermediate", &a.intermediate},
                                          {"--vocab", &a.vocab},
                                          {"--ctx", &a.ctx},
                                          {"--seqs-per-rank", &a.seqs_per_rank},
                                          {"--grad-accum", &a.grad_accum},
                                          {"--steps", &a.steps},
                                          {"--warmup", &a.warmup}};
  std::map<std::string, std::string*> strs = {{"--device", &a.device},
                                              {"--dtype", &a.dtype},
                                              {"--master-dtype", &a.master_dtype},
                                              {"--trainable", &a.trainable}};
  std::map<std::string, double*> dbls = {
      {"--lambda1", &a.lambda1}, {"--lr", &a.lr}, {"--peak-tflops", &a.peak_tflops}};
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--no-overlap") {
      a.overlap = false;
      continue;
    }
    if (k == "--overlap-update") {
      a.overlap_update = true;
      continue;
    }
    if (k == "--checkpointing") {
      a.checkpointing = true;
      continue;
    }
    if (k == "--offload") {
      a.offload = true;
      continue;
    }
    if (k == "--progress") {
      a.progress = true;
      continue;
    }
    if (k == "--shard-params") {
      a.shard_params = true;
      continue;
    }
    if (k == "--shape") {
      if (i + 1 >= argc) throw ps::Error("--shape: missing value (7b or 13b)");
      const std::string v = argv[++i];
      if (v == "13b") {
        a.layers = 40, a.hidden = 5120, a.heads = 40, a.kv_heads = 0, a.intermediate = 13824;
        a.vocab = 32000;
      } else if (v == "7b") {
        a.layers = 32, a.hidden = 4096, a.heads = 32, a.kv_heads = 0, a.intermediate = 11008;
        a.vocab = 32000;
      } else {
        throw ps::Error("--shape: '" + v + "' is not 7b or 13b");
      }
      continue;
    }
    if (i + 1 >= argc) throw ps::Error(k + ": missing value");
    std::string v = argv[++i];
    if (ints.count(k)) {
      *ints[k] = std::stoll(v);
    } else if (strs.count(k)) {
      *strs[k] = v;
    } else if (dbls.count(k)) {
      *dbls[k] = std::stod(v);
    } else {
      throw ps::Error("unknown option " + k +
                      " (see the comment at the top of train_step_bench.cc)");
    }
  }
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.steps < 1 || a.warmup < 0 || a.layers < 1 || a.hidden % a.heads != 0)
    throw ps::Error("bad shape or step counts");
  if (a.grad_accum < 1 || a.grad_accum > a.seqs_per_rank)
    throw ps::Error("--grad-accum must be between 1 and --seqs-per-rank (" +
                    std::to_string(a.seqs_per_rank) + ")");
  return a;
}

double PeakGpuBytes([[maybe_unused]] const torch::Device& d) {
#ifdef PS_WITH_CUDA
  if (d.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d.index());
    return static_cast<double>(stats.allocated_bytes[0].peak);  // [0]: the aggregate pool
  }
#endif
  return 0;
}

int Main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  const bool cuda = a.device == "cuda";
  auto comm = ps::MakeCommunicatorFromEnvironment(cuda);
  torch::Device device = torch::kCPU;
#ifdef PS_WITH_CUDA
  if (cuda) device = torch::Device(torch::kCUDA, c10::cuda::current_device());
#else
  if (cuda) throw ps::Error("--device cuda: this build has no CUDA");
#endif
  const torch::ScalarType dtype = ps::ParseComputeDType(a.dtype);
  const double rss_before_model = ps::ProcStatusBytes("VmRSS");
  ps::LlamaConfig c;
  c.vocab_size = a.vocab;
  c.hidden_size = a.hidden;
  c.intermediate_size = a.intermediate;
  c.num_hidden_layers = a.layers;
  c.num_attention_heads = a.heads;
  c.num_key_value_heads = a.kv_heads;
  c.head_dim = a.hidden / a.heads;
  c.max_position_embeddings = a.ctx;
  c.rms_norm_eps = 1e-5;
  auto model = std::make_shared<ps::LlamaForCausalLM>(c, torch::dtype(dtype).device(device));
  // Random weights (speed does not depend on values): N(0, 0.02), norms 1.
  torch::manual_seed(1234);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters()) {
      if (p.key().find("norm") != std::string::npos) {
        p.value().fill_(1.0);
      } else {
        p.value().normal_(0.0, 0.02);
      }
    }
  }
  std::set<std::string> targets;
  int64_t n_targets = 0;
  for (const auto& l : model->TargetLinears()) {
    targets.insert(l->path() + ".weight");
    n_targets += l->weight.numel();
  }
  std::vector<ps::TrainableTensor> params;
  std::vector<bool> is_target;
  int64_t n_trained = 0;
  for (auto& np : model->named_parameters()) {
    const bool t = targets.count(np.key()) > 0;
    const bool train = t || a.trainable == "all";
    np.value().set_requires_grad(train);
    if (!train) continue;
    params.push_back({np.key(), np.value()});
    is_target.push_back(t);
    n_trained += np.value().numel();
  }
  ps::ProxSparseSettings s{ps::NMPattern{2, 4}, a.lambda1, 0.0, 0.1, ps::HardMode::kNone};
  ps::ProxSparseHooks hooks(s, is_target, [](const std::string& n) -> torch::Tensor {
    throw ps::Error("the bench has no W0 for " + n + " (lambda2 is 0)");
  });
  // Random token sequences, ctx+1 tokens (ctx predicted) each.
  const int64_t global = a.seqs_per_rank * comm->size();
  std::vector<std::vector<int32_t>> samples;
  auto ids = torch::randint(0, a.vocab, {global, a.ctx + 1}, torch::kInt32);
  for (int64_t i = 0; i < global; ++i) {
    auto row = ids[i].contiguous();
    samples.emplace_back(row.data_ptr<int32_t>(), row.data_ptr<int32_t>() + a.ctx + 1);
  }
  // --progress: the training loop's log and every step's line on stderr (rank 0), for runs long
  // enough to watch (the mask statistics are then counted every step, outside the timed phases).
  ps::NullProgressSink null_sink;
  ps::StderrProgressSink stderr_sink;
  ps::ProgressSink& quiet =
      a.progress && comm->rank() == 0 ? static_cast<ps::ProgressSink&>(stderr_sink) : null_sink;
  ps::TrainOptions o;
  // Sharded parameters, as the job runner applies them (parallelize_llama.h).
  std::unique_ptr<ps::ShardedLinearWeights> sharded;
  std::unique_ptr<ps::Communicator> one_rank;
  if (a.shard_params) {
    if (a.trainable != "targets") throw ps::Error("--shard-params trains the targets only");
    sharded = std::make_unique<ps::ShardedLinearWeights>(model->TargetLinears(), *comm);
    params = sharded->Trainables();
    is_target.assign(params.size(), true);
    one_rank = ps::MakeLocalCommunicator();
    o.optimizer_comm = one_rank.get();
  }
  o.seqs_per_step = global;
  o.lr = a.lr;
  o.warmup_ratio = 0.0;
  o.log_every = a.progress ? 1 : 1 << 30;
  o.master_dtype = ps::ParseComputeDType(a.master_dtype);
  o.stage = "bench";
  o.overlap_communication = a.overlap;
  o.grad_accum = static_cast<int>(a.grad_accum);
  o.overlap_update = a.overlap_update;
  o.activation_checkpointing = a.checkpointing || (a.shard_params && comm->size() > 1);
  o.offload_optimizer = a.offload;
  if (a.warmup > 0) {
    o.total_steps = a.warmup;
    ps::TrainLoop(*model, params, samples, hooks, *comm, quiet, o);
  }
#ifdef PS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  ps::ResetPeakRss();
  o.total_steps = a.steps;
  ps::TrainResult r = ps::TrainLoop(*model, params, samples, hooks, *comm, quiet, o);

  // Per step: the loop's phases (the two log steps' mask statistics are outside them).
  double step_s = 0;
  for (const auto& [k, v] : r.phase_seconds) step_s += v;
  step_s /= static_cast<double>(a.steps);
  const double tokens_per_rank = static_cast<double>(a.seqs_per_rank * a.ctx);
  // FLOPs per rank and step: 6·N per token for trained matmul weights (forward, input gradient,
  // weight gradient), 4·N for the untrained lm_head (no weight gradient; embeddings are lookups),
  // plus causal attention 6·T·d per token per layer (QKᵀ and PV, half the square, fwd + 2x bwd).
  const int64_t n_lm = a.vocab * a.hidden;
  const int64_t n_norms = (2 * a.layers + 1) * a.hidden;
  const bool all = a.trainable == "all";
  const double trained_matmul =
      static_cast<double>(all ? n_trained - n_lm - a.vocab * a.hidden - n_norms : n_targets);
  const double flops =
      tokens_per_rank * (6.0 * trained_matmul + (all ? 6.0 : 4.0) * static_cast<double>(n_lm) +
                         6.0 * static_cast<double>(a.ctx * a.hidden * a.layers));
  const double mfu = flops / step_s / (a.peak_tflops * 1e12);
  // Gather every rank's peak memory and phases on rank 0.
  torch::Tensor mine = torch::zeros({comm->size()}, torch::kFloat64);
  mine[comm->rank()] =
      device.is_cuda() ? PeakGpuBytes(device) : ps::ProcStatusBytes("VmHWM") - rss_before_model;
  // Beside a GPU with offload: the host memory the run added (the offloaded state, page-locked at
  // its exact size; a power-of-two rounding of the pinned blocks would show here).
  const double host_peak = ps::ProcStatusBytes("VmHWM") - rss_before_model;
  mine = mine.to(device);
  comm->AllReduceSum(mine);
  mine = mine.cpu();
  // A fingerprint of the trained weights after the run (per-tensor fp64 sums, added on the host):
  // runs that must give the same weights (--overlap-update on and off, same other flags) print
  // the same value, up to the non-determinism of the GPU kernels themselves.
  double checksum = 0;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : params) checksum += p.param.sum(torch::kFloat64).item<double>();
  }
  if (comm->rank() == 0) {
    int64_t n_total = 0;
    for (const auto& p : model->parameters()) n_total += p.numel();
    std::printf(
        "train_step_bench: %ld layers, hidden %ld, heads %ld/%ld, intermediate %ld, vocab %ld, "
        "%s, master %s; %.3fB params, %.3fB trained (%s), %.3fB targets\n",
        static_cast<long>(a.layers), static_cast<long>(a.hidden), static_cast<long>(a.heads),
        static_cast<long>(a.kv_heads), static_cast<long>(a.intermediate),
        static_cast<long>(a.vocab), a.dtype.c_str(), a.master_dtype.c_str(),
        static_cast<double>(n_total) / 1e9, static_cast<double>(n_trained) / 1e9,
        a.trainable.c_str(), static_cast<double>(n_targets) / 1e9);
    std::printf(
        "ranks %d (%s), device %s, ctx %ld, %ld seq/rank/step in %ld micro-batch(es) "
        "(grad_accum), overlap %s, overlap_update %s, %ld timed steps after %ld warm-up\n",
        comm->size(), comm->backend().c_str(), device.str().c_str(), static_cast<long>(a.ctx),
        static_cast<long>(a.seqs_per_rank), static_cast<long>(a.grad_accum),
        a.overlap ? "on" : "off", a.overlap_update ? "on" : "off", static_cast<long>(a.steps),
        static_cast<long>(a.warmup));
    std::printf("step %.4f s  (%.3f steps/s), %.0f tokens/s per GPU, %.0f tokens/s total\n", step_s,
                1.0 / step_s, tokens_per_rank / step_s, tokens_per_rank * comm->size() / step_s);
    for (const auto& [k, v] : r.phase_seconds)
      std::printf("  %-17s %.4f s/step (%.1f%%)\n", k.c_str(), v / static_cast<double>(a.steps),
                  100.0 * v / static_cast<double>(a.steps) / step_s);
    std::printf("model FLOPs/step/GPU %.3e, MFU %.1f%% of %.0f TFLOP/s; fwd+bwd alone %.1f%%\n",
                flops, 100.0 * mfu, a.peak_tflops,
                100.0 * flops /
                    (r.phase_seconds["forward_backward"] / static_cast<double>(a.steps)) /
                    (a.peak_tflops * 1e12));
    // The planner's prediction for this run (same shape, dtypes, batch and options).
    ps::PlanInput in;
    in.shape.vocab = a.vocab, in.shape.hidden = a.hidden, in.shape.intermediate = a.intermediate;
    in.shape.layers = a.layers, in.shape.heads = a.heads, in.shape.kv_heads = a.kv_heads;
    in.shape.head_dim = a.hidden / a.heads;
    in.ranks = comm->size();
    in.device = cuda ? "cuda" : "cpu";
    in.weight_bytes = a.dtype == "fp32" ? 4 : 2;
    in.master_bytes = a.master_dtype == "fp32" ? 4 : 2;
    in.train_all = a.trainable == "all";
    in.seq_len = a.ctx;
    in.seqs_per_micro = a.seqs_per_rank / a.grad_accum;
    in.grad_accum = static_cast<int>(a.grad_accum);
    in.checkpointing = a.checkpointing || (a.shard_params && comm->size() > 1);
    in.offload = a.offload;
    in.shard_params = a.shard_params;
    in.flash_attention = cuda && TORCH_VERSION_MAJOR >= 2;
    const ps::MemoryPlan plan = ps::PlanMemory(in);
    std::printf(
        "memory: sharding %s, checkpointing %s, offload %s; planner: %.2f GiB peak per rank",
        a.shard_params ? "params" : "optimizer", o.activation_checkpointing ? "on" : "off",
        a.offload ? "on" : "off", plan.device_peak / (1 << 30));
    if (a.offload && cuda) std::printf(" + %.2f GiB host", plan.host / (1 << 30));
    std::printf("\n");
    for (int i = 0; i < comm->size(); ++i)
      std::printf("  rank %d peak %s memory %.2f GiB (planner %.2f GiB, %+.1f%%)\n", i,
                  cuda ? "GPU" : "resident (above start)", mine[i].item<double>() / (1 << 30),
                  plan.device_peak / (1 << 30),
                  100.0 * (plan.device_peak - mine[i].item<double>()) /
                      std::max(1.0, mine[i].item<double>()));
    if (a.offload && cuda)
      std::printf("  rank 0 peak host memory (above start) %.2f GiB (planner %.2f GiB, %+.1f%%)\n",
                  host_peak / (1 << 30), plan.host / (1 << 30),
                  100.0 * (plan.host - host_peak) / std::max(1.0, host_peak));
    std::printf("final loss %.6f, trained weights checksum %.12e\n", r.final_loss, checksum);
  }
  comm->Barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "train_step_bench: error: " << e.what() << "\n";
    return 1;
  }
}
