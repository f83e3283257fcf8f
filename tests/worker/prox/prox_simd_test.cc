// The vectorised CPU path (prox_group_simd.h, 8 groups in lock step) against the scalar code
// that the CUDA kernel shares (prox_group.h): bit-identical points and identical statistics, for
// every pattern, storage type, algorithm and a lambda grid, on random, adversarial and non-finite
// groups and group counts that leave a scalar tail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "tests/worker/prox/prox_test_util.h"
#include "worker/prox/float_convert.h"
#include "worker/prox/prox_cpu.h"

namespace ps::prox {
namespace {

// The vector paths this CPU has.
std::vector<CpuPath> VectorPaths() {
  std::vector<CpuPath> out;
  if (ProxCpuSupports(CpuPath::kAvx2)) out.push_back(CpuPath::kAvx2);
  return out;
}

void ExpectSameStats(const ProxStats& a, const ProxStats& b, const std::string& what) {
  EXPECT_EQ(a.groups, b.groups) << what;
  EXPECT_EQ(a.groups_nsparse, b.groups_nsparse) << what;
  EXPECT_EQ(a.groups_mid, b.groups_mid) << what;
  EXPECT_EQ(a.groups_dense, b.groups_dense) << what;
  EXPECT_EQ(a.groups_nonfinite, b.groups_nonfinite) << what;
  EXPECT_EQ(a.groups_unconverged, b.groups_unconverged) << what;
  EXPECT_EQ(a.alm_sweeps, b.alm_sweeps) << what;
  EXPECT_EQ(a.objective, b.objective) << what;
}

// Runs both paths on y stored as dtype; expects the same bytes and statistics.
void ExpectIdentical(const std::vector<float>& y, DType dtype, float lambda, NMPattern p,
                     ProxAlgo algo, CpuPath path) {
  const int64_t groups = static_cast<int64_t>(y.size()) / p.m;
  const std::string what = p.ToString() + " " + std::string(DTypeName(dtype)) + " lambda " +
                           std::to_string(lambda) + " " + ProxAlgoName(algo) + " path " +
                           std::to_string(static_cast<int>(path));
  if (dtype == DType::kF32) {
    std::vector<float> a = y, b = y;
    const ProxStats sa = ProxCpu(a.data(), dtype, groups, lambda, p, 1, algo, path);
    const ProxStats sb = ProxCpu(b.data(), dtype, groups, lambda, p, 1, algo, CpuPath::kScalar);
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << what;
    ExpectSameStats(sa, sb, what);
  } else {
    std::vector<uint16_t> a(y.size());
    for (size_t i = 0; i < y.size(); ++i)
      a[i] = dtype == DType::kBF16 ? FloatToBf16(y[i]) : FloatToFp16(y[i]);
    std::vector<uint16_t> b = a;
    const ProxStats sa = ProxCpu(a.data(), dtype, groups, lambda, p, 1, algo, path);
    const ProxStats sb = ProxCpu(b.data(), dtype, groups, lambda, p, 1, algo, CpuPath::kScalar);
    ASSERT_EQ(a, b) << what;
    ExpectSameStats(sa, sb, what);
  }
}

TEST(ProxSimd, BitIdenticalToScalar) {
  const auto paths = VectorPaths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 here: the vectorised paths are not used";
  for (NMPattern p : {k2of4, k1of4, NMPattern{2, 8}, NMPattern{4, 8}}) {
    // 8 * 250 + 5 groups: a scalar tail after the batches.
    const auto y = testing::RandomGroups(p.m == 4 ? 2005 : 405, p.m, 21 + p.n);
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF16})
      for (float lambda : {0.0f, 0.01f, 0.25f, 1.0f, 4.0f, 25.0f, 1e4f})
        for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton}) {
          std::vector<float> yy = y;
          if (dt == DType::kF16)
            for (auto& v : yy) v = std::fmax(-6e4f, std::fmin(6e4f, v));
          for (CpuPath path : paths) ExpectIdentical(yy, dt, lambda, p, algo, path);
        }
  }
}

TEST(ProxSimd, LlamaScaleWeights) {
  const auto paths = VectorPaths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 here: the vectorised paths are not used";
  const std::vector<float> y = testing::LlamaScaleGroups(20000, 4, 3);
  for (float lambda : {0.25f, 4.0f, 25.0f})
    for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton}) {
      for (CpuPath path : paths) {
        ExpectIdentical(y, DType::kF32, lambda, k2of4, algo, path);
        ExpectIdentical(y, DType::kBF16, lambda, k2of4, algo, path);
      }
    }
}

