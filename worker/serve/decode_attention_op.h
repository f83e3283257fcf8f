// LibTorch side of the decode-step attention kernel (decode_attention.h): checks the tensors and
// launches it on the current stream. Built only with a CUDA LibTorch.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace ps::serve {

// q [rows, q_heads, 1, head_dim] (any strides); k_pool, v_pool [slots, kv_heads, max_len,
// head_dim] contiguous, row i reading slot i; positions [rows] int64 on q's device (row i sees
// keys 0..positions[i], each < max_keys); window 0 for none. Returns [rows, q_heads, 1,
// head_dim], or an undefined tensor when the kernel does not handle the case (dtype, head_dim,
// device), so the caller can use its general path.
torch::Tensor CudaDecodeAttention(const torch::Tensor& q, const torch::Tensor& k_pool,
                                  const torch::Tensor& v_pool, const torch::Tensor& positions,
                                  int64_t max_keys, int64_t window);

}  // namespace ps::serve
