#include "worker/distributed/ownership.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "common/error.h"

namespace ps {

OwnershipPlan PlanOwnership(const std::vector<int64_t>& numels, int ranks) {
  if (ranks < 1) throw Error("ownership plan: ranks must be >= 1");
  OwnershipPlan plan;
  plan.ranks = ranks;
  plan.owner.assign(numels.size(), 0);
  plan.elements_per_rank.assign(static_cast<size_t>(ranks), 0);
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), 0);
  // Largest first; equal sizes keep their model order so the plan is the same on every rank.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  for (size_t i : order) {
    auto least = std::min_element(plan.elements_per_rank.begin(), plan.elements_per_rank.end());
    plan.owner[i] = static_cast<int>(least - plan.elements_per_rank.begin());
    *least += numels[i];
  }
  return plan;
}

double OwnershipPlan::Imbalance() const {
  int64_t total = std::accumulate(elements_per_rank.begin(), elements_per_rank.end(), int64_t{0});
  if (total == 0) return 1.0;
  int64_t most = *std::max_element(elements_per_rank.begin(), elements_per_rank.end());
  return static_cast<double>(most) * ranks / static_cast<double>(total);
}

std::string OwnershipPlan::Describe() const {
  std::ostringstream os;
  std::vector<int> tensors(static_cast<size_t>(ranks), 0);
  for (int o : owner) tensors[static_cast<size_t>(o)]++;
  os << "ownership plan over " << ranks << " rank(s), imbalance " << Imbalance() << "\n";
  for (int r = 0; r < ranks; ++r)
    os << "  rank " << r << ": " << tensors[static_cast<size_t>(r)] << " tensors, "
       << elements_per_rank[static_cast<size_t>(r)] << " elements\n";
  return os.str();
}

}  // namespace ps
