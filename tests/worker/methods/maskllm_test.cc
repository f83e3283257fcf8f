#include "worker/methods/maskllm.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

using testing::TinyModel;

TEST(MaskLlm, CandidatesAreAllNOfMInOfficialOrder) {
  auto c = CandidateMasks(k2of4);
  auto want = torch::tensor(
      {{1, 1, 0, 0}, {1, 0, 1, 0}, {1, 0, 0, 1}, {0, 1, 1, 0}, {0, 1, 0, 1}, {0, 0, 1, 1}},
      torch::kFloat32);
  EXPECT_TRUE(c.equal(want)) << c;
  EXPECT_TRUE(CandidateMasks(k1of4).equal(torch::eye(4)));
  for (NMPattern p : {NMPattern{2, 8}, NMPattern{4, 8}, NMPattern{3, 5}}) {
    auto cp = CandidateMasks(p);
    int64_t expect = 1;  // C(m, n)
    for (int k = 0; k < p.n; ++k) expect = expect * (p.m - k) / (k + 1);
    EXPECT_EQ(cp.size(0), expect);
    EXPECT_TRUE(cp.sum(1).eq(p.n).all().item<bool>());
    EXPECT_EQ(std::get<0>(torch::unique_dim(cp, 0)).size(0), expect);  // all distinct
  }
  EXPECT_THROW(CandidateMasks(NMPattern{8, 16}), Error);
}

TEST(MaskLlm, PriorInitialisationReproducesThePrior) {
  torch::manual_seed(0);
  const int64_t groups = 5000;
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
    auto prior = TopNMask(torch::randn({groups / 10, 10 * p.m}), p);
    auto cand = CandidateMasks(p);
    for (double alpha : {20.0, 3.0, 0.1}) {
      // Every group starts on its prior (the paper's unclamped noise would leave ~5% on a rival
      // at α = 3), with a margin of at least α·σ/2 over the best rival.
      auto logits = InitMaskLogits(groups, prior, p, 0.01, alpha, 1, torch::kCPU);
      EXPECT_TRUE(ArgmaxMask(logits, cand).view(prior.sizes()).equal(prior))
          << p.ToString() << " alpha " << alpha;
      auto top2 = std::get<0>(logits.topk(2, 1));
      const double margin = (top2.select(1, 0) - top2.select(1, 1)).min().item<double>();
      EXPECT_GE(margin, alpha * 0.01 / 2 * 0.99) << p.ToString() << " alpha " << alpha;
    }
    // No prior: plain N(0, 0.01) logits.
    auto none = InitMaskLogits(groups, torch::Tensor(), p, 0.01, 3.0, 1, torch::kCPU);
    EXPECT_NEAR(none.std().item<double>(), 0.01, 0.001);
  }
  auto model = TinyModel(1, torch::kFloat32);
  MaskLlmOptions o;
  o.init_std = 0;
  EXPECT_THROW(MaskLlm(model->TargetLinears(), o), Error);
}

TEST(MaskLlm, SoftMasksSumToNPerGroup) {
  torch::manual_seed(1);
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
    auto cand = CandidateMasks(p);
    auto logits = torch::randn({300, cand.size(0)}) * 0.01;
    for (double tau : {4.0, 1.0, 0.05}) {
      auto m = GumbelSoftMask(logits, torch::rand(logits.sizes()), cand, 100.0, tau, false);
      EXPECT_TRUE(torch::allclose(m.sum(1), torch::full({300}, double(p.n)), 1e-5, 1e-5));
      EXPECT_GE(m.min().item<double>(), 0.0);
      EXPECT_LE(m.max().item<double>(), 1.0 + 1e-6);
    }
    // Hard (straight-through) samples are exact candidates.
    auto h = GumbelSoftMask(logits, torch::rand(logits.sizes()), cand, 100.0, 1.0, true);
    EXPECT_TRUE(torch::allclose(h.sum(1), torch::full({300}, double(p.n))));
    EXPECT_TRUE(h.eq(0).logical_or(h.eq(1)).all().item<bool>());
  }
  // Gumbel-max at low temperature: the sample is the argmax of κπ + g.
  auto cand = CandidateMasks(k2of4);
  auto logits = torch::randn({200, 6});
  auto u = torch::rand({200, 6});
  auto soft = GumbelSoftMask(logits, u, cand, 1.0, 1e-4, false);
  auto g = -torch::log(-torch::log(u));
  EXPECT_TRUE(torch::allclose(soft, cand.index_select(0, (logits + g).argmax(1)), 1e-4, 1e-4));
}

