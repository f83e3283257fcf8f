// The job file (docs/job-file.md) as a plain struct, torch-free so that psworker, psd and psctl
// share one parser and one set of rules. ParseJobSpec rejects unknown keys and bad values with a
// ps::Error whose message starts with the key path ("method.lambda1: must be >= 0"); relative
// paths come back resolved against the job file's directory.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/job_choices.h"
#include "common/nm_pattern.h"

namespace ps {

// Bounds every job file meets wherever it is parsed (psctl, psd, psworker); psd narrows ranks and
// memory further to what its launcher offers (psd --max-ranks, --max-memory-gb).
inline constexpr size_t kMaxJobNameBytes = 256;
inline constexpr int64_t kMaxJobRanks = 4096;
inline constexpr double kMaxJobMemoryGb = 1048576;  // 1 PiB: Slurm's --mem in MiB stays exact

struct MethodSpec {
  std::string name = "proxsparse";
  // Training loop (proxsparse, maskllm).
  double lr = 1.0e-4;
  double warmup_ratio = 0.1;  // linear warmup over this fraction, then linear decay to 0
  int epochs = 1;
  int64_t max_steps = 0;  // 0 = as many as epochs give
  int batch_size = 1;     // sequences per optimizer step, global over all ranks
  int grad_accum = 1;
  ComputeDType master_dtype = ComputeDType::kFp32;  // fp32 | bf16
  // Run each owned tensor's AdamW and the method's owner-side work during the last backward pass
  // (TrainOptions::overlap_update; same results, docs/distributed.md).
  bool overlap_update = false;
  // proxsparse (paper Algorithm 1).
  double lambda1 = 1.0;
  double lambda2 = 0.0;
  double epsilon = 0.1;
  Trainable trainable = Trainable::kTargets;
  HardMode hard = HardMode::kNone;
  // sparsegpt.
  int blocksize = 128;
  double percdamp = 0.01;
  // maskllm.
  std::array<double, 2> tau = {4.0, 0.05};       // Gumbel temperature, start -> end
  std::array<double, 2> kappa = {100.0, 500.0};  // logit scale, start -> end
  std::string prior = "sparsegpt";               // magnitude | wanda | sparsegpt | none
  double prior_alpha = 3.0;
  double sparse_reg = 1.0e-5;

