#include "worker/methods/sparsegpt.h"

#include <tuple>

#include "common/error.h"
#include "worker/methods/nm_mask.h"

namespace ps {

std::pair<torch::Tensor, torch::Tensor> SparseGptPrepare(const torch::Tensor& weight,
                                                         const torch::Tensor& hessian, NMPattern p,
                                                         double percdamp, torch::ScalarType dtype,
                                                         const std::string& what) {
  CheckNMShape(weight, p, what);
  const int64_t cols = weight.size(1);
  if (hessian.dim() != 2 || hessian.size(0) != cols || hessian.size(1) != cols) {
    throw Error(what + ": Hessian has shape " + c10::str(hessian.sizes()) + ", expected [" +
                std::to_string(cols) + ", " + std::to_string(cols) + "]");
  }
  if (!(percdamp >= 0)) throw Error(what + ": percdamp must be >= 0");
  auto W = weight.detach().to(dtype).clone();
  auto H = hessian.detach().to(weight.device(), dtype).clone();
  if (torch::isnan(W).any().item<bool>() || !torch::isfinite(H).all().item<bool>()) {
    throw Error(what + ": NaN weight or non-finite Hessian");
  }
  auto dead = H.diagonal().eq(0);
  H.diagonal().masked_fill_(dead, 1.0);
  W.masked_fill_(dead.unsqueeze(0), 0.0);
  double damp = percdamp * H.diagonal().mean().item<double>();
  H.diagonal().add_(damp);
  return {W, H};
}

void CheckFixedNMMask(const torch::Tensor& mask, const torch::Tensor& weight, NMPattern p,
                      const std::string& what) {
  if (mask.scalar_type() != torch::kBool || mask.sizes() != weight.sizes()) {
    throw Error(what + ": the mask must be bool " + c10::str(weight.sizes()) + ", got " +
                std::string(c10::toString(mask.scalar_type())) + " " + c10::str(mask.sizes()));
  }
  const int64_t bad = CountNMViolations(mask, p);
  if (bad != 0) {
    throw Error(what + ": the mask keeps more than " + std::to_string(p.n) + " of " +
                std::to_string(p.m) + " in " + std::to_string(bad) +
                " groups (reconstruction keeps the mask as given: fix the method's mask)");
  }
}

namespace {

// The blocked, lazily updated solve (SparseGptPrune); with `fixed` (bool, true = kept) the
// selection step takes the mask from it instead of choosing.
SparseGptResult Solve(const torch::Tensor& weight, const torch::Tensor& hessian, NMPattern p,
                      const SparseGptOptions& options, const std::string& what,
                      const torch::Tensor* fixed) {
  if (options.blocksize <= 0 || options.blocksize % p.m != 0) {
    throw Error(what + ": blocksize " + std::to_string(options.blocksize) +
                " must be a positive multiple of M=" + std::to_string(p.m));
  }
  auto [W, H] = SparseGptPrepare(weight, hessian, p, options.percdamp, options.dtype, what);
  const int64_t rows = W.size(0), cols = W.size(1);
  if (fixed) CheckFixedNMMask(*fixed, W, p, what);

  // U = upper Cholesky factor of H⁻¹ (cholesky, cholesky_inverse, cholesky upper: the reference's
  // three steps).
  auto [L, info] = torch::linalg_cholesky_ex(H);
  if (info.item<int64_t>() != 0) {
    throw Error(what +
                ": the damped Hessian is not positive definite (increase percdamp or use "
                "more calibration data)");
  }
  auto Hinv = torch::cholesky_inverse(L);
  auto [U, info2] = torch::linalg_cholesky_ex(Hinv, /*upper=*/true);
  if (info2.item<int64_t>() != 0) {
    throw Error(what + ": the inverse Hessian is not positive definite (numerically)");
  }

  auto pruned = fixed ? fixed->to(W.device()).logical_not()
                      : torch::zeros({rows, cols}, W.options().dtype(torch::kBool));
  auto losses = torch::zeros({rows}, W.options());
  for (int64_t i1 = 0; i1 < cols; i1 += options.blocksize) {
    const int64_t i2 = std::min(i1 + options.blocksize, cols), count = i2 - i1;
    auto W1 = W.slice(1, i1, i2).clone();
    auto Q1 = torch::zeros_like(W1);
    auto Err1 = torch::zeros_like(W1);
    auto Losses1 = torch::zeros_like(W1);
    auto U1 = U.slice(0, i1, i2).slice(1, i1, i2);
    auto diag1 = U1.diagonal();
    auto pruned1 = pruned.slice(1, i1, i2);
    for (int64_t i = 0; i < count; ++i) {
      if (i % p.m == 0 && !fixed) {
        auto d = diag1.slice(0, i, i + p.m);
        auto score = W1.slice(1, i, i + p.m).square() / d.square().unsqueeze(0);
        pruned1.slice(1, i, i + p.m).copy_(TopNMaskUnchecked(score, p).logical_not());
      }
      auto w = W1.select(1, i);
      auto d = U1[i][i];
      auto q = w.masked_fill(pruned1.select(1, i), 0.0);
      Q1.select(1, i).copy_(q);
      Losses1.select(1, i).copy_((w - q).square() / d.square());
      auto err1 = (w - q) / d;
      W1.slice(1, i).addr_(err1, U1.select(0, i).slice(0, i), /*beta=*/1, /*alpha=*/-1);
      Err1.select(1, i).copy_(err1);
    }
    W.slice(1, i1, i2).copy_(Q1);
    losses += Losses1.sum(1) / 2;
    if (i2 < cols) {
      W.slice(1, i2).addmm_(Err1, U.slice(0, i1, i2).slice(1, i2), /*beta=*/1, /*alpha=*/-1);
    }
  }
  if (torch::isnan(W).any().item<bool>()) throw Error(what + ": the update produced NaN");
  return {W, pruned.logical_not(), losses.sum().item<double>()};
}

// Column by column in double (SparseGptPruneReference); with `fixed` no selection.
SparseGptResult ReferenceSolve(const torch::Tensor& weight, const torch::Tensor& hessian,
                               NMPattern p, double percdamp, const torch::Tensor* fixed) {
  auto [W, H] =
      SparseGptPrepare(weight.cpu(), hessian.cpu(), p, percdamp, torch::kFloat64, "reference");
  const int64_t rows = W.size(0), cols = W.size(1);
  if (fixed) CheckFixedNMMask(*fixed, W, p, "reference");
  auto pruned = fixed ? fixed->cpu().logical_not() : torch::zeros({rows, cols}, torch::kBool);
  double loss = 0.0;
  for (int64_t i = 0; i < cols; ++i) {
    if (i % p.m == 0 && !fixed) {
      auto score = torch::empty({rows, p.m}, torch::kFloat64);
      for (int64_t k = 0; k < p.m; ++k) {
        const int64_t j = i + k;
        double hjj = torch::inverse(H.slice(0, j).slice(1, j))[0][0].item<double>();
        score.select(1, k).copy_(W.select(1, j).square() / hjj);
      }
      pruned.slice(1, i, i + p.m).copy_(TopNMaskReference(score, p).logical_not());
    }
    auto Finv = torch::inverse(H.slice(0, i).slice(1, i));  // inverse Hessian of columns i..
    double fii = Finv[0][0].item<double>();
    auto w = W.select(1, i).clone();
    auto q = w.masked_fill(pruned.select(1, i), 0.0);
    auto err = (w - q) / fii;
    W.slice(1, i) -= torch::outer(err, Finv[0]);
    W.select(1, i).copy_(q);
    loss += ((w - q).square() / fii).sum().item<double>() / 2;
  }
  return {W, pruned.logical_not(), loss};
}

}  // namespace

SparseGptResult SparseGptPrune(const torch::Tensor& weight, const torch::Tensor& hessian,
                               NMPattern p, const SparseGptOptions& options,
                               const std::string& what) {
  return Solve(weight, hessian, p, options, what, nullptr);
}

SparseGptResult SparseGptReconstruct(const torch::Tensor& weight, const torch::Tensor& hessian,
                                     const torch::Tensor& mask, NMPattern p,
                                     const SparseGptOptions& options, const std::string& what) {
  return Solve(weight, hessian, p, options, what, &mask);
}

SparseGptResult SparseGptPruneReference(const torch::Tensor& weight, const torch::Tensor& hessian,
                                        NMPattern p, double percdamp) {
  return ReferenceSolve(weight, hessian, p, percdamp, nullptr);
}

SparseGptResult SparseGptReconstructReference(const torch::Tensor& weight,
                                              const torch::Tensor& hessian,
                                              const torch::Tensor& mask, NMPattern p,
                                              double percdamp) {
  return ReferenceSolve(weight, hessian, p, percdamp, &mask);
}

}  // namespace ps
