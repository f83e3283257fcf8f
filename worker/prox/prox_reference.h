// The slow, obvious EnumALM (Algorithms 2 and 3 of the ProxSparse paper, generalised to N:M) on
// one group, in double precision, with a tight fixed tolerance and a very large sweep budget.
// Every faster implementation is tested against it. Subsets are enumerated explicitly; nothing
// here is tuned.
#pragma once

#include <span>
#include <vector>

#include "common/nm_pattern.h"

namespace ps::prox {

// Reg_{N:M}(w): the sum over all (N+1)-subsets of the group of the product of |w_i| (eq. 4 for
// 2:4). Zero iff at most N entries are non-zero.
double NMRegulariser(std::span<const double> w, int n);

// 1/2 ||w - y||^2 + lambda * Reg_{N:M}(w).
double ProxObjective(std::span<const double> w, std::span<const double> y, double lambda, int n);

// Algorithm 2 (ALM): z sorted descending and non-negative; coordinates 1..k start at z, the rest
// are 0; sweeps i = 1..k with w_i <- max(z_i - lambda * d Reg / d|w_i|, 0) until the change
// between sweeps is <= eps (Euclidean norm) or max_sweeps.
std::vector<double> AlmReference(std::span<const double> z, double lambda, int n, int k, double eps,
                                 long max_sweeps);

struct ReferenceResult {
  std::vector<double> w;  // the prox of y
  double objective = 0;   // ProxObjective(w, y)
  int winner = 0;         // 0: top-N; k - N: the k-sparse ALM candidate
};

// Algorithm 3 (EnumALM) for one group y of p.m values. eps_rel scales the ALM tolerance by
// max |y| (so huge and tiny groups are treated alike).
ReferenceResult ProxReferenceGroup(std::span<const double> y, double lambda, NMPattern p,
                                   double eps_rel = 1e-14, long max_sweeps = 1000000);

}  // namespace ps::prox
