// Exact least-squares reconstruction of the kept weights on a fixed mask (`reconstruct: lsq`).
//
// SparseGPT's fixed-mask update (SparseGptReconstruct) is sequential: the error of zeroing a
// pruned weight in column i is spread over columns i+1.. of its row only, so the kept weights
// left of it never help to compensate it. That is what lets SparseGPT choose its mask column by
// column, but once the mask is given it is an approximation. With the mask fixed, SparseGPT's
// layer objective
//
//   min_Ŵ  tr((Ŵ − W) H (Ŵ − W)ᵀ),  Ŵ zero outside the mask,
//
// (H the damped Hessian 2XᵀX/n + percdamp · mean(diag H) · I, exactly as SparseGPT builds it,
// dead columns included) splits into one least-squares problem per row with a closed form:
// for row r with kept columns S,  ŵ_S = H_SS⁻¹ (H w)_S,  ŵ elsewhere 0. MaskedLeastSquares solves
// it for every row (batched Cholesky of the rows' H_SS), so its layer error is the minimum over
// all weights on that mask: never above the OBS update's on the same mask.
#pragma once

#include <torch/types.h>

#include <string>

#include "common/nm_pattern.h"
#include "worker/methods/sparsegpt.h"

namespace ps {

// weight [out, in]; hessian [in, in] (any positive scale); mask bool [out, in], at most N per
// group of M (checked). Uses options.percdamp and options.dtype (blocksize is not used). The
// result's mask is `mask` bit for bit, its weight zero outside it (and in dead columns); loss is
// ½ tr((Ŵ − W) H (Ŵ − W)ᵀ) with the damped H, the quantity SparseGPT's loss measures.
SparseGptResult MaskedLeastSquares(const torch::Tensor& weight, const torch::Tensor& hessian,
                                   const torch::Tensor& mask, NMPattern p,
                                   const SparseGptOptions& options = {},
                                   const std::string& what = "reconstruct");

// The slow, obvious version (tests only): in double, row by row, ŵ_S = inverse(H[S, S]) ·
// (H w)[S] with S the row's kept columns.
SparseGptResult MaskedLeastSquaresReference(const torch::Tensor& weight,
                                            const torch::Tensor& hessian, const torch::Tensor& mask,
                                            NMPattern p, double percdamp = 0.01);

}  // namespace ps
