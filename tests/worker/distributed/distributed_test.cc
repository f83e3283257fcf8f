#include <gtest/gtest.h>
#include <torch/torch.h>

#include "worker/distributed/communicator.h"
#include "worker/distributed/ownership.h"
#include "worker/distributed/sharded_adamw.h"

namespace ps {
namespace {

TEST(Ownership, BalancedAndDeterministic) {
  std::vector<int64_t> sizes = {100, 100, 50, 50, 25, 25, 25, 25, 400};
  OwnershipPlan p = PlanOwnership(sizes, 4);
  EXPECT_EQ(p.owner.size(), sizes.size());
  EXPECT_EQ(p.owner[8], 0);  // the largest goes first onto rank 0
  int64_t total = 0;
  for (int64_t e : p.elements_per_rank) total += e;
  EXPECT_EQ(total, 800);
  EXPECT_LE(p.Imbalance(), 2.0);
  EXPECT_EQ(PlanOwnership(sizes, 4).owner, p.owner);
  OwnershipPlan one = PlanOwnership(sizes, 1);
  for (int o : one.owner) EXPECT_EQ(o, 0);
  EXPECT_DOUBLE_EQ(one.Imbalance(), 1.0);
  // Many equal tensors spread evenly.
  OwnershipPlan even = PlanOwnership(std::vector<int64_t>(16, 10), 4);
  for (int64_t e : even.elements_per_rank) EXPECT_EQ(e, 40);
}

// Our AdamW reproduces torch.optim.AdamW step for step (single rank).
TEST(ShardedAdamW, MatchesTorchAdamW) {
  torch::manual_seed(0);
  auto a = torch::randn({8, 4}).requires_grad_(true);
  auto b = a.detach().clone().requires_grad_(true);
  auto comm = MakeLocalCommunicator();
  ShardedAdamW ours({{"a", a}}, *comm, AdamWOptions{}, torch::kFloat32);
  torch::optim::AdamW ref({b}, torch::optim::AdamWOptions(1e-2).weight_decay(0.0));
  for (int step = 0; step < 5; ++step) {
    auto target = torch::randn({8, 4});
    ours.ZeroGrad();
    ((a - target).pow(2).sum()).backward();
    ours.ReduceGradients();
    ours.Step(1e-2);
    ours.Publish();
    ref.zero_grad();
    ((b - target).pow(2).sum()).backward();
    ref.step();
    EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-7)) << "step " << step;
  }
  EXPECT_EQ(ours.step_count(), 5);
}

// A bf16 parameter keeps an fp32 master: updates smaller than bf16's resolution accumulate.
TEST(ShardedAdamW, Fp32MasterForBf16Params) {
  auto p = torch::ones({4}, torch::kBFloat16).requires_grad_(true);
  auto comm = MakeLocalCommunicator();
  ShardedAdamW opt({{"p", p}}, *comm, AdamWOptions{}, torch::kFloat32);
  for (int i = 0; i < 20; ++i) {
    opt.ZeroGrad();
    p.to(torch::kFloat32).sum().backward();
    opt.ReduceGradients();
    opt.Step(1e-4);
    opt.Publish();
  }
  // 20 steps of ~1e-4 each: the master moved by ~2e-3 even though one step is below bf16's ulp.
  EXPECT_NEAR(opt.master(0)[0].item<float>(), 1.0f - 2e-3f, 2e-4f);
  EXPECT_EQ(p.scalar_type(), torch::kBFloat16);
}

TEST(ShardedAdamW, StateRoundTrip) {
  auto p = torch::randn({3, 4}).requires_grad_(true);
  auto comm = MakeLocalCommunicator();
  ShardedAdamW opt({{"p", p}}, *comm, AdamWOptions{}, torch::kFloat32);
  opt.ZeroGrad();
  p.sum().backward();
  opt.ReduceGradients();
  opt.Step(0.1);
  std::map<std::string, torch::Tensor> state;
  for (auto& [k, v] : opt.OwnedState()) state[k] = v.clone();
  auto q = torch::zeros({3, 4}).requires_grad_(true);
  ShardedAdamW opt2({{"p", q}}, *comm, AdamWOptions{}, torch::kFloat32);
  opt2.LoadState(state, opt.step_count());
  EXPECT_TRUE(torch::equal(opt2.master(0), opt.master(0)));
  EXPECT_EQ(opt2.step_count(), 1);
  state.erase("p.exp_avg");
  EXPECT_ANY_THROW(opt2.LoadState(state, 1));
}

}  // namespace
}  // namespace ps
