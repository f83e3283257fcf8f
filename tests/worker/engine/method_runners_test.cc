// The method runners on an in-memory tiny model (no shared data needed): MaskLLM's prior
// round-trip, its determinism, and the epoch order every training method shares.
#include "worker/engine/method_runners.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "common/method_registry.h"
#include "tests/worker/engine/engine_fixtures.h"
#include "worker/data/calibration.h"
#include "worker/distributed/communicator.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
using testing::RecordingSink;

JobSpec MaskLlmSpec(double lr) {
  JobSpec spec;
  spec.pattern = k2of4;
  spec.seed = 5;
  spec.method.name = "maskllm";
  spec.method.prior = "sparsegpt";
  spec.method.lr = lr;
  spec.method.warmup_ratio = 0.0;
  spec.method.epochs = 2;
  spec.method.batch_size = 2;
  spec.checkpoint.every_steps = 0;
  return spec;
}

struct MaskLlmRun {
  MaskMap prior, masks;
};

// The SparseGPT prior of a fresh TinyModel(3), then MaskLLM from it; checks the weights stay W0.
MaskLlmRun RunTinyMaskLlm(double lr, const std::string& tag) {
  auto model = testing::TinyModel(3, torch::kFloat32);
  auto original = testing::TinyModel(3, torch::kFloat32);
  auto samples = testing::TinySamples(6, 12, 4);
  const JobSpec spec = MaskLlmSpec(lr);
  auto comm = MakeLocalCommunicator();
  RecordingSink sink;
  MaskLlmRun run;
  run.prior = RunOneShot(*model, "sparsegpt", spec, samples, *comm, sink, true, nullptr);
  const fs::path out = testing::TempDir("maskllm_" + tag);
  RunMaskLlm(*model, spec, samples, out, false, *comm, sink, run.masks);
  int64_t steps = 0;
  for (const auto& e : sink.events) steps += e.stage == "maskllm";
  EXPECT_EQ(steps, 6);  // 6 samples x 2 epochs / batch 2
  for (const auto& l : model->TargetLinears()) {
    EXPECT_TRUE(l->weight.equal(original->linear(l->path()).weight)) << l->path() << " moved";
  }
  return run;
}

TEST(MaskLlmRunner, NegligibleLearningRateReturnsThePriorMaskExactly) {
  MaskLlmRun run = RunTinyMaskLlm(1e-12, "tiny_lr");
  ASSERT_EQ(run.masks.size(), 14u);
  ASSERT_EQ(run.prior.size(), 14u);
  for (const auto& [name, mask] : run.masks) {
    EXPECT_TRUE(IsNMSparse(mask, k2of4)) << name;
    EXPECT_TRUE(mask.equal(run.prior.at(name)))
        << name << ": " << CountMaskFlips(mask, run.prior.at(name))
        << " entries differ from the SparseGPT prior";
  }
}

TEST(MaskLlmRunner, LargeLearningRateMovesMasksAndIsDeterministic) {
  // Far too large on purpose (the diverged setting): the logits must actually train.
  MaskLlmRun a = RunTinyMaskLlm(5e-2, "large_a");
  MaskLlmRun b = RunTinyMaskLlm(5e-2, "large_b");
  int64_t flips = 0;
  for (const auto& [name, mask] : a.masks) {
    flips += CountMaskFlips(mask, a.prior.at(name));
    EXPECT_TRUE(mask.equal(b.masks.at(name))) << name << ": same job and seed, other mask";
  }
  EXPECT_GT(flips, 0);
}

TEST(MaskedUpdateRunner, TrainsOnlyKeptWeightsOfAFrozenModel) {
  auto model = testing::TinyModel(6, torch::kFloat32);
  auto samples = testing::TinySamples(4, 12, 7);
  JobSpec spec = MaskLlmSpec(1e-3);
  spec.masked_update.steps = 3;
  spec.masked_update.lr = 1e-2;
  auto comm = MakeLocalCommunicator();
  RecordingSink sink;
  MaskMap masks = RunOneShot(*model, "magnitude", spec, samples, *comm, sink, false, nullptr);
  std::map<std::string, torch::Tensor> before;
  for (auto& p : model->named_parameters()) before[p.key()] = p.value().detach().clone();
  for (auto& p : model->parameters()) p.set_requires_grad(false);  // as after a frozen method
  auto summary = RunMaskedUpdate(*model, spec, masks, samples, testing::TempDir("mu"), *comm, sink);
  EXPECT_EQ(summary["steps"].get<int64_t>(), 3);
  for (auto& p : model->named_parameters()) {
    const auto& w = p.value();
    auto it = masks.find(p.key());
    if (it == masks.end()) {
      EXPECT_TRUE(w.equal(before.at(p.key()))) << p.key() << ": not a target, must not move";
      continue;
    }
    EXPECT_TRUE(IsNMSparse(w.detach(), k2of4)) << p.key();
    EXPECT_EQ(w.detach().masked_select(it->second.logical_not()).abs().max().item<float>(), 0.f);
    EXPECT_FALSE(w.equal(before.at(p.key()))) << p.key() << ": kept weights did not train";
  }
}

TEST(EpochOrderedSamples, EpochZeroInOrderThenSeededPermutations) {
  std::vector<std::vector<int32_t>> samples;
  for (int i = 0; i < 5; ++i) samples.push_back({i, i + 100});
  TrainOptions t;
  t.total_steps = 7;
  t.seqs_per_step = 2;  // 14 sequences: epoch 0, epoch 1, and 4 of epoch 2
  auto seq = EpochOrderedSamples(samples, t, 9);
  ASSERT_EQ(seq.size(), 14u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(seq[i], samples[i]);
  for (uint64_t epoch : {1, 2}) {
    auto order = EpochOrder(5, 9, epoch);
    for (size_t i = 0; i < 5 && 5 * epoch + i < seq.size(); ++i)
      EXPECT_EQ(seq[5 * epoch + i], samples[order[i]]) << "epoch " << epoch << " position " << i;
  }
  std::set<std::vector<int32_t>> epoch1(seq.begin() + 5, seq.begin() + 10);
  EXPECT_EQ(epoch1.size(), 5u);  // a permutation: every sample once
  EXPECT_NE(std::vector<std::vector<int32_t>>(seq.begin() + 5, seq.begin() + 10), samples);
  EXPECT_EQ(EpochOrderedSamples(samples, t, 9), seq);  // reproducible
  EXPECT_TRUE(EpochOrderedSamples({}, t, 9).empty());
}

// The job file's training keys reach the loop (overlap_update: docs/job-file.md).
TEST(BaseTrainOptions, CarriesGradAccumAndOverlapUpdate) {
  JobSpec spec;
  spec.method.batch_size = 4;
  spec.method.grad_accum = 2;
  EXPECT_FALSE(BaseTrainOptions(spec, 8).overlap_update);
  spec.method.overlap_update = true;
  const TrainOptions t = BaseTrainOptions(spec, 8);
  EXPECT_TRUE(t.overlap_update);
  EXPECT_EQ(t.grad_accum, 2);
  EXPECT_EQ(t.total_steps, 2);
}

// The worker runs every method the job-file parser accepts.
TEST(MethodRunners, EveryRegisteredMethodHasARunner) {
  for (const auto& m : Methods()) EXPECT_TRUE(HasRunner(m.name)) << m.name;
  EXPECT_FALSE(HasRunner("prune-everything"));
}

}  // namespace
}  // namespace ps