TEST(MaskLlm, SchedulesAreLinear) {
  auto model = TinyModel(1, torch::kFloat32);
  MaskLlmOptions o;
  MaskLlm ml(model->TargetLinears(), o);
  ml.SetProgress(0, 100);
  EXPECT_DOUBLE_EQ(ml.tau(), 4.0);
  EXPECT_DOUBLE_EQ(ml.kappa(), 100.0);
  EXPECT_DOUBLE_EQ(ml.reg_coef(), 1e-5);
  ml.SetProgress(50, 100);
  EXPECT_NEAR(ml.tau(), 2.025, 1e-12);
  EXPECT_NEAR(ml.kappa(), 300.0, 1e-9);
  EXPECT_DOUBLE_EQ(ml.reg_coef(), 0.5e-5);
  ml.SetProgress(100, 100);
  EXPECT_DOUBLE_EQ(ml.tau(), 0.05);
  EXPECT_DOUBLE_EQ(ml.kappa(), 500.0);
  EXPECT_DOUBLE_EQ(ml.reg_coef(), 0.0);
  EXPECT_THROW(ml.SetProgress(1, 0), Error);
}

TEST(MaskLlm, TrainsLogitsOnlyAndIsDeterministic) {
  auto model = TinyModel(2, torch::kFloat32);
  auto orig = TinyModel(2, torch::kFloat32);
  auto targets = model->TargetLinears();
  std::map<std::string, torch::Tensor> priors;
  for (const auto& l : targets) priors[l->path()] = TopNMask(l->weight.detach(), k2of4);
  MaskLlmOptions o;
  o.seed = 7;
  o.sparse_reg = 1e-2;
  MaskLlm ml(targets, o, priors);
  ASSERT_EQ(ml.Parameters().size(), targets.size());
  EXPECT_EQ(ml.Parameters()[0].first, "model.layers.0.self_attn.q_proj.mask_logits");
  EXPECT_EQ(ml.Parameters()[0].second.sizes(),
            (std::vector<int64_t>{targets[0]->weight.numel() / 4, 6}));
  EXPECT_THROW(ml.Regularizer(), Error);  // nothing sampled yet

  auto ids = torch::randint(0, testing::TinyVocab(), {2, 7});
  auto run = [&](MaskLlm& m) {
    m.Install();
    m.SetProgress(3, 10);
    auto loss = testing::NextTokenLoss(*model, ids);  // the forward first: it samples the masks
    loss = loss + m.Regularizer();
    loss.backward();
    return loss.item<double>();
  };
  double loss_a = run(ml);
  for (const auto& [name, t] : ml.Parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
  }
  for (const auto& l : targets) {
    EXPECT_FALSE(l->weight.grad().defined() && l->weight.grad().abs().sum().item<double>() > 0);
    EXPECT_TRUE(l->weight.equal(orig->linear(l->path()).weight));  // frozen
  }
  // Same seed, same step, same forward count: the same noise, so the same loss.
  MaskLlm again(targets, o, priors);
  ml.Uninstall();
  double loss_b = run(again);
  EXPECT_DOUBLE_EQ(loss_a, loss_b);
  again.Uninstall();
  EXPECT_TRUE(targets[0]->weight.requires_grad());  // restored

  auto final_masks = again.FinalMasks();
  ASSERT_EQ(final_masks.size(), targets.size());
  for (const auto& l : targets) {
    EXPECT_TRUE(IsNMSparse(final_masks.at(l->path()), k2of4));
    EXPECT_EQ(final_masks.at(l->path()).sum().item<int64_t>(), l->weight.numel() / 2);
  }
  EXPECT_GT(again.MeanMaxProbability(), 0.0);
  EXPECT_LE(again.MeanMaxProbability(), 1.0 + 1e-9);
}

TEST(MaskLlm, RegulariserGradientFavoursLargeWeights) {
  // With only the regulariser, gradient descent on the logits moves every group's argmax toward
  // the candidate keeping the largest |W| (maximising ‖W ⊙ M‖²).
  auto model = TinyModel(3, torch::kFloat32);
  auto lin = model->TargetLinears()[0];
  MaskLlmOptions o;
  o.sparse_reg = 1.0;
  o.hard = false;
  MaskLlm ml({lin}, o);
  ml.Install();
  auto logits = ml.Parameters()[0].second;
  for (int step = 0; step < 60; ++step) {
    ml.SetProgress(0, 1);
    lin->forward(torch::zeros({1, lin->in_features()}));
    auto reg = ml.Regularizer();
    logits.mutable_grad() = torch::Tensor();
    reg.backward();
    torch::NoGradGuard ng;
    logits -= 0.05 * logits.grad().sign();
  }
  auto want = TopNMask(lin->weight.detach(), k2of4);
  double agree = 1.0 - double(CountMaskFlips(ml.HardMask(0), want)) / double(want.numel());
  EXPECT_GT(agree, 0.9);
}

TEST(MaskLlm, Errors) {
  auto model = TinyModel(1, torch::kFloat32);
  MaskLlmOptions o;
  EXPECT_THROW(MaskLlm(model->TargetLinears(), o, {{"nope", torch::ones({2, 4}, torch::kBool)}}),
               Error);
  EXPECT_THROW(MaskLlm(model->TargetLinears(), o,
                       {{"model.layers.0.self_attn.q_proj", torch::ones({2, 4}, torch::kBool)}}),
               Error);
  o.tau_end = 0;
  EXPECT_THROW(MaskLlm(model->TargetLinears(), o), Error);
}

}  // namespace
}  // namespace ps
