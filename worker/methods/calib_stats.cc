#include "worker/methods/calib_stats.h"

#include "common/error.h"

namespace ps {

namespace {
torch::Tensor Rows(const torch::Tensor& x, int64_t in, torch::ScalarType dtype, const char* what) {
  if (!x.defined() || x.dim() < 1 || x.size(-1) != in) {
    throw Error(std::string(what) + ": input has shape " +
                (x.defined() ? c10::str(x.sizes()) : std::string("undefined")) +
                ", expected [..., " + std::to_string(in) + "]");
  }
  return x.detach().reshape({-1, in}).to(dtype);
}
}  // namespace

ColumnNormStats::ColumnNormStats(int64_t in_features, torch::Device device, torch::ScalarType dtype)
    : sum_sq_(torch::zeros({in_features}, torch::TensorOptions(device).dtype(dtype))),
      count_(torch::zeros({1}, torch::TensorOptions(device).dtype(dtype))) {}

void ColumnNormStats::Add(const torch::Tensor& x) {
  auto r = Rows(x, sum_sq_.size(0), sum_sq_.scalar_type(), "column-norm statistics");
  sum_sq_ += r.square().sum(0);
  count_ += static_cast<double>(r.size(0));
}

torch::Tensor ColumnNormStats::Norms() const { return sum_sq_.sqrt(); }

HessianStats::HessianStats(int64_t in_features, torch::Device device, torch::ScalarType dtype)
    : xtx_(torch::zeros({in_features, in_features}, torch::TensorOptions(device).dtype(dtype))),
      count_(torch::zeros({1}, torch::TensorOptions(device).dtype(dtype))) {}

void HessianStats::Add(const torch::Tensor& x) {
  auto r = Rows(x, xtx_.size(0), xtx_.scalar_type(), "Hessian statistics");
  xtx_.addmm_(r.t(), r);
  count_ += static_cast<double>(r.size(0));
}

torch::Tensor HessianStats::Hessian() const {
  double n = count_.item<double>();
  if (n <= 0) throw Error("Hessian statistics: no calibration token was seen");
  return xtx_ * (2.0 / n);
}

}  // namespace ps
