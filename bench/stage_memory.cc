// stage_memory: per-rank peak memory of the layer-wise stages with sharded parameters
// (parallel.shard: params) on a real checkpoint, on the CPU. Run one process per rank:
//   mpirun -np N stage_memory --model ../shared/data/codelm-19m [--samples 16] [--ctx 128]
// Each rank loads the model as the job runner does in this mode (its rows of every target, the
// rest whole) and runs, on freshly loaded rows each time, what the job's later stages run:
// Wanda and SparseGPT (evaluation.baselines), the least-squares reconstruction on Wanda's masks
// (`reconstruct: lsq`), and the streamed publishing of changed weights and masks (every target's
// weight and mask gathered to rank 0 one at a time). It also counts the mask bytes each rank holds
// after Wanda (its rows of every mask: 1/N of the whole masks, method_runners.h MasksHeldAsRows).
// Calibration tokens are random (memory does not depend on them); each rank runs its share of the
// samples. For each stage it prints the rise of the process's peak resident memory over what it
// held before the stage (its model rows and whole tensors; the masks of earlier stages), beside the
// whole model's size: a stage that materialised the model on a rank would rise by at least that.
// Not a timed test: it prints a markdown table (docs/distributed.md).
#include <torch/types.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/process_memory.h"
#include "worker/distributed/communicator_factory.h"
#include "worker/distributed/sharded_load.h"
#include "worker/engine/layerwise_rows.h"
#include "worker/engine/method_runners.h"
#include "worker/engine/row_sharded_publish.h"
#include "worker/methods/layerwise.h"
#include "worker/models/llama_checkpoint.h"

namespace {

struct Args {
  std::string model;
  int64_t samples = 16, ctx = 128;
};

Args Parse(int argc, char** argv) {
  Args a;
  CLI::App app{"Per-rank peak memory of the layer-wise stages with sharded parameters"};
  app.add_option("--model", a.model, "Hugging Face model directory")->required();
  app.add_option("--samples", a.samples, "calibration samples (all ranks)")
      ->check(CLI::PositiveNumber);
  app.add_option("--ctx", a.ctx, "tokens per sample")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return a;
}

constexpr double kMiB = 1 << 20;
enum Col { kHeld, kWanda, kSparseGpt, kLsq, kPublish, kMasksHeld, kCols };

int Main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  auto comm = ps::MakeCommunicatorFromEnvironment(false);
  const ps::Checkpoint ckpt = ps::Checkpoint::Open(a.model);
  double whole = 0;
  for (const auto& n : ckpt.Names()) whole += static_cast<double>(ckpt.Info(n).Bytes());
  // Calibration: random tokens, every rank the same; each runs its share.
  torch::manual_seed(0);
  std::vector<std::vector<int32_t>> samples;
  int64_t vocab = 0;
  std::vector<double> row(kCols, 0.0);
  std::map<std::string, torch::Tensor> wanda_masks;  // by module name, for the reconstruction
  auto stage = [&](Col col, const std::function<void(ps::RowShardedLlama&)>& f) {
    ps::RowShardedLlama m = ps::LoadLlamaRowSharded(a.model, {torch::kFloat32, torch::kCPU}, *comm);
    if (samples.empty()) {
      vocab = m.model->config().vocab_size;
      auto ids = torch::randint(0, vocab, {a.samples, a.ctx}, torch::kInt32);
      for (int64_t i = 0; i < a.samples; ++i) {
        auto r = ids[i].contiguous();
        samples.emplace_back(r.data_ptr<int32_t>(), r.data_ptr<int32_t>() + a.ctx);
      }
    }
    comm->Barrier();
    ps::ResetPeakRss();
    const double before = ps::ProcStatusBytes("VmRSS");
    if (col == kHeld) row[kHeld] = before;
    f(m);
    comm->Barrier();
    if (col != kHeld) row[col] = ps::ProcStatusBytes("VmHWM") - before;
  };
  auto layerwise = [&](ps::RowShardedLlama& m, ps::OneShotMethod method, bool lsq) {
    ps::LayerwiseRows rows(*m.targets);
    ps::LayerwiseOptions o;
    o.method = method;
    if (comm->size() > 1) o.rows = &rows;
    o.all_reduce_sum = [&](torch::Tensor& t) { comm->AllReduceSum(t); };
    if (lsq) {
      o.fixed_masks = &wanda_masks;
      o.fixed_masks_exact = true;
    }
    return ps::PruneLayerwise(*m.model, ps::RankSamples(samples, *comm), o);
  };
  // The process before any stage: the rank's rows and whole tensors (RSS, not a rise).
  stage(kHeld, [](ps::RowShardedLlama&) {});
  double whole_masks = 0;  // bytes of every whole mask (one per weight)
  stage(kWanda, [&](ps::RowShardedLlama& m) {
    wanda_masks = layerwise(m, ps::OneShotMethod::kWanda, false).masks;
    for (size_t i = 0; i < m.targets->size(); ++i)
      whole_masks += static_cast<double>(m.targets->full_rows(i) * m.targets->local(i).size(1));
  });
  // What the job keeps of the masks on this rank (its rows with more than one rank).
  row[kMasksHeld] = static_cast<double>(ps::HeldMaskBytes(wanda_masks));
  stage(kSparseGpt,
        [&](ps::RowShardedLlama& m) { layerwise(m, ps::OneShotMethod::kSparseGpt, false); });
  stage(kLsq, [&](ps::RowShardedLlama& m) { layerwise(m, ps::OneShotMethod::kSparseGpt, true); });
  stage(kPublish, [&](ps::RowShardedLlama& m) {
    if (comm->size() == 1) return;  // one rank publishes its own (whole) weights and masks
    ps::MaskMap mask_rows;          // by weight name, as the job holds them
    for (const auto& [module, mask] : wanda_masks) mask_rows[module + ".weight"] = mask;
    ps::RowShardedPublisher pub(*m.targets, ckpt.Names(), mask_rows, *comm);
    if (comm->rank() != 0) {
      pub.ServeAll();
      return;
    }
    for (const auto& n : ckpt.Names()) {
      if (!mask_rows.count(n)) continue;
      // Written and released, as the publisher does.
      torch::Tensor t = pub.Next(n);
      torch::Tensor mask = pub.Mask(n);
    }
    pub.Finish();
  });
  // Rank 0 prints every rank's row.
  torch::Tensor all = torch::zeros({comm->size(), kCols}, torch::kFloat64);
  for (int c = 0; c < kCols; ++c) all[comm->rank()][c] = row[static_cast<size_t>(c)] / kMiB;
  comm->AllReduceSum(all);
  if (comm->rank() == 0) {
    std::printf("model %s: %.1f MiB whole; %lld samples x %lld tokens; MiB per rank\n\n",
                a.model.c_str(), whole / kMiB, static_cast<long long>(a.samples),
                static_cast<long long>(a.ctx));
    std::printf("masks: %.2f MiB whole (one byte per target weight)\n\n", whole_masks / kMiB);
    std::printf(
        "| ranks | rank | RSS holding its rows | Wanda (rise) | SparseGPT (rise) | "
        "reconstruct lsq (rise) | publish gather (rise) | masks held |\n"
        "|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < comm->size(); ++r) {
      auto v = [&](Col c) { return all[r][c].item<double>(); };
      std::printf("| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f (%.1f%%) |\n", comm->size(),
                  r, v(kHeld), v(kWanda), v(kSparseGpt), v(kLsq), v(kPublish), v(kMasksHeld),
                  100.0 * v(kMasksHeld) * kMiB / whole_masks);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stage_memory: error: %s\n", e.what());
    return 1;
  }
}
