// The prox's exactness criterion on the CPU paths (the GPU check runs the same on CUDA): at every
// lambda a job may use, in bf16, fp16 and fp32, on the scalar path (the code the CUDA kernel
// shares) and the AVX2 lock-step path, every 2:4 group of random and adversarial inputs ends with
// an objective within 1e-6 of the float64 reference's (plus the storage rounding) and no group
// stops at the iteration cap. Before every candidate ran to convergence, groups stopped at 100
// iterations at lambda 2-100 (near-tied and Llama-scale groups), and this test failed.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/worker/prox/prox_test_util.h"
#include "worker/prox/float_convert.h"
#include "worker/prox/prox_cpu.h"
#include "worker/prox/prox_group.h"

namespace ps::prox {
namespace {

struct Storage {
  DType dtype;
  int bits;
  const char* name;
};

// The inputs as stored in `s` (bytes) and widened back to float.
std::vector<uint16_t> ToHalf(const std::vector<float>& v, const Storage& s) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = s.dtype == DType::kBF16 ? FloatToBf16(v[i]) : FloatToFp16(v[i]);
  return out;
}
std::vector<float> FromHalf(const std::vector<uint16_t>& v, const Storage& s) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = s.dtype == DType::kBF16 ? Bf16ToFloat(v[i]) : Fp16ToFloat(v[i]);
  return out;
}

std::vector<float> Inputs() {
  std::vector<float> y = testing::RandomGroups(12000, 4, 21);
  const std::vector<float> llama = testing::LlamaScaleGroups(12000, 4, 22);
  y.insert(y.end(), llama.begin(), llama.end());
  const std::vector<float> adv = testing::AdversarialGroups4();
  y.insert(y.end(), adv.begin(), adv.end());
  return y;
}

TEST(ProxExactness, EveryGroupConvergesAndMatchesTheReference) {
  std::vector<float> base = Inputs();
  ASSERT_EQ(base.size() % 4, 0u);
  std::vector<CpuPath> paths = {CpuPath::kScalar};
  if (ProxCpuSupports(CpuPath::kAvx2)) paths.push_back(CpuPath::kAvx2);
  const Storage storages[] = {
      {DType::kBF16, 7, "bf16"}, {DType::kF16, 10, "fp16"}, {DType::kF32, 23, "fp32"}};
  for (const Storage& s : storages) {
    std::vector<float> y = base;
    if (s.dtype == DType::kF16)
      for (float& v : y) v = std::clamp(v, -6e4f, 6e4f);  // fp16's range
    if (s.dtype != DType::kF32) y = FromHalf(ToHalf(y, s), s);
    const int64_t groups = static_cast<int64_t>(y.size() / 4);
    for (float lambda : {0.01f, 0.25f, 2.0f, 25.0f, 100.0f}) {
      const std::vector<double> ref = testing::ReferenceObjectives(y, lambda, k2of4);
      for (CpuPath path : paths)
        for (ProxAlgo algo : {ProxAlgo::kAlm, ProxAlgo::kNewton}) {
          const std::string what = std::string(s.name) + " lambda " + std::to_string(lambda) +
                                   (path == CpuPath::kScalar ? " scalar " : " avx2 ") +
                                   ProxAlgoName(algo);
          std::vector<float> w;
          ProxStats st;
          if (s.dtype == DType::kF32) {
            w = y;
            st = ProxCpu(w.data(), s.dtype, groups, lambda, k2of4, 2, algo, path);
          } else {
            std::vector<uint16_t> h = ToHalf(y, s);
            st = ProxCpu(h.data(), s.dtype, groups, lambda, k2of4, 2, algo, path);
            w = FromHalf(h, s);
          }
          EXPECT_EQ(st.groups_unconverged, 0) << what;
          const auto e = testing::CheckAgainstReference(y, w, ref, lambda, k2of4, s.bits);
          EXPECT_EQ(e.violations, 0)
              << what << ": worst relative excess " << e.worst << " at group " << e.worst_group;
        }
    }
  }
}

