#include "worker/serve/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"

namespace ps::serve {

std::vector<double> NucleusProbabilities(const torch::Tensor& logits, const SamplingParams& p) {
  const torch::Tensor row = logits.to(torch::kCPU, torch::kFloat32).contiguous();
  const float* x = row.data_ptr<float>();
  const int64_t n = row.numel();
  if (n == 0) throw Error("sampler: empty logits");
  if (!(p.temperature > 0)) throw Error("sampler: temperature must be > 0 for sampling");
  // Softmax of logits / T in double, max subtracted.
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(x[i]));
  std::vector<double> prob(static_cast<size_t>(n));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    prob[i] = std::isnan(x[i]) ? 0.0 : std::exp((x[i] - mx) / p.temperature);
    sum += prob[i];
  }
  for (auto& v : prob) v /= sum;
  if (p.top_p >= 1.0) return prob;
  // Keep the most likely tokens until their mass reaches top_p (at least one), renormalise.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return prob[a] > prob[b]; });
  double mass = 0;
  size_t keep = 0;
  while (keep < order.size() && (keep == 0 || mass < p.top_p)) mass += prob[order[keep++]];
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  for (size_t i = 0; i < keep; ++i) out[order[i]] = prob[order[i]] / mass;
  return out;
}

int32_t SampleToken(const torch::Tensor& logits, const SamplingParams& p, std::mt19937_64& rng) {
  if (IsGreedy(p)) return static_cast<int32_t>(logits.argmax().item<int64_t>());
  const std::vector<double> prob = NucleusProbabilities(logits, p);
  // Inverse CDF with one uniform draw made from 53 random bits (the standard distributions'
  // algorithms differ between standard libraries; this keeps seeded results the same).
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double c = 0;
  int32_t last = 0;
  for (size_t i = 0; i < prob.size(); ++i) {
    if (prob[i] <= 0) continue;
    last = static_cast<int32_t>(i);
    c += prob[i];
    if (u < c) return last;
  }
  return last;
}

}  // namespace ps::serve
