// Helpers shared by the prox tests: random groups from several distributions and the exact (double)
// objective of a returned point.
#pragma once

#include <cmath>
#include <random>
#include <span>
#include <vector>

#include "worker/prox/prox_reference.h"

namespace ps::prox::testing {

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

}  // namespace ps::prox::testing
