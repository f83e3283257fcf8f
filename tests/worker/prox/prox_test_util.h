// Helpers shared by the prox tests: random groups from several distributions and the exact (double)
// objective of a returned point.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "worker/prox/prox_reference.h"

namespace ps::prox::testing {

// n groups of m weights at Llama's scale: N(0, 0.02²) from mt19937(seed), in order.
inline std::vector<float> LlamaScaleGroups(int64_t n, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(static_cast<size_t>(n * m));
  for (auto& x : v) x = normal(rng);
  return v;
}

// Fills `out` with n groups of m values: normal, uniform, heavy-tailed, mixed-scale, near-tied.
inline std::vector<float> RandomGroups(int64_t n, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unif(-1.0f, 1.0f);
  std::cauchy_distribution<float> cauchy(0.0f, 0.1f);
  std::uniform_int_distribution<int> kind(0, 4);
  std::vector<float> v(static_cast<size_t>(n * m));
  for (int64_t g = 0; g < n; ++g) {
    const int k = kind(rng);
    const float base = normal(rng);
    for (int i = 0; i < m; ++i) {
      float x = 0;
      switch (k) {
        case 0:
          x = 0.02f * normal(rng);
          break;
        case 1:
          x = unif(rng);
          break;
        case 2:
          x = std::clamp(cauchy(rng), -1e3f, 1e3f);
          break;
        case 3:
          x = normal(rng) * std::pow(10.0f, 3.0f * unif(rng));
          break;
        default:
          x = base * (1.0f + 1e-3f * normal(rng));
          break;
      }
      v[static_cast<size_t>(g * m + i)] = x;
    }
  }
  return v;
}

inline double Objective(std::span<const float> w, std::span<const float> y, double lambda, int n) {
  std::vector<double> wd(w.begin(), w.end()), yd(y.begin(), y.end());
  return ProxObjective(wd, yd, lambda, n);
}

inline double SquaredNorm(std::span<const float> y) {
  double s = 0;
  for (float v : y) s += static_cast<double>(v) * v;
  return s;
}

// The exactness criterion of the prox (docs/prox.md): every group's objective, evaluated in double
// on the stored result w, is at most the float64 reference's objective plus 1e-6 of it, plus what
// storing the solver's fp32 point in a type with `mantissa_bits` bits can add. At a minimum the
// objective is stationary on the free coordinates (pruned ones are stored exactly), so rounding
// coordinate i by at most ulp_i / 2 adds at most 1/2 ||H|| sum (ulp_i / 2)^2, with ||H|| <= 1 +
// 2 (m - 1) lambda max|w| for 2:4; the slack below is 8 times that bound. A denormal-sized absolute
// term covers groups whose objective underflows.
struct Exactness {
  int64_t groups = 0, violations = 0;
  double worst = 0;  // largest (got - ref) / max(|ref|, tiny) over the groups
  int64_t worst_group = -1;
};

inline double StoredUlp(double w, int mantissa_bits) {
  if (w == 0) return 0;
  const int min_exp = mantissa_bits == 10 ? -14 : -126;  // fp16 / (bf16, fp32) normal range
  const int e = std::max(std::ilogb(w), min_exp);
  return std::ldexp(1.0, e - mantissa_bits);
}

// Runs fn(g) for g in [0, count) on `threads` threads (0: all the hardware's).
template <typename Fn>
void ParallelFor(int64_t count, int threads, Fn&& fn) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t g; (g = next.fetch_add(1)) < count;) fn(g);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

// The float64 reference's objective of every group of y (groups * m values).
inline std::vector<double> ReferenceObjectives(std::span<const float> y, double lambda, NMPattern p,
                                               int threads = 0) {
  std::vector<double> ref(y.size() / p.m);
  ParallelFor(static_cast<int64_t>(ref.size()), threads, [&](int64_t g) {
    std::vector<double> yd(y.begin() + g * p.m, y.begin() + (g + 1) * p.m);
    ref[g] = ProxReferenceGroup(yd, lambda, p, 1e-14, 100000).objective;
  });
  return ref;
}

