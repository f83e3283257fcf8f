#include "common/memory_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>

#include "common/error.h"
#include "common/job_spec.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

fs::path Shapes() { return fs::path(PS_SOURCE_DIR) / "configs" / "model-shapes"; }

TEST(ModelShape, ParameterCountsMatchThePublishedCheckpoints) {
  // The sums of the tensor sizes in each model's safetensors index.
  EXPECT_EQ(LoadModelShape(Shapes() / "llama-2-7b").TotalParams(), 6738415616);
  EXPECT_EQ(LoadModelShape(Shapes() / "llama-2-13b").TotalParams(), 13015864320);
  EXPECT_EQ(LoadModelShape(Shapes() / "llama-3-8b").TotalParams(), 8030261248);
  EXPECT_EQ(LoadModelShape(Shapes() / "llama-3-70b").TotalParams(), 70553706496);
  EXPECT_EQ(LoadModelShape(Shapes() / "qwen2.5-14b").TotalParams(), 14770033664);
  EXPECT_EQ(LoadModelShape(Shapes() / "qwen2.5-72b").TotalParams(), 72706203648);
  EXPECT_EQ(LoadModelShape(Shapes() / "llama-2-7b").TargetParams(), 6476005376);
  EXPECT_TRUE(LoadModelShape(Shapes() / "qwen2.5-14b").qkv_bias);
}

TEST(ModelShape, BadConfigNamesTheKey) {
  nlohmann::json j = {{"vocab_size", 10},
                      {"hidden_size", 8},
                      {"intermediate_size", 16},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 2}};
  EXPECT_NO_THROW(ParseModelShape(j, "c.json"));
  j["hidden_size"] = -1;
  try {
    ParseModelShape(j, "c.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos) << e.what();
  }
  j.erase("hidden_size");
  EXPECT_THROW(ParseModelShape(j, "c.json"), Error);
}

// train_step_bench's 7B runs on one H100 (docs/distributed.md): bf16 weights and master, targets
// trained, ctx 2048, one rank; measured peaks (GiB) of allocated GPU memory.
PlanInput Bench7B(int64_t seqs, int accum) {
  PlanInput in;
  in.shape = LoadModelShape(Shapes() / "llama-2-7b");
  in.device = "cuda";
  in.weight_bytes = 2;
  in.master_bytes = 2;
  in.seq_len = 2048;
  in.seqs_per_micro = seqs / accum;
  in.grad_accum = accum;
  return in;
}

TEST(MemoryPlan, WithinTenPercentOfTheMeasured7BPeaks) {
  struct Case {
    int64_t seqs;
    int accum;
    double measured_gib;
  };
  for (const Case& c : {Case{1, 1, 55.39}, Case{2, 1, 65.25}, Case{4, 4, 66.27}, Case{8, 8, 66.24},
                        Case{2, 2, 66.24}}) {
    const double predicted = PlanMemory(Bench7B(c.seqs, c.accum)).device_peak / kGiB;
    EXPECT_NEAR(predicted, c.measured_gib, 0.10 * c.measured_gib)
        << c.seqs << " sequences in " << c.accum << " passes";
  }
}

TEST(MemoryPlan, StateFallsWithRanksAndOptionsShrinkThePeak) {
  PlanInput in = Bench7B(1, 1);
  in.master_bytes = 4;
  MemoryPlan one = PlanMemory(in);
  in.ranks = 4;
  MemoryPlan four = PlanMemory(in);
  EXPECT_NEAR(four.optimizer, one.optimizer / 4, 0.02 * one.optimizer);
  EXPECT_EQ(four.weights, one.weights);  // optimizer sharding keeps whole weights
  in.ranks = 1;
  in.checkpointing = true;
  MemoryPlan ckpt = PlanMemory(in);
  EXPECT_LT(ckpt.activations, one.activations / 4);
  in.checkpointing = false;
  in.offload = true;
  MemoryPlan off = PlanMemory(in);
  EXPECT_LT(off.device_peak, one.device_peak / 2);
  EXPECT_GT(off.host, one.optimizer);
}

TEST(MemoryPlan, OffloadBesideAGpuKeepsOnlyTheStateOnTheHost) {
  // On CUDA the update is streamed through the GPU: the gradients never go to the host, and the
  // GPU holds one tensor's staged master and moments. On the CPU the host is the device.
  PlanInput in = Bench7B(1, 1);
  in.master_bytes = 4;
  in.offload = true;
  const MemoryPlan gpu = PlanMemory(in);
  EXPECT_DOUBLE_EQ(gpu.host, gpu.optimizer + gpu.master + gpu.method);
  const double largest = static_cast<double>(in.shape.LargestTarget());
  const double staged = 3.0 * 4 * largest;
  EXPECT_NEAR(gpu.device_peak - staged,
              gpu.weights + gpu.workspace + std::max(gpu.gradients, gpu.activations),
              1e-6 * gpu.device_peak);
  in.device = "cpu";
  const MemoryPlan cpu = PlanMemory(in);
  EXPECT_EQ(cpu.host, 0.0);
  EXPECT_GT(cpu.device_peak, gpu.host);
}

