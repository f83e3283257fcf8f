// Which rank owns which trainable tensor (ZeRO-1/2 style): the owner alone keeps its optimizer
// state, runs AdamW, the λ2 gradient and the prox on it, and broadcasts the result. The plan is
// balanced by size (largest tensor first onto the least-loaded rank) and deterministic, so every
// rank computes the same plan without talking.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ps {

struct OwnershipPlan {
  int ranks = 1;
  std::vector<int> owner;  // per tensor
  std::vector<int64_t> elements_per_rank;

  // max/mean elements per rank: 1.0 is perfect balance.
  double Imbalance() const;
  // A few lines: elements and tensors per rank.
  std::string Describe() const;
};

OwnershipPlan PlanOwnership(const std::vector<int64_t>& numels, int ranks);

}  // namespace ps
