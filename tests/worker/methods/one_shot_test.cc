#include "worker/methods/one_shot.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <limits>

#include "common/error.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

TEST(Magnitude, KeepsLargestAbsWeights) {
  auto w = torch::tensor({{0.3f, -0.9f, 0.1f, 0.5f}, {-2.f, 1.f, 1.f, 0.f}});
  auto m = MagnitudeMask(w, k2of4);
  EXPECT_TRUE(m.equal(torch::tensor({{false, true, false, true}, {true, true, false, false}})));
}

TEST(ColumnNormStats, StreamsExactSums) {
  torch::manual_seed(0);
  auto x = torch::randn({3, 5, 8});
  ColumnNormStats st(8, torch::kCPU);
  st.Add(x.slice(0, 0, 1));
  st.Add(x.slice(0, 1, 3).to(torch::kBFloat16).to(torch::kFloat32));  // any float dtype
  st.Add(x.slice(0, 1, 3) * 0);                                       // zeros still count tokens
  EXPECT_EQ(st.tokens(), 25);
  auto want =
      torch::cat({x.slice(0, 0, 1).reshape({-1, 8}),
                  x.slice(0, 1, 3).to(torch::kBFloat16).to(torch::kFloat32).reshape({-1, 8})})
          .to(torch::kFloat64)
          .norm(2, 0);
  EXPECT_TRUE(torch::allclose(st.Norms(), want, 1e-12, 1e-12));
  EXPECT_THROW(st.Add(torch::zeros({2, 7})), Error);
}

TEST(HessianStats, IsTwoXtXOverN) {
  torch::manual_seed(0);
  auto x = torch::randn({2, 6, 8}, torch::kFloat64);
  HessianStats hs(8, torch::kCPU);
  hs.Add(x[0]);
  hs.Add(x[1].unsqueeze(0));
  auto flat = x.reshape({-1, 8});
  EXPECT_TRUE(torch::allclose(hs.Hessian(), 2.0 * flat.t().mm(flat) / 12.0));
  EXPECT_EQ(hs.tokens(), 12);
  HessianStats empty(4, torch::kCPU);
  EXPECT_THROW(empty.Hessian(), Error);
}

// Simulated all-reduce: two "ranks" with half the data each, summed, equal one rank with all.
TEST(CalibStats, RawSumsAllReduce) {
  torch::manual_seed(2);
  auto x = torch::randn({10, 8});
  ColumnNormStats a(8, torch::kCPU), b(8, torch::kCPU), all(8, torch::kCPU);
  a.Add(x.slice(0, 0, 4));
  b.Add(x.slice(0, 4));
  all.Add(x);
  a.sum_sq() += b.sum_sq();
  a.count() += b.count();
  EXPECT_TRUE(torch::allclose(a.Norms(), all.Norms()));
  EXPECT_EQ(a.tokens(), 10);
}

TEST(Wanda, MatchesBruteForceRandomAndAdversarial) {
  torch::manual_seed(4);
  for (NMPattern p : {k2of4, k1of4, NMPattern{4, 8}}) {
    const int64_t in = 8 * p.m;
    auto w = torch::randn({11, in}, torch::kFloat64);
    auto x = torch::randn({40, in}, torch::kFloat64);
    // Adversarial: a dead input column, a huge one, a tiny one, tied weights, zero weights.
    x.select(1, 1).zero_();
    x.select(1, 2).mul_(1e30);
    x.select(1, 3).mul_(1e-30);
    w.select(0, 0).fill_(0.5);
    w.select(0, 1).zero_();
    x.slice(1, 4, 8).copy_(x.select(1, 4).unsqueeze(1).expand({40, 4}));  // equal column norms
    ColumnNormStats st(in, torch::kCPU);
    st.Add(x.slice(0, 0, 17));
    st.Add(x.slice(0, 17));
    auto fast = WandaMask(w, st.Norms(), p);
    auto ref = WandaMaskReference(w, x, p);
    EXPECT_TRUE(fast.equal(ref)) << p.ToString();
    EXPECT_TRUE(IsNMSparse(fast, p));
  }
}

TEST(Wanda, ScoreIsWeightTimesColumnNorm) {
  auto w = torch::tensor({{1.f, -2.f, 3.f, -4.f}});
  auto n = torch::tensor({4.f, 1.f, 1.f, 0.5f});
  EXPECT_TRUE(WandaScore(w, n).equal(torch::tensor({{4.f, 2.f, 3.f, 2.f}})));
  // 4, 2, 3, 2 -> keep columns 0 and 2 (not 3: |W| alone would keep 2 and 3).
  EXPECT_TRUE(WandaMask(w, n, k2of4).equal(torch::tensor({{true, false, true, false}})));
  EXPECT_THROW(WandaMask(w, torch::ones({3}), k2of4), Error);
  auto nan = n.clone();
  nan[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(WandaMask(w, nan, k2of4), Error);
}

}  // namespace
}  // namespace ps
