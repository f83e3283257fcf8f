#include "worker/methods/nm_mask.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <limits>

#include "common/error.h"

namespace ps {
namespace {

TEST(TopNMask, KeepsLargestMagnitudes) {
  auto s = torch::tensor({{0.1, -3.0, 2.0, 0.5, 1.0, 0.0, -1.5, 0.2}}, torch::kFloat32);
  auto m = TopNMask(s, k2of4);
  auto want = torch::tensor({{false, true, true, false, true, false, true, false}});
  EXPECT_TRUE(m.equal(want));
  auto m1 = TopNMask(s, k1of4);
  EXPECT_TRUE(m1.equal(torch::tensor({{false, true, false, false, false, false, true, false}})));
}

TEST(TopNMask, TiesGoToLowerIndex) {
  auto s = torch::tensor(
      {{1.0, 1.0, 1.0, 1.0}, {0.0, 0.0, 0.0, 0.0}, {2.0, -2.0, 2.0, 1.0}, {0.0, 5.0, 0.0, 0.0}});
  auto m = TopNMask(s, k2of4);
  auto want = torch::tensor({{true, true, false, false},
                             {true, true, false, false},
                             {true, true, false, false},
                             {true, true, false, false}});
  EXPECT_TRUE(m.equal(want)) << m;
}

TEST(TopNMask, MatchesReferenceOnRandomAndAdversarial) {
  torch::manual_seed(1);
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}, NMPattern{4, 8}, NMPattern{3, 4}}) {
    auto s = torch::randn({37, 16 * p.m});
    // Adversarial: many exact ties, zeros, signed zeros, huge and tiny values, infinities.
    auto adv = torch::randint(-2, 3, {37, 16 * p.m}).to(torch::kFloat32);
    adv.index_put_({0}, 1e-38);
    adv.index_put_({1}, -0.0);
    adv.index_put_({2, 3}, std::numeric_limits<float>::infinity());
    adv.index_put_({3}, 3e38);
    for (const auto& t : {s, adv, s.to(torch::kFloat64), s.to(torch::kBFloat16)}) {
      auto fast = TopNMask(t, p);
      auto ref = TopNMaskReference(t.to(torch::kFloat32), p);
      ASSERT_TRUE(fast.equal(ref)) << p.ToString();
      EXPECT_EQ(CountNMViolations(fast, p), 0);
      EXPECT_EQ(fast.sum().item<int64_t>(), t.numel() / p.m * p.n);
    }
  }
}

TEST(TopNMask, Errors) {
  auto nan = torch::zeros({2, 8});
  nan.index_put_({1, 5}, std::numeric_limits<float>::quiet_NaN());
  EXPECT_THROW(TopNMask(nan, k2of4), Error);
  EXPECT_THROW(TopNMask(torch::zeros({2, 6}), k2of4), Error);  // 6 % 4 != 0
  EXPECT_THROW(TopNMask(torch::zeros({8}), k2of4), Error);     // not 2-D
  EXPECT_THROW(TopNMask(torch::zeros({2, 8}), NMPattern{4, 4}), Error);
  EXPECT_THROW(TopNMaskReference(nan, k2of4), Error);
}

TEST(GroupStats, CountsEachKind) {
  // groups: 2 nz, 0 nz, 3 nz, 4 nz, 1 nz, 3 nz
  auto w = torch::tensor({{1., 0., 2., 0., 0., 0., 0., 0., 1., 1., 1., 0.},
                          {1., 2., 3., 4., 0., 0., 0., 5., 1., -0., 2., 3.}});
  auto st = ComputeGroupStats(w, k2of4);
  EXPECT_EQ(st.groups, 6);
  EXPECT_EQ(st.at_most_n, 3);
  EXPECT_EQ(st.between, 2);
  EXPECT_EQ(st.dense, 1);
  EXPECT_DOUBLE_EQ(st.frac_at_most_n() + st.frac_between() + st.frac_dense(), 1.0);
  EXPECT_EQ(CountNMViolations(w, k2of4), 3);
  EXPECT_FALSE(IsNMSparse(w, k2of4));
  EXPECT_EQ(CountNMViolations(w.ne(0), k2of4), 3);  // bool masks count the same
  auto st1 = ComputeGroupStats(w, k1of4);
  EXPECT_EQ(st1.at_most_n, 2);
  EXPECT_EQ(st1.dense, 1);
  EXPECT_EQ(st1.between, 3);
}

