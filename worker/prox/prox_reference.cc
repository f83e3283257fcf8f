#include "worker/prox/prox_reference.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace ps::prox {
namespace {

// Sum over the subsets of `active` (a bit mask over w) with `size` members of the product of
// |w_i|.
double SubsetProductSum(std::span<const double> w, unsigned active, int size) {
  double sum = 0;
  const unsigned all = (1u << w.size()) - 1;
  for (unsigned s = 0; s <= all; ++s) {
    if ((s & ~active) != 0 || std::popcount(s) != size) continue;
    double prod = 1;
    for (size_t i = 0; i < w.size(); ++i)
      if (s & (1u << i)) prod *= std::fabs(w[i]);
    sum += prod;
  }
  return sum;
}

}  // namespace

double NMRegulariser(std::span<const double> w, int n) {
  return SubsetProductSum(w, (1u << w.size()) - 1, n + 1);
}

double ProxObjective(std::span<const double> w, std::span<const double> y, double lambda, int n) {
  double sq = 0;
  for (size_t i = 0; i < w.size(); ++i) sq += (w[i] - y[i]) * (w[i] - y[i]);
  return 0.5 * sq + lambda * NMRegulariser(w, n);
}

std::vector<double> AlmReference(std::span<const double> z, double lambda, int n, int k, double eps,
                                 long max_sweeps) {
  const size_t m = z.size();
  std::vector<double> w(m, 0.0), prev(m, 0.0);
  for (int i = 0; i < k; ++i) w[i] = z[i];
  const unsigned first_k = (1u << k) - 1;
  for (long sweep = 0; sweep < max_sweeps; ++sweep) {
    double change = 0;
    for (size_t i = 0; i < m; ++i) change += (w[i] - prev[i]) * (w[i] - prev[i]);
    if (std::sqrt(change) <= eps) break;
    prev = w;
    for (int i = 0; i < k; ++i) {
      // d Reg / d|w_i| on the first k coordinates: products of n of the others.
      const double grad = SubsetProductSum(w, first_k & ~(1u << i), n);
      w[i] = std::max(z[i] - lambda * grad, 0.0);
    }
  }
  return w;
}

ReferenceResult ProxReferenceGroup(std::span<const double> y, double lambda, NMPattern p,
                                   double eps_rel, long max_sweeps) {
  ValidateNMPattern(p);
  if (y.size() != static_cast<size_t>(p.m))
    throw Error("prox reference: group has " + std::to_string(y.size()) + " values, pattern " +
                p.ToString() + " needs " + std::to_string(p.m));
  if (!(lambda >= 0) || !std::isfinite(lambda)) throw Error("prox reference: bad lambda");
  for (double v : y)
    if (!std::isfinite(v)) throw Error("prox reference: non-finite input");
  const size_t m = y.size();
  // z = sorted |y| descending; order[r] = index of the r-th largest.
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return std::fabs(y[a]) > std::fabs(y[b]); });
  std::vector<double> z(m);
  for (size_t r = 0; r < m; ++r) z[r] = std::fabs(y[order[r]]);

  std::vector<double> best(m, 0.0);
  for (int r = 0; r < p.n; ++r) best[r] = z[r];
  double best_obj = ProxObjective(best, z, lambda, p.n);
  int winner = 0;
  const double eps = eps_rel * z[0];
  for (int k = p.n + 1; k <= p.m; ++k) {
    std::vector<double> w = AlmReference(z, lambda, p.n, k, eps, max_sweeps);
    const double obj = ProxObjective(w, z, lambda, p.n);
    if (obj < best_obj) {
      best_obj = obj;
      best = w;
      winner = k - p.n;
    }
  }
  ReferenceResult out;
  out.w.assign(m, 0.0);
  for (size_t r = 0; r < m; ++r) out.w[order[r]] = std::copysign(best[r], y[order[r]]);
  out.objective = ProxObjective(out.w, y, lambda, p.n);
  out.winner = winner;
  return out;
}

}  // namespace ps::prox
