#include "worker/methods/layerwise.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <barrier>
#include <thread>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/methods/mask_lsq.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/one_shot.h"
#include "worker/methods/sparsegpt.h"

namespace ps {
namespace {

using testing::TinyModel;
using testing::TinySamples;

std::vector<std::vector<std::string>> RefRounds(int64_t layer, bool sequential) {
  const std::string a = "model.layers." + std::to_string(layer) + ".self_attn.";
  const std::string m = "model.layers." + std::to_string(layer) + ".mlp.";
  if (sequential) {
    return {{a + "k_proj", a + "v_proj", a + "q_proj"},
            {a + "o_proj"},
            {m + "up_proj", m + "gate_proj"},
            {m + "down_proj"}};
  }
  return {TargetLinearNames(layer)};
}

// The obvious version: for every layer and round, run the WHOLE model on every sample (earlier
// pruning already applied) capturing the raw inputs, then prune with the brute-force kernels.
std::map<std::string, torch::Tensor> ReferencePrune(
    LlamaForCausalLM& model, const std::vector<std::vector<int32_t>>& samples, OneShotMethod method,
    NMPattern p, bool sequential, const std::map<std::string, torch::Tensor>* fixed = nullptr,
    bool exact = false) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> masks;
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    for (const auto& round : RefRounds(i, sequential && method == OneShotMethod::kSparseGpt)) {
      std::map<std::string, std::vector<torch::Tensor>> inputs;
      model.SetInputHook([&](const std::string& name, const torch::Tensor& x) {
        for (const auto& n : round) {
          if (n == name) inputs[name].push_back(x.detach().reshape({-1, x.size(-1)}).clone());
        }
      });
      for (const auto& s : samples) model.forward(torch::tensor(s, torch::kInt64).view({1, -1}));
      model.SetInputHook({});
      for (const auto& name : round) {
        auto& lin = model.linear(name);
        auto x = torch::cat(inputs.at(name)).to(torch::kFloat64);
        if (method == OneShotMethod::kWanda) {
          auto mask = WandaMaskReference(lin.weight, x, p);
          lin.ReplaceWeight(lin.weight * mask);
          masks[name] = mask;
        } else if (fixed) {
          auto H = 2.0 * x.t().mm(x) / double(x.size(0));
          auto r = exact ? MaskedLeastSquaresReference(lin.weight, H, fixed->at(name), p)
                         : SparseGptReconstructReference(lin.weight, H, fixed->at(name), p);
          lin.ReplaceWeight(r.weight);
          masks[name] = r.mask;
        } else {
          auto r = SparseGptPruneReference(lin.weight, 2.0 * x.t().mm(x) / double(x.size(0)), p);
          lin.ReplaceWeight(r.weight);
          masks[name] = r.mask;
        }
      }
    }
  }
  return masks;
}

void ExpectValidAndMatching(LlamaForCausalLM& a, LlamaForCausalLM& b,
                            const std::map<std::string, torch::Tensor>& ma,
                            const std::map<std::string, torch::Tensor>& mb, NMPattern p,
                            double tol) {
  ASSERT_EQ(ma.size(), 14u);
  ASSERT_EQ(mb.size(), 14u);
  for (const auto& l : a.TargetLinears()) {
    const auto& name = l->path();
    EXPECT_TRUE(ma.at(name).equal(mb.at(name))) << name;
    EXPECT_TRUE(IsNMSparse(l->weight, p)) << name;
    EXPECT_TRUE(torch::allclose(l->weight, b.linear(name).weight, tol, tol))
        << name << " " << (l->weight - b.linear(name).weight).abs().max();
  }
}

TEST(Layerwise, MagnitudeIsTopAbsWeightWithKeptBitsUnchanged) {
  auto model = TinyModel(1, torch::kFloat32);
  auto orig = TinyModel(1, torch::kFloat32);
  LayerwiseOptions o;
  o.method = OneShotMethod::kMagnitude;
  auto r = PruneLayerwise(*model, {}, o);
  ASSERT_EQ(r.masks.size(), 14u);
  for (const auto& l : model->TargetLinears()) {
    auto w0 = orig->linear(l->path()).weight;
    auto mask = TopNMask(w0, k2of4);
    EXPECT_TRUE(r.masks.at(l->path()).equal(mask));
    EXPECT_TRUE(l->weight.equal(ApplyMask(w0, mask)));  // bit-identical kept weights
  }
}

