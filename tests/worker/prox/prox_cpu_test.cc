// The fast CPU path (raw pointers) against the reference and the properties of the prox.
#include "worker/prox/prox_cpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "tests/worker/prox/prox_test_util.h"
#include "worker/prox/float_convert.h"
#include "worker/prox/prox_group.h"
#include "worker/prox/prox_reference.h"

namespace ps::prox {
namespace {

using testing::Objective;
using testing::RandomGroups;
using testing::SquaredNorm;

ProxStats RunProx(std::vector<float>& v, float lambda, NMPattern p, int threads = 2,
                  ProxAlgo algo = kDefaultProxAlgo) {
  return ProxCpu(v.data(), DType::kF32, static_cast<int64_t>(v.size()) / p.m, lambda, p, threads,
                 algo);
}

// Each group's objective is at most the reference's (+ fp32 slack), and the summed objective in
// the statistics matches the returned points.
void ExpectNoWorseThanReference(const std::vector<float>& y, float lambda, NMPattern p,
                                ProxAlgo algo) {
  std::vector<float> w = y;
  const ProxStats st = RunProx(w, lambda, p, 2, algo);
  ASSERT_EQ(st.groups_nonfinite, 0);
  double sum = 0;
  for (size_t g = 0; g < y.size() / p.m; ++g) {
    std::span<const float> yg(&y[g * p.m], p.m), wg(&w[g * p.m], p.m);
    const std::vector<double> yd(yg.begin(), yg.end());
    const double ref = ProxReferenceGroup(yd, lambda, p).objective;
    const double got = Objective(wg, yg, lambda, p.n);
    sum += got;
    ASSERT_LE(got, ref + 2e-6 * SquaredNorm(yg) + 1e-30)
        << "pattern " << p.ToString() << " lambda " << lambda << " group " << g << " "
        << ProxAlgoName(algo);
  }
  EXPECT_NEAR(st.objective, sum, 1e-4 * std::fabs(sum) + 1e-12);
}

TEST(ProxCpu, MatchesReferenceOnRandomGroups) {
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}, NMPattern{4, 8}}) {
    const int groups = p.m == 4 ? 3000 : 400;
    const auto y = RandomGroups(groups, p.m, 11 + p.n);
    for (float lambda : {0.0f, 0.01f, 0.25f, 1.0f, 3.0f, 25.0f, 1e4f})
      for (int a = 0; a < kProxAlgoCount; ++a)
        ExpectNoWorseThanReference(y, lambda, p, static_cast<ProxAlgo>(a));
  }
}

TEST(ProxCpu, LambdaZeroIsIdentityForEveryDType) {
  const auto y = RandomGroups(2000, 4, 5);
  for (NMPattern p : {k2of4, k1of4}) {
    std::vector<float> f = y;
    RunProx(f, 0.0f, p);
    EXPECT_EQ(0, std::memcmp(f.data(), y.data(), y.size() * sizeof(float)));
    std::vector<uint16_t> b(y.size()), h(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      b[i] = FloatToBf16(y[i]);
      h[i] = FloatToFp16(y[i]);
    }
    const auto b0 = b, h0 = h;
    ProxCpu(b.data(), DType::kBF16, y.size() / 4, 0.0f, p, 2);
    ProxCpu(h.data(), DType::kF16, y.size() / 4, 0.0f, p, 2);
    EXPECT_EQ(b, b0);
    EXPECT_EQ(h, h0);
  }
}

TEST(ProxCpu, LargeLambdaGivesExactNM) {
  const auto y = RandomGroups(5000, 4, 6);
  for (NMPattern p : {k2of4, k1of4}) {
    std::vector<float> w = y;
    const ProxStats st = RunProx(w, 1e20f, p);
    EXPECT_EQ(st.groups_nsparse, st.groups);
    for (size_t g = 0; g < y.size() / 4; ++g) {
      // The survivors are the top-N magnitudes, unchanged.
      std::vector<int> order{0, 1, 2, 3};
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return std::fabs(y[g * 4 + a]) > std::fabs(y[g * 4 + b]);
      });
      for (int r = 0; r < 4; ++r) {
        const float expect = r < p.n ? y[g * 4 + order[r]] : 0.0f;
        ASSERT_EQ(w[g * 4 + order[r]], expect) << "group " << g;
      }
    }
  }
}

