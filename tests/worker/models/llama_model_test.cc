// The decoder against an independent fp64 re-implementation, plus the API pruning code relies on:
// HF names, target enumeration, input hooks, weight transforms, gradients, layer-at-a-time
// execution and the KV cache.
#include "worker/models/llama_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/models/attention.h"

namespace ps {
namespace {

using testing::RandomModel;
using testing::TinyConfig;

torch::Tensor P(LlamaForCausalLM& m, const std::string& name) {
  for (auto& item : m.named_parameters()) {
    if (item.key() == name) return item.value().detach().to(torch::kFloat64);
  }
  return {};
}

// Straight from the definitions, fp64, no shared code with the modules except the naive attention.
torch::Tensor ReferenceLogits(LlamaForCausalLM& m, const torch::Tensor& ids) {
  const auto& c = m.config();
  int64_t T = ids.size(1), D = c.head_dim;
  auto rms = [&](const torch::Tensor& x, const torch::Tensor& w) {
    return x / torch::sqrt(x.pow(2).mean(-1, true) + c.rms_norm_eps) * w;
  };
  auto lin = [&](const torch::Tensor& x, const std::string& name, bool bias) {
    auto y = torch::matmul(x, P(m, name + ".weight").t());
    return bias ? y + P(m, name + ".bias") : y;
  };
  // Rotation of halves: (a, b) at (i, i + D/2) by angle pos * inv_freq_i.
  auto inv = torch::empty({D / 2}, torch::kFloat64);
  for (int64_t i = 0; i < D / 2; ++i) {
    inv[i] = RopeInvFreq(c.rope, D)[i].item<double>();
  }
  auto ang = torch::outer(torch::arange(T, torch::kFloat64), inv);  // [T, D/2]
  auto rope = [&](const torch::Tensor& x) {                         // [B, H, T, D]
    auto a = x.narrow(-1, 0, D / 2), b = x.narrow(-1, D / 2, D / 2);
    return torch::cat({a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()}, -1);
  };
  auto h =
      P(m, "model.embed_tokens.weight").index_select(0, ids.flatten()).view({ids.size(0), T, -1});
  int64_t B = ids.size(0);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    auto x = rms(h, P(m, p + "input_layernorm.weight"));
    auto q = lin(x, p + "self_attn.q_proj", c.qkv_bias).view({B, T, -1, D}).transpose(1, 2);
    auto k = lin(x, p + "self_attn.k_proj", c.qkv_bias).view({B, T, -1, D}).transpose(1, 2);
    auto v = lin(x, p + "self_attn.v_proj", c.qkv_bias).view({B, T, -1, D}).transpose(1, 2);
    auto a = NaiveCausalAttention(rope(q), rope(k), v, c.sliding_window);
    h = h + lin(a.transpose(1, 2).reshape({B, T, -1}), p + "self_attn.o_proj", c.o_bias);
    x = rms(h, P(m, p + "post_attention_layernorm.weight"));
    auto g = lin(x, p + "mlp.gate_proj", c.mlp_bias);
    h = h + lin(g * torch::sigmoid(g) * lin(x, p + "mlp.up_proj", c.mlp_bias), p + "mlp.down_proj",
                c.mlp_bias);
  }
  h = rms(h, P(m, "model.norm.weight"));
  auto head = c.tie_word_embeddings ? P(m, "model.embed_tokens.weight") : P(m, "lm_head.weight");
  return torch::matmul(h, head.t());
}

class ModelVsReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelVsReference, LogitsMatch) {
  auto model = RandomModel(TinyConfig(GetParam()), 11);
  auto ids = torch::randint(0, 97, {2, 13}, torch::kInt64);
  torch::NoGradGuard no_grad;
  auto got = model->forward(ids).to(torch::kFloat64);
  auto want = ReferenceLogits(*model, ids);
  double rel = ((got - want).abs().max() / want.abs().max()).item<double>();
  EXPECT_LT(rel, 1e-5) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Families, ModelVsReference,
                         ::testing::Values("llama", "mistral", "qwen2", "llama3"));

