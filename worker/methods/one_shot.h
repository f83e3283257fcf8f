// The two score-only one-shot criteria. Both keep the N best weights of every group of M along the
// input dimension and never change a kept weight.
//   magnitude: score |W_ij|
//   Wanda (Sun et al. 2023): score |W_ij| · ‖X_j‖₂, the L2 norm of input column j over all
//     calibration tokens (ColumnNormStats), compared only within the group.
#pragma once

#include <torch/types.h>

#include "common/nm_pattern.h"

namespace ps {

torch::Tensor MagnitudeMask(const torch::Tensor& weight, NMPattern p);

// col_norms: [in] (‖X_j‖₂, any float dtype). ps::Error on a shape mismatch or a NaN score.
torch::Tensor WandaScore(const torch::Tensor& weight, const torch::Tensor& col_norms);
torch::Tensor WandaMask(const torch::Tensor& weight, const torch::Tensor& col_norms, NMPattern p);

// Brute force for tests: loops over rows, groups and tokens in double from the raw inputs
// x [tokens, in], ties to the lower index.
torch::Tensor WandaMaskReference(const torch::Tensor& weight, const torch::Tensor& x, NMPattern p);

}  // namespace ps
