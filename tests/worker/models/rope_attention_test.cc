// RoPE against the direct formula, attention (MHA/GQA/MQA, offsets, windows) against the naive
// loop reference on random and adversarial inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "worker/models/attention.h"
#include "worker/models/rope.h"

namespace ps {
namespace {

TEST(Rope, InvFreqMatchesFormula) {
  RopeConfig r;
  r.theta = 10000.0;
  auto inv = RopeInvFreq(r, 64);
  ASSERT_EQ(inv.size(0), 32);
  for (int64_t i = 0; i < 32; ++i) {
    double want = 1.0 / std::pow(10000.0, 2.0 * static_cast<double>(i) / 64.0);
    EXPECT_NEAR(inv[i].item<float>(), want, 1e-6 * want + 1e-12) << i;
  }
  r.type = RopeType::kLinear;
  r.factor = 4.0;
  EXPECT_NEAR(RopeInvFreq(r, 64)[3].item<float>(), inv[3].item<float>() / 4.0, 1e-9);
}

TEST(Rope, Llama3ScalingMatchesPiecewiseDefinition) {
  RopeConfig r;
  r.type = RopeType::kLlama3;
  r.theta = 500000.0;
  r.factor = 8.0;
  r.low_freq_factor = 1.0;
  r.high_freq_factor = 4.0;
  r.original_max_position_embeddings = 8192;
  auto inv = RopeInvFreq(r, 128);
  for (int64_t i = 0; i < 64; ++i) {
    double f = 1.0 / std::pow(500000.0, 2.0 * static_cast<double>(i) / 128.0);
    double wavelen = 2 * M_PI / f, want;
    if (wavelen < 8192.0 / 4.0) {
      want = f;  // high frequency: kept
    } else if (wavelen > 8192.0 / 1.0) {
      want = f / 8.0;  // low frequency: scaled
    } else {
      double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * f / 8.0 + smooth * f;
    }
    EXPECT_NEAR(inv[i].item<float>(), want, 2e-6 * want) << i;
  }
}

TEST(Rope, ApplyMatchesRotationOfHalves) {
  torch::manual_seed(1);
  int64_t B = 2, H = 3, T = 7, D = 16, start = 5;
  RopeConfig r;
  r.theta = 10000.0;
  auto x = torch::randn({B, H, T, D});
  auto out = ApplyRope(x, ComputeRope(RopeInvFreq(r, D), start, T, torch::dtype(torch::kFloat32)));
  auto xa = x.accessor<float, 4>();
  auto oa = out.accessor<float, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < D / 2; ++i) {
          double angle = static_cast<double>(start + t) * std::pow(10000.0, -2.0 * i / D);
          double a = xa[b][h][t][i], c = xa[b][h][t][i + D / 2];
          EXPECT_NEAR(oa[b][h][t][i], a * std::cos(angle) - c * std::sin(angle), 1e-4);
          EXPECT_NEAR(oa[b][h][t][i + D / 2], c * std::cos(angle) + a * std::sin(angle), 1e-4);
        }
}

struct AttnCase {
  int64_t B, Hq, Hkv, T, S, D;
  std::optional<int64_t> window;
  double scale;  // input magnitude (large = adversarial for softmax)
};

class AttentionVsNaive : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionVsNaive, Matches) {
  const auto& c = GetParam();
  torch::manual_seed(7);
  auto q = torch::randn({c.B, c.Hq, c.T, c.D}) * c.scale;
  auto k = torch::randn({c.B, c.Hkv, c.S, c.D}) * c.scale;
  auto v = torch::randn({c.B, c.Hkv, c.S, c.D});
  auto got = CausalAttention(q, k, v, c.window);
  auto want = NaiveCausalAttention(q, k, v, c.window);
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
  EXPECT_LT((got - want).abs().max().item<float>(), 2e-5 * (1 + want.abs().max().item<float>()));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionVsNaive,
    ::testing::Values(AttnCase{2, 4, 4, 9, 9, 8, std::nullopt, 1.0},    // MHA
                      AttnCase{2, 6, 2, 9, 9, 8, std::nullopt, 1.0},    // GQA 3:1
                      AttnCase{1, 4, 1, 5, 5, 16, std::nullopt, 1.0},   // MQA
                      AttnCase{2, 6, 2, 3, 11, 8, std::nullopt, 1.0},   // cached prefix
                      AttnCase{2, 6, 2, 1, 11, 8, std::nullopt, 1.0},   // one decode step
                      AttnCase{1, 4, 2, 12, 12, 8, 4, 1.0},             // sliding window
                      AttnCase{1, 4, 2, 2, 12, 8, 4, 1.0},              // window + cache
                      AttnCase{1, 2, 1, 6, 6, 8, std::nullopt, 30.0},   // huge logits
                      AttnCase{1, 1, 1, 1, 1, 4, std::nullopt, 1.0}));  // single token

TEST(Attention, BadShapesAreErrors) {
  auto q = torch::randn({1, 3, 4, 8}), k = torch::randn({1, 2, 4, 8});
  EXPECT_ANY_THROW(CausalAttention(q, k, k));  // 3 query heads over 2 kv heads
  auto q2 = torch::randn({1, 2, 5, 8});
  EXPECT_ANY_THROW(CausalAttention(q2, k, k));  // more queries than keys
}

}  // namespace
}  // namespace ps