TEST(MaskFlips, CountsDifferences) {
  auto a = torch::tensor({{true, false, true, false}});
  auto b = torch::tensor({{false, false, true, true}});
  EXPECT_EQ(CountMaskFlips(a, b), 2);
  EXPECT_EQ(CountMaskFlips(a, a), 0);
  EXPECT_THROW(CountMaskFlips(a, b.view({2, 2})), Error);
}

TEST(ApplyMask, KeepsBitsAndZerosRest) {
  auto w = torch::tensor({{-1.5f, 2.0f, -3.0f, 4.0f}});
  auto m = torch::tensor({{true, false, false, true}});
  auto out = ApplyMask(w, m);
  EXPECT_TRUE(out.equal(torch::tensor({{-1.5f, 0.0f, 0.0f, 4.0f}})));
  EXPECT_FALSE(std::signbit(out[0][2].item<float>()));  // +0, not -0
}

TEST(PackBits, RoundTripsAndKnownLayout) {
  auto m = torch::tensor({{true, false, false, false, false, false, false, false, true, true}});
  auto packed = PackMaskBits(m);
  ASSERT_EQ(packed.numel(), 2);
  EXPECT_EQ(packed[0].item<uint8_t>(), 1);
  EXPECT_EQ(packed[1].item<uint8_t>(), 3);
  EXPECT_TRUE(UnpackMaskBits(packed, {1, 10}).equal(m));
  torch::manual_seed(3);
  for (int64_t n : {1, 7, 8, 9, 64, 1001}) {
    auto r = torch::rand({n}) > 0.5;
    EXPECT_TRUE(UnpackMaskBits(PackMaskBits(r), {n}).equal(r)) << n;
  }
  EXPECT_THROW(UnpackMaskBits(packed, {1, 17}), Error);  // wrong byte count
  auto bad = packed.clone();
  bad[1] = 0xff;  // padding bits set
  EXPECT_THROW(UnpackMaskBits(bad, {1, 10}), Error);
}

TEST(NMMask, PackedMaskFlipsCountTheBoolMaskFlips) {
  torch::manual_seed(7);
  // Sizes that are and are not multiples of 8, all-equal and all-different masks.
  for (const auto& shape : std::vector<std::vector<int64_t>>{{4, 8}, {3, 12}, {1, 4}, {5, 20}}) {
    const torch::Tensor a = torch::rand(shape) > 0.5;
    const torch::Tensor b = torch::rand(shape) > 0.5;
    const torch::Tensor pa = PackMaskBits(a), pb = PackMaskBits(b);
    EXPECT_EQ(pa.scalar_type(), torch::kUInt8);
    EXPECT_EQ(pa.numel(), (a.numel() + 7) / 8);
    EXPECT_EQ(CountPackedMaskFlips(pa, pb), CountMaskFlips(a, b));
    EXPECT_EQ(CountPackedMaskFlips(pa, pa), 0);
    EXPECT_EQ(CountPackedMaskFlips(pa, PackMaskBits(a.logical_not())), a.numel());
  }
  // Bit k % 8 of byte k / 8 is entry k.
  const torch::Tensor one = torch::zeros({2, 8}, torch::kBool).index_put_({1, 2}, true);
  const torch::Tensor p = PackMaskBits(one);
  EXPECT_EQ(p[0].item<int>(), 0);
  EXPECT_EQ(p[1].item<int>(), 4);
  EXPECT_THROW(CountPackedMaskFlips(p, PackMaskBits(torch::ones({3, 8}, torch::kBool))), Error);
}

}  // namespace
}  // namespace ps
