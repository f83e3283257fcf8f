// Fused elementwise kernels of psserve's decode step (decode_fused.cu). Each replaces a chain of
// small LibTorch operations (6-8 kernels for an RMSNorm, ~7 for RoPE on q and k plus the two
// cache writes, 2 for SiLU-and-multiply): at decode the step runs some 40 kernels per layer whose
// launch gaps, not their bytes, are what they cost. Each computes what the chain computes: the
// same roundings to the 16-bit type in the same places (RoPE and SiLU-multiply bit for bit; the
// RMSNorm's fp32 sum of squares in another order).
//
// Raw pointers and the CUDA runtime only (no LibTorch), so nvcc checks it on any machine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "worker/sparse/elem16.h"

namespace ps::serve {

using sparse::Elem;

// Per row r of `rows` x `hidden` (row-major, contiguous):
//   s = delta ? round(h[r] + delta[r]) : h[r]      (written to h_out when delta is given;
//                                                   h_out may be h)
//   y[r] = round(w * round(s * rsqrt(mean(s^2) + eps)))   (s^2 and the mean in fp32)
// which is `h + delta` followed by the model's RMSNorm (worker/models/llama_model.cc).
cudaError_t AddRmsNorm(Elem e, const void* h, const void* delta, void* h_out, const void* w,
                       void* y, int rows, int hidden, float eps, cudaStream_t stream);

// RoPE on q and k of one decode step, and k and v into the KV pool:
//   q_in [n, q_heads * head_dim], k_in / v_in [n, kv_heads * head_dim] (row strides given);
//   cos / sin [max_len, head_dim] tables; pos [n], slot [n] int64 on the device;
//   q_out [n, q_heads, head_dim] contiguous;
//   k_pool / v_pool: element (slot, head, position, i) at slot * slot_stride + head * head_stride
//   + position * head_dim + i.
// out = round(round(x * cos) + round(rotate_half(x) * sin)), as worker/models/rope.cc.
struct RopeCacheArgs {
  const void *q_in, *k_in, *v_in;
  int64_t q_row_stride, k_row_stride, v_row_stride;
  const void *cos, *sin;
  const int64_t *pos, *slot;
  void* q_out;
  void *k_pool, *v_pool;
  int64_t slot_stride, head_stride;
  int n, q_heads, kv_heads, head_dim;
};
cudaError_t RopeAndCache(Elem e, const RopeCacheArgs& a, cudaStream_t stream);

// out = round(round(silu(gate)) * up), elementwise over n values (silu(x) = x / (1 + exp(-x)) in
// fp32), as torch::silu(gate) * up.
cudaError_t SiluMul(Elem e, const void* gate, const void* up, void* out, int64_t n,
                    cudaStream_t stream);

}  // namespace ps::serve
