// The native packed layout from LibTorch tensors: exact round trips, the pruning helper, and the
// layout the decode kernel reads (values in position order, nibble per group).
#include "worker/sparse/native_pack.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"

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

TEST(NativePack, DenseWeightIsAnError) {
  EXPECT_THROW(PackNative(torch::randn({4, 8})), Error);
  EXPECT_THROW(PackNative(torch::randn({4, 6})), Error);
  EXPECT_THROW(PackNative(torch::randn({8})), Error);
}

}  // namespace
}  // namespace ps::sparse
