// The fast CPU path against a brute-force search that knows nothing of Theorem 4: on every support
// of the group, projected coordinate descent (in random coordinate order) from several random
// starts, in double; the best local minimum found over all supports. EnumALM's point must never
// be worse. >= 100k groups for 2:4 over a lambda grid, fewer for 1:4.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "tests/worker/prox/prox_test_util.h"
#include "worker/prox/prox_cpu.h"
#include "worker/prox/prox_reference.h"

namespace ps::prox {
namespace {

constexpr int M = 4;

// Objective on non-negative w against z = |y| (signs never help: the optimum has sign(y)).
double Obj(const std::array<double, M>& w, const std::array<double, M>& z, double lambda, int n) {
  return ProxObjective(w, z, lambda, n);
}

// Best objective over all supports and starts.
double BruteForce(const std::array<double, M>& z, double lambda, int n, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double best = Obj(z, z, lambda, n);  // the unshrunk point
  std::array<int, M> order{0, 1, 2, 3};
  for (unsigned support = 0; support < (1u << M); ++support) {
    for (int start = 0; start < 4; ++start) {
      std::array<double, M> w{};
      for (int i = 0; i < M; ++i)
        if (support & (1u << i)) w[i] = start == 0 ? z[i] : 1.2 * z[i] * u(rng);
      for (int sweep = 0; sweep < 400; ++sweep) {
        std::shuffle(order.begin(), order.end(), rng);
        double change = 0;
        for (int i : order) {
          if (!(support & (1u << i))) continue;
          // d Reg / d w_i = e_n(others); exact coordinate minimiser of a convex quadratic in w_i.
          double e[M] = {1, 0, 0, 0};
          for (int j = 0; j < M; ++j)
            if (j != i)
              for (int d = n; d >= 1; --d) e[d] += w[j] * e[d - 1];
          const double g = e[n];
          const double nw = std::max(z[i] - lambda * g, 0.0);
          change = std::max(change, std::fabs(nw - w[i]));
          w[i] = nw;
        }
        if (change <= 1e-13 * z[0]) break;
      }
      best = std::min(best, Obj(w, z, lambda, n));
    }
  }
  return best;
}

void RunAgainstBruteForce(NMPattern p, int groups_per_lambda, const std::vector<float>& lambdas) {
  std::mt19937 rng(1234 + p.n);
  int64_t checked = 0;
  for (float lambda : lambdas) {
    const auto y =
        testing::RandomGroups(groups_per_lambda, M, 77 + static_cast<uint32_t>(lambda * 100));
    std::vector<std::vector<float>> w(kProxAlgoCount, y);
    for (int a = 0; a < kProxAlgoCount; ++a)
      ProxCpu(w[a].data(), DType::kF32, groups_per_lambda, lambda, p, 2, static_cast<ProxAlgo>(a));
    for (int g = 0; g < groups_per_lambda; ++g) {
      std::array<double, M> z{};
      for (int i = 0; i < M; ++i) z[i] = std::fabs(static_cast<double>(y[g * M + i]));
      std::sort(z.begin(), z.end(), std::greater<>());
      const double brute = BruteForce(z, lambda, p.n, rng);
      std::span<const float> yg(&y[g * M], M);
      for (int a = 0; a < kProxAlgoCount; ++a) {
        std::span<const float> wg(&w[a][g * M], M);
        const double got = testing::Objective(wg, yg, lambda, p.n);
        ASSERT_LE(got, brute + 2e-6 * testing::SquaredNorm(yg) + 1e-30)
            << p.ToString() << " lambda " << lambda << " group " << g << " z = " << z[0] << " "
            << z[1] << " " << z[2] << " " << z[3] << " " << ProxAlgoName(static_cast<ProxAlgo>(a));
      }
      ++checked;
    }
  }
  ::testing::Test::RecordProperty("groups", static_cast<int>(checked));
}

TEST(ProxBruteForce, TwoOfFourOver100kGroups) {
  RunAgainstBruteForce(k2of4, 10000,
                       {0.01f, 0.1f, 0.25f, 0.5f, 1.0f, 2.0f, 5.0f, 10.0f, 25.0f, 100.0f});
}

TEST(ProxBruteForce, OneOfFour) {
  RunAgainstBruteForce(k1of4, 4000, {0.05f, 0.2f, 0.5f, 0.9f, 1.0f, 1.5f, 5.0f});
}

}  // namespace
}  // namespace ps::prox