TEST(LlamaModel, HfParameterNames) {
  auto model = RandomModel(TinyConfig("qwen2"), 1);
  std::vector<std::string> names;
  for (auto& item : model->named_parameters()) names.push_back(item.key());
  auto has = [&](const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  EXPECT_TRUE(has("model.embed_tokens.weight"));
  EXPECT_TRUE(has("model.layers.1.self_attn.q_proj.weight"));
  EXPECT_TRUE(has("model.layers.1.self_attn.q_proj.bias"));
  EXPECT_FALSE(has("model.layers.1.self_attn.o_proj.bias"));
  EXPECT_TRUE(has("model.layers.0.mlp.down_proj.weight"));
  EXPECT_TRUE(has("model.layers.0.post_attention_layernorm.weight"));
  EXPECT_TRUE(has("model.norm.weight"));
  EXPECT_FALSE(has("lm_head.weight"));  // tied
  auto untied = RandomModel(TinyConfig("llama"), 1);
  EXPECT_NE(untied->lm_head, nullptr);
  EXPECT_EQ(untied->linear("lm_head").out_features(), 97);
}

TEST(LlamaModel, TargetsInLayerOrderWithHfNames) {
  auto model = RandomModel(TinyConfig("mistral"), 1);
  auto targets = model->TargetLinears();
  ASSERT_EQ(targets.size(), 14u);
  auto names = TargetLinearNames(1);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(targets[7 + i]->path(), names[i]);
  EXPECT_EQ(targets[0]->path(), "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(targets[1]->out_features(), 16);  // k_proj: 2 kv heads x 8
  EXPECT_EQ(&model->linear("model.layers.1.mlp.up_proj"), targets[12].get());
  EXPECT_THROW(model->linear("model.layers.9.mlp.up_proj"), Error);
}

TEST(LlamaModel, InputHookSeesEveryTargetInput) {
  auto model = RandomModel(TinyConfig("llama"), 2);
  std::map<std::string, std::vector<int64_t>> seen;
  model->SetInputHook(
      [&](const std::string& name, const torch::Tensor& x) { seen[name] = x.sizes().vec(); });
  torch::NoGradGuard no_grad;
  model->forward(torch::randint(0, 97, {3, 5}, torch::kInt64));
  EXPECT_EQ(seen.size(), 14u);
  EXPECT_EQ(seen["model.layers.0.self_attn.q_proj"], (std::vector<int64_t>{3, 5, 32}));
  EXPECT_EQ(seen["model.layers.1.mlp.down_proj"], (std::vector<int64_t>{3, 5, 48}));
  model->SetInputHook({});
  seen.clear();
  model->forward(torch::randint(0, 97, {1, 4}, torch::kInt64));
  EXPECT_TRUE(seen.empty());
}

TEST(LlamaModel, ReplaceWeightAndTransformChangeOutput) {
  auto model = RandomModel(TinyConfig("llama"), 3);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 97, {1, 6}, torch::kInt64);
  auto base = model->forward(ids);
  auto& q = model->linear("model.layers.0.mlp.gate_proj");
  auto saved = q.weight.clone();
  // A transform that keeps the weight leaves the output bit-identical; zeroing changes it.
  q.set_weight_transform([](const torch::Tensor& w) { return w * 1.0; });
  EXPECT_TRUE(torch::equal(model->forward(ids), base));
  q.set_weight_transform({});
  q.ReplaceWeight(torch::zeros_like(saved));
  EXPECT_FALSE(torch::allclose(model->forward(ids), base));
  q.ReplaceWeight(saved);
  EXPECT_TRUE(torch::equal(model->forward(ids), base));
  EXPECT_THROW(q.ReplaceWeight(torch::zeros({2, 2})), Error);
}

TEST(LlamaModel, GradientsReachTargetsAndMasks) {
  auto model = RandomModel(TinyConfig("qwen2"), 4);
  auto ids = torch::randint(0, 97, {2, 8}, torch::kInt64);
  auto mask = torch::ones({16, 32}, torch::requires_grad());
  model->linear("model.layers.1.self_attn.k_proj")
      .set_weight_transform([&](const torch::Tensor& w) { return w * mask; });
  auto loss = model->forward(ids).pow(2).mean();
  loss.backward();
  auto g = model->linear("model.layers.0.self_attn.q_proj").weight.grad();
  ASSERT_TRUE(g.defined());
  EXPECT_GT(g.abs().sum().item<float>(), 0);
  ASSERT_TRUE(mask.grad().defined());
  EXPECT_GT(mask.grad().abs().sum().item<float>(), 0);
}

TEST(LlamaModel, LayerAtATimeEqualsForward) {
  auto model = RandomModel(TinyConfig("mistral"), 5);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 97, {2, 9}, torch::kInt64);
  auto h = model->Embed(ids);
  auto rope = model->Rope(0, 9);
  for (int64_t i = 0; i < model->num_layers(); ++i) h = model->layer(i).forward(h, rope);
  EXPECT_TRUE(torch::equal(model->Logits(model->FinalNorm(h)), model->forward(ids)));
}

TEST(LlamaModel, KvCacheMatchesFullForward) {
  for (const char* kind : {"llama", "mistral", "qwen2"}) {
    auto model = RandomModel(TinyConfig(kind), 6);
    torch::NoGradGuard no_grad;
    auto ids = torch::randint(0, 97, {2, 10}, torch::kInt64);
    auto full = model->forward(ids);
    KvCache cache;
    auto first = model->forward(ids.narrow(1, 0, 6), &cache);
    auto rest = model->forward(ids.narrow(1, 6, 3), &cache);
    auto last = model->forward(ids.narrow(1, 9, 1), &cache);
    EXPECT_EQ(cache.length(), 10);
    auto stitched = torch::cat({first, rest, last}, 1);
    EXPECT_LT((stitched - full).abs().max().item<float>(), 1e-5) << kind;
  }
}

TEST(LlamaModel, SlidingWindowMasksFarKeys) {
  auto j = TinyConfig("mistral");
  j["sliding_window"] = 3;
  auto model = RandomModel(j, 8);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 97, {1, 12}, torch::kInt64);
  auto want = ReferenceLogits(*model, ids);
  auto got = model->forward(ids).to(torch::kFloat64);
  EXPECT_LT(((got - want).abs().max() / want.abs().max()).item<double>(), 1e-5);
  // Changing the first token cannot affect the last position's logits through 2 layers of
  // window 3 (receptive field 1 + 2*2 positions).
  auto ids2 = ids.clone();
  ids2[0][0] = (ids[0][0].item<int64_t>() + 1) % 97;
  auto a = model->forward(ids).select(1, 11), b = model->forward(ids2).select(1, 11);
  EXPECT_TRUE(torch::allclose(a, b));
}

TEST(LlamaModel, Bf16RunsAndStaysClose) {
  auto model32 = RandomModel(TinyConfig("llama"), 9);
  auto model16 = RandomModel(TinyConfig("llama"), 9, torch::kBFloat16);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, 97, {1, 8}, torch::kInt64);
  auto a = model32->forward(ids);
  auto b = model16->forward(ids);
  EXPECT_EQ(b.scalar_type(), torch::kBFloat16);
  EXPECT_LT((a - b.to(torch::kFloat32)).abs().max().item<float>(),
            0.1 * a.abs().max().item<float>());
}

}  // namespace
}  // namespace ps
