#include "worker/methods/one_shot.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"
#include "worker/methods/nm_mask.h"

namespace ps {

torch::Tensor MagnitudeMask(const torch::Tensor& weight, NMPattern p) {
  return TopNMask(weight.detach(), p, "magnitude score");
}

torch::Tensor WandaScore(const torch::Tensor& weight, const torch::Tensor& col_norms) {
  if (weight.dim() != 2 || col_norms.dim() != 1 || col_norms.size(0) != weight.size(1)) {
    throw Error("Wanda: column norms " + c10::str(col_norms.sizes()) +
                " do not match the weight's input dimension " + c10::str(weight.sizes()));
  }
  // In fp32 at least, like the reference (its scaler_row is fp32; the weight may be bf16).
  auto dt = weight.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  return weight.detach().to(dt).abs() * col_norms.to(weight.device(), dt).unsqueeze(0);
}

torch::Tensor WandaMask(const torch::Tensor& weight, const torch::Tensor& col_norms, NMPattern p) {
  return TopNMask(WandaScore(weight, col_norms), p, "Wanda score");
}

torch::Tensor WandaMaskReference(const torch::Tensor& weight, const torch::Tensor& x, NMPattern p) {
  auto w = weight.to(torch::kCPU, torch::kFloat64).contiguous();
  auto xs = x.to(torch::kCPU, torch::kFloat64).contiguous().reshape({-1, w.size(1)});
  const int64_t rows = w.size(0), cols = w.size(1), tokens = xs.size(0);
  std::vector<double> norm(static_cast<size_t>(cols), 0.0);
  const double* xp = xs.data_ptr<double>();
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < cols; ++j) norm[size_t(j)] += xp[t * cols + j] * xp[t * cols + j];
  }
  for (auto& v : norm) v = std::sqrt(v);
  auto mask = torch::zeros({rows, cols}, torch::kBool);
  const double* wp = w.data_ptr<double>();
  bool* mp = mask.data_ptr<bool>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < cols; g += p.m) {
      std::vector<double> s(static_cast<size_t>(p.m));
      for (int k = 0; k < p.m; ++k) {
        s[size_t(k)] = std::fabs(wp[r * cols + g + k]) * norm[size_t(g + k)];
        if (std::isnan(s[size_t(k)])) throw Error("Wanda reference: NaN score");
      }
      std::vector<int> idx(static_cast<size_t>(p.m));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int a, int b) { return s[size_t(a)] > s[size_t(b)]; });
      for (int k = 0; k < p.n; ++k) mp[r * cols + g + idx[size_t(k)]] = true;
    }
  }
  return mask;
}

}  // namespace ps
