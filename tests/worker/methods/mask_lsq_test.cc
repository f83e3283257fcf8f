#include "worker/methods/mask_lsq.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <limits>

#include "common/error.h"
#include "tests/worker/methods/layer_fixtures.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/sparsegpt.h"

namespace ps {
namespace {

using testing::RandomHessian;
using testing::RandomMask;

// ½ tr((Ŵ − W) H (Ŵ − W)ᵀ) with H damped as SparseGPT damps it (dead columns: W's zeroed).
double DampedHalfError(const torch::Tensor& W, const torch::Tensor& What, const torch::Tensor& H,
                       double percdamp = 0.01) {
  auto [W0, Hd] = SparseGptPrepare(W, H, k2of4, percdamp, torch::kFloat64, "test");
  auto d = What.to(torch::kFloat64) - W0;
  return d.mm(Hd).mul(d).sum().item<double>() / 2;
}

void ExpectSame(const SparseGptResult& a, const SparseGptResult& b, double tol) {
  ASSERT_TRUE(a.mask.equal(b.mask));
  const double scale = 1 + b.weight.abs().max().item<double>();
  EXPECT_LE((a.weight.to(torch::kFloat64) - b.weight).abs().max().item<double>(), tol * scale);
  EXPECT_NEAR(a.loss, b.loss, tol * (1 + std::abs(b.loss)));
}

TEST(MaskedLeastSquares, MatchesRowByRowReference) {
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
    const int64_t in = 12 * p.m;
    auto H = RandomHessian(in, 3 * in, 51);
    torch::manual_seed(52);
    auto W = torch::randn({9, in}, torch::kFloat64);
    auto mask = RandomMask(9, in, p, 53);
    SparseGptOptions o;
    o.dtype = torch::kFloat64;
    auto fast = MaskedLeastSquares(W, H, mask, p, o);
    auto ref = MaskedLeastSquaresReference(W, H, mask, p);
    ExpectSame(fast, ref, 1e-9);
    EXPECT_EQ(fast.weight.masked_select(mask.logical_not()).abs().max().item<double>(), 0);
    // fp32, as a job runs it.
    o.dtype = torch::kFloat32;
    auto f32 = MaskedLeastSquares(W.to(torch::kFloat32), H.to(torch::kFloat32), mask, p, o);
    ExpectSame(f32, ref, 1e-3);
  }
}

// The exact solve is the minimum of the objective the OBS update approximates: zero gradient on
// the kept weights, and a layer error never above the OBS update's on the same mask (strictly
// below on random masks; on SparseGPT's own mask too).
TEST(MaskedLeastSquares, OptimalAndBelowTheObsUpdate) {
  const int64_t in = 64;
  auto H = RandomHessian(in, 200, 61);
  torch::manual_seed(62);
  auto W = torch::randn({16, in}, torch::kFloat64);
  SparseGptOptions o;
  o.dtype = torch::kFloat64;
  auto own = SparseGptPrune(W, H, k2of4, o).mask;
  for (const auto& mask : {RandomMask(16, in, k2of4, 63), own}) {
    auto lsq = MaskedLeastSquares(W, H, mask, k2of4, o);
    auto obs = SparseGptReconstruct(W, H, mask, k2of4, o);
    // SparseGPT's reported loss is the same quantity (so the two compare like for like).
    EXPECT_NEAR(obs.loss, DampedHalfError(W, obs.weight, H), 1e-8 * obs.loss);
    EXPECT_NEAR(lsq.loss, DampedHalfError(W, lsq.weight, H), 1e-8 * lsq.loss);
    EXPECT_LT(lsq.loss, obs.loss * (1 - 1e-3));
    auto [W0, Hd] = SparseGptPrepare(W, H, k2of4, 0.01, torch::kFloat64, "test");
    auto grad = (lsq.weight - W0).mm(Hd);
    EXPECT_LE(grad.masked_select(mask).abs().max().item<double>(),
              1e-9 * Hd.abs().max().item<double>() * W.abs().max().item<double>());
  }
}

// With H = I the objective is separable: the kept weights stay the original ones.
TEST(MaskedLeastSquares, IdentityHessianKeepsTheKeptWeights) {
  torch::manual_seed(71);
  auto W = torch::randn({5, 16}, torch::kFloat64);
  auto mask = RandomMask(5, 16, k2of4, 72);
  SparseGptOptions o;
  o.dtype = torch::kFloat64;
  auto r = MaskedLeastSquares(W, torch::eye(16, torch::kFloat64), mask, k2of4, o);
  EXPECT_TRUE(torch::allclose(r.weight, ApplyMask(W, mask), 1e-12, 1e-12));
}

TEST(MaskedLeastSquares, DeadColumnsTiesScalesAndUnevenRows) {
  const int64_t in = 32;
  for (double scale : {1e-12, 1.0, 1e12}) {
    auto [H, W, mask] = testing::MakeAdversarialLayer(in, scale, 81);
    mask.select(0, 4).slice(0, 0, 8).fill_(false);  // a row keeping fewer than N per group
    mask.select(0, 5).fill_(false);                 // a row keeping nothing
    for (auto dtype : {torch::kFloat64, torch::kFloat32}) {
      SparseGptOptions o;
      o.dtype = dtype;
      auto fast = MaskedLeastSquares(W.to(dtype), H.to(dtype), mask, k2of4, o);
      auto ref = MaskedLeastSquaresReference(W, H, mask, k2of4);
      ExpectSame(fast, ref, dtype == torch::kFloat64 ? 1e-8 : 1e-3);
      testing::ExpectKeepsAdversarialLayer(fast.weight, fast.mask, mask);
      EXPECT_EQ(fast.weight.select(0, 5).abs().max().item<double>(), 0.0);
    }
  }
}

TEST(MaskedLeastSquares, Errors) {
  auto W = torch::randn({4, 8});
  auto H = torch::eye(8);
  auto ok = TopNMask(W, k2of4);
  EXPECT_NO_THROW(MaskedLeastSquares(W, H, ok, k2of4));
  EXPECT_THROW(MaskedLeastSquares(W, H, ok.to(torch::kFloat32), k2of4), Error);  // not bool
  EXPECT_THROW(MaskedLeastSquares(W, H, ok.slice(0, 0, 3), k2of4), Error);       // shape
  auto three = ok.clone();
  three.slice(1, 0, 3).fill_(true);  // 3 of 4 kept in every first group
  EXPECT_THROW(MaskedLeastSquares(W, H, three, k2of4), Error);
  EXPECT_THROW(MaskedLeastSquaresReference(W, H, three, k2of4), Error);
  EXPECT_THROW(MaskedLeastSquares(W, torch::eye(6), ok, k2of4), Error);  // Hessian shape
  auto Wn = W.clone();
  Wn[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(MaskedLeastSquares(Wn, H, ok, k2of4), Error);
}

}  // namespace
}  // namespace ps
