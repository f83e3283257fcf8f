// GPU check for the CUDA prox (run on the GPU machine; prints PASS/FAIL lines, exits 1 on any
// failure). The CUDA kernel against the CPU fast path (same per-group code, so the points agree up
// to fp32 contraction differences) and against the double reference (objective never worse), on
// random and adversarial groups, bf16/fp16/fp32, aligned and unaligned pointers, odd group counts;
// NaN/Inf must be an error that leaves the bad groups unchanged. The exactness section: at every
// lambda a job may use, in bf16, fp16 and fp32, every 2:4 group of random, adversarial and
// 4096x4096 inputs has an objective within 1e-6 of the float64 reference's (plus the storage
// rounding, tests/worker/prox/prox_test_util.h) and no group stops at the iteration cap.
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/worker/prox/prox_test_util.h"
#include "worker/prox/prox.h"
#include "worker/prox/prox_reference.h"

namespace {

using ps::NMPattern;
using ps::prox::ProxStats;

int failures = 0;

void Report(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  std::fflush(stdout);
  failures += ok ? 0 : 1;
}

// Runs the prox on y (fp32 CPU tensor, numel % m == 0) stored as dt on CUDA and on the CPU, and
// checks agreement and the objective against the reference.
// ProxInPlace with a chosen per-group solver: the statistics, ps::Error on NaN/Inf.
ProxStats RunProx(torch::Tensor& w, float lambda, NMPattern p, ps::prox::ProxAlgo algo) {
  torch::Tensor stats = ps::prox::NewStatsBuffer(w.device());
  ps::prox::ProxInPlaceAccumulate(w, lambda, p, stats, algo);
  const ProxStats s = ps::prox::ReadStats(stats);
  if (s.groups_nonfinite > 0) throw ps::Error("prox: non-finite groups");
  return s;
}

void Compare(const std::string& name, const torch::Tensor& y32, torch::ScalarType dt, float lambda,
             NMPattern p, int64_t offset_groups = 0,
             ps::prox::ProxAlgo algo = ps::prox::kDefaultProxAlgo) {
  const torch::Tensor y = y32.to(dt);
  // Optionally an unaligned view: the tensor starts offset_groups groups into a bigger buffer.
  torch::Tensor big =
      torch::zeros({y.numel() + offset_groups * p.m}, torch::dtype(dt).device(torch::kCUDA));
  torch::Tensor gpu = big.narrow(0, offset_groups * p.m, y.numel()).view(y.sizes());
  gpu.copy_(y);
  torch::Tensor cpu = y.clone();
  ProxStats sg, sc;
  try {
    sg = RunProx(gpu, lambda, p, algo);
    sc = RunProx(cpu, lambda, p, algo);
  } catch (const std::exception& e) {
    Report(false, name + ": threw " + e.what());
    return;
  }
  const auto g = gpu.cpu().to(torch::kFloat32).reshape({-1, p.m});
  const auto c = cpu.to(torch::kFloat32).reshape({-1, p.m});
  const auto yin = y.to(torch::kFloat32).reshape({-1, p.m});
  const int64_t groups = g.size(0);
  // Agreement with the CPU fast path: per group, max |diff| <= 1e-3 * max |y| (most are exact).
  const auto scale = yin.abs().amax(1);
  const auto close = (g - c).abs().amax(1) <= 1e-3 * scale + 1e-30;
  const double frac_close = close.to(torch::kFloat64).mean().item<double>();
  const double frac_exact = (g == c).all(1).to(torch::kFloat64).mean().item<double>();
  // Objective against the reference (the first 4000 groups).
  const auto ga = g.accessor<float, 2>(), ya = yin.accessor<float, 2>();
  int64_t worse = 0, checked = 0;
  double worst = 0;
  const double slack = dt == torch::kFloat32 ? 2e-6 : (dt == torch::kFloat16 ? 2e-5 : 2e-4);
  for (int64_t i = 0; i < groups && checked < 4000; ++i, ++checked) {
    std::vector<double> yd(p.m), wd(p.m);
    double sq = 0, l1 = 0;
    for (int j = 0; j < p.m; ++j) {
      yd[j] = ya[i][j];
      wd[j] = ga[i][j];
      sq += yd[j] * yd[j];
      l1 += std::fabs(yd[j]);
    }
    const double ref = ps::prox::ProxReferenceGroup(yd, lambda, p, 1e-14, 100000).objective;
    const double got = ps::prox::ProxObjective(wd, yd, lambda, p.n);
    const double excess = (got - ref) / (sq + 1e-300);
    worst = std::max(worst, excess);
    if (got > ref + slack * sq + 2 * l1 * std::numeric_limits<float>::denorm_min()) ++worse;
  }
  const bool counts_ok = sg.groups == sc.groups && sg.groups_unconverged == 0 &&
                         sc.groups_unconverged == 0 &&
                         std::llabs(sg.groups_nsparse - sc.groups_nsparse) <= groups / 1000 + 1;
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "%s [%s]: %ld groups, exact %.5f close %.5f, worse-than-reference %ld/%ld (worst %.2e), "
      "2:4-sparse gpu %ld cpu %ld, objective gpu %.9g cpu %.9g, capped gpu %ld cpu %ld",
      name.c_str(), ps::prox::ProxAlgoName(algo), static_cast<long>(groups), frac_exact, frac_close,
      static_cast<long>(worse), static_cast<long>(checked), worst,
      static_cast<long>(sg.groups_nsparse), static_cast<long>(sc.groups_nsparse), sg.objective,
      sc.objective, static_cast<long>(sg.groups_unconverged),
      static_cast<long>(sc.groups_unconverged));
  const bool obj_ok =
      std::fabs(sg.objective - sc.objective) <= 1e-4 * std::fabs(sc.objective) + 1e-30;
  // The GPU contracts a*b+c into FMAs and the CPU build does not, so a few groups whose candidates
  // nearly tie pick the other one (first H100 run: up to 0.14% of 2:8 bf16 groups, one of 16
  // adversarial groups); what must hold is that no GPU point is worse than the reference.
  const int64_t far = groups - static_cast<int64_t>(std::llround(frac_close * groups));
  Report((frac_close >= 0.995 || far <= 1) && worse == 0 && counts_ok && obj_ok, buf);
}