TEST(Layerwise, WandaMatchesWholeModelReference) {
  auto samples = TinySamples(5, 9, 3);
  for (NMPattern p : {k2of4, k1of4}) {
    auto fast = TinyModel(2), ref = TinyModel(2), orig = TinyModel(2);
    LayerwiseOptions o;
    o.method = OneShotMethod::kWanda;
    o.pattern = p;
    auto r = PruneLayerwise(*fast, samples, o);
    auto want = ReferencePrune(*ref, samples, OneShotMethod::kWanda, p, false);
    ExpectValidAndMatching(*fast, *ref, r.masks, want, p, 0);
    int64_t tokens = 0;
    for (const auto& s : samples) tokens += int64_t(s.size());
    EXPECT_EQ(r.calibration_tokens, tokens);
    // Frozen-weight method: kept weights are bit-identical to the original.
    for (const auto& l : fast->TargetLinears()) {
      auto w0 = orig->linear(l->path()).weight;
      EXPECT_TRUE(l->weight.equal(ApplyMask(w0, r.masks.at(l->path()))));
    }
  }
}

TEST(Layerwise, SparseGptMatchesWholeModelReference) {
  auto samples = TinySamples(6, 10, 4);
  for (bool sequential : {true, false}) {
    auto fast = TinyModel(5), ref = TinyModel(5);
    LayerwiseOptions o;
    o.method = OneShotMethod::kSparseGpt;
    o.true_sequential = sequential;
    o.sparsegpt.dtype = torch::kFloat64;
    o.sparsegpt.blocksize = 8;
    auto r = PruneLayerwise(*fast, samples, o);
    auto want = ReferencePrune(*ref, samples, OneShotMethod::kSparseGpt, k2of4, sequential);
    ExpectValidAndMatching(*fast, *ref, r.masks, want, k2of4, 1e-8);
    EXPECT_EQ(r.sparsegpt_error.size(), 14u);
  }
}

// Reconstruction on SparseGPT's own masks is SparseGPT: the same layer-by-layer pass with the
// selection replaced by the given mask gives the same weights (fp32, as a job runs it).
TEST(Layerwise, ReconstructionOnSparseGptMasksIsSparseGpt) {
  auto samples = TinySamples(6, 10, 4);
  for (bool sequential : {true, false}) {
    auto own = TinyModel(5), rec = TinyModel(5);
    LayerwiseOptions o;
    o.method = OneShotMethod::kSparseGpt;
    o.true_sequential = sequential;
    auto r = PruneLayerwise(*own, samples, o);
    o.fixed_masks = &r.masks;
    auto rr = PruneLayerwise(*rec, samples, o);
    for (const auto& l : own->TargetLinears()) {
      const auto& name = l->path();
      EXPECT_TRUE(rr.masks.at(name).equal(r.masks.at(name))) << name;
      const double scale = l->weight.abs().max().item<double>();
      EXPECT_LE((rec->linear(name).weight - l->weight).abs().max().item<double>(), 1e-6 * scale)
          << name;
    }
  }
}

