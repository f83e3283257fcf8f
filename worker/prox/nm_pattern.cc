#include "worker/prox/nm_pattern.h"

#include <charconv>

#include "common/error.h"

namespace ps {

void ValidateNMPattern(NMPattern p) {
  if (p.n < 1 || p.n >= p.m || p.m > 8)
    throw Error("sparsity pattern " + p.ToString() + " is not supported (need 1 <= N < M <= 8)");
}

NMPattern ParseNMPattern(std::string_view text) {
  const auto colon = text.find(':');
  NMPattern p{0, 0};
  auto parse = [](std::string_view s, int& out) {
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
  };
  if (colon == std::string_view::npos || !parse(text.substr(0, colon), p.n) ||
      !parse(text.substr(colon + 1), p.m))
    throw Error("bad sparsity pattern '" + std::string(text) + "' (expected N:M, e.g. 2:4)");
  ValidateNMPattern(p);
  return p;
}

}  // namespace ps
