// Shared inputs of the SparseGPT and masked least-squares tests: random calibration Hessians,
// random N:M masks, and one layer of adversarial cases.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdint>

#include "common/nm_pattern.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/nm_mask.h"

namespace ps::testing {

// The Hessian of `tokens` correlated random inputs (a random mixing), so kept weights can
// compensate pruned ones and updates propagate.
inline torch::Tensor RandomHessian(int64_t in, int64_t tokens, uint64_t seed) {
  torch::manual_seed(seed);
  auto x = torch::randn({tokens, in}, torch::kFloat64).mm(torch::randn({in, in}, torch::kFloat64));
  HessianStats hs(in, torch::kCPU);
  hs.Add(x);
  return hs.Hessian();
}

// A random mask with exactly N kept per group (top-N of random scores).
inline torch::Tensor RandomMask(int64_t rows, int64_t cols, NMPattern p, uint64_t seed) {
  torch::manual_seed(seed);
  return TopNMask(torch::rand({rows, cols}, torch::kFloat64), p);
}

// A 10 x `in` layer of adversarial cases with its Hessian (scaled by `scale`) and a 2:4 mask:
// dead input columns 2, 17, 18, 19 (one kept by the mask), tied weights in row 0, an all-zero
// row 1, a kept -0.0 in row 2, tied scores in row 3. Seeds seed, seed + 1, seed + 2.
struct AdversarialLayer {
  torch::Tensor H, W, mask;
};
inline AdversarialLayer MakeAdversarialLayer(int64_t in, double scale, uint64_t seed) {
  AdversarialLayer l;
  l.H = RandomHessian(in, 100, seed) * scale;
  for (int64_t j : {2, 17, 18, 19}) {
    l.H.select(0, j).zero_();
    l.H.select(1, j).zero_();
  }
  torch::manual_seed(seed + 1);
  l.W = torch::randn({10, in}, torch::kFloat64);
  l.W.select(0, 0).fill_(1.0);
  l.W.select(0, 1).zero_();
  l.W[2][5] = -0.0;
  l.mask = RandomMask(10, in, k2of4, seed + 2);
  l.mask[2][5] = true;
  l.mask[2][4] = l.mask[2][6] = l.mask[2][7] = false;
  l.mask.select(0, 3).copy_(TopNMask(torch::ones({1, in}), k2of4).squeeze(0));
  return l;
}

// What any fixed-mask update must keep on that layer: its output mask is `mask` bit for bit, the
// weight is N:M sparse, and the dead input columns and the all-zero row stay zero.
inline void ExpectKeepsAdversarialLayer(const torch::Tensor& weight, const torch::Tensor& out_mask,
                                        const torch::Tensor& mask) {
  EXPECT_TRUE(out_mask.equal(mask));
  EXPECT_TRUE(IsNMSparse(weight, k2of4));
  for (int64_t j : {2, 17, 18, 19}) {
    EXPECT_EQ(weight.select(1, j).abs().max().item<double>(), 0.0) << j;
  }
  EXPECT_EQ(weight.select(0, 1).abs().max().item<double>(), 0.0);
}

}  // namespace ps::testing