torch::Tensor Adversarial() {
  const float den = std::numeric_limits<float>::denorm_min(),
              tiny = std::numeric_limits<float>::min();
  std::vector<float> v = {1,      1,        1,         1,        1,      1,       1,       0,
                          -1,     1,        -1,        1,        0,      0,       0,       0,
                          0,      0,        0,         5,        0,      -0.0f,   3,       0,
                          2,      2,        1,         1,        1e30f,  1e30f,   1e30f,   1e30f,
                          1e30f,  -2e29f,   3e28f,     1e30f,    3e38f,  3e38f,   3e38f,   3e38f,
                          1e-30f, 2e-30f,   -3e-30f,   1e-31f,   den,    2 * den, 3 * den, -4 * den,
                          tiny,   tiny / 3, -tiny / 7, tiny / 2, 1e-40f, 1.0f,    1e-40f,  1e-20f,
                          1,      1e-8f,    1e-8f,     1e-8f,    1e20f,  1e-20f,  1e-20f,  1e20f};
  return torch::tensor(v).reshape({-1, 8});
}

int MantissaBitsOf(torch::ScalarType dt) {
  return dt == torch::kFloat32 ? 23 : (dt == torch::kFloat16 ? 10 : 7);
}

std::vector<float> FloatValues(const torch::Tensor& t) {
  const torch::Tensor f = t.to(torch::kCPU).to(torch::kFloat32).contiguous();
  return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
}

// The exactness criterion on every group of y32 (2:4) stored as dt, for every solver.
void CheckExactness(const std::string& name, const torch::Tensor& y32, torch::ScalarType dt,
                    float lambda, const std::vector<ps::prox::ProxAlgo>& algos) {
  const torch::Tensor y = (dt == torch::kFloat16 ? y32.clamp(-6e4, 6e4) : y32).to(dt).contiguous();
  const std::vector<float> yin = FloatValues(y);
  const std::vector<double> ref = ps::prox::testing::ReferenceObjectives(yin, lambda, ps::k2of4);
  for (auto algo : algos) {
    torch::Tensor gpu = y.to(torch::kCUDA);
    ProxStats st;
    try {
      st = RunProx(gpu, lambda, ps::k2of4, algo);
    } catch (const std::exception& e) {
      Report(false, "exactness " + name + ": threw " + e.what());
      continue;
    }
    const std::vector<float> w = FloatValues(gpu);
    const auto e = ps::prox::testing::CheckAgainstReference(yin, w, ref, lambda, ps::k2of4,
                                                            MantissaBitsOf(dt));
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "exactness %s %s lambda %g [%s]: %ld groups, capped %ld, above the reference "
                  "%ld (worst relative %.2e at group %ld), iterations/group %.2f",
                  name.c_str(), c10::toString(dt), lambda, ps::prox::ProxAlgoName(algo),
                  static_cast<long>(e.groups), static_cast<long>(st.groups_unconverged),
                  static_cast<long>(e.violations), e.worst, static_cast<long>(e.worst_group),
                  static_cast<double>(st.alm_sweeps) / static_cast<double>(st.groups));
    Report(e.violations == 0 && st.groups_unconverged == 0, buf);
  }
}

}  // namespace

