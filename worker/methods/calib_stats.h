// Streaming calibration statistics of a linear layer's inputs, fed batch by batch from the model's
// input hooks. Both keep raw sums and a token count as tensors so that ranks holding different
// calibration samples can all-reduce (sum) them in place before pruning: after the reduction every
// rank holds the statistics of all samples and computes the same mask.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace ps {

// Wanda's per-input-column statistic: sum over all calibration tokens of x_j², giving the column
// norm ‖X_j‖₂ = sqrt(sum_sq).
class ColumnNormStats {
 public:
  // `in_features` columns, accumulated in `dtype` (fp64 by default) on `device`.
  ColumnNormStats(int64_t in_features, torch::Device device,
                  torch::ScalarType dtype = torch::kFloat64);
  // x: [..., in_features] (any float dtype; detached and converted here).
  void Add(const torch::Tensor& x);
  torch::Tensor Norms() const;  // ‖X_j‖₂ [in]
  int64_t tokens() const { return static_cast<int64_t>(count_.item<double>()); }
  // The raw state, for an in-place all-reduce(sum) across ranks.
  torch::Tensor& sum_sq() { return sum_sq_; }
  torch::Tensor& count() { return count_; }  // [1], same dtype as the sums

 private:
  torch::Tensor sum_sq_, count_;
};

// SparseGPT's layer Hessian H = 2 XᵀX / n over all n calibration tokens (X: [n, in]).
class HessianStats {
 public:
  HessianStats(int64_t in_features, torch::Device device,
               torch::ScalarType dtype = torch::kFloat64);
  void Add(const torch::Tensor& x);  // x: [..., in_features]
  // 2 XᵀX / n in the accumulation dtype; ps::Error if no token was added.
  torch::Tensor Hessian() const;
  int64_t tokens() const { return static_cast<int64_t>(count_.item<double>()); }
  torch::Tensor& xtx() { return xtx_; }      // raw Σ xxᵀ [in, in]
  torch::Tensor& count() { return count_; }  // [1]

 private:
  torch::Tensor xtx_, count_;
};

}  // namespace ps