TEST(MemoryPlan, ShardedParametersDivideEveryLayer) {
  PlanInput in = Bench7B(1, 1);
  in.shard_params = true;
  MemoryPlan one = PlanMemory(in);
  in.ranks = 8;
  MemoryPlan eight = PlanMemory(in);
  const ModelShape& s = in.shape;
  const double outside = static_cast<double>(s.TotalParams() - s.layers * s.LayerParams()) * 2;
  EXPECT_NEAR(eight.weights - outside, (one.weights - outside) / 8, 1e6);
  // One layer gathered at a time (no prefetch).
  EXPECT_NEAR(eight.gathered, 2.0 * static_cast<double>(s.LayerParams()), 1);
}

// codelm-19m (../shared/data/codelm-19m/config.json), the model of bench/shard_memory's CPU runs.
ModelShape CodeLm19m() {
  nlohmann::json j = {
      {"vocab_size", 8192},     {"hidden_size", 384},           {"intermediate_size", 1024},
      {"num_hidden_layers", 8}, {"num_attention_heads", 6},     {"num_key_value_heads", 2},
      {"head_dim", 64},         {"tie_word_embeddings", false}, {"model_type", "llama"}};
  return ParseModelShape(j, "codelm-19m");
}

// As bench/shard_memory runs it: fp32 weights and master, shard: params, ctx 512, one sequence
// per rank, checkpointing on more than one rank, explicit attention (LibTorch 1.13).
PlanInput ShardMemoryRun(int ranks) {
  PlanInput in;
  in.shape = CodeLm19m();
  in.ranks = ranks;
  in.device = "cpu";
  in.seq_len = 512;
  in.shard_params = true;
  in.checkpointing = ranks > 1;
  in.flash_attention = false;
  return in;
}

TEST(MemoryPlan, CpuProcessTermsAreNamedAndCpuOnly) {
  constexpr double kMiB = 1024.0 * 1024.0;
  PlanInput in = ShardMemoryRun(2);
  const MemoryPlan cpu = PlanMemory(in);
  EXPECT_EQ(cpu.runtime, 18.0 * kMiB);
  // Malloc's retention: the owned gradients (fp32 rows: half the 12.6M target weights), the last
  // mask (a byte per owned weight) and one loss-backward workspace (512 x 8192 x 8 bytes).
  const double owned = std::ceil(static_cast<double>(in.shape.TargetParams()) / 2);
  EXPECT_NEAR(cpu.allocator, 4 * owned + owned + 512.0 * 8192 * 8, 1);
  const double tensors = cpu.weights + cpu.gathered + cpu.optimizer + cpu.master + cpu.method +
                         cpu.workspace + std::max(cpu.gradients, cpu.activations);
  EXPECT_NEAR(cpu.device_peak, tensors + cpu.runtime + cpu.allocator, 1);
  EXPECT_NE(DescribePlan(in, cpu).find("malloc retention"), std::string::npos);
  in.mask_state = false;  // MaskLLM / the masked update keep no last mask
  EXPECT_NEAR(PlanMemory(in).allocator, 4 * owned + 512.0 * 8192 * 8, 1);
  // Blocks over 32 MiB are mmapped and unmapped when freed: a 7B model's gradients (64-172 MiB per
  // tensor in fp32) and [2048, 32000] fp32 buffers add nothing; its 1-byte masks of 16-43 MiB add
  // the q/k/v/o ones (16 MiB each).
  PlanInput big = ShardMemoryRun(1);
  big.shape = LoadModelShape(Shapes() / "llama-2-7b");
  big.seq_len = 2048;
  EXPECT_NEAR(PlanMemory(big).allocator, 32.0 * 4 * 4096 * 4096, 1);
  in.device = "cuda";  // a GPU's allocated memory holds tensors only
  const MemoryPlan gpu = PlanMemory(in);
  EXPECT_EQ(gpu.runtime, 0);
  EXPECT_EQ(gpu.allocator, 0);
}