TEST(ProxCpu, SignAndPermutationEquivariance) {
  const auto y = RandomGroups(500, 4, 7);
  std::vector<int> perm{0, 1, 2, 3};
  for (NMPattern p : {k2of4, k1of4}) {
    for (float lambda : {0.1f, 2.0f, 30.0f}) {
      std::vector<float> base = y;
      RunProx(base, lambda, p);
      do {
        for (int flips = 0; flips < 16; flips += 5) {
          std::vector<float> t(y.size());
          for (size_t g = 0; g < y.size() / 4; ++g)
            for (int i = 0; i < 4; ++i) {
              const float v = y[g * 4 + perm[i]];
              t[g * 4 + i] = (flips >> i) & 1 ? -v : v;
            }
          RunProx(t, lambda, p);
          for (size_t g = 0; g < y.size() / 4; ++g) {
            // Ties (group kind 4 can tie after rounding) may pick another optimum; compare the
            // objective there and the exact point elsewhere.
            std::vector<float> a(y.begin() + g * 4, y.begin() + g * 4 + 4);
            std::sort(a.begin(), a.end(),
                      [](float u, float v) { return std::fabs(u) < std::fabs(v); });
            bool tie = false;
            for (int i = 0; i < 3; ++i) tie = tie || std::fabs(a[i]) == std::fabs(a[i + 1]);
            for (int i = 0; i < 4 && !tie; ++i) {
              const float v = base[g * 4 + perm[i]];
              ASSERT_EQ(t[g * 4 + i], (flips >> i) & 1 ? -v : v) << "group " << g;
            }
          }
        }
      } while (std::next_permutation(perm.begin(), perm.end()));
    }
  }
}

TEST(ProxCpu, AdversarialValues) {
  const float den = std::numeric_limits<float>::denorm_min();
  const float tiny = std::numeric_limits<float>::min();
  const std::vector<std::vector<float>> groups = {{1, 1, 1, 1},
                                                  {1, 1, 1, 0},
                                                  {-1, 1, -1, 1},
                                                  {0, 0, 0, 0},
                                                  {0, 0, 0, 5},
                                                  {0, -0.0f, 3, 0},
                                                  {2, 2, 1, 1},
                                                  {1e30f, 1e30f, 1e30f, 1e30f},
                                                  {1e30f, -2e29f, 3e28f, 1e30f},
                                                  {3e38f, 3e38f, 3e38f, 3e38f},
                                                  {1e-30f, 2e-30f, -3e-30f, 1e-31f},
                                                  {den, 2 * den, 3 * den, -4 * den},
                                                  {tiny, tiny / 3, -tiny / 7, tiny / 2},
                                                  {1e-40f, 1.0f, 1e-40f, 1e-20f},
                                                  {1, 1e-8f, 1e-8f, 1e-8f},
                                                  {1e20f, 1e-20f, 1e-20f, 1e20f}};
  for (NMPattern p : {k2of4, k1of4})
    for (float lambda : {0.0f, 1e-30f, 0.25f, 1.0f, 25.0f, 1e10f, 3e38f}) {
      std::vector<float> y;
      for (const auto& g : groups) y.insert(y.end(), g.begin(), g.end());
      std::vector<float> w = y;
      const ProxStats st = RunProx(w, lambda, p);
      EXPECT_EQ(st.groups_nonfinite, 0);
      EXPECT_TRUE(std::isfinite(st.objective)) << lambda;
      for (size_t g = 0; g < groups.size(); ++g) {
        std::span<const float> yg(&y[g * 4], 4), wg(&w[g * 4], 4);
        for (int i = 0; i < 4; ++i) {
          ASSERT_TRUE(std::isfinite(wg[i]));
          ASSERT_LE(std::fabs(wg[i]), std::fabs(yg[i]));  // the prox only shrinks
          ASSERT_TRUE(wg[i] == 0 || std::signbit(wg[i]) == std::signbit(yg[i]));
        }
        const std::vector<double> yd(yg.begin(), yg.end());
        const double ref = ProxReferenceGroup(yd, lambda, p).objective;
        const double got = Objective(wg, yg, lambda, p.n);
        // Denormal results are rounded to multiples of denorm_min: allow for that.
        double l1 = 0;
        for (float v : yg) l1 += std::fabs(v);
        ASSERT_LE(got, ref + 2e-6 * SquaredNorm(yg) + 2 * l1 * den)
            << p.ToString() << " lambda " << lambda << " group " << g;
      }
    }
}

TEST(ProxCpu, NonFiniteGroupsAreReportedAndLeftUnchanged) {
  std::vector<float> y{1, 2, 3, 4, 1, NAN, 3, 4, 1, 2, INFINITY, 4, -INFINITY, 0, 0, 0, 4, 3, 2, 1};
  std::vector<float> w = y;
  const ProxStats st = RunProx(w, 1.0f, k2of4);
  EXPECT_EQ(st.groups_nonfinite, 3);
  EXPECT_EQ(st.groups, 5);
  for (int i = 4; i < 16; ++i) EXPECT_EQ(std::memcmp(&w[i], &y[i], sizeof(float)), 0) << i;
  EXPECT_NE(w[0], y[0]);
}

