// Which per-group solver the prox uses (prox_group.h). Runtime, one value per call (a GPU warp
// never diverges on it), so that one bench run can compare them; every variant passes the same
// tests and they agree up to the stopping tolerance.
#pragma once

#include <optional>
#include <string_view>

namespace ps::prox {

enum class ProxAlgo : int {
  kAlm = 0,           // ALM sweeps from the ray start until converged (the first implementation)
  kNewton = 1,        // ALM sweeps, then active-set Newton once ALM is predicted to be slow
  kNewtonBounds = 2,  // kNewton, and candidates whose objective lower bound cannot win are skipped
};
// The defaults, per device, from measurements: on the CPU kNewton (prox_bench, docs/prox.md); on
// the H100 kAlm, which was as fast as kNewton at λ = 0.25 and 1.4x faster in bf16 at λ = 25
// (warp divergence eats Newton's saved sweeps there; fp32 λ = 25 was 1.2x faster with kNewton).
inline constexpr ProxAlgo kDefaultProxAlgo = ProxAlgo::kNewton;
inline constexpr ProxAlgo kDefaultCudaProxAlgo = ProxAlgo::kAlm;
inline constexpr int kProxAlgoCount = 3;

inline const char* ProxAlgoName(ProxAlgo a) {
  switch (a) {
    case ProxAlgo::kAlm:
      return "alm";
    case ProxAlgo::kNewton:
      return "newton";
    case ProxAlgo::kNewtonBounds:
      return "newton+bounds";
  }
  return "?";
}

inline std::optional<ProxAlgo> ParseProxAlgo(std::string_view s) {
  for (int i = 0; i < kProxAlgoCount; ++i)
    if (s == ProxAlgoName(static_cast<ProxAlgo>(i))) return static_cast<ProxAlgo>(i);
  return std::nullopt;
}

}  // namespace ps::prox
