// An N:M sparsity pattern: at most N non-zeros in every group of M consecutive weights along the
// input dimension (row-major view(-1, M) of an [out, in] weight). 2:4 is what sparse tensor cores
// run; 1:4 is the same EnumALM structure with a degree-2 regulariser.
#pragma once

#include <string>
#include <string_view>

namespace ps {

struct NMPattern {
  int n = 2;
  int m = 4;

  friend bool operator==(const NMPattern&, const NMPattern&) = default;
  std::string ToString() const { return std::to_string(n) + ":" + std::to_string(m); }
};

inline constexpr NMPattern k2of4{2, 4};
inline constexpr NMPattern k1of4{1, 4};

// Parses "N:M" (1 <= N < M <= 8); throws ps::Error naming the text otherwise.
NMPattern ParseNMPattern(std::string_view text);
// Throws ps::Error unless 1 <= n < m <= 8.
void ValidateNMPattern(NMPattern p);

}  // namespace ps
