// SparseGPT (Frantar & Alistarh 2023) for N:M patterns: the reference `fasterprune` with
// prunen/prunem, step for step.
//
//   H ← 2XᵀX/n; dead columns (H_jj = 0): H_jj ← 1 and W[:, j] ← 0;
//   H ← H + percdamp · mean(diag H) · I;  U ← upper Cholesky factor of H⁻¹;
//   for each block of `blocksize` columns, for each column i of it:
//     if i ≡ 0 (mod M): among columns i..i+M-1 keep the N largest W²/U_jj² per row (current W);
//     q ← W[:, i] with pruned entries zeroed;  err ← (W[:, i] − q) / U_ii;
//     W[:, i:block end] −= err ⊗ U[i, i:block end]   (inside the block, at once)
//   after the block: W[:, block end:] −= Err_block · U[block, block end:]  (lazy batch update).
//
// The result keeps ≤ N non-zeros per group; kept weights are updated to compensate the pruned
// ones (this is the one one-shot method here that changes weights).
//
// SparseGptReconstruct is the same update with the mask given instead of chosen: the selection
// step is skipped and every other operation is the same, so given SparseGPT's own mask it
// reproduces SparseGPT's weights. It re-solves the kept weights of any method's mask (ProxSparse,
// Wanda, MaskLLM, magnitude): the OBS update of each pruned weight, column by column, spread over
// the not-yet-processed kept weights of its row.
#pragma once

#include <torch/types.h>

#include <string>
#include <utility>

#include "common/nm_pattern.h"

namespace ps {

struct SparseGptOptions {
  int64_t blocksize = 128;  // must be a multiple of M
  double percdamp = 0.01;   // damping: this fraction of the mean Hessian diagonal
  // Compute dtype of the weight update (fp32 as in the reference; fp64 for exactness tests).
  torch::ScalarType dtype = torch::kFloat32;
};

struct SparseGptResult {
  torch::Tensor weight;  // [out, in] in options.dtype, pruned entries exactly 0
  torch::Tensor mask;    // bool [out, in], true = kept
  double loss = 0.0;     // the reference's reported error Σ (w−q)²/U_ii² / 2
};

// weight [out, in]; hessian [in, in] (2XᵀX/n; any scale works, the result is scale-invariant).
// `what` names the layer in errors (a Hessian that is not positive definite even after damping,
// NaN, shapes).
SparseGptResult SparseGptPrune(const torch::Tensor& weight, const torch::Tensor& hessian,
                               NMPattern p, const SparseGptOptions& options = {},
                               const std::string& what = "sparsegpt");

// SparseGPT's update on a fixed mask (bool [out, in], true = kept, at most N per group of M;
// checked). The result's mask is `mask` bit for bit; its weight is zero outside it (and in dead
// columns).
SparseGptResult SparseGptReconstruct(const torch::Tensor& weight, const torch::Tensor& hessian,
                                     const torch::Tensor& mask, NMPattern p,
                                     const SparseGptOptions& options = {},
                                     const std::string& what = "reconstruct");

// SparseGPT's preamble, shared with the exact fixed-mask solve (mask_lsq.h): checks the shapes,
// NaN and percdamp (ps::Error naming `what`), then, on clones in `dtype`: dead columns
// (H_jj = 0) get H_jj = 1 and W[:, j] = 0, and H gets percdamp · mean(diag H) on its diagonal.
// Returns (W, damped H).
std::pair<torch::Tensor, torch::Tensor> SparseGptPrepare(const torch::Tensor& weight,
                                                         const torch::Tensor& hessian, NMPattern p,
                                                         double percdamp, torch::ScalarType dtype,
                                                         const std::string& what);

// A given mask must be bool [out, in] like `weight` with at most N kept per group (ps::Error
// naming `what` otherwise): what reconstruction promises to leave unchanged and publish.
void CheckFixedNMMask(const torch::Tensor& mask, const torch::Tensor& weight, NMPattern p,
                      const std::string& what);

// The slow, obvious version (tests only): column by column in double, with the inverse Hessian of
// the not-yet-processed columns F = {i, ..., in−1} computed afresh as inverse(H[F, F]) for every
// column — no Cholesky trick, no blocks, no lazy updates. Selection at column i uses, for each j
// of the group, [inverse(H[j:, j:])]_00 (what U_jj² is).
SparseGptResult SparseGptPruneReference(const torch::Tensor& weight, const torch::Tensor& hessian,
                                        NMPattern p, double percdamp = 0.01);
// The same reference with the mask given (no selection): SparseGptReconstruct's test oracle.
SparseGptResult SparseGptReconstructReference(const torch::Tensor& weight,
                                              const torch::Tensor& hessian,
                                              const torch::Tensor& mask, NMPattern p,
                                              double percdamp = 0.01);

}  // namespace ps
