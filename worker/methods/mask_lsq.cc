#include "worker/methods/mask_lsq.h"

#include <algorithm>

#include "common/error.h"

namespace ps {

namespace {

// ½ tr((Ŵ − W) H (Ŵ − W)ᵀ) in double.
double HalfOutputError(const torch::Tensor& W, const torch::Tensor& What, const torch::Tensor& H) {
  auto d = (What - W).to(torch::kFloat64);
  return d.mm(H.to(torch::kFloat64)).mul(d).sum().item<double>() / 2;
}

// Rows solved at once: bounds the gathered [rows, k, k] systems to about 64 MiB.
int64_t RowsPerChunk(int64_t k, int64_t element_size) {
  const int64_t per_row = std::max<int64_t>(1, k * k * element_size);
  return std::max<int64_t>(1, (int64_t{64} << 20) / per_row);
}

}  // namespace

SparseGptResult MaskedLeastSquares(const torch::Tensor& weight, const torch::Tensor& hessian,
                                   const torch::Tensor& mask, NMPattern p,
                                   const SparseGptOptions& options, const std::string& what) {
  auto [W, H] = SparseGptPrepare(weight, hessian, p, options.percdamp, options.dtype, what);
  CheckFixedNMMask(mask, W, p, what);
  const int64_t rows = W.size(0);
  auto kept = mask.to(W.device());
  auto B = W.mm(H);  // row r: (H w_r)ᵀ (H is symmetric)
  auto out = torch::zeros_like(W);
  auto counts = kept.sum(1);
  const int64_t kmax = counts.max().item<int64_t>();
  if (kmax > 0) {
    auto eye = torch::eye(kmax, W.options());
    auto arange = torch::arange(kmax, counts.options());
    const int64_t chunk = RowsPerChunk(kmax, W.element_size());
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t r1 = std::min(rows, r0 + chunk);
      // Kept columns first, in column order (a stable sort of "pruned"); rows that keep fewer
      // than kmax are padded with pruned columns whose system rows are the identity and whose
      // right-hand side is 0, so their solution there is 0.
      auto order = std::get<1>(torch::sort(kept.slice(0, r0, r1).logical_not().to(torch::kUInt8),
                                           /*stable=*/true, /*dim=*/1, /*descending=*/false));
      auto idx = order.slice(1, 0, kmax);                                         // [c, kmax]
      auto valid = arange.unsqueeze(0).lt(counts.slice(0, r0, r1).unsqueeze(1));  // [c, kmax]
      auto both = valid.unsqueeze(2).logical_and(valid.unsqueeze(1));
      auto A = torch::where(both, H.index({idx.unsqueeze(2), idx.unsqueeze(1)}), eye);
      auto rhs = B.slice(0, r0, r1).gather(1, idx).masked_fill(valid.logical_not(), 0.0);
      auto [L, info] = torch::linalg_cholesky_ex(A);
      if (info.ne(0).any().item<bool>()) {
        throw Error(what +
                    ": the damped Hessian restricted to a row's kept columns is not positive "
                    "definite (increase percdamp or use more calibration data)");
      }
      auto x = torch::cholesky_solve(rhs.unsqueeze(2), L).squeeze(2);
      out.slice(0, r0, r1).scatter_(1, idx, x.masked_fill(valid.logical_not(), 0.0));
    }
  }
  if (!torch::isfinite(out).all().item<bool>()) throw Error(what + ": the solve produced NaN");
  // Exact zeros outside the mask (the scatter wrote 0.0 there; keep -0.0 out as well).
  out.masked_fill_(kept.logical_not(), 0.0);
  return {out, kept, HalfOutputError(W, out, H)};
}

SparseGptResult MaskedLeastSquaresReference(const torch::Tensor& weight,
                                            const torch::Tensor& hessian, const torch::Tensor& mask,
                                            NMPattern p, double percdamp) {
  auto [W, H] =
      SparseGptPrepare(weight.cpu(), hessian.cpu(), p, percdamp, torch::kFloat64, "reference");
  CheckFixedNMMask(mask.cpu(), W, p, "reference");
  auto out = torch::zeros_like(W);
  for (int64_t r = 0; r < W.size(0); ++r) {
    auto S = mask.cpu().select(0, r).nonzero().squeeze(1);
    if (S.numel() == 0) continue;
    auto HSS = H.index_select(0, S).index_select(1, S);
    auto b = H.mv(W.select(0, r)).index_select(0, S);
    out.select(0, r).index_copy_(0, S, torch::inverse(HSS).mv(b));
  }
  return {out, mask.cpu(), HalfOutputError(W, out, H)};
}

}  // namespace ps
