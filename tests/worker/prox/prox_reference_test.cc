// The double reference against facts that hold by construction.
#include "worker/prox/prox_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"

namespace ps::prox {
namespace {

TEST(ProxReference, RegulariserIsZeroIffAtMostNNonZeros) {
  EXPECT_DOUBLE_EQ(NMRegulariser(std::vector<double>{1, -2, 0, 0}, 2), 0.0);
  EXPECT_DOUBLE_EQ(NMRegulariser(std::vector<double>{1, -2, 3, 0}, 2), 6.0);
  // 2:4, eq. 4: all four triples.
  EXPECT_DOUBLE_EQ(NMRegulariser(std::vector<double>{1, 2, 3, 4}, 2), 6 + 8 + 12 + 24);
  // 1:4: all six pairs.
  EXPECT_DOUBLE_EQ(NMRegulariser(std::vector<double>{1, 2, 3, 4}, 1), 2 + 3 + 4 + 6 + 8 + 12);
  EXPECT_DOUBLE_EQ(NMRegulariser(std::vector<double>{0, 0, -3, 0}, 1), 0.0);
}

TEST(ProxReference, LambdaZeroIsIdentity) {
  const std::vector<double> y{0.3, -1.5, 0.01, 2.0};
  for (NMPattern p : {k2of4, k1of4}) {
    const auto r = ProxReferenceGroup(y, 0.0, p);
    EXPECT_EQ(r.w, y);
    EXPECT_DOUBLE_EQ(r.objective, 0.0);
  }
}

TEST(ProxReference, LargeLambdaKeepsTopN) {
  const std::vector<double> y{0.3, -1.5, 0.01, 2.0};
  EXPECT_EQ(ProxReferenceGroup(y, 1e6, k2of4).w, (std::vector<double>{0, -1.5, 0, 2.0}));
  EXPECT_EQ(ProxReferenceGroup(y, 1e6, k1of4).w, (std::vector<double>{0, 0, 0, 2.0}));
}

TEST(ProxReference, NeverWorseThanTopN) {
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  for (int t = 0; t < 2000; ++t) {
    std::vector<double> y(4);
    for (auto& v : y) v = nd(rng);
    const double lambda = std::exp(nd(rng) * 2);
    const auto r = ProxReferenceGroup(y, lambda, k2of4);
    std::vector<int> order{0, 1, 2, 3};
    std::stable_sort(order.begin(), order.end(),
                     [&](int i, int j) { return std::fabs(y[i]) > std::fabs(y[j]); });
    std::vector<double> top = y;
    top[order[2]] = top[order[3]] = 0;
    EXPECT_LE(r.objective, ProxObjective(top, y, lambda, 2) + 1e-12);
  }
}

TEST(ProxReference, RejectsBadInput) {
  EXPECT_THROW(ProxReferenceGroup(std::vector<double>{1, 2, 3}, 1.0, k2of4), Error);
  EXPECT_THROW(ProxReferenceGroup(std::vector<double>{1, 2, 3, NAN}, 1.0, k2of4), Error);
  EXPECT_THROW(ProxReferenceGroup(std::vector<double>{1, 2, 3, 4}, -1.0, k2of4), Error);
}

}  // namespace
}  // namespace ps::prox
