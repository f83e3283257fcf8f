#include "worker/models/rope.h"

#include <cmath>

namespace ps {

torch::Tensor RopeInvFreq(const RopeConfig& rope, int64_t head_dim) {
  auto f32 = torch::dtype(torch::kFloat32);
  // 1 / theta^(2i/d), exactly as transformers: int64 arange -> fp32, divided by d, pow in fp32.
  auto exponent = torch::arange(0, head_dim, 2, torch::dtype(torch::kInt64)).to(torch::kFloat32) /
                  static_cast<double>(head_dim);
  auto inv_freq = 1.0 / torch::pow(torch::scalar_tensor(rope.theta, f32), exponent);
  switch (rope.type) {
    case RopeType::kDefault:
      return inv_freq;
    case RopeType::kLinear:
      return inv_freq / rope.factor;
    case RopeType::kLlama3: {
      // transformers' _compute_llama3_parameters: long wavelengths are divided by `factor`, short
      // ones kept, the band between them interpolated smoothly.
      double old_ctx = static_cast<double>(rope.original_max_position_embeddings);
      double low_wavelen = old_ctx / rope.low_freq_factor;
      double high_wavelen = old_ctx / rope.high_freq_factor;
      auto wavelen = 2 * M_PI / inv_freq;
      auto scaled = torch::where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq);
      auto smooth = (old_ctx / wavelen - rope.low_freq_factor) /
                    (rope.high_freq_factor - rope.low_freq_factor);
      auto smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
      auto medium = torch::logical_not(wavelen < high_wavelen)
                        .logical_and(torch::logical_not(wavelen > low_wavelen));
      return torch::where(medium, smoothed, scaled);
    }
  }
  return inv_freq;
}

RopeTables ComputeRope(const torch::Tensor& inv_freq, int64_t start, int64_t len,
                       const torch::TensorOptions& options) {
  auto pos = torch::arange(start, start + len, torch::dtype(torch::kInt64)).to(torch::kFloat32);
  auto freqs = torch::outer(pos, inv_freq.to(torch::kCPU, torch::kFloat32));  // [T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(options), emb.sin().to(options)};
}

torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTables& t) {
  int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half);
  auto x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  return x * t.cos + rotated * t.sin;
}

}  // namespace ps
