// Next-token choice from one row of logits: greedy (temperature 0), or temperature + nucleus
// (top-p) sampling with the request's own random generator (seeded: the same seed and prompt
// give the same tokens).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <random>

namespace ps::serve {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;        // (0, 1]
};

// Whether `p` picks the argmax (temperature 0 or below) instead of sampling.
inline bool IsGreedy(const SamplingParams& p) { return p.temperature <= 0; }

// `logits` [vocab] fp32 on the CPU. Greedy is torch's argmax (the first of equal maxima), as
// GreedyGenerate takes it.
int32_t SampleToken(const torch::Tensor& logits, const SamplingParams& p, std::mt19937_64& rng);

// The slow, obvious reference of the sampling distribution for tests: probabilities after
// temperature and top-p, [vocab] doubles summing to 1.
std::vector<double> NucleusProbabilities(const torch::Tensor& logits, const SamplingParams& p);

}  // namespace ps::serve
