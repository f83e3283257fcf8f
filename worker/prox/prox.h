// LibTorch entry points for the EnumALM prox: in place on a weight [out, in] (any shape whose last
// dimension is a multiple of M; groups are M consecutive values of the row-major view(-1, M)),
// bf16/fp16/fp32, on the CPU (prox_cpu.h) or, when built with PS_WITH_CUDA, on a CUDA device
// (prox_cuda.h). The CPU path uses all hardware threads (its own std::threads; LibTorch's intra-op
// pool is often configured to one thread).
#pragma once

#include <torch/types.h>

#include <optional>

#include "common/nm_pattern.h"
#include "worker/prox/prox_algo.h"
#include "worker/prox/prox_stats.h"

namespace ps::prox {

// Applies prox_{lambda Reg_{N:M}} to w in place and returns the statistics (synchronises with the
// device). Throws ps::Error when w is not a contiguous F32/F16/BF16 tensor with last dimension
// divisible by M, lambda is negative or not finite, or w holds a NaN/Inf (then the groups that
// were finite have been updated and the non-finite ones left as they were).
ProxStats ProxInPlace(torch::Tensor& w, float lambda, NMPattern p);

// Asynchronous form for loops (training, benches): adds the statistics into `stats`, an int64[8]
// buffer from NewStatsBuffer on w's device, without synchronising. Non-finite groups are only
// counted; check ReadStats(stats).groups_nonfinite.
torch::Tensor NewStatsBuffer(const torch::Device& device);
// algo picks the per-group solver (benches compare them); unset, the measured fastest for w's
// device (kDefaultProxAlgo on the CPU, kDefaultCudaProxAlgo on CUDA).
void ProxInPlaceAccumulate(torch::Tensor& w, float lambda, NMPattern p, torch::Tensor& stats,
                           std::optional<ProxAlgo> algo = std::nullopt);
ProxStats ReadStats(const torch::Tensor& stats);

// Whether this build can run the prox on CUDA tensors.
bool CudaCompiled();

}  // namespace ps::prox