// Badly scaled groups (one weight ~10^4 times the others) at small lambda in fp32: the lanes whose
// candidates take ALM's second pass (prox_group.h, kPolishObjectiveRel; ~0.4% of these groups at
// lambda 0.01) next to lanes that do not, in the same batches.
TEST(ProxSimd, SecondPassLanes) {
  const auto paths = VectorPaths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 here: the vectorised paths are not used";
  std::vector<float> y = testing::RandomGroups(20000, 8, 5);
  const std::vector<float> adv = testing::AdversarialGroups4();
  y.insert(y.end(), adv.begin(), adv.end());
  for (float lambda : {0.01f, 0.25f})
    for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton})
      for (CpuPath path : paths) ExpectIdentical(y, DType::kF32, lambda, k2of4, algo, path);
}

TEST(ProxSimd, AdversarialAndNonFiniteLanes) {
  const auto paths = VectorPaths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 here: the vectorised paths are not used";
  const float den = std::numeric_limits<float>::denorm_min();
  const float tiny = std::numeric_limits<float>::min();
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // 24 groups: every lane of three batches meets a different special case.
  const std::vector<float> y = {
      1,         1,        1,       1,      1,      1,       1,       0,        -1,    1,
      -1,        1,        0,       0,      0,      0,       0,       0,        0,     5,
      0,         -0.0f,    3,       0,      2,      2,       1,       1,        1e30f, 1e30f,
      1e30f,     1e30f,    1e30f,   -2e29f, 3e28f,  1e30f,   3e38f,   3e38f,    3e38f, 3e38f,
      1e-30f,    2e-30f,   -3e-30f, 1e-31f, den,    2 * den, 3 * den, -4 * den, tiny,  tiny / 3,
      -tiny / 7, tiny / 2, 1e-40f,  1.0f,   1e-40f, 1e-20f,  1,       1e-8f,    1e-8f, 1e-8f,
      1e20f,     1e-20f,   1e-20f,  1e20f,  nan,    1,       2,       3,        inf,   0,
      0,         0,        -inf,    1,      1,      1,       0.5f,    nan,      inf,   -0.0f,
      -0.0f,     -0.0f,    -0.0f,   -0.0f,  4,      3,       2,       1,        0.3f,  0.3f,
      0.3f,      0.3f,     7,       -7,     7,      -7};
  ASSERT_EQ(y.size(), 24u * 4);
  for (NMPattern p : {k2of4, k1of4})
    for (float lambda : {0.0f, 1e-30f, 0.25f, 1.0f, 25.0f, 1e10f, 3e38f})
      for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton})
        for (CpuPath path : paths) ExpectIdentical(y, DType::kF32, lambda, p, algo, path);
}

}  // namespace
}  // namespace ps::prox

namespace ps::prox {
namespace {

// Each group's result must not depend on where it sits: which lane of which batch, or the scalar
// tail. Sharded parameters give each rank a different slice of a tensor, so a group that one rank
// count solves in lane 3 another solves in lane 0 or in the tail; the masks of different rank
// counts may then differ only by their gradients' summation order, never by the prox.
TEST(ProxSimd, SameResultInEveryLane) {
  const auto paths = VectorPaths();
  if (paths.empty()) GTEST_SKIP() << "no AVX2 here: the vectorised paths are not used";
  std::vector<float> y = testing::LlamaScaleGroups(6000, 4, 11);
  const std::vector<float> r = testing::RandomGroups(6000, 4, 12);
  y.insert(y.end(), r.begin(), r.end());
  const std::vector<float> adv = testing::AdversarialGroups4();
  y.insert(y.end(), adv.begin(), adv.end());
  const int64_t groups = static_cast<int64_t>(y.size()) / 4;
  for (float lambda : {0.01f, 0.25f, 4.0f, 25.0f})
    for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton}) {
      std::vector<float> want = y;
      ProxCpu(want.data(), DType::kF32, groups, lambda, k2of4, 1, algo, CpuPath::kScalar);
      for (CpuPath path : paths)
        for (int shift = 1; shift < 8; ++shift) {
          // `shift` leading groups move every group of y to another lane.
          std::vector<float> got(4 * shift, 0.5f);
          got.insert(got.end(), y.begin(), y.end());
          ProxCpu(got.data(), DType::kF32, groups + shift, lambda, k2of4, 1, algo, path);
          int64_t differ = 0, first = -1;
          for (int64_t g = 0; g < groups; ++g)
            if (std::memcmp(&got[4 * (g + shift)], &want[4 * g], 4 * sizeof(float)) != 0) {
              if (first < 0) first = g;
              ++differ;
            }
          EXPECT_EQ(differ, 0) << "lambda " << lambda << " " << ProxAlgoName(algo) << " shift "
                               << shift << ": first group " << first;
        }
    }
}

}  // namespace
}  // namespace ps::prox