// Without 2:4's closed forms (the no-minimum test and the line search: what the bench's
// first-release variant turns off) every candidate runs ALM to convergence, and the result meets
// the same criterion: the closed forms change the cost, not the answer.
TEST(ProxExactness, WithoutTheClosedFormsToo) {
  const std::vector<float> y = Inputs();
  const int64_t groups = static_cast<int64_t>(y.size() / 4);
  GroupLimits limits;
  limits.closed_forms = false;
  for (float lambda : {0.25f, 2.0f, 25.0f, 100.0f}) {
    const std::vector<double> ref = testing::ReferenceObjectives(y, lambda, k2of4);
    std::vector<float> w = y;
    int64_t capped = 0;
    for (int64_t g = 0; g < groups; ++g) {
      float group[4];
      std::copy_n(w.data() + 4 * g, 4, group);
      const GroupOutcome o =
          ProxGroup<2, 4>(group, lambda, AlmRelTolFor(23), ProxAlgo::kAlm, limits);
      capped += o.converged ? 0 : 1;
      std::copy_n(group, 4, w.data() + 4 * g);
    }
    EXPECT_EQ(capped, 0) << lambda;
    const auto e = testing::CheckAgainstReference(y, w, ref, lambda, k2of4, 23);
    EXPECT_EQ(e.violations, 0) << "lambda " << lambda << ": worst relative excess " << e.worst
                               << " at group " << e.worst_group;
  }
}

}  // namespace
}  // namespace ps::prox

namespace ps::prox {
namespace {

// The GPU check's random groups (its first 100,000) in fp32 at small lambda.
// newton+bounds: its interval and chord bounds were compared with no allowance for their own float
// rounding, and on groups whose objective is ~1e-8 of the largest weight squared (one weight 10^4
// times the others) they discarded the best candidate: 62 groups above the reference at lambda
// 0.01 (up to 24% relative) and 1 at 0.25, on the CPU as on the H100.
// alm: its stopping tolerance is relative to the largest weight, and on the same kind of group
// (e.g. 83.5 with three weights ~1e-4 to 1e-3) the small coordinates, which alone make the
// objective, stopped ~1% from their limit: 3 groups above the reference at lambda 0.01 (up to
// 1.7e-4 relative), on the scalar path, the AVX2 path and the H100.
TEST(ProxExactness, BoundsNeverDropTheBestCandidate) {
  std::vector<float> y = testing::RandomGroups(200000, 8, 5);
  y.resize(100000 * 4);
  const int64_t groups = 100000;
  std::vector<CpuPath> paths = {CpuPath::kScalar};
  if (ProxCpuSupports(CpuPath::kAvx2)) paths.push_back(CpuPath::kAvx2);
  for (float lambda : {0.01f, 0.25f}) {
    const std::vector<double> ref = testing::ReferenceObjectives(y, lambda, k2of4);
    for (ProxAlgo algo : {ProxAlgo::kNewtonBounds, ProxAlgo::kAlm, ProxAlgo::kNewton})
      for (CpuPath path : paths) {
        if (algo == ProxAlgo::kNewtonBounds && path != CpuPath::kScalar) continue;  // scalar only
        std::vector<float> w = y;
        const ProxStats st = ProxCpu(w.data(), DType::kF32, groups, lambda, k2of4, 2, algo, path);
        const std::string what = std::string(ProxAlgoName(algo)) +
                                 (path == CpuPath::kScalar ? " scalar" : " avx2") + " lambda " +
                                 std::to_string(lambda);
        EXPECT_EQ(st.groups_unconverged, 0) << what;
        const auto e = testing::CheckAgainstReference(y, w, ref, lambda, k2of4, 23);
        EXPECT_EQ(e.violations, 0)
            << what << ": worst relative excess " << e.worst << " at group " << e.worst_group;
      }
  }
}

}  // namespace
}  // namespace ps::prox
