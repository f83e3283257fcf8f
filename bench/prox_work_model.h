// The work proxy of prox_bench --work-proxy: a cost model of the per-group solver (prox_group.h)
// in estimated GPU lane instructions, fed by the solver's trace hooks. Bench-only; the product
// runs the solver with NoTrace.
#pragma once

#include "worker/prox/prox_group.h"

namespace ps::prox::bench {

// Estimated lane instructions of each piece (fp32 ops; a divide or square root counted as 10):
// e_D over k values costs k * D multiply-adds.
constexpr int CostSweep(int n, int k) { return k * ((k - 1) * n + 4) + 4; }
constexpr int CostNewton(int n, int k) {
  return k * ((k - 1) * n + 2) + k * (k - 1) / 2 * ((k - 2) * (n - 1) + 1) + k * k * k / 3 +
         10 * k + 2 * k * k + 4 * k;
}
constexpr int CostRay(int n, int k) { return 2 * k + k * (n + 1) + 30 + 8; }
constexpr int CostBound(int n, int k) { return 2 * k * ((k - 1) * n + 2) + k * (n + 1) + 3 * k; }
constexpr int CostSkip(int n, int k) { return k * ((k - 1) * n + 2) + (k - 1) * n + 2; }
constexpr int CostChord(int k) { return k == 3 ? 35 : 95; }  // PairMin and ChordMin divides
constexpr int CostObjective(int n, int k) { return k * (n + 1) + 3 * k + 4; }
// 2:4's one-variable Newton (prox_group.h SolveLine24): two reciprocals and ~20 operations a step;
// its start: two square roots and a divide; the closed-form no-minimum test: a square root.
constexpr int kCostLineStep = 45;
constexpr int kCostLineStart = 40;
constexpr int kCostNoMinimumTest = 16;
// Check, sort (8 per exchange of the network), unsort (2 per exchange), scale, signs.
constexpr int CostBase(int m) { return 10 * (m == 4 ? 5 : 19) + 10 * m + 20; }

// Sums the cost of what one group's solve did.
struct CostTrace {
  int work = 0;
  void Base(int m) { work += CostBase(m); }
  void Skip(int n, int k) { work += CostSkip(n, k); }
  void Ray(int n, int k) { work += CostRay(n, k); }
  void Sweep(int n, int k) { work += CostSweep(n, k); }
  void Newton(int n, int k) { work += CostNewton(n, k); }
  void Objective(int n, int k) { work += CostObjective(n, k); }
  void Bound(int n, int k) { work += CostBound(n, k); }
  void Chord(int k) { work += CostChord(k); }
  void LineStep() { work += kCostLineStep; }
  void LineStart() { work += kCostLineStart; }
  void NoMinimumTest() { work += kCostNoMinimumTest; }
};

}  // namespace ps::prox::bench