// Reconstruction on another method's masks (Wanda's, and magnitude's) against the whole-model
// double reference; the masks come back bit for bit and the published weights stay within them.
TEST(Layerwise, ReconstructionOnWandaAndMagnitudeMasksMatchesReference) {
  auto samples = TinySamples(6, 10, 4);
  for (auto method : {OneShotMethod::kWanda, OneShotMethod::kMagnitude}) {
    auto chooser = TinyModel(5);
    LayerwiseOptions c;
    c.method = method;
    auto chosen = PruneLayerwise(*chooser, samples, c).masks;
    auto fast = TinyModel(5), ref = TinyModel(5), orig = TinyModel(5);
    LayerwiseOptions o;
    o.method = OneShotMethod::kSparseGpt;
    o.sparsegpt.dtype = torch::kFloat64;
    o.sparsegpt.blocksize = 8;
    o.fixed_masks = &chosen;
    auto r = PruneLayerwise(*fast, samples, o);
    auto want = ReferencePrune(*ref, samples, OneShotMethod::kSparseGpt, k2of4, true, &chosen);
    ExpectValidAndMatching(*fast, *ref, r.masks, want, k2of4, 1e-8);
    for (const auto& l : fast->TargetLinears()) {
      const auto& name = l->path();
      EXPECT_TRUE(r.masks.at(name).equal(chosen.at(name))) << name;
      EXPECT_EQ(l->weight.masked_select(chosen.at(name).logical_not()).abs().max().item<double>(),
                0.0);
      // The kept weights changed (not W0 ⊙ mask).
      EXPECT_FALSE(l->weight.equal(ApplyMask(orig->linear(name).weight, chosen.at(name)))) << name;
    }
  }
}

// The exact least-squares reconstruction (reconstruct: lsq) in the same layer-by-layer pass
// against the whole-model double reference built on MaskedLeastSquaresReference: same inputs
// from the already reconstructed layers, masks back bit for bit, and a result that differs from
// the OBS update's (it solves the same objective exactly).
TEST(Layerwise, ExactReconstructionOnWandaMasksMatchesReference) {
  auto samples = TinySamples(6, 10, 4);
  auto chooser = TinyModel(5);
  LayerwiseOptions c;
  c.method = OneShotMethod::kWanda;
  auto chosen = PruneLayerwise(*chooser, samples, c).masks;
  auto fast = TinyModel(5), ref = TinyModel(5), obs = TinyModel(5);
  LayerwiseOptions o;
  o.method = OneShotMethod::kSparseGpt;
  o.sparsegpt.dtype = torch::kFloat64;
  o.fixed_masks = &chosen;
  o.fixed_masks_exact = true;
  auto r = PruneLayerwise(*fast, samples, o);
  auto want = ReferencePrune(*ref, samples, OneShotMethod::kSparseGpt, k2of4, true, &chosen, true);
  ExpectValidAndMatching(*fast, *ref, r.masks, want, k2of4, 1e-8);
  o.fixed_masks_exact = false;
  PruneLayerwise(*obs, samples, o);
  for (const auto& l : fast->TargetLinears()) {
    const auto& name = l->path();
    EXPECT_TRUE(r.masks.at(name).equal(chosen.at(name))) << name;
    EXPECT_EQ(l->weight.masked_select(chosen.at(name).logical_not()).abs().max().item<double>(),
              0.0);
    EXPECT_GT((l->weight - obs->linear(name).weight).abs().max().item<double>(), 1e-6) << name;
  }
}

TEST(Layerwise, FixedMasksNeedSparseGptAndEveryLinear) {
  auto samples = TinySamples(2, 8, 4);
  std::map<std::string, torch::Tensor> none;
  LayerwiseOptions o;
  o.method = OneShotMethod::kWanda;
  o.fixed_masks = &none;
  auto model = TinyModel(5);
  EXPECT_THROW(PruneLayerwise(*model, samples, o), Error);
  o.method = OneShotMethod::kSparseGpt;
  EXPECT_THROW(PruneLayerwise(*model, samples, o), Error);  // no mask for the first linear
}

TEST(Layerwise, SequentialRoundsChangeTheResult) {
  auto samples = TinySamples(6, 10, 4);
  auto a = TinyModel(5), b = TinyModel(5);
  LayerwiseOptions o;
  o.method = OneShotMethod::kSparseGpt;
  o.sparsegpt.dtype = torch::kFloat64;
  auto ra = PruneLayerwise(*a, samples, o);
  o.true_sequential = false;
  auto rb = PruneLayerwise(*b, samples, o);
  // q/k/v see the same inputs either way; o_proj sees pruned attention only when sequential.
  const std::string q = "model.layers.0.self_attn.q_proj", op = "model.layers.0.self_attn.o_proj";
  EXPECT_TRUE(a->linear(q).weight.equal(b->linear(q).weight));
  EXPECT_FALSE(a->linear(op).weight.equal(b->linear(op).weight));
}

