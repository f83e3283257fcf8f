// Reproducible random tensors for the methods: each draw is a pure function of a 64-bit seed, so
// results do not depend on what else used the global generator, and a resumed run draws the same
// numbers. On CPU a private generator is used; on other devices the device's default generator is
// re-seeded for the draw (the methods own the device RNG while they run).
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace ps {

// Mixes four values into one seed (splitmix64 rounds).
uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

torch::Tensor SeededUniform(torch::IntArrayRef shape, uint64_t seed,
                            const torch::TensorOptions& options);  // U[0, 1)
torch::Tensor SeededNormal(torch::IntArrayRef shape, uint64_t seed,
                           const torch::TensorOptions& options);  // N(0, 1)

}  // namespace ps
