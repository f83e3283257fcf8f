// The native packed layout from LibTorch tensors: exact round trips, the pruning helper, and the
// layout the decode kernel reads (values in position order, nibble per group).
#include "worker/sparse/native_pack.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "worker/models/llama_config.h"
#include "worker/sparse/random_model.h"

namespace ps::sparse {
namespace {

TEST(NativePack, RoundTripIsBitExactForEveryDtype) {
  torch::manual_seed(0);
  for (auto t : {torch::kBFloat16, torch::kFloat16, torch::kFloat32}) {
    auto w = PruneTwoFour(torch::randn({33, 48}).to(t));
    w.index_put_({0}, 0);  // an all-zero row: groups with no nonzeros
    const auto p = PackNative(w);
    EXPECT_EQ(p.values.sizes(), (std::vector<int64_t>{33, 24}));
    EXPECT_EQ(p.meta.sizes(), (std::vector<int64_t>{33, 6}));
    EXPECT_EQ(p.bytes(), 33 * 24 * w.element_size() + 33 * 6);
    const auto back = UnpackNative(p);
    EXPECT_EQ(back.scalar_type(), t);
    // Bitwise: compare the raw bytes, so -0.0 and NaN would count.
    EXPECT_TRUE(torch::equal(back.view(torch::kUInt8), w.contiguous().view(torch::kUInt8)));
  }
}

TEST(NativePack, LayoutIsValuesInPositionOrderAndNibbles) {
  // One row, two groups: [0, 5, 0, 7 | 9, 0, 0, 0].
  auto w = torch::tensor({0.f, 5.f, 0.f, 7.f, 9.f, 0.f, 0.f, 0.f}).reshape({1, 8});
  const auto p = PackNative(w);
  EXPECT_TRUE(torch::equal(p.values, torch::tensor({5.f, 7.f, 9.f, 0.f}).reshape({1, 4})));
  // Group 0 keeps 1,3 -> 0b1101; group 1 keeps 0,1 (padded with its first zero) -> 0b0100.
  EXPECT_EQ(p.meta[0][0].item<int>(), 0x4D);
}

TEST(NativePack, PruneTwoFourKeepsTheTwoLargestMagnitudes) {
  auto w = torch::tensor({1.f, -4.f, 3.f, 2.f, -1.f, -1.f, 0.5f, 0.f}).reshape({1, 8});
  const auto p = PruneTwoFour(w);
  EXPECT_TRUE(
      torch::equal(p, torch::tensor({0.f, -4.f, 3.f, 0.f, -1.f, -1.f, 0.f, 0.f}).reshape({1, 8})));
  // Pruned negatives become +0.0, never -0.0 (which would count as a kept value).
  EXPECT_FALSE(torch::signbit(p.select(1, 0)).item<bool>());
  auto r = PruneTwoFour(torch::randn({64, 128}));
  EXPECT_TRUE((r.reshape({-1, 4}).ne(0).sum(1) <= 2).all().item<bool>());
}

TEST(NativePack, OnDevicePackingEqualsTheCodec) {
  torch::manual_seed(1);
  for (auto t : {torch::kBFloat16, torch::kFloat16, torch::kFloat32}) {
    for (int64_t k : {4, 8, 12, 48, 100}) {  // odd group counts leave a half-used last byte
      auto w = PruneTwoFour(torch::randn({17, k})).to(t);
      // Adversarial groups: all zero, one nonzero at each position, -0.0 kept, -0.0 alone.
      auto row = w[0];
      row.zero_();
      if (k >= 8) row[5] = 2.f;
      if (k >= 12) row[11] = -3.f;
      w[1].zero_();
      w[1][0] = -0.f;
      if (k >= 8) {
        w[1][6] = -0.f;
        w[1][7] = 1.f;
      }
      const auto ref = PackNative(w);
      const auto got = PackNativeOnDevice(w);
      EXPECT_TRUE(torch::equal(got.values.view(torch::kUInt8), ref.values.view(torch::kUInt8)))
          << k;
      EXPECT_TRUE(torch::equal(got.meta, ref.meta)) << k;
      // Bit exact, with every zero as +0.0 (row 1 holds -0.0).
      const auto plus = w.masked_fill(w.eq(0), 0).contiguous();
      EXPECT_TRUE(torch::equal(UnpackNative(got).view(torch::kUInt8), plus.view(torch::kUInt8)));
    }
  }
}

// `W * mask` in torch leaves -0.0 where a negative weight was masked: both packers accept it,
// agree, store +0.0, and unpack to W * mask with +0.0 zeros.
TEST(NativePack, WTimesMaskWithNegativeZerosPacks) {
  torch::manual_seed(2);
  for (auto t : {torch::kBFloat16, torch::kFloat16, torch::kFloat32}) {
    const auto w = torch::randn({16, 64}).to(t);
    const auto mask = PruneTwoFour(w).ne(0);
    const auto wm = w * mask;
    ASSERT_GT(torch::signbit(wm).logical_and(wm.eq(0)).sum().item<int64_t>(), 100);
    const auto ref = PackNative(wm);
    const auto got = PackNativeOnDevice(wm);
    EXPECT_TRUE(torch::equal(got.values.view(torch::kUInt8), ref.values.view(torch::kUInt8)));
    EXPECT_TRUE(torch::equal(got.meta, ref.meta));
    EXPECT_EQ(torch::signbit(ref.values).logical_and(ref.values.eq(0)).sum().item<int64_t>(), 0);
    const auto plus = wm.masked_fill(wm.eq(0), 0).contiguous();
    EXPECT_TRUE(torch::equal(UnpackNative(ref).view(torch::kUInt8), plus.view(torch::kUInt8)));
  }
}

TEST(NativePack, OnDevicePackingNamesTheFirstDenseGroup) {
  auto w = torch::zeros({3, 16});
  w[2].narrow(0, 8, 3).fill_(1.f);  // row 2, group 2: three nonzeros
  try {
    PackNativeOnDevice(w);
    FAIL() << "a dense group was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 2 group 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(PackNativeOnDevice(torch::zeros({2, 6})), Error);
  EXPECT_THROW(PackNativeOnDevice(torch::zeros({8})), Error);
}

TEST(NativePack, DenseWeightIsAnError) {
  EXPECT_THROW(PackNative(torch::randn({4, 8})), Error);
  EXPECT_THROW(PackNative(torch::randn({4, 6})), Error);
  EXPECT_THROW(PackNative(torch::randn({8})), Error);
}

TEST(RandomSparseModel, TargetsAre24AndShapesAreNamed) {
  auto cfg = NamedShapeConfig("llama2-7b", 2);
  EXPECT_EQ(ParseLlamaConfig(cfg).num_hidden_layers, 2);
  EXPECT_EQ(ParseLlamaConfig(NamedShapeConfig("llama2-7b")).intermediate_size, 11008);
  EXPECT_THROW(NamedShapeConfig("llama9"), Error);
  EXPECT_THROW(NamedShapeConfig("llama2-7b", 33), Error);
  // A small model of the same kind, so the test stays fast.
  cfg["hidden_size"] = 64;
  cfg["intermediate_size"] = 96;
  cfg["num_attention_heads"] = 4;
  cfg["num_key_value_heads"] = 4;
  cfg["vocab_size"] = 50;
  auto m = RandomSparseModel(cfg, torch::dtype(torch::kBFloat16), 3);
  for (const auto& l : m->TargetLinears()) {
    const auto p = PackNativeOnDevice(l->weight);  // throws unless 2:4
    EXPECT_TRUE(torch::equal(UnpackNative(p), l->weight)) << l->path();
    EXPECT_GT(l->weight.ne(0).sum().item<int64_t>(), l->weight.numel() / 3) << l->path();
  }
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::isfinite(m->forward(torch::tensor({{1, 2, 3}}))).all().item<bool>());
}

}  // namespace
}  // namespace ps::sparse
