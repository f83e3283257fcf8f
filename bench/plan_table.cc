// plan_table: the memory planner's table for docs/distributed.md. For each model shape directory
// given (configs/model-shapes/*), each context, each GPU size and 1, 2, 4, 8 GPUs (one rank per
// GPU) it prints, as a Markdown table, the predicted peak per rank of a ProxSparse job with the
// job file's defaults (bf16 weights, fp32 master, one sequence per step, targets trained) and the
// first of: as is, activation checkpointing (ckpt), offload, both, sharded parameters (params,
// which implies checkpointing), sharded parameters with offload, that fits (GiB on the GPU, and in
// host memory with offload); "no (X)" gives the smallest peak of them.
//   plan_table configs/model-shapes/llama-2-7b configs/model-shapes/llama-2-13b ...
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common/memory_plan.h"

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// "80 GB" and "141 GB" cards as the driver reports them (H100 SXM 81,559 MiB; H200 143,771 MiB).
struct Gpu {
  const char* name;
  double gib;
};
constexpr Gpu kGpus[] = {{"80 GB", 79.6}, {"141 GB", 140.4}};

std::string Cell(const ps::PlanInput& base) {
  struct Mode {
    bool ckpt, offload, params;
    const char* label;
  };
  const Mode modes[] = {{false, false, false, "as is"},  {true, false, false, "ckpt"},
                        {false, true, false, "offload"}, {true, true, false, "ckpt+offload"},
                        {true, false, true, "params"},   {true, true, true, "params+offload"}};
  double smallest = 0;
  for (const auto& m : modes) {
    ps::PlanInput in = base;
    in.checkpointing = m.ckpt;
    in.offload = m.offload;
    in.shard_params = m.params;
    ps::MemoryPlan p = ps::PlanMemory(in);
    if (smallest == 0 || p.device_peak < smallest) smallest = p.device_peak;
    char buf[96];
    if (p.fits) {
      if (m.offload)
        std::snprintf(buf, sizeof buf, "%s %.1f (+%.0f host)", m.label, p.device_peak / kGiB,
                      p.host / kGiB);
      else
        std::snprintf(buf, sizeof buf, "%s %.1f", m.label, p.device_peak / kGiB);
      return buf;
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "no (%.1f)", smallest / kGiB);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: plan_table MODEL_DIR...\n";
    return 2;
  }
  try {
    std::printf("| model | ctx | GPU | 1 GPU | 2 GPUs | 4 GPUs | 8 GPUs |\n");
    std::printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int a = 1; a < argc; ++a) {
      const std::filesystem::path dir = argv[a];
      if (!std::filesystem::exists(dir / "config.json")) continue;  // README.md beside them
      ps::ModelShape shape = ps::LoadModelShape(dir);
      for (int64_t ctx : {2048, 4096}) {
        for (const Gpu& g : kGpus) {
          std::printf("| %s | %ld | %s |", dir.filename().c_str(), static_cast<long>(ctx), g.name);
          for (int ranks : {1, 2, 4, 8}) {
            ps::PlanInput in;
            in.shape = shape;
            in.ranks = ranks;
            in.device = "cuda";
            in.memory_gib = g.gib;
            in.weight_bytes = 2;
            in.master_bytes = 4;
            in.seq_len = ctx;
            in.seqs_per_micro = 1;
            in.flash_attention = true;
            std::printf(" %s |", Cell(in).c_str());
          }
          std::printf("\n");
        }
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "plan_table: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
