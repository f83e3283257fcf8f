// Causal scaled-dot-product attention with grouped-query heads (GQA/MQA), optionally over cached
// keys and a sliding window. Uses at::scaled_dot_product_attention where LibTorch has it (2.x);
// LibTorch 1.13 lacks it, so the fallback computes the same thing explicitly (softmax in fp32, as
// transformers' eager path does).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>

namespace ps {

// q [B, Hq, T, D]; k, v [B, Hkv, S, D] with Hq % Hkv == 0 and S >= T. Query t sits at absolute
// position S - T + t (keys 0..S-1 are positions 0..S-1) and sees keys at positions <= its own,
// and, with a window w, only those > its position - w. Returns [B, Hq, T, D]; scale 1/sqrt(D).
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, std::optional<int64_t> window = std::nullopt);

// The slow, obvious version (loops over batch, head and query; fp64 accumulation) for tests.
torch::Tensor NaiveCausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v,
                                   std::optional<int64_t> window = std::nullopt);

}  // namespace ps