TEST(ProxCpu, RejectsBadArguments) {
  std::vector<float> w(8, 1.0f);
  EXPECT_THROW(RunProx(w, -1.0f, k2of4), Error);
  EXPECT_THROW(RunProx(w, NAN, k2of4), Error);
  EXPECT_THROW(RunProx(w, INFINITY, k2of4), Error);
  EXPECT_THROW(RunProx(w, 1.0f, NMPattern{3, 4}), Error);
  EXPECT_THROW(ProxCpu(w.data(), DType::kI32, 2, 1.0f, k2of4), Error);
}

TEST(ProxCpu, DTypesAgree) {
  // Inputs representable in every type; results agree up to the storage rounding.
  auto y = RandomGroups(4000, 4, 9);
  for (auto& v : y)
    v = Fp16ToFloat(FloatToFp16(Bf16ToFloat(FloatToBf16(std::clamp(v, -1e4f, 1e4f)))));
  for (NMPattern p : {k2of4, k1of4})
    for (float lambda : {0.05f, 1.0f, 25.0f}) {
      std::vector<float> f = y;
      RunProx(f, lambda, p);
      std::vector<uint16_t> b(y.size()), h(y.size());
      for (size_t i = 0; i < y.size(); ++i) {
        b[i] = FloatToBf16(y[i]);
        h[i] = FloatToFp16(y[i]);
      }
      ProxCpu(b.data(), DType::kBF16, y.size() / 4, lambda, p, 2);
      ProxCpu(h.data(), DType::kF16, y.size() / 4, lambda, p, 2);
      int64_t same_support = 0;
      for (size_t g = 0; g < y.size() / 4; ++g) {
        std::vector<float> fb(4), fh(4);
        bool same = true;
        for (int i = 0; i < 4; ++i) {
          fb[i] = Bf16ToFloat(b[g * 4 + i]);
          fh[i] = Fp16ToFloat(h[g * 4 + i]);
          same = same && ((fb[i] == 0) == (f[g * 4 + i] == 0));
        }
        same_support += same;
        std::span<const float> yg(&y[g * 4], 4), wf(&f[g * 4], 4);
        const double of = Objective(wf, yg, lambda, p.n), sq = SquaredNorm(yg);
        ASSERT_LE(Objective(fb, yg, lambda, p.n), of + 2e-4 * sq + 1e-30) << g;
        ASSERT_LE(Objective(fh, yg, lambda, p.n), of + 2e-5 * sq + 1e-30) << g;
      }
      EXPECT_GE(same_support, static_cast<int64_t>(0.98 * (y.size() / 4)));
    }
}

TEST(ProxCpu, ThreadCountDoesNotChangeTheResult) {
  const auto y = RandomGroups(50000, 4, 10);
  std::vector<float> a = y, b = y;
  const ProxStats sa = RunProx(a, 2.0f, k2of4, 1), sb = RunProx(b, 2.0f, k2of4, 2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(sa.groups_nsparse, sb.groups_nsparse);
  EXPECT_EQ(sa.groups_mid + sa.groups_dense + sa.groups_nsparse, sa.groups);
}

}  // namespace
}  // namespace ps::prox

namespace ps::prox {
namespace {

// An iteration budget (GroupLimits::budget: the CUDA kernel's second pass) leaves deferred groups
// unchanged, and every group, run within the budget or
// again without it, ends bit-identical to a run without a budget.
TEST(ProxGroupBudget, DeferredGroupsAreUnchangedAndRerunsMatch) {
  auto y = testing::RandomGroups(3000, 4, 12);
  const std::vector<float> llama = testing::LlamaScaleGroups(3000, 4, 8);
  y.insert(y.end(), llama.begin(), llama.end());
  const int groups = static_cast<int>(y.size() / 4);
  for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton, ProxAlgo::kNewtonBounds})
    for (float lambda : {0.25f, 4.0f, 25.0f})
      for (int budget : {1, 4, 12}) {
        int deferred = 0;
        for (int g = 0; g < groups; ++g) {
          float a[4], b[4], orig[4];
          for (int i = 0; i < 4; ++i) a[i] = b[i] = orig[i] = y[g * 4 + i];
          const GroupOutcome full = ProxGroup<2, 4>(a, lambda, AlmRelTolFor(23), algo);
          GroupOutcome part =
              ProxGroup<2, 4>(b, lambda, AlmRelTolFor(23), algo, GroupLimits{budget});
          if (part.deferred) {
            ++deferred;
            ASSERT_EQ(0, std::memcmp(b, orig, sizeof b)) << "group " << g;
            ASSERT_LE(part.sweeps, budget);
            part = ProxGroup<2, 4>(b, lambda, AlmRelTolFor(23), algo);
          } else {
            ASSERT_LE(part.sweeps, budget);
          }
          ASSERT_EQ(0, std::memcmp(a, b, sizeof a)) << "group " << g << " budget " << budget;
          ASSERT_EQ(full.objective, part.objective);
        }
        if (lambda == 25.0f) {
          EXPECT_GT(deferred, 0) << budget;  // the budget does bind
        }
      }
}

}  // namespace
}  // namespace ps::prox