// y, w: groups * m values (the input as stored and the stored result, both widened to float);
// ref: ReferenceObjectives(y).
inline Exactness CheckAgainstReference(std::span<const float> y, std::span<const float> w,
                                       std::span<const double> ref, double lambda, NMPattern p,
                                       int mantissa_bits, int threads = 0) {
  const int64_t groups = static_cast<int64_t>(ref.size());
  constexpr int64_t kChunk = 4096;
  std::vector<Exactness> per((groups + kChunk - 1) / kChunk);
  ParallelFor(static_cast<int64_t>(per.size()), threads, [&](int64_t c) {
    Exactness& e = per[c];
    std::vector<double> yd(p.m), wd(p.m);
    for (int64_t g = c * kChunk; g < std::min(groups, (c + 1) * kChunk); ++g) {
      double wmax = 0, l1 = 0, slack = 0;
      for (int j = 0; j < p.m; ++j) {
        yd[j] = y[g * p.m + j];
        wd[j] = w[g * p.m + j];
        wmax = std::max(wmax, std::fabs(wd[j]));
        l1 += std::fabs(yd[j]);
        const double u = StoredUlp(wd[j], mantissa_bits);
        slack += u * u;
      }
      slack *= 1 + 2.0 * (p.m - 1) * lambda * wmax;
      const double got = ProxObjective(wd, yd, lambda, p.n);
      const double tiny = 2 * l1 * std::numeric_limits<float>::denorm_min();
      ++e.groups;
      if (got > ref[g] + 1e-6 * std::fabs(ref[g]) + slack + tiny) ++e.violations;
      const double rel = (got - ref[g]) / std::max(std::fabs(ref[g]), 1e-300);
      if (e.worst_group < 0 || rel > e.worst) {
        e.worst = rel;
        e.worst_group = g;
      }
    }
  });
  Exactness total;
  for (const auto& e : per) {
    total.groups += e.groups;
    total.violations += e.violations;
    if (e.worst_group >= 0 && (total.worst_group < 0 || e.worst > total.worst)) {
      total.worst = e.worst;
      total.worst_group = e.worst_group;
    }
  }
  return total;
}

// Adversarial 2:4 groups for the exactness checks: ties, zeros (with -0), huge, tiny and denormal
// values, mixed scales, near ties at the coupling where the faces' minima are nearly degenerate.
inline std::vector<float> AdversarialGroups4() {
  const float den = std::numeric_limits<float>::denorm_min(),
              tiny = std::numeric_limits<float>::min();
  std::vector<float> v = {
      1,         1,        1,       1,      1,       1,       1,       0,        -1,      1,
      -1,        1,        0,       0,      0,       0,       0,       0,        0,       5,
      0,         -0.0f,    3,       -0.0f,  2,       2,       1,       1,        1e30f,   1e30f,
      1e30f,     1e30f,    1e30f,   -2e29f, 3e28f,   1e30f,   3e38f,   3e38f,    3e38f,   3e38f,
      1e-30f,    2e-30f,   -3e-30f, 1e-31f, den,     2 * den, 3 * den, -4 * den, tiny,    tiny / 3,
      -tiny / 7, tiny / 2, 1e-40f,  1.0f,   1e-40f,  1e-20f,  1,       1e-8f,    1e-8f,   1e-8f,
      1e20f,     1e-20f,   1e-20f,  1e20f,  0.02f,   0.02f,   0.02f,   0.02f,    -0.5f,   0.5f,
      -0.5f,     0.5f,     0.543f,  0.543f, 0.5431f, 0.5429f, 0.93f,   0.931f,   0.9305f, 0.929f,
      0.04f,     -0.04f,   0.0399f, 0.0401f};
  // Badly scaled: one weight ~10^4 times the others. At small lambda the objective (~1e-8 of the
  // largest squared) is made by the small weights alone; fp32 ALM stopped them ~1% from their limit
  // (the first three, dense winners) and the 3-sparse line search lost them to cancellation (the
  // last): up to 2e-5 and 1.7e-4 above the reference's objective at lambda 0.01.
  const float badly_scaled[] = {21.3340435f,    0.00197879644f,   0.00109983992f, 0.0040559317f,
                                20.8117313f,    -0.00259624585f,  0.00479363604f, -0.0014931669f,
                                0.00142934546f, 27.2966042f,      0.00164347491f, 0.00111985672f,
                                -0.000654559f,  -0.000722001772f, 83.5454941f,    -5.59323053e-05f};
  v.insert(v.end(), std::begin(badly_scaled), std::end(badly_scaled));
  // Near-tied groups around every scale of coupling.
  std::mt19937 rng(11);
  std::normal_distribution<float> jitter(0.0f, 1e-3f);
  for (float base : {0.01f, 0.03f, 0.1f, 0.3f, 0.55f, 0.9f, 2.0f, 10.0f})
    for (int r = 0; r < 64; ++r)
      for (int i = 0; i < 4; ++i) v.push_back(base * (1.0f + jitter(rng)) * (i % 2 ? -1.0f : 1.0f));
  return v;
}

}  // namespace ps::prox::testing
