#include "worker/methods/sparsegpt.h"

#include <gtest/gtest.h>
#include <torch/types.h>

#include <limits>

#include "common/error.h"
#include "tests/worker/methods/layer_fixtures.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

using testing::RandomHessian;
using testing::RandomMask;

void ExpectSame(const SparseGptResult& a, const SparseGptResult& b, double tol) {
  ASSERT_TRUE(a.mask.equal(b.mask));
  EXPECT_TRUE(torch::allclose(a.weight.to(torch::kFloat64), b.weight, tol, tol))
      << (a.weight.to(torch::kFloat64) - b.weight).abs().max();
  EXPECT_NEAR(a.loss, b.loss, tol * (1 + std::abs(b.loss)));
}

TEST(SparseGpt, BlockedMatchesColumnByColumnReference) {
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
    for (int64_t block : {p.m, 2 * p.m * 2, 128}) {
      const int64_t in = 12 * p.m;
      auto H = RandomHessian(in, 3 * in, 7);
      torch::manual_seed(8);
      auto W = torch::randn({9, in}, torch::kFloat64);
      SparseGptOptions o;
      o.blocksize = block;
      o.dtype = torch::kFloat64;
      auto fast = SparseGptPrune(W, H, p, o);
      auto ref = SparseGptPruneReference(W, H, p);
      ExpectSame(fast, ref, 1e-9);
      EXPECT_TRUE(IsNMSparse(fast.weight, p));
      EXPECT_EQ(fast.mask.sum().item<int64_t>(), W.numel() / p.m * p.n);
      // Pruned entries are exactly zero.
      EXPECT_EQ(fast.weight.masked_select(fast.mask.logical_not()).abs().max().item<double>(), 0);
    }
  }
}

TEST(SparseGpt, Fp32CloseToDoubleReference) {
  const int64_t in = 64;
  auto H = RandomHessian(in, 256, 11);
  torch::manual_seed(12);
  auto W = torch::randn({16, in});
  auto fast = SparseGptPrune(W, H.to(torch::kFloat32), k2of4);
  auto ref = SparseGptPruneReference(W, H, k2of4);
  // Masks may differ only where two scores are within float rounding; here none do.
  EXPECT_LE(CountMaskFlips(fast.mask, ref.mask), 0);
  EXPECT_TRUE(torch::allclose(fast.weight.to(torch::kFloat64), ref.weight, 1e-3, 1e-3));
}

TEST(SparseGpt, DeadColumnsTiesAndScales) {
  const int64_t in = 32;
  for (double scale : {1e-12, 1.0, 1e12}) {
    auto H = RandomHessian(in, 100, 5) * scale;
    // Dead columns: no input ever reached columns 3 and 17-19 (zero rows/cols of H).
    for (int64_t j : {3, 17, 18, 19}) {
      H.select(0, j).zero_();
      H.select(1, j).zero_();
    }
    torch::manual_seed(6);
    auto W = torch::randn({10, in}, torch::kFloat64);
    W.select(0, 0).fill_(1.0);  // tied weights
    W.select(0, 1).zero_();     // an all-zero row
    SparseGptOptions o;
    o.dtype = torch::kFloat64;
    o.blocksize = 8;
    auto fast = SparseGptPrune(W, H, k2of4, o);
    auto ref = SparseGptPruneReference(W, H, k2of4);
    ExpectSame(fast, ref, 1e-8);
    for (int64_t j : {3, 17, 18, 19}) {
      EXPECT_EQ(fast.weight.select(1, j).abs().max().item<double>(), 0.0) << j;
    }
    EXPECT_EQ(fast.weight.select(0, 1).abs().max().item<double>(), 0.0);
    EXPECT_TRUE(IsNMSparse(fast.weight, k2of4));
  }
}

TEST(SparseGpt, ScaleInvariant) {
  auto H = RandomHessian(32, 100, 9);
  torch::manual_seed(10);
  auto W = torch::randn({6, 32}, torch::kFloat64);
  SparseGptOptions o;
  o.dtype = torch::kFloat64;
  auto a = SparseGptPrune(W, H, k2of4, o);
  auto b = SparseGptPrune(W, H * 1000.0, k2of4, o);
  EXPECT_TRUE(a.mask.equal(b.mask));
  EXPECT_TRUE(torch::allclose(a.weight, b.weight, 1e-9, 1e-9));
}

TEST(SparseGpt, IdentityHessianIsMagnitudePruning) {
  // With H ∝ I there is nothing to compensate: the mask is top-|w| and kept weights are unchanged.
  torch::manual_seed(13);
  auto W = torch::randn({7, 16}, torch::kFloat64);
  auto r = SparseGptPrune(W, torch::eye(16, torch::kFloat64), k2of4,
                          {.blocksize = 8, .percdamp = 0.01, .dtype = torch::kFloat64});
  EXPECT_TRUE(r.mask.equal(TopNMask(W, k2of4)));
  EXPECT_TRUE(torch::allclose(r.weight, ApplyMask(W, r.mask), 1e-12, 1e-12));
}

