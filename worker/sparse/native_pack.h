// LibTorch side of the native 2:4 layout (docs/artifacts.md): a 2:4-sparse weight [N, K] as kept
// values [N, K/2] plus 4 bits of positions per group ([N, K/8] bytes), the input of our decode
// kernel. Uses the tested codecs of worker/pack on the CPU; builds with any LibTorch.
#pragma once

#include <torch/types.h>

namespace ps::sparse {

struct NativePacked {
  torch::Tensor values;  // [N, K/2], the weight's dtype
  torch::Tensor meta;    // [N, K/8] uint8
  int64_t rows() const { return values.size(0); }
  int64_t cols() const { return values.size(1) * 2; }
  int64_t bytes() const { return values.nbytes() + meta.nbytes(); }
};

// `w` (any device, floating, 2-D, K % 4 == 0) must be 2:4 sparse along K; ps::Error otherwise.
// The result is on the CPU.
NativePacked PackNative(const torch::Tensor& w);
// The same layout computed with tensor ops on w's device (no copy to the host: packing a 7B model
// on the GPU takes seconds), bit for bit equal to PackNative. K % 4 == 0; ps::Error naming the
// first group with more than two nonzero values (-0.0 is a zero; kept zeros are stored as +0.0).
NativePacked PackNativeOnDevice(const torch::Tensor& w);
// The dense weight again (CPU), bit for bit except that every zero is +0.0.
torch::Tensor UnpackNative(const NativePacked& p);
// Top-2 |w| of every group of 4 along the last dimension, the rest zeroed (ties: lower index).
torch::Tensor PruneTwoFour(const torch::Tensor& w);

}  // namespace ps::sparse
