// Activation checkpointing (worker/engine/activation_checkpoint.h) against the plain forward and
// backward on small random models: the same loss and the same gradients, also with frozen
// embeddings (no input gradient into layer 0), with a random weight transform (the rerun must
// draw the same noise), and through the training loop.
#include "worker/engine/activation_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "tests/worker/engine/overlap_update_fixture.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/models/llama_model.h"

namespace ps {
namespace {

torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& ids) {
  const int64_t len = ids.size(1);
  auto pred = logits.narrow(1, 0, len - 1).reshape({-1, logits.size(-1)});
  auto target = ids.narrow(1, 1, len - 1).reshape({-1});
  return torch::nll_loss(torch::log_softmax(pred, -1), target);
}

struct Result {
  double loss = 0;
  std::map<std::string, torch::Tensor> grads;
};

Result TrainPass(LlamaForCausalLM& model, const torch::Tensor& ids, bool checkpointed,
                 uint64_t seed) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  torch::manual_seed(seed);
  torch::Tensor logits = checkpointed ? CheckpointedForward(model, ids) : model.forward(ids);
  torch::Tensor loss = Loss(logits, ids);
  loss.backward();
  Result r;
  r.loss = loss.item<double>();
  for (const auto& np : model.named_parameters())
    if (np.value().grad().defined()) r.grads[np.key()] = np.value().grad().clone();
  return r;
}

void ExpectSame(const Result& a, const Result& b, double tol) {
  EXPECT_NEAR(a.loss, b.loss, tol * std::abs(a.loss));
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (const auto& [name, g] : a.grads) {
    ASSERT_TRUE(b.grads.count(name)) << name;
    const torch::Tensor& h = b.grads.at(name);
    const double scale = std::max(1e-12, g.abs().max().item<double>());
    EXPECT_LE((g - h).abs().max().item<double>(), tol * scale) << name;
  }
}

torch::Tensor Ids(int64_t batch, int64_t len, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, vocab, {batch, len}, torch::kInt64);
}

TEST(ActivationCheckpoint, SameLossAndGradientsEveryKind) {
  for (const std::string kind : {"llama", "mistral", "qwen2", "llama3"}) {
    auto cfg = testing::TinyConfig(kind);
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      auto model = testing::RandomModel(cfg, 7, dtype);
      auto ids = Ids(2, 9, cfg["vocab_size"].get<int64_t>(), 3);
      Result plain = TrainPass(*model, ids, false, 1);
      Result ckpt = TrainPass(*model, ids, true, 1);
      EXPECT_GT(plain.grads.size(), 10u) << kind;
      // Every parameter, embeddings and norms included.
      EXPECT_EQ(plain.grads.size(), model->parameters().size()) << kind;
      ExpectSame(plain, ckpt, dtype == torch::kFloat64 ? 1e-12 : 1e-5);
    }
  }
}

TEST(ActivationCheckpoint, FrozenEmbeddingsStillGiveLayerGradients) {
  auto cfg = testing::TinyConfig("llama");
  auto model = testing::RandomModel(cfg, 11, torch::kFloat64);
  for (auto& np : model->named_parameters())
    np.value().set_requires_grad(np.key().find("_proj.weight") != std::string::npos);
  auto ids = Ids(1, 12, cfg["vocab_size"].get<int64_t>(), 5);
  Result plain = TrainPass(*model, ids, false, 1);
  Result ckpt = TrainPass(*model, ids, true, 1);
  EXPECT_EQ(plain.grads.size(), model->TargetLinears().size());
  ExpectSame(plain, ckpt, 1e-12);
}

