#include "worker/methods/masked_update.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

using testing::TinyModel;

TEST(MaskedUpdate, OnlyKeptWeightsChange) {
  auto model = TinyModel(4, torch::kFloat32);
  std::map<std::string, torch::Tensor> masks;
  torch::manual_seed(5);
  for (const auto& l : model->TargetLinears()) {
    masks[l->path()] = TopNMask(torch::randn(l->weight.sizes()), k2of4);  // not the magnitude mask
  }
  MaskedUpdate mu(model->TargetLinears(), masks);
  ASSERT_EQ(mu.Parameters().size(), 14u);
  for (const auto& l : model->TargetLinears()) {
    EXPECT_TRUE(IsNMSparse(l->weight, k2of4));
  }
  std::map<std::string, torch::Tensor> before;
  for (const auto& l : model->TargetLinears()) before[l->path()] = l->weight.detach().clone();

  auto ids = torch::randint(0, testing::TinyVocab(), {2, 9});
  for (int step = 0; step < 3; ++step) {
    model->zero_grad();
    auto loss = testing::NextTokenLoss(*model, ids);
    loss.backward();
    torch::NoGradGuard ng;
    for (const auto& [name, w] : mu.Parameters()) {
      auto keep = masks.at(name.substr(0, name.size() - 7));
      ASSERT_EQ(w.grad().masked_select(keep.logical_not()).abs().max().item<float>(), 0.0f) << name;
      w.sub_(0.1 * w.grad());  // plain SGD: pruned weights stay exactly zero without ApplyMasks
      w.sub_(0.01 * w);        // decoupled weight decay: multiplies, so zeros stay zeros too
    }
  }
  for (const auto& l : model->TargetLinears()) {
    const auto& keep = masks.at(l->path());
    EXPECT_TRUE(IsNMSparse(l->weight, k2of4));
    EXPECT_EQ(l->weight.masked_select(keep.logical_not()).abs().max().item<float>(), 0.0f);
    EXPECT_FALSE(l->weight.masked_select(keep).equal(before.at(l->path()).masked_select(keep)));
  }
  // A master copy (e.g. fp32 of a bf16 model) is masked the same way.
  auto name = model->TargetLinears()[0]->path() + ".weight";
  auto master = torch::ones({32, 32});
  EXPECT_TRUE(mu.Has(name));
  mu.ApplyMaskTo(name, master);
  EXPECT_TRUE(master.to(torch::kBool).equal(masks.at(model->TargetLinears()[0]->path())));
  EXPECT_THROW(mu.ApplyMaskTo("lm_head.weight", master), Error);
  // Something that moved a pruned weight is undone by ApplyMasks.
  {
    torch::NoGradGuard ng;
    model->TargetLinears()[0]->weight.add_(1.0);
  }
  mu.ApplyMasks();
  EXPECT_TRUE(IsNMSparse(model->TargetLinears()[0]->weight, k2of4));
}

TEST(MaskedUpdate, HooksRemovedOnDestruction) {
  auto model = TinyModel(4, torch::kFloat32);
  auto lin = model->TargetLinears()[0];
  { MaskedUpdate mu({lin}, {{lin->path(), torch::zeros({32, 32}, torch::kBool)}}); }
  auto out = lin->forward(torch::ones({1, 32}));
  out.sum().backward();
  EXPECT_GT(lin->weight.grad().abs().sum().item<float>(), 0.0f);
}

TEST(MaskedUpdate, Errors) {
  auto model = TinyModel(4, torch::kFloat32);
  auto targets = model->TargetLinears();
  EXPECT_THROW(MaskedUpdate(targets, {{"nope", torch::ones({2, 2}, torch::kBool)}}), Error);
  EXPECT_THROW(MaskedUpdate(targets, {{targets[0]->path(), torch::ones({2, 2}, torch::kBool)}}),
               Error);
}

}  // namespace
}  // namespace ps
