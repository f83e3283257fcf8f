// LibTorch side of the decode step's fused kernels (decode_fused.h): checks the tensors and
// launches on the current stream. Built only with a CUDA LibTorch. Each throws ps::Error naming
// what it cannot take.
#pragma once

#include <torch/types.h>

#include <utility>

namespace ps::serve {

// h [.., hidden] and, when defined, delta of h's shape; weight [hidden]; all contiguous, one
// 16-bit dtype on one CUDA device. Returns {s, y}: s = h + delta written into h (in place; h
// itself when delta is undefined) and y = RMSNorm(s) (a new tensor).
std::pair<torch::Tensor, torch::Tensor> FusedAddRmsNorm(const torch::Tensor& h,
                                                        const torch::Tensor& delta,
                                                        const torch::Tensor& weight, double eps);

// q [n, 1, q_heads * d], k / v [n, 1, kv_heads * d] (the projections' outputs; rows
// contiguous); cos / sin [max_len, d]; positions, slots [n] int64 on the device; k_pool /
// v_pool [slots, kv_heads, max_len, d] contiguous. Writes RoPE(k) and v at (slot, :, position)
// of the pools and returns RoPE(q) as [n, q_heads, 1, d].
torch::Tensor FusedRopeAndCache(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& cos,
                                const torch::Tensor& sin, const torch::Tensor& positions,
                                const torch::Tensor& slots, const torch::Tensor& k_pool,
                                const torch::Tensor& v_pool);

// silu(gate) * up for two contiguous tensors of one shape and 16-bit dtype.
torch::Tensor FusedSiluMul(const torch::Tensor& gate, const torch::Tensor& up);

}  // namespace ps::serve
