#include "common/nm_pattern.h"

#include <algorithm>

#include "common/error.h"

namespace ps {

NMPattern ParseNMPattern(std::string_view text, std::string_view key) {
  auto fail = [&](const std::string& why) -> NMPattern {
    throw Error(std::string(key) + ": " + why);
  };
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return fail("'" + std::string(text) + "' is not N:M");
  auto num = [&](std::string_view part) {
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail("'" + std::string(text) + "' is not N:M with whole numbers");
    return std::stoi(std::string(part));
  };
  NMPattern p{num(text.substr(0, colon)), num(text.substr(colon + 1))};
  if (p.m < 2 || p.m > 16) fail("M must be between 2 and 16, got " + std::to_string(p.m));
  if (p.n < 1 || p.n >= p.m) fail("N must satisfy 0 < N < M, got " + p.ToString());
  return p;
}

void ValidateNMPattern(NMPattern p) {
  if (p.m < 2 || p.m > 16 || p.n < 1 || p.n >= p.m)
    throw Error("N:M pattern " + p.ToString() + " must satisfy 0 < N < M <= 16");
}

}  // namespace ps
