// What one prox pass did, summed over groups. Torch-free (the CUDA kernel reduces into the same
// layout on the device).
#pragma once

#include <cstdint>

namespace ps::prox {

struct ProxStats {
  int64_t groups = 0;              // groups visited
  int64_t groups_nsparse = 0;      // at most N non-zeros after the prox (N:M sparse)
  int64_t groups_mid = 0;          // N+1 .. M-1 non-zeros ("3-sparse" for 2:4)
  int64_t groups_dense = 0;        // all M non-zero
  int64_t groups_nonfinite = 0;    // had a NaN/Inf: left unchanged (ProxInPlace throws)
  int64_t groups_unconverged = 0;  // a candidate stopped at the iteration cap (must stay 0)
  int64_t alm_sweeps = 0;          // ALM sweeps run in total
  double objective = 0;            // sum over groups of 1/2 ||w - y||^2 + lambda * Reg(w)

  void Add(const ProxStats& o) {
    groups += o.groups;
    groups_nsparse += o.groups_nsparse;
    groups_mid += o.groups_mid;
    groups_dense += o.groups_dense;
    groups_nonfinite += o.groups_nonfinite;
    groups_unconverged += o.groups_unconverged;
    alm_sweeps += o.alm_sweeps;
    objective += o.objective;
  }
};

}  // namespace ps::prox
