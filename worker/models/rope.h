// Rotary position embeddings, Hugging Face convention: the head dimension is split in halves
// (rotate_half), not interleaved pairs; cos/sin tables are cat(freqs, freqs).
#pragma once

#include <torch/types.h>

#include "worker/models/llama_config.h"

namespace ps {

// The per-pair inverse frequencies [head_dim/2] in fp32, with the config's scaling applied
// (computed as transformers computes them, in fp32).
torch::Tensor RopeInvFreq(const RopeConfig& rope, int64_t head_dim);

struct RopeTables {
  torch::Tensor cos;  // [T, head_dim]
  torch::Tensor sin;  // [T, head_dim]
};

// Tables for positions start .. start+len-1, computed in fp32 then cast to `options`' dtype.
RopeTables ComputeRope(const torch::Tensor& inv_freq, int64_t start, int64_t len,
                       const torch::TensorOptions& options);

// x [B, H, T, D] -> x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x2, x1).
torch::Tensor ApplyRope(const torch::Tensor& x, const RopeTables& t);

}  // namespace ps