TEST(Layerwise, RestoreDenseWeightsKeepsMasksOnly) {
  auto samples = TinySamples(4, 8, 6);
  auto a = TinyModel(7), b = TinyModel(7), orig = TinyModel(7);
  LayerwiseOptions o;
  o.method = OneShotMethod::kSparseGpt;
  auto ra = PruneLayerwise(*a, samples, o);
  o.restore_dense_weights = true;
  auto rb = PruneLayerwise(*b, samples, o);
  for (const auto& l : b->TargetLinears()) {
    EXPECT_TRUE(l->weight.equal(orig->linear(l->path()).weight));
    EXPECT_TRUE(ra.masks.at(l->path()).equal(rb.masks.at(l->path())));
  }
}

// Two "ranks" in two threads with half the samples each and a summing all-reduce give exactly the
// single-rank result on all samples.
TEST(Layerwise, AllReducedStatisticsMatchSingleRank) {
  auto samples = TinySamples(6, 8, 8);
  std::vector<std::vector<int32_t>> half[2];
  for (size_t j = 0; j < samples.size(); ++j) half[j % 2].push_back(samples[j]);
  for (auto method : {OneShotMethod::kWanda, OneShotMethod::kSparseGpt}) {
    auto single = TinyModel(9);
    LayerwiseOptions o;
    o.method = method;
    o.sparsegpt.dtype = torch::kFloat64;
    auto want = PruneLayerwise(*single, samples, o);

    std::shared_ptr<LlamaForCausalLM> models[2] = {TinyModel(9), TinyModel(9)};
    LayerwiseResult got[2];
    std::barrier sync(2);
    torch::Tensor slot[2];
    auto all_reduce = [&](int rank) {
      return [&, rank](torch::Tensor& t) {
        slot[rank] = t;
        sync.arrive_and_wait();
        auto sum = slot[0] + slot[1];
        sync.arrive_and_wait();
        t.copy_(sum);
      };
    };
    std::thread t0([&] {
      auto oo = o;
      oo.all_reduce_sum = all_reduce(0);
      got[0] = PruneLayerwise(*models[0], half[0], oo);
    });
    std::thread t1([&] {
      auto oo = o;
      oo.all_reduce_sum = all_reduce(1);
      got[1] = PruneLayerwise(*models[1], half[1], oo);
    });
    t0.join();
    t1.join();
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(got[r].calibration_tokens, want.calibration_tokens);
      ExpectValidAndMatching(*models[r], *single, got[r].masks, want.masks, k2of4, 1e-9);
    }
  }
}

TEST(Layerwise, Errors) {
  auto model = TinyModel(1);
  LayerwiseOptions o;
  o.method = OneShotMethod::kWanda;
  EXPECT_THROW(PruneLayerwise(*model, {}, o), Error);             // no tokens
  EXPECT_THROW(PruneLayerwise(*model, {{1, 2, 999}}, o), Error);  // id outside vocab
  EXPECT_THROW(PruneLayerwise(*model, std::vector<std::vector<int32_t>>(1), o),
               Error);  // empty sample
  EXPECT_THROW(ParseOneShotMethod("proxsparse"), Error);
  EXPECT_EQ(ParseOneShotMethod("sparsegpt"), OneShotMethod::kSparseGpt);
}

TEST(Layerwise, Deterministic) {
  auto samples = TinySamples(3, 8, 10);
  auto a = TinyModel(11, torch::kFloat32), b = TinyModel(11, torch::kFloat32);
  LayerwiseOptions o;
  o.method = OneShotMethod::kSparseGpt;
  auto ra = PruneLayerwise(*a, samples, o);
  auto rb = PruneLayerwise(*b, samples, o);
  for (const auto& l : a->TargetLinears()) {
    EXPECT_TRUE(l->weight.equal(b->linear(l->path()).weight));
  }
}

}  // namespace
}  // namespace ps
