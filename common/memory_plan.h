// The memory planner: predicts the peak memory of one rank of a training job (ProxSparse, MaskLLM,
// the masked update) from the model's shape (config.json only, no weights), the job's dtypes,
// batch and context, the rank count and the memory options, and says whether it fits and which
// options would make it fit. Torch-free, so that psd runs the same check at submit that
// `psworker --plan` prints. The model of each component follows what the worker allocates
// (docs/distributed.md, "Memory planner"); the predictions are validated against measured peaks
// there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ps {

struct JobSpec;

// The sizes of a Llama-family decoder that memory depends on.
struct ModelShape {
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0,
          head_dim = 0;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, tied = false;

  // Elements of decoder layer i's parameters (all layers are alike).
  int64_t LayerParams() const;
  int64_t LayerTargetParams() const;  // q,k,v,o,gate,up,down weights
  int64_t LargestTarget() const;      // the largest target weight
  int64_t EmbeddingParams() const { return vocab * hidden; }
  int64_t TotalParams() const;
  int64_t TargetParams() const { return layers * LayerTargetParams(); }
};

// Reads the shape from a config.json object (`where` names it in errors); ps::Error naming the key
// when a size is missing or not a positive integer.
ModelShape ParseModelShape(const nlohmann::json& config, const std::string& where);
// DIR/config.json, or the file itself when `path` is a file.
ModelShape LoadModelShape(const std::filesystem::path& path);

struct PlanInput {
  ModelShape shape;
  int ranks = 1;
  std::string device = "cpu";  // cpu | cuda
  double memory_gib = 0;       // per rank: GPU memory (cuda) or host memory (cpu); 0 = unknown
  int weight_bytes = 4;        // the model's dtype
  int master_bytes = 4;        // the optimizer's master dtype
  bool train_all = false;      // method.trainable: all
  bool keep_w0 = false;        // ProxSparse with λ2 > 0 or hard = snap keeps W0 of owned targets
  bool mask_state = true;      // ProxSparse keeps each owned target's last mask (1 bit/weight)
  int64_t seq_len = 512;       // tokens per sequence
  int64_t seqs_per_micro = 1;  // sequences per forward/backward pass on a rank
  int grad_accum = 1;          // > 1: the step's gradients stay allocated through later passes
  bool shard_params = false;   // parallel.shard: params (every rank keeps 1/N of each layer)
  bool checkpointing = false;  // parallel.activation_checkpointing
  // parallel.offload: optimizer (state and masters in host memory). On CUDA the update is streamed
  // through the GPU: each owned tensor's state is copied in for its update and back, and its
  // gradient never leaves the GPU.
  bool offload = false;
  bool flash_attention = true;  // CUDA with LibTorch 2.x; the CPU path keeps [H, T, T] scores
  // masked_update.steps > 0: the job's masks (MemoryPlan::masks) are live while it trains.
  bool masked_update = false;
};

// One rank's predicted peak, by component, in bytes. `device_*` live on the job's device (the GPU,
// or host memory on CPU jobs); `host_*` in host memory beside a GPU (offload).
struct MemoryPlan {
  double weights = 0;    // the model's parameters this rank holds (all, or its shards)
  double gathered = 0;   // all-gathered layer buffers (sharded parameters: current + prefetch)
  double gradients = 0;  // autograd's gradients (+ reduce buffers in the master dtype)
  double optimizer = 0;  // AdamW's exp_avg and exp_avg_sq of owned tensors
  double master = 0;     // master copies of owned tensors when the master dtype differs
  double method = 0;     // ProxSparse's per-owned-target state (last mask, W0)
  // The job's masks this rank holds in host memory from the method's end to publishing (1 byte
  // per target weight): every whole mask, or with sharded parameters on more than one rank its
  // rows of each (the most loaded rank's share, about 1/N).
  double masks = 0;
  double activations = 0;  // saved for backward (one micro-batch), logits and loss included
  double workspace = 0;    // transient buffers of the update (largest tensor's temporaries)
  double runtime = 0;      // CPU: what the process touches besides tensors once it trains
  double allocator = 0;    // CPU: freed tensor memory glibc's malloc keeps resident
  double device_peak = 0;  // what must fit on the device
  double host = 0;         // beside a GPU: host memory (the offloaded state, or the masks later)
  double limit = 0;        // usable memory per rank (0 = unknown)
  bool fits = true;
  std::vector<std::string> suggestions;  // job changes that would make it fit (when it does not)
};

MemoryPlan PlanMemory(const PlanInput& in);

// Inputs from a job file and its model's config.json; `ranks` and `memory_gib` <= 0 take the job's
// resources (resources.ranks; resources.memory_gb for cpu jobs, none for cuda: give --gpu-memory).
PlanInput PlanInputFromJob(const JobSpec& spec, const ModelShape& shape, int ranks = 0,
                           double memory_gib = 0);

// The table `psworker --plan` prints (GiB per component, the verdict and the suggestions).
std::string DescribePlan(const PlanInput& in, const MemoryPlan& plan);

// psd's submit check: throws ps::Error naming the options that would make it fit when a training
// job's predicted peak exceeds its memory (cpu jobs: resources.memory_gb; cuda jobs: `gpu_gib`
// per GPU when > 0, else no check). Jobs that do not train are not checked.
void CheckJobFitsMemory(const JobSpec& spec, double gpu_gib);

}  // namespace ps
