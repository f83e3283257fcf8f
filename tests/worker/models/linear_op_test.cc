// The inference hook on Linear: an op replaces the dense matmul (bias still added by Linear),
// ReleaseWeight really frees the dense weight, and misuse is an error rather than a wrong answer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/models/llama_model.h"

namespace ps {
namespace {

// x Wᵀ from its own copy of the weight, counting calls.
class CopyOp : public LinearOp {
 public:
  explicit CopyOp(torch::Tensor w) : w_(w.detach().clone()) {}
  torch::Tensor Forward(const torch::Tensor& x) override {
    ++calls;
    return torch::matmul(x, w_.t());
  }
  int calls = 0;

 private:
  torch::Tensor w_;
};

TEST(LinearOp, ReplacesTheMatmulAndKeepsTheBias) {
  torch::manual_seed(0);
  Linear lin("proj", 8, 4, /*bias=*/true, torch::dtype(torch::kFloat32));
  torch::NoGradGuard no_grad;
  lin.weight.normal_();
  lin.bias.normal_();
  auto x = torch::randn({2, 3, 8});
  auto dense = lin.forward(x);
  auto op = std::make_shared<CopyOp>(lin.weight);
  lin.set_op(op);
  EXPECT_TRUE(torch::allclose(lin.forward(x), dense));
  EXPECT_EQ(op->calls, 1);
  lin.set_op(nullptr);
  EXPECT_TRUE(torch::equal(lin.forward(x), dense));
  EXPECT_EQ(op->calls, 1);
}

TEST(LinearOp, ReleaseWeightFreesTheDenseStorage) {
  Linear lin("proj", 64, 32, false, torch::dtype(torch::kFloat32));
  EXPECT_THROW(lin.ReleaseWeight(), Error);  // no op holds the weight yet
  lin.set_op(std::make_shared<CopyOp>(lin.weight));
  lin.ReleaseWeight();
  EXPECT_TRUE(lin.weight_released());
  EXPECT_EQ(lin.weight.numel(), 0);
  // The registered parameter is the same tensor, so the module sees the release too.
  for (const auto& p : lin.named_parameters()) EXPECT_EQ(p.value().numel(), 0) << p.key();
  EXPECT_EQ(lin.in_features(), 64);
  EXPECT_EQ(lin.out_features(), 32);
  EXPECT_THROW(lin.ReplaceWeight(torch::zeros({32, 64})), Error);
  EXPECT_EQ(lin.forward(torch::ones({1, 64})).sizes(), (std::vector<int64_t>{1, 32}));
  lin.set_op(nullptr);
  EXPECT_THROW(lin.forward(torch::ones({1, 64})), Error);
}

TEST(LinearOp, WholeModelThroughOpsMatchesDense) {
  auto model = testing::RandomModel(testing::TinyConfig("qwen2"), 7);  // biases, tied embeddings
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({{1, 5, 9, 3}}, torch::kInt64);
  auto dense = model->forward(ids);
  for (auto& l : model->TargetLinears()) {
    l->set_op(std::make_shared<CopyOp>(l->weight));
    l->ReleaseWeight();
  }
  EXPECT_TRUE(torch::allclose(model->forward(ids), dense, 1e-5, 1e-5));
  // Cached decoding goes through the ops as well.
  KvCache cache;
  model->forward(ids.narrow(1, 0, 3), &cache);
  auto last = model->forward(ids.narrow(1, 3, 1), &cache);
  EXPECT_TRUE(torch::allclose(last.select(1, 0), dense.select(1, 3), 1e-4, 1e-4));
}

}  // namespace
}  // namespace ps
