// An N:M sparsity pattern: at most N non-zeros in every group of M consecutive weights along the
// input dimension (row-major view(-1, M) of an [out, in] weight). 2:4 is what sparse tensor cores
// run; 1:4 uses the same machinery. Shared by the job spec (torch-free) and the worker.
#pragma once

#include <string>
#include <string_view>

namespace ps {

struct NMPattern {
  int n = 2;
  int m = 4;
  std::string ToString() const { return std::to_string(n) + ":" + std::to_string(m); }
  bool operator==(const NMPattern&) const = default;
};

inline constexpr NMPattern k2of4{2, 4};
inline constexpr NMPattern k1of4{1, 4};

// Parses "N:M" (0 < N < M <= 16); throws ps::Error naming `key` otherwise.
NMPattern ParseNMPattern(std::string_view text, std::string_view key = "pattern");
// Throws ps::Error unless 0 < N < M <= 16.
void ValidateNMPattern(NMPattern p);

}  // namespace ps