TEST(MemoryPlan, ExplicitAttentionKeepsFp32ProbabilitiesOnce) {
  // fp32: the softmax's output is bmm's input (no cast), so [H, T, T] fp32 per layer once, plus
  // the repeated k and v (6 query heads over 2 kv heads) less the output SDPA would keep.
  PlanInput in = ShardMemoryRun(1);
  const double explicit_attn = PlanMemory(in).activations;
  in.flash_attention = true;
  const double flash = PlanMemory(in).activations;
  const double per_layer = 6.0 * 512 * 512 * 4 + 4.0 * 512 * (2 * (384 - 128) - 384);
  EXPECT_NEAR(explicit_attn - flash, 8 * per_layer, 1);
  // bf16 keeps the fp32 probabilities and their bf16 copy, and fp32 copies of q and k.
  in.weight_bytes = in.master_bytes = 2;
  const double flash16 = PlanMemory(in).activations;
  in.flash_attention = false;
  const double per_layer16 =
      6.0 * 512 * 512 * 6 + 4.0 * 512 * 2 * 384 + 2.0 * 512 * (2 * (384 - 128) - 384);
  EXPECT_NEAR(PlanMemory(in).activations - flash16, 8 * per_layer16, 1);
}

TEST(MemoryPlan, WithinTenPercentOfTheMeasuredCpuPeaks) {
  // bench/shard_memory's whole-run peak RSS per rank (MiB), the lowest and highest rank over the
  // runs of docs/results/2026-12-07-shard-memory-cpu.md (2-core EPYC, LibTorch 1.13, OpenMPI).
  struct Case {
    int ranks;
    double low, high;
  };
  for (const Case& c : {Case{1, 503.9, 511.0}, Case{2, 245.8, 273.0}, Case{4, 195.6, 231.8}}) {
    const double predicted = PlanMemory(ShardMemoryRun(c.ranks)).device_peak / (1024.0 * 1024.0);
    EXPECT_NEAR(predicted, c.low, 0.10 * c.low) << c.ranks << " rank(s)";
    EXPECT_NEAR(predicted, c.high, 0.10 * c.high) << c.ranks << " rank(s)";
  }
}

TEST(MemoryPlan, TooSmallNamesTheOptionsThatFit) {
  PlanInput in = Bench7B(1, 1);
  in.master_bytes = 4;
  in.memory_gib = 79.6;
  MemoryPlan p = PlanMemory(in);
  EXPECT_FALSE(p.fits);
  std::string all;
  for (const auto& s : p.suggestions) all += s + "\n";
  EXPECT_NE(all.find("parallel.offload: optimizer"), std::string::npos) << all;
  EXPECT_NE(all.find("resources.ranks: "), std::string::npos) << all;
  EXPECT_NE(DescribePlan(in, p).find("does NOT fit"), std::string::npos);
  in.memory_gib = 140.4;
  EXPECT_TRUE(PlanMemory(in).fits);
}

JobSpec CpuJob(const fs::path& model, double memory_gb) {
  std::string yaml = "model: " + model.string() +
                     "\npattern: \"2:4\"\nmethod:\n  name: proxsparse\ncalibration:\n  path: x\n"
                     "resources:\n  memory_gb: " +
                     std::to_string(memory_gb) + "\n";
  return ParseJobSpec(yaml, "/", "test.yaml");
}