  // Whether the method runs the training loop (common/method_registry.h).
  bool Trains() const;
};

// Optional fine-tuning of the kept weights with the mask fixed (steps == 0: off).
struct MaskedUpdateSpec {
  int64_t steps = 0;
  double lr = 1.0e-5;
};

struct CalibrationSpec {
  std::filesystem::path path;   // empty only where the method needs no data
  std::string format = "auto";  // auto | text | jsonl | tokens-u16 | tokens-u32
  int samples = 64;
  int seqlen = 512;
  std::string sampling = "document";  // document | window
};

struct EvaluationSpec {
  std::vector<std::filesystem::path> ppl;
  int ctx = 512;
  int max_windows = 40;  // 0 = the whole text
  std::vector<std::filesystem::path> tasks;
  // One-shot methods also run in the same job, on the same calibration samples and evaluated on
  // the same windows, for comparison (report.json "baselines"): magnitude | wanda | sparsegpt.
  std::vector<std::string> baselines;
};

struct CheckpointSpec {
  int64_t every_steps = 50;  // 0 = no periodic checkpoints
};

struct ResourcesSpec {
  int ranks = 1;
  int gpus_per_rank = 0;
  int cpus_per_rank = 1;
  double memory_gb = 4;
  int time_limit_minutes = 60;
  int TotalGpus() const { return ranks * gpus_per_rank; }
  int TotalCpus() const { return ranks * cpus_per_rank; }
};

// How the training methods spread and place memory (docs/distributed.md, "Memory"). Defaults keep
// the model whole on every rank with the optimizer state sharded (ZeRO-1/2).
struct ParallelSpec {
  // optimizer: every rank holds the whole model, AdamW state sharded by tensor (ZeRO-1/2);
  // params: every rank holds 1/N of each target weight's rows, gathered per layer (ZeRO-3 / FSDP;
  // implies activation checkpointing).
  std::string shard = "optimizer";
  // Recompute each decoder layer's forward during backward instead of keeping its activations.
  bool activation_checkpointing = false;
  // none | optimizer: AdamW state and master copies live in host memory (pinned on CUDA), the
  // update runs on the CPU.
  std::string offload = "none";
  bool IsDefault() const {
    return shard == "optimizer" && !activation_checkpointing && offload == "none";
  }
};

struct JobSpec {
  std::string name;
  std::filesystem::path model;  // Hugging Face directory (config.json + safetensors)
  NMPattern pattern;
  uint64_t seed = 0;
  Device device = Device::kCpu;
  ComputeDType dtype = ComputeDType::kFp32;
  MethodSpec method;
  MaskedUpdateSpec masked_update;
  // Re-solve the kept weights of the method's mask layer by layer with SparseGPT's OBS update, the
  // mask held fixed (before any masked update): none | obs | lsq (the exact least-squares solve of
  // the same layer objective on the mask, worker/methods/mask_lsq.h).
  std::string reconstruct = "none";
  CalibrationSpec calibration;
  EvaluationSpec evaluation;
  std::filesystem::path output;  // empty: the runner decides (psworker --output, psd's job dir)
  // What the job publishes (docs/artifacts.md): model (HF directory), compressed-tensors
  // (sparse-24-bitmask), native (packed 2:4), masks. The packed forms need pattern 2:4.
  std::vector<std::string> publish = DefaultPublish(k2of4);
  // model, compressed-tensors (2:4 only) and masks.
  static std::vector<std::string> DefaultPublish(const NMPattern& p) {
    if (p == k2of4) return {"model", "compressed-tensors", "masks"};
    return {"model", "masks"};
  }
  bool Publishes(const std::string& kind) const {
    return std::find(publish.begin(), publish.end(), kind) != publish.end();
  }
  CheckpointSpec checkpoint;
  int log_every = 1;
  ResourcesSpec resources;
  ParallelSpec parallel;
};

// Parses and validates YAML text. `base_dir` resolves relative paths; `source` names the text in
// messages (the file name). Throws ps::Error "KEY.PATH: problem (SOURCE line L)". The text must
// be UTF-8 without NUL bytes, at most 1 MiB, without duplicate keys.
JobSpec ParseJobSpec(std::string_view yaml_text, const std::filesystem::path& base_dir,
                     std::string_view source = "job file");
// The checks ParseJobSpec makes on the raw text before parsing (size, UTF-8, no NUL bytes), for
// clients that send the text elsewhere (psctl). Throws ps::Error naming the line.
void CheckJobText(std::string_view text, std::string_view source);
// Reads and parses a job file; relative paths resolve against its directory.
JobSpec LoadJobSpec(const std::filesystem::path& file);

// Canonical YAML: every key in the documented order, absolute paths, only the method keys that
// method uses. ParseJobSpec(JobSpecToYaml(s), any) == s.
std::string JobSpecToYaml(const JobSpec& spec);
// Lower-case hex SHA-256 of JobSpecToYaml: equal specs hash equal however they were written.
std::string JobSpecHash(const JobSpec& spec);

// Checks what the file alone cannot: inputs exist and are readable from this machine, the model's
// config.json parses and its target dimensions are multiples of M. Throws ps::Error naming the
// key ("model: ...", "calibration.path: ...").
void CheckJobInputs(const JobSpec& spec);

// Why the job needs calibration data ("method wanda", "reconstruct: obs", ...); empty when it needs
// none (magnitude alone, with only data-free baselines).
std::string CalibrationNeed(const JobSpec& spec);

bool operator==(const MethodSpec& a, const MethodSpec& b);
bool operator==(const JobSpec& a, const JobSpec& b);

}  // namespace ps