TEST(ActivationCheckpoint, RerunSeesTheSameRandomNumbers) {
  // A weight transform that adds fresh noise on every call (as MaskLLM's Gumbel sampling does):
  // the rerun in backward must see the noise of the first run, else the gradients differ.
  auto cfg = testing::TinyConfig("mistral");
  auto model = testing::RandomModel(cfg, 13, torch::kFloat64);
  for (const auto& l : model->TargetLinears())
    l->set_weight_transform([](const torch::Tensor& w) { return w + 0.5 * torch::randn_like(w); });
  auto ids = Ids(2, 8, cfg["vocab_size"].get<int64_t>(), 9);
  Result plain = TrainPass(*model, ids, false, 42);
  Result ckpt = TrainPass(*model, ids, true, 42);
  ExpectSame(plain, ckpt, 1e-12);
  // The generator continues after the forward's draws, as without checkpointing.
  torch::manual_seed(42);
  TrainPass(*model, ids, false, 42);
  const double after_plain = torch::rand({1}, torch::kFloat64).item<double>();
  TrainPass(*model, ids, true, 42);
  const double after_ckpt = torch::rand({1}, torch::kFloat64).item<double>();
  EXPECT_EQ(after_plain, after_ckpt);
}

TEST(ActivationCheckpoint, GradientHooksFireOncePerParameter) {
  auto cfg = testing::TinyConfig("llama");
  auto model = testing::RandomModel(cfg, 17, torch::kFloat32);
  std::map<std::string, int> calls;
  for (auto& np : model->named_parameters()) {
    const std::string name = np.key();
    np.value().register_hook([&calls, name](const torch::Tensor&) { ++calls[name]; });
  }
  auto ids = Ids(1, 6, cfg["vocab_size"].get<int64_t>(), 2);
  Loss(CheckpointedForward(*model, ids), ids).backward();
  EXPECT_EQ(calls.size(), model->parameters().size());
  for (const auto& [name, n] : calls) EXPECT_EQ(n, 1) << name;
}

TEST(ActivationCheckpoint, WithoutGradModeItIsThePlainForward) {
  auto cfg = testing::TinyConfig("qwen2");
  auto model = testing::RandomModel(cfg, 19, torch::kFloat32);
  auto ids = Ids(2, 7, cfg["vocab_size"].get<int64_t>(), 4);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(CheckpointedForward(*model, ids), model->forward(ids)));
}

// Through the training loop (ProxSparse, one rank): checkpointing, the offloaded optimizer and
// both give the plain run's weights, masks and loss bit for bit (CPU: the rerun computes the same
// numbers; the offloaded AdamW is the same CPU arithmetic on a copy of the master), with the
// serial and the overlapped update, fp32 and a bf16 model with fp32 masters.
TEST(ActivationCheckpoint, TrainLoopGivesThePlainRunsWeightsAndMasks) {
  auto comm = MakeLocalCommunicator();
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (bool overlap : {false, true}) {
      testing::OverlapCase c;
      c.dtype = dtype;
      c.lambda2 = 0.5;
      c.grad_accum = 2;
      c.overlap_update = overlap;
      const testing::OverlapRun plain = testing::RunOverlapCase(*comm, c);
      for (int mode = 1; mode < 4; ++mode) {
        testing::OverlapCase m = c;
        m.activation_checkpointing = (mode & 1) != 0;
        m.offload = (mode & 2) != 0;
        const testing::OverlapRun run = testing::RunOverlapCase(*comm, m);
        const std::string what = std::string(dtype == torch::kFloat32 ? "fp32" : "bf16") +
                                 " overlap " + std::to_string(overlap) + " ckpt " +
                                 std::to_string(m.activation_checkpointing) + " offload " +
                                 std::to_string(m.offload);
        ASSERT_EQ(plain.weights.size(), run.weights.size());
        for (size_t i = 0; i < run.weights.size(); ++i) {
          EXPECT_TRUE(torch::equal(plain.weights[i], run.weights[i])) << what << " weight " << i;
          EXPECT_TRUE(torch::equal(plain.masks[i], run.masks[i])) << what << " mask " << i;
        }
        EXPECT_EQ(plain.final_loss, run.final_loss) << what;
      }
    }
  }
}

}  // namespace
}  // namespace ps