TEST(MemoryPlan, SubmitCheckRefusesAJobThatCannotFit) {
  EXPECT_NO_THROW(CheckJobFitsMemory(CpuJob(Shapes() / "llama-2-7b", 512), 0));
  try {
    // fp32 weights and gradients (50 GiB) fit 64 GB once the optimizer state is spread.
    CheckJobFitsMemory(CpuJob(Shapes() / "llama-2-7b", 64), 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("resources"), std::string::npos) << m;
    EXPECT_NE(m.find("would fit with resources.ranks: "), std::string::npos) << m;
  }
  try {
    CheckJobFitsMemory(CpuJob(Shapes() / "llama-2-7b", 16), 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    // Whole fp32 weights alone exceed 16 GB: only sharded parameters over more ranks fit.
    EXPECT_NE(std::string(e.what()).find("and parallel.shard: params"), std::string::npos)
        << e.what();
  }
  // cuda jobs are checked only when the GPU size is known.
  JobSpec cuda = CpuJob(Shapes() / "llama-2-7b", 16);
  cuda.device = Device::kCuda;
  cuda.dtype = ComputeDType::kBf16;
  EXPECT_NO_THROW(CheckJobFitsMemory(cuda, 0));
  EXPECT_THROW(CheckJobFitsMemory(cuda, 40), Error);
  cuda.parallel.offload = "optimizer";
  cuda.parallel.activation_checkpointing = true;
  EXPECT_NO_THROW(CheckJobFitsMemory(cuda, 40));
}

TEST(JobSpecParallel, ParsesRoundTripsAndRejectsUnknownKeys) {
  const std::string base =
      "model: m\npattern: \"2:4\"\nmethod:\n  name: proxsparse\ncalibration:\n  path: x\n";
  JobSpec d = ParseJobSpec(base, "/", "t.yaml");
  EXPECT_TRUE(d.parallel.IsDefault());
  EXPECT_EQ(JobSpecToYaml(d).find("parallel"), std::string::npos);  // old hashes stay
  JobSpec s = ParseJobSpec(
      base + "parallel:\n  activation_checkpointing: true\n  offload: optimizer\n", "/", "t.yaml");
  EXPECT_TRUE(s.parallel.activation_checkpointing);
  EXPECT_EQ(s.parallel.offload, "optimizer");
  EXPECT_TRUE(ParseJobSpec(JobSpecToYaml(s), "/", "again") == s);
  EXPECT_FALSE(s == d);
  EXPECT_THROW(ParseJobSpec(base + "parallel:\n  offload: gpu\n", "/", "t.yaml"), Error);
  EXPECT_THROW(ParseJobSpec(base + "parallel:\n  shard: everything\n", "/", "t.yaml"), Error);
  EXPECT_THROW(ParseJobSpec(base + "parallel:\n  typo: 1\n", "/", "t.yaml"), Error);
  JobSpec p = ParseJobSpec(base + "parallel:\n  shard: params\n", "/", "t.yaml");
  EXPECT_EQ(p.parallel.shard, "params");
  EXPECT_TRUE(ParseJobSpec(JobSpecToYaml(p), "/", "again") == p);
  // More than one rank gathers weights per layer, with activation checkpointing; one rank holds
  // its weights whole.
  EXPECT_TRUE(PlanInputFromJob(p, LoadModelShape(Shapes() / "llama-2-7b"), 2).checkpointing);
  EXPECT_FALSE(PlanInputFromJob(p, LoadModelShape(Shapes() / "llama-2-7b"), 1).checkpointing);
  // Sharded parameters train the targets of proxsparse only.
  const std::string all =
      "model: m\npattern: \"2:4\"\nmethod:\n  name: proxsparse\n  trainable: all\n"
      "calibration:\n  path: x\n";
  EXPECT_NO_THROW(ParseJobSpec(all, "/", "t.yaml"));
  try {
    ParseJobSpec(all + "parallel:\n  shard: params\n", "/", "t.yaml");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parallel.shard"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// The job's masks (1 byte per target weight, host memory): every whole mask on every rank, or
// with sharded parameters on more than one rank the rank's rows of each (about 1/N).
TEST(MemoryPlan, MasksHeldAreEachRanksRowsWithShardedParameters) {
  PlanInput in;
  in.shape = LoadModelShape(Shapes() / "llama-3-70b");
  in.device = "cuda";
  in.weight_bytes = 2;
  in.ranks = 4;
  const double targets = static_cast<double>(in.shape.TargetParams());
  const MemoryPlan whole = PlanMemory(in);
  EXPECT_EQ(whole.masks, targets);  // optimizer sharding: every rank holds every mask
  EXPECT_GE(whole.host, whole.masks);
  in.shard_params = true;
  const MemoryPlan rows = PlanMemory(in);
  EXPECT_GE(rows.masks, targets / 4);
  EXPECT_LE(rows.masks, targets / 4 * 1.001);
  EXPECT_GE(rows.host, rows.masks);
  in.ranks = 1;
  EXPECT_EQ(PlanMemory(in).masks, targets);  // one rank: its rows are the whole masks
  // With offload the host holds the state during training and the masks after: the larger.
  in.ranks = 4;
  in.offload = true;
  const MemoryPlan off = PlanMemory(in);
  EXPECT_DOUBLE_EQ(off.host, std::max(off.optimizer + off.master + off.method, off.masks));
}

TEST(MemoryPlan, CpuMasksCountInTheMaskedUpdatesPeak) {
  PlanInput in = ShardMemoryRun(2);
  in.shard_params = false;
  in.checkpointing = false;
  const MemoryPlan without = PlanMemory(in);
  in.masked_update = true;
  const MemoryPlan with = PlanMemory(in);
  // Every whole mask on each rank, beside the masked update's training (no last-mask state then).
  EXPECT_EQ(with.masks, static_cast<double>(in.shape.TargetParams()));
  EXPECT_DOUBLE_EQ(with.device_peak - without.device_peak, with.masks - with.method);
  EXPECT_EQ(with.host, 0.0);  // on the CPU the host is the device
  // Sharded parameters: the rank's rows (half the masks on 2 ranks) instead of every mask.
  in.shard_params = in.checkpointing = true;
  const MemoryPlan rows = PlanMemory(in);
  EXPECT_GE(rows.masks, with.masks / 2);
  EXPECT_LE(rows.masks, with.masks / 2 * 1.001);
  in.masked_update = false;
  EXPECT_DOUBLE_EQ(rows.device_peak - PlanMemory(in).device_peak, rows.masks - rows.method);
  JobSpec spec;
  spec.masked_update.steps = 2;
  EXPECT_TRUE(PlanInputFromJob(spec, CodeLm19m(), 2, 8).masked_update);
}

}  // namespace
}  // namespace ps