int main() {
  if (!ps::prox::CudaCompiled() || !torch::cuda::is_available()) {
    std::printf("FAIL no CUDA (compiled %d, available %d)\n", ps::prox::CudaCompiled(),
                torch::cuda::is_available());
    return 1;
  }
  torch::NoGradGuard no_grad;
  const auto rnd = ps::prox::testing::RandomGroups(200000, 8, 5);
  const auto y = torch::tensor(rnd).reshape({-1, 64});
  // Every per-group solver (prox_algo.h) on every case below: prox_bench --algos may pick any.
  std::vector<ps::prox::ProxAlgo> algos;
  for (int a = 0; a < ps::prox::kProxAlgoCount; ++a)
    algos.push_back(static_cast<ps::prox::ProxAlgo>(a));
  for (auto algo : algos)
    for (NMPattern p : {ps::k2of4, ps::k1of4, NMPattern{2, 8}, NMPattern{4, 8}})
      for (auto dt : {torch::kFloat32, torch::kBFloat16, torch::kFloat16})
        for (float lambda : {0.0f, 0.25f, 2.5f, 25.0f}) {
          const std::string name = "random " + p.ToString() + " " + c10::toString(dt) + " lambda " +
                                   std::to_string(lambda);
          // fp16 cannot hold the heavy tails: clamp into its range first.
          Compare(name, dt == torch::kFloat16 ? y.clamp(-6e4, 6e4) : y, dt, lambda, p, 0, algo);
        }
  for (auto algo : algos)
    for (auto dt : {torch::kFloat32, torch::kBFloat16})
      for (float lambda : {0.0f, 0.25f, 25.0f, 1e10f}) {
        const std::string suffix =
            std::string(" ") + c10::toString(dt) + " lambda " + std::to_string(lambda);
        Compare("adversarial 2:4" + suffix, Adversarial(), dt, lambda, ps::k2of4, 0, algo);
        Compare("adversarial 1:4" + suffix, Adversarial(), dt, lambda, ps::k1of4, 0, algo);
        // Unaligned start (scalar path) and an odd number of groups (vector path + tail).
        Compare("unaligned 2:4" + suffix, y.narrow(0, 0, 1000), dt, lambda, ps::k2of4, 1, algo);
        Compare("odd groups 2:4" + suffix, y.reshape({-1, 4}).narrow(0, 0, 12345), dt, lambda,
                ps::k2of4, 0, algo);
      }
  // Llama-sized layer, weights at Llama-2's scale.
  torch::manual_seed(0);
  const auto big = torch::randn({4096, 4096}) * 0.02;

  // Exactness at every lambda a job may use: every group of each case (random: the first 100k
  // groups of the five distributions and 100k at Llama-2's scale).
  {
    const auto random =
        torch::cat({y.reshape({-1, 4}).narrow(0, 0, 100000), (torch::randn({100000, 4}) * 0.02)});
    const auto adversarial =
        torch::tensor(ps::prox::testing::AdversarialGroups4()).reshape({-1, 4});
    for (auto dt : {torch::kBFloat16, torch::kFloat16, torch::kFloat32})
      for (float lambda : {0.01f, 0.25f, 2.0f, 25.0f, 100.0f}) {
        CheckExactness("random", random, dt, lambda, algos);
        CheckExactness("adversarial", adversarial, dt, lambda, algos);
        CheckExactness("4096x4096", big, dt, lambda, {ps::prox::kDefaultCudaProxAlgo});
      }
  }
  for (auto algo : algos)
    for (auto dt : {torch::kFloat32, torch::kBFloat16})
      for (float lambda : {0.25f, 25.0f})
        Compare(std::string("4096x4096 ") + c10::toString(dt) + " lambda " + std::to_string(lambda),
                big, dt, lambda, ps::k2of4, 0, algo);

  // NaN / Inf: an error; the bad groups are unchanged, the others processed.
  for (auto dt : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    auto w = (torch::randn({64, 64}) * 0.1).to(dt).cuda();
    w.index_put_({3, 5}, std::numeric_limits<float>::quiet_NaN());
    w.index_put_({7, 9}, std::numeric_limits<float>::infinity());
    const auto before = w.clone();
    bool threw = false;
    try {
      ps::prox::ProxInPlace(w, 25.0f, ps::k2of4);
    } catch (const ps::Error& e) {
      threw = std::string(e.what()).find("2 of 1024 groups") != std::string::npos;
    }
    const bool bad_unchanged =
        torch::equal(w.index({3}).narrow(0, 4, 4).isnan(),
                     before.index({3}).narrow(0, 4, 4).isnan()) &&
        torch::equal(w.index({7}).narrow(0, 8, 4), before.index({7}).narrow(0, 8, 4));
    const bool others_changed = !torch::equal(w.index({0}), before.index({0}));
    Report(threw && bad_unchanged && others_changed,
           std::string("NaN/Inf is an error, bad groups unchanged ") + c10::toString(dt));
  }
  std::printf("%s: %d failure(s)\n", failures == 0 ? "ALL PASS" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
