#include "worker/prox/official_prox_ops.h"

#include <torch/torch.h>

#include "common/error.h"

namespace ps::prox {
namespace {

torch::Tensor Col(const torch::Tensor& t, int64_t i) { return t.select(1, i); }

// Sum of the products of all triples of the 4 columns (eq. 4), on |.|.
torch::Tensor Reg24(const torch::Tensor& w) {
  const auto a = Col(w, 0), b = Col(w, 1), c = Col(w, 2), d = Col(w, 3);
  return (a * b * c).abs() + (b * c * d).abs() + (c * d * a).abs() + (d * a * b).abs();
}

torch::Tensor Objective(const torch::Tensor& w, const torch::Tensor& z, double lambda) {
  return 0.5 * (w - z).pow(2).sum(1) + lambda * Reg24(w);
}

// w_i <- max(z_i - lambda * inter, 0) written into column i.
void SoftThresholdInto(torch::Tensor& w, const torch::Tensor& z, int64_t i,
                       const torch::Tensor& inter, double lambda) {
  Col(w, i).copy_(torch::clamp_min(Col(z, i) - lambda * inter, 0));
}

}  // namespace

torch::Tensor OfficialStyleProx24(const torch::Tensor& w, double lambda, int iterations) {
  if (w.dim() < 1 || w.size(-1) % 4 != 0) throw Error("official-style prox: last dim % 4 != 0");
  torch::NoGradGuard no_grad;
  const torch::Tensor g = w.reshape({-1, 4});
  const torch::Tensor sign = g.sign();
  auto sorted = g.abs().sort(1, /*descending=*/true);
  const torch::Tensor z = std::get<0>(sorted), idx = std::get<1>(sorted);

  torch::Tensor w2 = z.clone();
  w2.narrow(1, 2, 2).zero_();

  torch::Tensor w3 = torch::zeros_like(z);
  for (int it = 0; it < iterations; ++it) {
    SoftThresholdInto(w3, z, 2, Col(w3, 0) * Col(w3, 1), lambda);
    SoftThresholdInto(w3, z, 1, Col(w3, 0) * Col(w3, 2), lambda);
    SoftThresholdInto(w3, z, 0, Col(w3, 1) * Col(w3, 2), lambda);
  }

  torch::Tensor w4 = torch::zeros_like(z);
  for (int it = 0; it < iterations; ++it) {
    auto pairs = [&](int a, int b, int c) {
      return Col(w4, a) * Col(w4, b) + Col(w4, b) * Col(w4, c) + Col(w4, c) * Col(w4, a);
    };
    SoftThresholdInto(w4, z, 3, pairs(0, 1, 2), lambda);
    SoftThresholdInto(w4, z, 2, pairs(0, 1, 3), lambda);
    SoftThresholdInto(w4, z, 1, pairs(0, 2, 3), lambda);
    SoftThresholdInto(w4, z, 0, pairs(1, 2, 3), lambda);
  }

  const torch::Tensor objs =
      torch::stack({Objective(w2, z, lambda), Objective(w3, z, lambda), Objective(w4, z, lambda)});
  const torch::Tensor pick = objs.argmin(0).unsqueeze(1);
  const torch::Tensor best = torch::where(pick == 0, w2, torch::where(pick == 1, w3, w4));
  torch::Tensor out = torch::zeros_like(best).scatter_(1, idx, best) * sign;
  return out.reshape(w.sizes());
}

}  // namespace ps::prox