TEST(SparseGpt, Errors) {
  auto W = torch::randn({4, 8});
  auto H = torch::eye(8);
  EXPECT_THROW(SparseGptPrune(W, torch::eye(7), k2of4), Error);
  EXPECT_THROW(SparseGptPrune(W, H, k2of4, {.blocksize = 6}), Error);
  auto Wn = W.clone();
  Wn[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(SparseGptPrune(Wn, H, k2of4), Error);
  auto Hi = H.clone();
  Hi[1][1] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(SparseGptPrune(W, Hi, k2of4), Error);
  // Indefinite even after 1% damping.
  auto Hneg = torch::eye(8);
  Hneg[2][2] = -5.0;
  EXPECT_THROW(SparseGptPrune(W, Hneg, k2of4), Error);
  EXPECT_THROW(SparseGptPrune(torch::randn({4, 6}), torch::eye(6), k2of4), Error);
}

// tr((W − Ŵ) H (W − Ŵ)ᵀ): the layer's output error over the calibration inputs.
double OutputError(const torch::Tensor& W, const torch::Tensor& What, const torch::Tensor& H) {
  auto d = (W.to(torch::kFloat64) - What.to(torch::kFloat64));
  return d.mm(H.to(torch::kFloat64)).mul(d).sum().item<double>();
}

TEST(SparseGptReconstruct, OwnMaskReproducesSparseGpt) {
  // Given SparseGPT's own mask, the fixed-mask update is SparseGPT's update (fp32 as in a job,
  // and fp64), for every pattern and blocksize.
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
      for (int64_t block : {p.m, 4 * p.m, 128}) {
        const int64_t in = 16 * p.m;
        auto H = RandomHessian(in, 3 * in, 21);
        torch::manual_seed(22);
        auto W = torch::randn({11, in}, dtype);
        SparseGptOptions o;
        o.blocksize = block;
        o.dtype = dtype;
        auto own = SparseGptPrune(W, H.to(dtype), p, o);
        auto fixed = SparseGptReconstruct(W, H.to(dtype), own.mask, p, o);
        ASSERT_TRUE(fixed.mask.equal(own.mask));
        const double scale = own.weight.abs().max().item<double>();
        EXPECT_LE((fixed.weight - own.weight).abs().max().item<double>(), 1e-6 * scale);
        EXPECT_NEAR(fixed.loss, own.loss, 1e-6 * std::abs(own.loss));
      }
    }
  }
}

TEST(SparseGptReconstruct, BlockedMatchesColumnByColumnReference) {
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}}) {
    for (int64_t block : {p.m, 4 * p.m, 128}) {
      const int64_t in = 12 * p.m;
      auto H = RandomHessian(in, 3 * in, 31);
      torch::manual_seed(32);
      auto W = torch::randn({9, in}, torch::kFloat64);
      auto mask = RandomMask(9, in, p, 33);
      SparseGptOptions o;
      o.blocksize = block;
      o.dtype = torch::kFloat64;
      auto fast = SparseGptReconstruct(W, H, mask, p, o);
      auto ref = SparseGptReconstructReference(W, H, mask, p);
      ExpectSame(fast, ref, 1e-9);
      EXPECT_TRUE(fast.mask.equal(mask));  // the mask is the one given, bit for bit
      EXPECT_EQ(fast.weight.masked_select(mask.logical_not()).abs().max().item<double>(), 0);
      // The kept weights did move (the update is not a no-op) ...
      EXPECT_GT((fast.weight - ApplyMask(W, mask)).abs().max().item<double>(), 1e-3);
      // ... and the layer's output error is below that of the mask on the original weights.
      EXPECT_LT(OutputError(W, fast.weight, H), OutputError(W, ApplyMask(W, mask), H));
    }
  }
}

TEST(SparseGptReconstruct, DeadColumnsTiesAndScales) {
  const int64_t in = 32;
  for (double scale : {1e-12, 1.0, 1e12}) {
    auto [H, W, mask] = testing::MakeAdversarialLayer(in, scale, 41);
    for (int64_t block : {4, 8, 128}) {
      SparseGptOptions o;
      o.dtype = torch::kFloat64;
      o.blocksize = block;
      auto fast = SparseGptReconstruct(W, H, mask, k2of4, o);
      auto ref = SparseGptReconstructReference(W, H, mask, k2of4);
      ExpectSame(fast, ref, 1e-8);
      testing::ExpectKeepsAdversarialLayer(fast.weight, fast.mask, mask);
    }
  }
}

TEST(SparseGptReconstruct, Errors) {
  auto W = torch::randn({4, 8});
  auto H = torch::eye(8);
  auto ok = TopNMask(W, k2of4);
  EXPECT_NO_THROW(SparseGptReconstruct(W, H, ok, k2of4));
  EXPECT_THROW(SparseGptReconstruct(W, H, ok.to(torch::kFloat32), k2of4), Error);  // not bool
  EXPECT_THROW(SparseGptReconstruct(W, H, ok.slice(0, 0, 3), k2of4), Error);       // shape
  auto three = ok.clone();
  three.slice(1, 0, 3).fill_(true);  // 3 of 4 kept in every first group
  EXPECT_THROW(SparseGptReconstruct(W, H, three, k2of4), Error);
  EXPECT_THROW(SparseGptReconstructReference(W, H, three, k2of4), Error);
  auto Wn = W.clone();
  Wn[0][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(SparseGptReconstruct(Wn, H, ok, k2of4), Error);
}

}  // namespace
}  // namespace ps
