// Seeded randomness for data sampling that gives the same draws on every platform and standard
// library: std::mt19937_64's output sequence is fixed by the C++ standard, but
// std::uniform_int_distribution's mapping to a range is implementation-defined, so the mapping
// (and the shuffle built on it) is written here.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace ps {

// Uniform integer in [0, n) by rejection sampling on the top of the 64-bit range: draws falling
// in the final partial block of size (2^64 mod n) are redrawn, so every value is equally likely.
// n must be > 0.
inline uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  // limit = largest multiple of n that fits, expressed as 2^64 - (2^64 mod n).
  const uint64_t rem = (0 - n) % n;  // == 2^64 mod n
  for (;;) {
    uint64_t x = rng();
    if (x >= rem) return x % n;  // [rem, 2^64) holds a whole number of blocks of n
  }
}

// Uniform integer in [lo, hi] (inclusive, lo <= hi).
inline uint64_t UniformInclusive(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  if (hi - lo == UINT64_MAX) return rng();
  return lo + UniformBelow(rng, hi - lo + 1);
}

// Fisher-Yates shuffle (Durstenfeld's, from the back) with UniformBelow: same order everywhere.
template <typename T>
void DeterministicShuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(UniformBelow(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace ps
